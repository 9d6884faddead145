"""Tests of the Table 1 model-driven baselines (irsam2.baselines) on small synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from irsam2.baselines import (
    BASELINES,
    DEFAULT_K,
    DEFAULT_KS,
    adaptive_threshold,
    get_baseline,
    score_map,
    segment,
)
from irsam2.baselines.common import (
    as_frame,
    extract_patches,
    fold_patches,
    patch_image,
    patch_positions,
    randomized_svd,
    svt,
    svt_lowrank,
    unpatch_image,
)
from irsam2.baselines.pstnn import prox_pstnn
from irsam2.utils import UserError

N = 64
SOLVERS = ["ipi", "ript", "nram", "pstnn"]


def _scene(kind: str, seed: int = 0, shape: tuple[int, int] = (N, N)) -> tuple[np.ndarray, np.ndarray]:
    """A grey frame (0-255) with one Gaussian point target (sigma 1 px, +70 grey levels) and its mask."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(float)
    if kind == "smooth":
        bg = 60 + 40 * xx / w + 15 * np.sin(2 * np.pi * yy / h) + rng.normal(0, 1.0, shape)
    else:  # smooth random clutter, a step edge and stronger noise
        bg = 80 + 240 * ndimage.gaussian_filter(rng.normal(0, 1, shape), 3) + 30 * (xx > 0.7 * w)
        bg += rng.normal(0, 3.0, shape)
    cy, cx = 0.4 * h + 0.3, 0.35 * w - 0.2
    target = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return np.clip(bg + 70 * target, 0, 255), target > 0.3


