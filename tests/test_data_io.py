"""Frame and mask reading (issue 3 "Reading frames"): modes, bit depths, binarisation, repairs and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from irsam2.data import DataRepairWarning, list_images, read_frame, read_mask, write_frame
from irsam2.utils import UserError


@pytest.fixture
def grey() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 56), dtype=np.uint8)


@pytest.mark.parametrize(
    "mode,ext",
    [
        (m, e)
        for m in ("L", "RGB", "RGBA", "P", "LA")
        for e in ("png", "bmp", "tif")
        if (m, e) != ("LA", "bmp")
    ],
)
def test_8bit_modes_give_the_grey_values(tmp_path, grey, mode, ext):
    img = Image.fromarray(grey, "L")
    if mode == "P":
        img = img.convert("P")  # PIL builds a grey palette covering the values
        expect = np.asarray(img.convert("L"))
    else:
        img = img.convert(mode)
        expect = grey
    path = tmp_path / f"f.{ext}"
    img.save(path)
    frame, depth = read_frame(path)
    assert depth == 8 and frame.dtype == np.float32 and frame.shape == grey.shape
    np.testing.assert_array_equal(np.rint(frame * 255).astype(np.uint8), expect)


def test_jpeg_reads_close_to_source(tmp_path, grey):
    smooth = np.tile(np.linspace(0, 255, 56, dtype=np.uint8), (40, 1))
    Image.fromarray(smooth).save(tmp_path / "f.jpg", quality=95)
    frame, depth = read_frame(tmp_path / "f.jpg")
    assert depth == 8
    assert np.abs(frame * 255 - smooth).mean() < 2.0


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_round_trip(tmp_path, ext):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (33, 47)).astype(np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    write_frame(tmp_path / f"f.{ext}", a, bit_depth=16)
    assert Image.open(tmp_path / f"f.{ext}").mode.startswith("I;16")
    frame, depth = read_frame(tmp_path / f"f.{ext}")
    assert depth == 16
    np.testing.assert_array_equal(np.rint(frame.astype(np.float64) * 65535).astype(np.uint16), a)
    assert frame.max() == 1.0 and frame.min() == 0.0


def test_14bit_sensor_frame_is_not_stretched(tmp_path):
    a = np.full((16, 16), 16383, np.uint16)
    a[0, 0] = 1000
    write_frame(tmp_path / "s.png", a, 16)
    frame, _ = read_frame(tmp_path / "s.png")
    assert frame.max() == pytest.approx(16383 / 65535)
    assert frame[0, 0] == pytest.approx(1000 / 65535)


def test_32bit_int_frame_out_of_range_is_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 70000, np.int32), "I").save(tmp_path / "big.tif")
    with pytest.raises(UserError, match="big.tif"):
        read_frame(tmp_path / "big.tif")


def test_float_tiff(tmp_path):
    a = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    frame, depth = read_frame(tmp_path / "f.tif")
    assert depth == 32
    np.testing.assert_allclose(frame, a)


def test_mask_binarisation(tmp_path):
    m = np.zeros((10, 10), np.uint8)
    m[2, 2], m[3, 3], m[4, 4], m[5, 5] = 255, 200, 127, 60  # IRSTD-1k style grey pixels
    Image.fromarray(m).save(tmp_path / "m255.png")
    got = read_mask(tmp_path / "m255.png")
    assert got.dtype == bool
    assert set(zip(*np.nonzero(got))) == {(2, 2), (3, 3)}
    m01 = np.zeros((10, 10), np.uint8)
    m01[1, 1] = 1
    Image.fromarray(m01).save(tmp_path / "m01.png")
    assert list(zip(*np.nonzero(read_mask(tmp_path / "m01.png")))) == [(1, 1)]
    Image.fromarray(np.stack([m] * 3, -1)).save(tmp_path / "mrgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "mrgb.png"), got)


def test_mask_size_mismatch_repaired_with_warning_or_refused(tmp_path):
    m = np.zeros((40, 60), np.uint8)
    m[10:20, 30:45] = 255
    Image.fromarray(m).save(tmp_path / "Misc_9_pixels0.png")
    with pytest.warns(DataRepairWarning, match=r"Misc_9_pixels0\.png.*60x40.*30x20"):
        r = read_mask(tmp_path / "Misc_9_pixels0.png", size=(20, 30))
    assert r.shape == (20, 30)
    assert r[5:10, 15:22].all() and r.sum() == 5 * 7  # nearest neighbour keeps it binary and in place
    with pytest.raises(UserError, match=r"Misc_9_pixels0\.png.*strict"):
        read_mask(tmp_path / "Misc_9_pixels0.png", size=(20, 30), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mask(tmp_path / "Misc_9_pixels0.png", size=(40, 60))  # same size: silent


@pytest.mark.parametrize("content", [b"", b"not an image at all" * 10, "truncated"])
def test_corrupt_files_name_the_file(tmp_path, grey, content):
    path = tmp_path / "broken.png"
    if content == "truncated":
        Image.fromarray(grey).save(path)
        path.write_bytes(path.read_bytes()[:60])
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match="broken.png"):
        read_frame(path)
    with pytest.raises(UserError, match="broken.png"):
        read_mask(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.png.*not found"):
        read_frame(tmp_path / "nope.png")


def test_list_images(tmp_path, grey):
    for name in ["b.PNG", "a.bmp", "c.tif", "d.jpeg"]:
        Image.fromarray(grey).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    Image.fromarray(grey).save(tmp_path / "sub" / "e.png")
    assert [p.name for p in list_images(tmp_path)] == ["a.bmp", "b.PNG", "c.tif", "d.jpeg"]
    assert len(list_images(tmp_path, recursive=True)) == 5
    with pytest.raises(UserError, match="not a folder"):
        list_images(tmp_path / "notes.txt")


def test_16bit_colour_png_keeps_16_bits(tmp_path):
    import cv2

    a = (np.arange(24 * 20).reshape(24, 20) * 131).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), np.stack([a, a, a], -1))  # 48-bit RGB PNG, grey in all channels
    frame, depth = read_frame(tmp_path / "c16.png")
    assert depth == 16
    np.testing.assert_array_equal(np.rint(frame.astype(np.float64) * 65535).astype(np.uint16), a)
