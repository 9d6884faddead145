"""The `irsam2` command line: every sub-command registered, help with an example, clean user errors."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from irsam2.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_exists(name: str) -> None:
    module = importlib.import_module(f"irsam2.commands.{COMMANDS[name]}")
    assert module.HELP and callable(module.add_arguments) and callable(module.run)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_an_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "irsam2 " + name in out and "xample" in out, out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_python_dash_m_entry_point() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "irsam2", "--version"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.startswith("irsam2 "), r.stderr