def _peak_percentile(score: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of background pixels scored below the target's best pixel (ties count half).

    A map unrelated to the target scores about n / (n + 1) for an n-pixel target (the maximum of n draws).
    """
    peak = score[gt].max()
    bg = score[~gt]
    return float((bg < peak).mean() + 0.5 * (bg == peak).mean())


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", list(BASELINES))
def test_finds_point_target_on_smooth_background(name):
    img, gt = _scene("smooth")
    sal = get_baseline(name)(img)
    assert sal.shape == img.shape
    mask = segment(sal)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    assert (mask & gt).any(), f"{name} missed the target (Pd 0)"
    false_px = int((mask & ~gt).sum())
    assert false_px <= 0.005 * img.size, f"{name}: {false_px} false-alarm pixels"
    # every detected component but the target's is a false alarm: at most a couple on a smooth frame
    hit_labels = set(np.unique(labels[mask & gt]))
    assert n - len(hit_labels) <= 2


@pytest.mark.parametrize("name", list(BASELINES))
def test_better_than_chance_on_clutter(name):
    img, gt = _scene("clutter")
    sal = get_baseline(name)(img)
    assert sal.shape == img.shape
    chance = gt.sum() / (gt.sum() + 1)  # about 0.89 for the 8-pixel target
    assert _peak_percentile(sal, gt) > max(0.95, chance)
    noise = np.random.default_rng(1).normal(size=img.shape)
    assert _peak_percentile(noise, gt) < 0.95  # the bar is above what a random map reaches


@pytest.mark.parametrize("name", list(BASELINES))
def test_shapes_and_degenerate_frames(name):
    fn = get_baseline(name)
    img, _ = _scene("smooth", shape=(64, 48))  # narrower than the IPI/NRAM 50 px windows: padded inside
    assert fn(img).shape == (64, 48)
    flat = fn(np.full((N, N), 100.0))
    assert flat.shape == (N, N) and np.all(np.isfinite(flat))
    assert not segment(flat).any()
    hot = np.zeros((N, N))
    hot[20, 30] = 255.0
    out = fn(hot)
    assert out.shape == (N, N) and np.all(np.isfinite(out))


@pytest.mark.parametrize("name", SOLVERS)
def test_solvers_converge_within_limits(name):
    img, _ = _scene("smooth", seed=1)
    fn = get_baseline(name)
    _, info = fn(img, return_info=True)
    limit = {"ipi": 1000, "ript": 100, "nram": 500, "pstnn": 500}[name]
    assert info["converged"], info
    assert 1 <= info["iterations"] < limit


# ------------------------------------------------------------------------------------------------- pieces


def test_patch_positions_cover_the_axis():
    pos = patch_positions(64, 30, 10)
    assert pos.tolist() == [0, 10, 20, 30, 34]
    assert patch_positions(80, 40, 40).tolist() == [0, 40]


@pytest.mark.parametrize("patch,step", [(30, 10), (40, 40), (50, 10), (7, 3)])
def test_patches_fold_back_to_the_image(patch, step):
    img = np.random.default_rng(0).normal(size=(64, 57))
    p = extract_patches(img, patch, step)
    r, c = patch_positions(64, patch, step), patch_positions(57, patch, step)
    assert p.shape == (r.size * c.size, patch, patch)
    np.testing.assert_array_equal(p[1], img[r[1] : r[1] + patch, c[0] : c[0] + patch])  # rows vary fastest
    np.testing.assert_allclose(fold_patches(p, img.shape, patch, step, "mean"), img)
    np.testing.assert_allclose(fold_patches(p, img.shape, patch, step, "median"), img)
    d = patch_image(img, patch, step)
    assert d.shape == (patch * patch, r.size * c.size)
    np.testing.assert_allclose(unpatch_image(d, img.shape, patch, step), img)


def test_fold_median_takes_the_median_of_overlaps():
    img = np.zeros((20, 20))
    p = extract_patches(img, 10, 5)
    p[0] += 1.0  # one of the (up to four) windows covering the top-left corner disagrees
    med = fold_patches(p, img.shape, 10, 5, "median")
    mean = fold_patches(p, img.shape, 10, 5, "mean")
    assert med[0, 0] == 1.0  # covered by that window only
    assert med[7, 7] == 0.0 and mean[7, 7] == pytest.approx(0.25)


def test_svt_matches_a_dense_reference():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(200, 40)) @ rng.normal(size=(40, 60))
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    # tau halfway between two singular values, never equal to one: the kept rank (10) must not depend on how
    # a CPU's BLAS rounds a tie (tau = s[10] gave rank 11 on an AMD EPYC)
    assert s[9] - s[10] > 1e-3 * s[0]
    tau = 0.5 * (s[9] + s[10])
    ref = (u * np.maximum(s - tau, 0)) @ vt
    for mat, want in ((m, ref), (m.T, ref.T)):
        got, r = svt(mat, tau)
        assert r == 10
        np.testing.assert_allclose(got, want, atol=1e-6 * s[0])
    got, r = svt_lowrank(m, tau, 3, rng)
    assert r == 10
    np.testing.assert_allclose(got, ref, atol=1e-6 * s[0])
    low = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 60))  # rank 6: the range finder is exact
    s_low = np.linalg.svd(low, compute_uv=False)
    uk, sk, vk = randomized_svd(low, 6, n_iter=2, rng=rng)
    np.testing.assert_allclose(sk, s_low[:6], rtol=1e-8)
    np.testing.assert_allclose((uk * sk) @ vk, low, atol=1e-8 * s_low[0])


def test_tsvd_prox_is_identity_without_shrinkage_and_keeps_partial_sum():
    x = np.random.default_rng(0).normal(size=(7, 6, 5))
    np.testing.assert_allclose(prox_pstnn(x, 0, 0.0), x, atol=1e-10)
    shrunk = prox_pstnn(x, 1, 1e9)  # everything past the first singular value of each slice is removed
    f = np.fft.fft(shrunk, axis=0)
    ranks = [np.linalg.matrix_rank(f[i], tol=1e-8) for i in range(7)]
    assert max(ranks) == 1


def test_registry_and_segmentation_rule():
    assert list(BASELINES) == ["tophat", "maxmedian", "ipi", "ript", "nram", "pstnn"]
    assert get_baseline("Max-Median") is BASELINES["maxmedian"]
    with pytest.raises(UserError, match="unknown baseline"):
        get_baseline("wslcm")
    s = np.zeros((10, 10))
    s[3, 4] = 10.0
    thr = adaptive_threshold(s, DEFAULT_K)
    assert thr == pytest.approx(s.mean() + DEFAULT_K * s.std())
    assert segment(s).sum() == 1 and segment(s, k=100.0).sum() == 0
    np.testing.assert_array_equal(score_map(s) > 0, segment(s))


def test_bad_frames_raise_user_errors():
    with pytest.raises(UserError, match="single-channel"):
        as_frame(np.zeros((8, 8, 3)))
    with pytest.raises(UserError, match="NaN"):
        as_frame(np.full((8, 8), np.nan))
    with pytest.raises(UserError, match="too small"):
        get_baseline("tophat")(np.zeros((1, 8)))


# ------------------------------------------------------------------------------------------------ command


def _tiny_dataset(root, n: int = 3):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "50_50").mkdir()
    stems = [f"{i:06d}" for i in range(n)]
    for i, stem in enumerate(stems):
        img, gt = _scene("smooth", seed=i)
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(gt.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")
    (root / "50_50" / "train.txt").write_text("unused\n")
    (root / "50_50" / "test.txt").write_text("\n".join(stems) + "\n")
    return stems


def test_baselines_command_writes_eval_outputs(tmp_path, capsys):
    import csv
    import json

    from irsam2.cli import main

    stems = _tiny_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    rc = main(["baselines", "--data", str(tmp_path / "ds"), "--methods", "tophat,PSTNN", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Top-hat" in text and "PSTNN" in text and "Fa(1e-6)" in text
    for method in ("tophat", "pstnn"):
        payload = json.loads((out / method / "metrics.json").read_text())
        row = payload["metrics"][0]
        assert row["protocol"] == "basicirstd" and row["frames"] == len(stems)
        assert row["pd"] == 100.0  # one clear point target per smooth frame
        # each method's own default k (Top-hat 12, PSTNN 16), chosen on training splits
        assert payload["settings"]["segmentation"] == f"saliency > mean + {DEFAULT_KS[method]:g} * std"
        assert payload["settings"]["k"] == DEFAULT_KS[method]
        with (out / method / "per_image.csv").open() as f:
            assert sorted(r["name"] for r in csv.DictReader(f)) == stems
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["tophat", "pstnn"]
    # --k sets one k for every method
    rc = main(
        ["baselines", "--data", str(tmp_path / "ds"), "--methods", "tophat", "--k", "5", "--out", str(out)]
        + ["--overwrite"]  # the folder holds the first run's results
    )
    assert rc == 0
    payload = json.loads((out / "tophat" / "metrics.json").read_text())
    assert payload["settings"]["k"] == 5.0


def test_every_baseline_has_a_default_k():
    assert set(DEFAULT_KS) == set(BASELINES)
    assert DEFAULT_KS["tophat"] == 12.0 and DEFAULT_KS["maxmedian"] == 4.0 and DEFAULT_KS["pstnn"] == 16.0
    assert all(k > 0 for k in DEFAULT_KS.values())


def test_baselines_command_user_errors(tmp_path, capsys):
    from irsam2.cli import main

    _tiny_dataset(tmp_path / "ds", n=1)
    assert (
        main(["baselines", "--data", str(tmp_path / "ds"), "--methods", "wslcm", "--out", str(tmp_path)]) == 2
    )
    assert "unknown baseline 'wslcm'" in capsys.readouterr().err
    assert main(["baselines", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_baselines_on_real_nudt_frames(tmp_path):
    import json

    from irsam2.cli import main

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "NUDT-SIRST"
    if not data.is_dir():
        pytest.skip(f"real data not found at {data} (../shared/data from the repository root)")
    rc = main(
        ["baselines", "--data", str(data), "--methods", "maxmedian,pstnn", "--limit", "8", "--quiet"]
        + ["--out", str(tmp_path)]
    )
    assert rc == 0
    for method in ("maxmedian", "pstnn"):
        row = json.loads((tmp_path / method / "metrics.json").read_text())["metrics"][0]
        assert row["frames"] == 8 and row["pd"] > 0.0


@pytest.mark.parametrize("size", [3, 5, 7])
def test_maxmedian_matches_line_median_filters(size):
    from irsam2.baselines import maxmedian

    img = np.random.default_rng(size).integers(0, 6, (40, 33)).astype(float)  # many ties
    eye = np.eye(size, dtype=bool)
    row = np.zeros((size, size), bool)
    row[size // 2] = True
    ref = np.max(
        [ndimage.median_filter(img, footprint=f, mode="reflect") for f in (row, row.T, eye, eye[::-1])],
        axis=0,
    )
    np.testing.assert_array_equal(maxmedian(img, size=size), img - ref)
