"""Progress reporting: a tqdm bar on a terminal, one line per phase in a log file (issue 13.6)."""

from __future__ import annotations

import io

from tqdm import tqdm

from irsam2.utils import LineProgress, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_one_line_per_phase():
    log = io.StringIO()
    items = list(progress(range(250), desc="eval", unit="frame", file=log))
    assert items == list(range(250))
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eval: 250/250 frame in ")

    log = io.StringIO()
    bar = progress(total=40, desc="epoch 2/5", unit="step", initial=10, file=log)
    assert isinstance(bar, LineProgress)
    for _ in range(30):
        bar.update(1)
        bar.set_postfix(loss="0.1234")
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and "40/40 step" in lines[0] and lines[0].endswith("loss=0.1234")


def test_summary_off_and_disable_write_nothing_off_a_terminal():
    log = io.StringIO()
    bar = progress(total=5, desc="epoch 1/1", file=log, summary=False)
    bar.update(5)
    bar.close()
    quiet = progress(total=5, file=log, disable=True)
    quiet.update(5)
    quiet.close()
    assert log.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    term = FakeTerminal()
    bar = progress(total=3, desc="predict", unit="frame", file=term)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.update(3)
    bar.close()
    assert "predict" in term.getvalue() and "3/3" in term.getvalue()
