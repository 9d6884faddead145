"""The public benchmarks as released (../shared/data): split counts and the Misc_111 repair (issue 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from irsam2.data import DataRepairWarning, IRSTDDataset, detect_layout, list_dataset, read_frame, read_mask
from irsam2.utils import UserError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUDT, NUAA = DATA / "NUDT-SIRST", DATA / "NUAA-SIRST"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark data folder {DATA} absent"),
]
NORM = {"mean": 0.3, "std": 0.1}


def test_nudt_sirst_50_50():
    assert list_dataset(NUDT) == {"trainval": 663, "test": 664}
    assert list_dataset(NUDT, "nudt") == {"trainval": 663, "test": 664}
    ds = IRSTDDataset(NUDT, "test", preset="nudt", norm=NORM)
    item = ds[0]  # read only one frame
    assert item["image"].shape == (3, 256, 256) and item["orig_size"] == (256, 256)


def test_nuaa_sirst_idx_427_and_50_50():
    lay = detect_layout(NUAA)
    assert lay.train_file.parent.name == "idx_427" and lay.masks["Misc_1"].name == "Misc_1_pixels0.png"
    assert list_dataset(NUAA, "nuaa") == {"trainval": 341, "test": 86}
    assert list_dataset(NUAA, "nuaa_50_50") == {"trainval": 213, "test": 214}
    train = IRSTDDataset(NUAA, "train", preset="nuaa", norm=NORM)
    val = IRSTDDataset(NUAA, "val", preset="nuaa", norm=NORM)
    assert len(train) + len(val) == 341 and len(val) == 34


def test_nuaa_misc_111_mask_is_repaired_with_a_warning():
    frame, _ = read_frame(NUAA / "images" / "Misc_111.png")
    assert frame.shape == (220, 325)
    with pytest.warns(DataRepairWarning, match=r"Misc_111_pixels0\.png.*592x400.*325x220"):
        mask = read_mask(NUAA / "masks" / "Misc_111_pixels0.png", frame.shape)
    assert mask.shape == (220, 325) and mask.any()
    with pytest.raises(UserError, match="Misc_111_pixels0.png"):
        read_mask(NUAA / "masks" / "Misc_111_pixels0.png", frame.shape, strict=True)
    split = [
        s
        for s in ("idx_427/trainval.txt", "idx_427/test.txt")
        if "Misc_111" in (NUAA / s).read_text().split()
    ]
    ds = IRSTDDataset(
        NUAA, "trainval" if "trainval" in split[0] else "test", preset="nuaa", norm=NORM, train=False
    )
    with pytest.warns(DataRepairWarning, match="Misc_111"):
        item = ds[ds.stems.index("Misc_111")]
    assert item["orig_size"] == (220, 325) and item["image"].shape == (3, 224, 352)
