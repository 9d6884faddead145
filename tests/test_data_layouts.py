"""Dataset layouts, split resolution, presets and bad-split errors (issue 3 "Layouts")."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from irsam2.data import (
    IRSTDDataset,
    carve_validation,
    detect_layout,
    list_dataset,
    read_split_file,
    resolve_split,
    write_synthetic_dataset,
)
from irsam2.utils import UserError

NORM = {"mean": 0.3, "std": 0.1}


def make(tmp_path, layout="plain", n_train=10, n_test=4, name="ds"):
    return write_synthetic_dataset(tmp_path / name, n_train, n_test, size=32, seed=5, layout=layout)


@pytest.mark.parametrize(
    "layout,kind,train_name",
    [
        ("plain", "images_masks", "train.txt"),
        ("50_50", "images_masks", "train.txt"),
        ("idx_427", "images_masks", "trainval.txt"),
        ("pixels0", "images_masks", "trainval.txt"),
        ("img_idx", "images_masks", "train_synthetic.txt"),
        ("irstd1k", "irstd1k", "trainval.txt"),
    ],
)
def test_every_layout_is_detected_and_loads(tmp_path, layout, kind, train_name):
    root = make(tmp_path, layout)
    lay = detect_layout(root)
    assert lay.kind == kind and lay.train_file.name == train_name and lay.test_file is not None
    assert len(lay.images) == len(lay.masks) == 14
    if layout == "pixels0":
        assert all(p.stem.endswith("_pixels0") for p in lay.masks.values())
    assert list_dataset(root) == {"trainval": 10, "test": 4}
    te = IRSTDDataset(root, "test", norm=NORM)
    assert te.stems == [f"syn_{i:06d}" for i in range(10, 14)]
    item = te[0]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["path"].endswith("syn_000010.png")


def test_masks_named_like_images_win_over_pixels0(tmp_path):
    root = make(tmp_path, "plain")
    shutil.copy(root / "masks" / "syn_000000.png", root / "masks" / "syn_000001_pixels0.png")
    lay = detect_layout(root)
    assert lay.masks["syn_000001"].name == "syn_000001.png"


def test_preset_picks_the_release_split_folder(tmp_path):
    root = make(tmp_path, "idx_427")
    (root / "50_50").mkdir()
    (root / "50_50" / "train.txt").write_text("syn_000000\nsyn_000001\n")
    (root / "50_50" / "test.txt").write_text("syn_000002\n")
    assert list_dataset(root) == {"trainval": 10, "test": 4}  # auto: idx_427 first
    assert list_dataset(root, "nuaa") == {"trainval": 10, "test": 4}
    assert list_dataset(root, "nuaa_50_50") == {"trainval": 2, "test": 1}
    with pytest.warns(UserWarning, match=r"preset 'nudt'.*expects 663 training / 664 test.*list 2 / 1"):
        assert len(IRSTDDataset(root, "test", preset="nudt", norm=NORM)) == 1
    with pytest.raises(UserError, match="irstd1k.*trainval.txt"):
        detect_layout(make(tmp_path, "50_50", name="other"), preset="irstd1k")
    with pytest.raises(UserError, match="unknown dataset preset"):
        detect_layout(root, preset="sirst-v9")


def test_explicit_split_file_wins(tmp_path):
    root = make(tmp_path, "plain")
    custom = tmp_path / "mine.txt"
    custom.write_text("images/syn_000003.png\n\n# a comment\nsyn_000011  \nsyn_000003\n")
    with pytest.warns(UserWarning, match="duplicate.*syn_000003"):
        ds = IRSTDDataset(root, "test", split_file=custom, norm=NORM)
    assert ds.stems == ["syn_000003", "syn_000011"]


def test_validation_carve_is_deterministic_disjoint_and_written(tmp_path):
    root = make(tmp_path, "plain", n_train=20)
    vf = tmp_path / "run" / "splits" / "val.txt"
    val = IRSTDDataset(root, "val", val_file=vf, norm=NORM)
    train = IRSTDDataset(root, "train", val_file=vf, norm=NORM)
    trainval = IRSTDDataset(root, "trainval", norm=NORM)
    assert len(val) == 2 and len(train) == 18
    assert set(val.stems).isdisjoint(train.stems)
    assert set(val.stems) | set(train.stems) == set(trainval.stems)
    assert read_split_file(vf) == val.stems
    assert not val.train and train.train  # no augmentation on validation
    # Same carve without the file, and independent of the split file's order.
    assert resolve_split(root, "val").stems == val.stems
    stems = trainval.stems
    assert carve_validation(stems[::-1], 0.1, 0)[1] == carve_validation(stems, 0.1, 0)[1]
    assert carve_validation(stems, 0.1, 1)[1] != carve_validation(stems, 0.1, 0)[1]
    # An existing file is read back, not recomputed.
    vf.write_text("syn_000004\n")
    assert IRSTDDataset(root, "val", val_file=vf, norm=NORM).stems == ["syn_000004"]
    assert "syn_000004" not in IRSTDDataset(root, "train", val_file=vf, norm=NORM).stems
    vf.write_text("syn_000021\n")  # a test image: refused
    with pytest.raises(UserError, match="val.txt.*not in the training split.*syn_000021"):
        IRSTDDataset(root, "val", val_file=vf, norm=NORM)


def test_missing_images_and_masks_are_all_listed(tmp_path):
    root = make(tmp_path, "plain")
    (root / "images" / "syn_000001.png").unlink()
    (root / "masks" / "syn_000002.png").unlink()
    (root / "masks" / "syn_000005.png").unlink()
    with (root / "train.txt").open("a") as f:
        f.write("ghost\n")
    with pytest.raises(UserError) as e:
        IRSTDDataset(root, "trainval", norm=NORM)
    msg = str(e.value)
    assert "train.txt" in msg
    for stem in ("syn_000001", "ghost", "syn_000002", "syn_000005"):
        assert stem in msg
    assert "2 without an image" in msg and "2 without a mask" in msg


def test_bad_folders_and_splits(tmp_path):
    with pytest.raises(UserError, match="not found"):
        detect_layout(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no known dataset layout"):
        detect_layout(tmp_path / "empty")
    root = make(tmp_path, "plain")
    shutil.rmtree(root / "masks")
    with pytest.raises(UserError, match="masks/ is missing"):
        detect_layout(root)
    root = make(tmp_path, "plain", name="nosplit")
    (root / "train.txt").unlink()
    (root / "test.txt").unlink()
    with pytest.raises(UserError, match="no test split file"):
        IRSTDDataset(root, "test", norm=NORM)
    with pytest.warns(UserWarning, match="no training split file.*all 14 annotated images"):
        assert len(IRSTDDataset(root, "trainval", norm=NORM)) == 14
    with pytest.warns(UserWarning, match="no training split file"):
        assert len(IRSTDDataset(root, "train", norm=NORM)) == 13  # minus the carved validation frame
    (root / "test.txt").write_text("syn_000000\nsyn_000001\n")
    with pytest.warns(UserWarning, match="all 12 annotated images not in the test split"):
        IRSTDDataset(root, "trainval", norm=NORM)
    assert len(IRSTDDataset(root, "all", norm=NORM)) == 14
    with pytest.raises(UserError, match="unknown split"):
        IRSTDDataset(root, "validation", norm=NORM)
    (tmp_path / "blank.txt").write_text("\n# nothing\n")
    with pytest.raises(UserError, match="blank.txt.*no images"):
        read_split_file(tmp_path / "blank.txt")
    with pytest.raises(UserError, match="missing.txt.*not found"):
        read_split_file(tmp_path / "missing.txt")


def test_several_basicirstd_splits_need_a_choice(tmp_path):
    root = make(tmp_path, "img_idx")
    (root / "img_idx" / "train_Other.txt").write_text("syn_000000\n")
    with pytest.raises(UserError, match="several BasicIRSTD splits"):
        detect_layout(root)


def test_norm_comes_from_the_training_split(tmp_path):
    root = make(tmp_path, "plain")
    te = IRSTDDataset(root, "test")
    tr = IRSTDDataset(root, "trainval")
    assert te.norm == tr.norm
    frames = np.stack([f for f in tr.raw_frames()])
    assert te.norm["mean"] == pytest.approx(frames.mean(), rel=1e-5)
    assert te.norm["std"] == pytest.approx(frames.std(), rel=1e-4)
    # A user's test list without any training split in the folder: the statistics must be passed in.
    bare = make(tmp_path, "plain", name="bare")
    (bare / "train.txt").unlink()
    custom = tmp_path / "t.txt"
    custom.write_text("syn_000011\n")
    with pytest.raises(UserError, match="pass norm="):
        _ = IRSTDDataset(bare, "test", split_file=custom).norm


def test_test_entries_leaking_into_training_are_reported(tmp_path):
    root = make(tmp_path, "plain")
    with (root / "train.txt").open("a") as f:
        f.write("syn_000012\n")
    with pytest.warns(UserWarning, match=r"test.txt: 1 test entries also in the training split.*syn_000012"):
        IRSTDDataset(root, "test", norm=NORM)


def test_cached_frames_equal_decoded_frames(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d16", 4, 2, size=32, seed=1, bit_depth=16)
    plain = IRSTDDataset(root, "test", norm=NORM)
    cached = IRSTDDataset(root, "test", norm=NORM, cache=True)
    for _ in range(2):  # fill, then hit the cache
        for i in range(len(plain)):
            a, b = plain.load(i), cached.load(i)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    assert len(cached._cache) == 2


@pytest.mark.filterwarnings("ignore:.*preset 'irstd1k'")
def test_irstd1k_preset_turns_copy_paste_on_for_training_only(tmp_path):
    root = make(tmp_path, "irstd1k")
    tr = IRSTDDataset(root, "train", preset="irstd1k", norm=NORM, crop_size=32)
    assert tr.augment.bank is not None and len(tr.augment.bank) > 0
    assert IRSTDDataset(root, "val", preset="irstd1k", norm=NORM).augment.bank is None
    assert IRSTDDataset(root, "train", norm=NORM, crop_size=32).augment.bank is None  # no preset: off
    assert tr[0]["image"].shape == (3, 32, 32)


def test_strict_dataset_refuses_a_mask_of_the_wrong_size(tmp_path):
    from PIL import Image

    root = make(tmp_path, "plain")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "masks" / "syn_000010.png")
    with pytest.raises(UserError, match="syn_000010.png.*strict"):
        IRSTDDataset(root, "test", norm=NORM, strict=True)[0]
    with pytest.warns(UserWarning, match="syn_000010.png"):
        assert IRSTDDataset(root, "test", norm=NORM)[0]["mask"].shape == (1, 32, 32)
