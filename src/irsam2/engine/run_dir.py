"""Output folders that never lose a user's results (issue 15).

Every command that writes a folder (``train``, ``eval``, ``predict``, ``baselines``, ``sweep``, ``demo``) and
``export`` (one file) goes through :func:`check_output`: a folder that already holds files is refused, the
message naming it and offering ``--resume`` (train, sweep) or ``--overwrite``. ``--overwrite`` replaces only a
folder whose entries are all names that command writes (so a typo such as ``--out ~`` cannot wipe a home
folder), and only once the new output exists.

A training run is prepared in a hidden staging folder beside ``--out`` (:class:`RunDir`): the dataset split
files land there during set-up, and the folder becomes ``--out`` only when the run has *started* (its first
optimizer step succeeded). A failed start -- bad config, bad checkpoint, unreadable data, an optimizer that
overflows -- removes the staging folder and leaves an existing ``--out`` exactly as it was. A resumed run
works in place and writes nothing before it has started either.

Stale temporary files of our own naming (a checkpoint save killed with SIGKILL, a start killed during set-up)
are removed when the next run starts in that folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from irsam2.utils import UserError, logger

# names our writers give to temporary files: irsam2.checkpoint.atomic_save and the staging folders below
_TEMP_FILE = re.compile(r"^\.(last|best|checkpoint)\.pt\..+\.tmp$|^\.config\.yaml\..+\.tmp$")
_STAGING = re.compile(r"^\.(?P<name>.+)\.irsam2-(?P<pid>\d+)\.(partial|old)$")

# what a training run writes into its folder (train --overwrite replaces only folders made of these)
# (``test/`` and ``test_metrics.json``: the evaluation a sweep adds to each of its runs)
RUN_FILES = frozenset(
    {"last.pt", "best.pt", "log.csv", "config.yaml", "tb", "val_split.txt", "train_split.txt", "warnings.txt"}
    | {"test", "test_metrics.json"}
)


class OutputExists(UserError):
    """The output folder (or file) already holds results and neither --resume nor --overwrite was given."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove our temp files in ``folder`` and staging folders of dead processes beside it; return them."""
    removed: list[Path] = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and _TEMP_FILE.match(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    parent = folder.parent
    if parent.is_dir():
        for p in parent.iterdir():
            m = _STAGING.match(p.name)
            if m and m["name"] == folder.name and p.is_dir() and not _pid_alive(int(m["pid"])):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    for p in removed:
        logger.info("removed a stale temporary file of an interrupted run: %s", p)
    return removed


def _entries(folder: Path) -> list[str]:
    """What ``folder`` holds, ignoring our own stale temporary files."""
    return sorted(p.name for p in folder.iterdir() if not _TEMP_FILE.match(p.name))


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def check_output(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    resume: bool = False,
    ours: Iterable[str] | None = None,
    can_resume: bool = False,
    flag: str = "--out",
) -> str:
    """Decide what to do with an output folder: ``"new"`` (missing or empty), ``"resume"`` or ``"replace"``.

    A non-empty folder without ``resume``/``overwrite`` raises :class:`OutputExists` naming it and the way
    out; ``overwrite`` on a folder holding entries outside ``ours`` (the names the command writes) is refused
    too. Nothing is changed on disk.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a folder")
    if not path.is_dir() or not _entries(path):
        return "new"
    names = _entries(path)
    if resume and can_resume:
        return "resume"
    if overwrite:
        if ours is not None:
            foreign = [n for n in names if n not in set(ours)]
            if foreign:
                raise OutputExists(
                    f"{flag} {path}: holds files irsam2 did not write ({_listing(foreign)}); "
                    "--overwrite only replaces an output folder of this command. Choose another folder."
                )
        return "replace"
    offer = "--overwrite to replace it"
    if can_resume:
        offer = "--resume to continue it, " + offer
    raise OutputExists(
        f"{flag} {path}: the folder already holds results ({_listing(names)}); pass {offer}, "
        f"or choose another {flag} folder"
    )


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, flag: str = "--onnx") -> None:
    """An output *file*: refuse to replace an existing one without ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder, expected a file name")
    if path.exists() and not overwrite:
        raise OutputExists(f"{flag} {path}: the file already exists; pass --overwrite to replace it")


def replace_folder(staged: Path, target: Path) -> None:
    """Put the finished folder ``staged`` in place of ``target`` (which may exist): the old one is moved
    aside first and deleted only once the new one is in place."""
    old = None
    if target.is_dir():
        if not any(target.iterdir()):
            target.rmdir()
        else:
            old = target.parent / f".{target.name}.irsam2-{os.getpid()}.old"
            os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clear_entries(folder: Path, names: Iterable[str]) -> None:
    """Delete the given entries of ``folder`` (files or folders): an --overwrite of a command that writes
    in place, called once the command's inputs have been checked."""
    for name in names:
        p = folder / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


class RunDir:
    """A training run's folder: staged (new / replace) or in place (resume); see the module docstring.

    ``work`` is where set-up writes; :meth:`commit` makes it ``out`` once the run has started;
    :meth:`abort` undoes everything a failed start made. ``token`` (rank 0's process id) names the staging
    folder identically on every rank.
    """

    def __init__(self, out: Path, mode: str, token: int, is_main: bool = True) -> None:
        self.out = Path(out)
        self.mode = mode
        self.is_main = is_main
        self.committed = mode == "resume"
        self._made: list[Path] = []  # folders this run created (removed again by abort)
        if mode == "resume":
            self.work = self.out
            if is_main:
                clean_stale_temps(self.out)
            return
        self.work = self.out.parent / f".{self.out.name}.irsam2-{token}.partial"
        if is_main:
            clean_stale_temps(self.out)
            missing = [p for p in [self.out.parent, *self.out.parent.parents] if not p.exists()]
            self.work.mkdir(parents=True, exist_ok=False)
            self._made = [self.work, *missing]  # innermost first

    def commit(self) -> None:
        """The run has started: the staged folder becomes ``out`` (an old one replaced, see --overwrite)."""
        if self.committed:
            return
        self.committed = True
        if self.is_main:
            if self.mode == "new" and self.out.is_dir() and any(self.out.iterdir()):
                # someone filled the folder while we were setting up: do not clobber it
                raise OutputExists(f"{self.out}: files appeared in the folder while this run was starting")
            replace_folder(self.work, self.out)
        self.work = self.out

    def abort(self) -> None:
        """Remove what an unstarted run made (nothing once it has started)."""
        if self.committed or not self.is_main:
            return
        for p in self._made:
            if p == self.work:
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):  # only when still empty
                    p.rmdir()
        self._made = []
