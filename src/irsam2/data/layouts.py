"""Dataset folder layouts and split resolution (spec section 8; issue 3 "Layouts, detected automatically").

Supported layouts, detected from the folder itself:

- ``images/`` + ``masks/``: masks named like the images (``masks/<stem>.<ext>``) or with NUAA-SIRST's
  ``_pixels0`` suffix (``masks/<stem>_pixels0.<ext>``). Split files, first found wins:
  ``train.txt``/``trainval.txt`` + ``test.txt`` at the root, ``idx_427/`` (NUAA-SIRST release),
  ``50_50/`` (NUDT-SIRST, NUAA-SIRST 1:1), BasicIRSTD's ``img_idx/{train,test}_<NAME>.txt``.
- IRSTD-1k as released: ``IRSTD1k_Img/``, ``IRSTD1k_Label/``, ``trainval.txt``, ``test.txt``.

In a split folder the *training split* is ``trainval.txt`` when present, else ``train.txt``. Split names used
by
the datasets:

- ``trainval``: the whole training split of the release;
- ``val``: a validation split carved deterministically from it (:func:`carve_validation`, default 10 %),
  used for every model-selection decision; ``train``: the training split minus ``val``;
- ``test``: the release's test split, never used for selection;
- ``all``: every image that has a mask (no split file needed).

A folder without a training split file (a user's own frames) trains on every annotated image that is not in
the test split, with a warning; the validation split is carved from those as usual.

An explicit ``split_file`` always wins: its entries are the items, whatever the layout.
Presets (:data:`PRESETS`) pin the release splits of spec section 8: ``nuaa`` (idx_427, 341/86), ``nuaa_50_50``
(the paper's 1:1 split, 213/214), ``nudt`` (50_50, 663/664), ``irstd1k`` (800/201).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irsam2.data.io import IMAGE_EXTENSIONS, DataRepairWarning
from irsam2.utils import UserError

SPLITS = ("train", "val", "trainval", "test", "all")
MASK_SUFFIXES = ("_pixels0",)


@dataclass(frozen=True)
class Preset:
    """A release layout: split folder (relative to the root; "" for the root) and expected counts."""

    name: str
    split_dir: str
    counts: tuple[int, int]  # (training split, test split) of the release
    copy_paste: bool = False  # spec 8: copy-paste augmentation only for IRSTD-1k


PRESETS: dict[str, Preset] = {
    "nuaa": Preset("NUAA-SIRST (official idx_427)", "idx_427", (341, 86)),
    "nuaa_50_50": Preset("NUAA-SIRST (paper 1:1, 50_50)", "50_50", (213, 214)),
    "nudt": Preset("NUDT-SIRST (50_50)", "50_50", (663, 664)),
    "irstd1k": Preset("IRSTD-1k (official trainval/test)", "", (800, 201), copy_paste=True),
}


@dataclass
class Layout:
    """A resolved dataset folder: where images and masks are and which split files exist."""

    root: Path
    kind: str  # "images_masks" or "irstd1k"
    image_dir: Path
    mask_dir: Path
    images: dict[str, Path] = field(default_factory=dict)  # stem -> image file
    masks: dict[str, Path] = field(default_factory=dict)  # stem -> mask file
    train_file: Path | None = None
    test_file: Path | None = None

    def describe(self) -> str:
        return (
            f"{self.root} ({self.kind}: {len(self.images)} images, {len(self.masks)} masks, "
            f"train split {self.train_file}, test split {self.test_file})"
        )


def _index(folder: Path, strip_suffixes: tuple[str, ...] = ()) -> dict[str, Path]:
    """stem -> file for the image files of ``folder`` (one directory listing, no file opened)."""
    out: dict[str, Path] = {}
    exact: set[str] = set()
    with os.scandir(folder) as it:
        entries = sorted((e.name for e in it if e.is_file()), key=lambda n: n)
    for name in entries:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        key, is_exact = stem, True
        for suf in strip_suffixes:
            if stem.endswith(suf):
                key, is_exact = stem[: -len(suf)], False
                break
        if key in out and (key in exact or not is_exact):
            continue  # an exactly named mask beats a suffixed one; otherwise first extension wins
        out[key] = folder / name
        if is_exact:
            exact.add(key)
    return out


def _split_files(folder: Path) -> tuple[Path | None, Path | None]:
    train = next((folder / n for n in ("trainval.txt", "train.txt") if (folder / n).is_file()), None)
    test = folder / "test.txt"
    return train, (test if test.is_file() else None)


def _img_idx_files(root: Path) -> tuple[Path | None, Path | None]:
    folder = root / "img_idx"
    names = sorted(p.name[len("train_") : -4] for p in folder.glob("train_*.txt"))
    if not names:
        return None, None
    if len(names) > 1:
        match = [n for n in names if n.lower() == root.name.lower()]
        if not match:
            raise UserError(
                f"{folder}: several BasicIRSTD splits {names}; give split_file=..., "
                "or name the dataset folder like one of them"
            )
        names = match
    test = folder / f"test_{names[0]}.txt"
    return folder / f"train_{names[0]}.txt", (test if test.is_file() else None)


def detect_layout(root: str | os.PathLike, preset: str | None = None, split_dir: str | None = None) -> Layout:
    """Find images, masks and split files under ``root``.

    ``preset`` (a key of :data:`PRESETS`) or ``split_dir`` (a folder relative to ``root``, e.g. ``"50_50"``)
    choose the split folder; otherwise the first of root files, ``idx_427/``, ``50_50/``, ``img_idx/`` is
    used.
    Only directory listings are read.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown dataset preset {preset!r}; choose from {sorted(PRESETS)}")
        if split_dir is None:
            split_dir = PRESETS[preset].split_dir
    if (root / "IRSTD1k_Img").is_dir():
        kind, image_dir, mask_dir = "irstd1k", root / "IRSTD1k_Img", root / "IRSTD1k_Label"
    elif (root / "images").is_dir():
        kind, image_dir, mask_dir = "images_masks", root / "images", root / "masks"
    else:
        raise UserError(
            f"{root}: no known dataset layout (expected images/ + masks/, or IRSTD1k_Img/ + IRSTD1k_Label/)"
        )
    if not mask_dir.is_dir():
        raise UserError(
            f"{root}: image folder {image_dir.name}/ found but mask folder {mask_dir.name}/ is missing"
        )
    layout = Layout(root, kind, image_dir, mask_dir, _index(image_dir), _index(mask_dir, MASK_SUFFIXES))
    if not layout.images:
        raise UserError(f"{image_dir}: no image files ({', '.join(IMAGE_EXTENSIONS)})")

    if split_dir is not None:
        folder = root / split_dir
        layout.train_file, layout.test_file = _split_files(folder)
        if layout.train_file is None or layout.test_file is None:
            what = f"preset {preset!r}" if preset else f"split_dir {split_dir!r}"
            raise UserError(f"{folder}: {what} needs trainval.txt or train.txt, and test.txt, in this folder")
        return layout
    for folder in (root, root / "idx_427", root / "50_50"):
        train, test = _split_files(folder)
        if train is not None or test is not None:
            layout.train_file, layout.test_file = train, test
            return layout
    layout.train_file, layout.test_file = _img_idx_files(root)
    return layout


