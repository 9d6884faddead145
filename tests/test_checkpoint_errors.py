"""Checkpoint load errors stand alone (issue 15, item 3): each says which case it is, none repeats torch's
advice to load without the weights-only guard; only the unsafe case mentions it (with the trust warning)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from irsam2.checkpoint import safe_load
from irsam2.utils import UserError


class _RunsCode:
    def __reduce__(self):  # what a malicious pickle does: call a function on load
        return (os.getpid, ())


def _message(path: Path) -> str:
    with pytest.raises(UserError) as info:
        safe_load(path)
    text = str(info.value)
    assert "will likely succeed" not in text and "file an issue" not in text
    assert text.startswith(str(path))
    return text


def test_each_kind_of_bad_file_gets_its_own_message(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(256)}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated or corrupt" in _message(cut)

    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 8)
    text = _message(noise)
    assert "not a PyTorch checkpoint" in text and "weights_only" not in text

    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint\n" * 5)
    assert "not a PyTorch checkpoint" in _message(notes)

    evil = tmp_path / "evil.pt"
    torch.save({"x": _RunsCode()}, evil)
    text = _message(evil)
    assert "objects that are not allowed" in text and "posix.getpid" in text
    assert "unless you trust its source" in text

    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"x": _RunsCode()}))
    text = _message(plain)
    assert "plain Python pickle" in text and "unless you trust its source" in text