def check_preset_counts(layout: Layout, preset: str) -> None:
    """Warn when the split files hold other counts than the benchmark's release (a partial or edited copy)."""
    want = PRESETS[preset].counts
    got = tuple(
        len(read_split_file(f)) if f is not None else 0 for f in (layout.train_file, layout.test_file)
    )
    if got != want:
        warnings.warn(
            f"{layout.root}: preset {preset!r} ({PRESETS[preset].name}) expects {want[0]} training / "
            f"{want[1]} test images, the split files list {got[0]} / {got[1]}",
            UserWarning,
            stacklevel=2,
        )


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Stems listed in a split file: one per line; blank lines and ``#`` comments skipped; directories and
    image extensions stripped (``images/Misc_1.png`` -> ``Misc_1``); duplicates dropped with a warning."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read split file ({e})") from None
    stems: list[str] = []
    seen: set[str] = set()
    dups: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        entry = entry.replace("\\", "/").rsplit("/", 1)[-1]
        stem, ext = os.path.splitext(entry)
        if ext.lower() in IMAGE_EXTENSIONS:
            entry = stem
        if entry in seen:
            dups.append(entry)
            continue
        seen.add(entry)
        stems.append(entry)
    if dups:
        warnings.warn(
            f"{path}: duplicate entries ignored: {', '.join(dups)}", DataRepairWarning, stacklevel=2
        )
    if not stems:
        raise UserError(f"{path}: split file lists no images")
    return stems


def write_split_file(path: str | os.PathLike, stems: list[str]) -> Path:
    """Write one stem per line (creating parent folders); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(s + "\n" for s in stems))
    os.replace(tmp, path)
    return path


def carve_validation(stems: list[str], fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic ``(train, val)`` split of a training split.

    Depends only on the *set* of stems, ``fraction`` and ``seed`` (not on the file's order). ``val`` holds
    ``round(fraction * n)`` stems (at least 1 when ``n >= 2`` and ``fraction > 0``), sorted; ``train`` keeps
    the
    original order.
    """
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(stems)
    k = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    ordered = sorted(stems)
    pick = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A11D]).permutation(n)[:k]
    val = sorted(ordered[i] for i in pick)
    vs = set(val)
    return [s for s in stems if s not in vs], val


@dataclass
class ResolvedSplit:
    """The items of one split: stems with their image and mask files."""

    name: str
    stems: list[str]
    images: list[Path]
    masks: list[Path]
    layout: Layout
    split_file: Path | None = None  # the file the stems came from (or the written validation file)


def _check_missing(layout: Layout, stems: list[str], source: str) -> None:
    no_img = [s for s in stems if s not in layout.images]
    no_mask = [s for s in stems if s in layout.images and s not in layout.masks]
    if no_img or no_mask:
        parts = []
        if no_img:
            parts.append(f"{len(no_img)} without an image in {layout.image_dir}: {', '.join(no_img)}")
        if no_mask:
            parts.append(f"{len(no_mask)} without a mask in {layout.mask_dir}: {', '.join(no_mask)}")
        raise UserError(f"{source}: split entries missing files; " + "; ".join(parts))


def resolve_split(
    root: str | os.PathLike,
    split: str = "train",
    preset: str | None = None,
    split_file: str | os.PathLike | None = None,
    split_dir: str | None = None,
    val_fraction: float = 0.1,
    val_file: str | os.PathLike | None = None,
    seed: int = 0,
    layout: Layout | None = None,
) -> ResolvedSplit:
    """Resolve ``split`` of the dataset at ``root`` to files (see the module docstring for the split names).

    ``val_file``: where the carved validation split is recorded. If it exists it is read back (so a resumed
    run
    reuses the same split, and every entry must belong to the training split); otherwise it is written there.
    Without it the carve is done in memory (it is deterministic anyway).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {SPLITS}")
    layout = layout or detect_layout(root, preset, split_dir)
    if split_file is not None:
        stems, source, used = read_split_file(split_file), str(split_file), Path(split_file)
    elif split == "all":
        stems, source, used = sorted(s for s in layout.images if s in layout.masks), str(layout.root), None
    else:
        f = layout.test_file if split == "test" else layout.train_file
        if f is None and split == "test":
            raise UserError(
                f"{layout.root}: no test split file found (looked for test.txt at the root and in idx_427/, "
                "50_50/, and img_idx/test_<NAME>.txt); pass split_file=..."
            )
        if f is None:
            # A user's own folder without split files: every annotated image not in the test split trains.
            test = set(read_split_file(layout.test_file)) if layout.test_file is not None else set()
            stems = sorted(s for s in layout.images if s in layout.masks and s not in test)
            warnings.warn(
                f"{layout.root}: no training split file (train.txt/trainval.txt at the root or in idx_427/, "
                f"50_50/, img_idx/); using all {len(stems)} annotated images"
                + (" not in the test split" if test else ""),
                DataRepairWarning,
                stacklevel=2,
            )
            source, used = str(layout.root), None
        else:
            stems, source, used = read_split_file(f), str(f), f
        if split == "test" and layout.train_file is not None:
            leak = sorted(set(stems) & set(read_split_file(layout.train_file)))
            if leak:
                warnings.warn(
                    f"{f}: {len(leak)} test entries also in the training split {layout.train_file}: "
                    + ", ".join(leak[:20])
                    + (" ..." if len(leak) > 20 else ""),
                    DataRepairWarning,
                    stacklevel=2,
                )
        if split in ("train", "val"):
            if val_file is not None and Path(val_file).is_file():
                val = read_split_file(val_file)
                outside = sorted(set(val) - set(stems))
                if outside:
                    raise UserError(
                        f"{val_file}: validation entries not in the training split {f}: {outside}"
                    )
                vs = set(val)
                train = [s for s in stems if s not in vs]
            else:
                train, val = carve_validation(stems, val_fraction, seed)
                if val_file is not None:
                    write_split_file(val_file, val)
            stems = val if split == "val" else train
            if split == "val" and val_file is not None:
                used = Path(val_file)
    _check_missing(layout, stems, source)
    return ResolvedSplit(
        split, stems, [layout.images[s] for s in stems], [layout.masks[s] for s in stems], layout, used
    )
