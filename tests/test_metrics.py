"""Known-answer tests of irsam2.metrics (spec section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from irsam2.metrics import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    ROCAccumulator,
    SegmentationMetrics,
    analyse_frame,
    auc_trapezoid,
)
from irsam2.metrics.roc import plot_curves, save_pdfa_csv, save_roc_csv
from irsam2.metrics.seg import _components, expand_protocols


def blank(h: int = 64, w: int = 64) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def run(pred: np.ndarray, gt: np.ndarray, protocol: str = DEFAULT_PROTOCOL) -> dict:
    m = SegmentationMetrics(protocol=protocol)
    m.update(pred.astype(np.float32) * 2 - 1, gt)  # logits: +1 inside, -1 outside
    return m.compute() | {"record": m.per_image[0]}


# -- centroid distance -------------------------------------------------------------------------------------
def test_hit_at_2_9_pixels_miss_at_3_0():
    gt = blank()
    gt[10, 10] = True
    hit = blank()
    hit[6:15, 13] = True  # 9 pixels at column 13, rows 6..14 ...
    hit[10, 12] = True  # ... plus one at column 12: centroid (10, 12.9), 2.9 px from the target
    r = run(hit, gt)
    assert r["detected"] == 1 and r["pd"] == 100.0 and r["false_alarm_pixels"] == 0

    miss = blank()
    miss[10, 13] = True  # centroid exactly 3.0 px away: not strictly closer
    r = run(miss, gt)
    assert r["detected"] == 0 and r["pd"] == 0.0
    assert r["false_alarm_pixels"] == 1
    assert r["fa"] == pytest.approx(1e6 / (64 * 64))

    diag = blank()
    diag[12, 12] = True  # sqrt(8) = 2.83
    assert run(diag, gt)["detected"] == 1


def test_centroid_distance_is_configurable():
    gt = blank()
    gt[10, 10] = True
    pred = blank()
    pred[10, 14] = True
    m = SegmentationMetrics(centroid_dist=5.0)
    m.update(pred, gt)
    assert m.compute()["detected"] == 1
    with pytest.raises(ValueError):
        SegmentationMetrics(centroid_dist=0)


# -- matching: one predicted component per target and vice versa --------------------------------------------
def test_two_predicted_blobs_near_one_target():
    gt = blank()
    gt[19:22, 19:22] = True  # centroid (20, 20)
    pred = blank()
    pred[20, 18] = True  # 2 px left
    pred[20, 22:24] = True  # 2-pixel blob, centroid 2.5 px right
    for protocol in PROTOCOLS:
        r = run(pred, gt, protocol)
        assert r["targets"] == 1 and r["detected"] == 1 and r["pd"] == 100.0
        assert r["pred_components"] == 2
    # optimal: the closer blob is matched; basicirstd: the first in label order (the same left blob here);
    # either way the other blob's 2 pixels are false alarms
    for protocol in ("basicirstd", "optimal"):
        assert run(pred, gt, protocol)["false_alarm_pixels"] == 2
        assert run(pred, gt, protocol)["record"]["false_components"] == 1
    # legacy: the first blob in label order matches (the left one); the other has another area, so it counts
    # too
    assert run(pred, gt, "legacy")["false_alarm_pixels"] == 2


def test_two_equal_blobs_near_one_target_legacy_drops_the_second():
    gt = blank()
    gt[19:22, 19:22] = True
    pred = blank()
    pred[20, 18] = True
    pred[20, 22] = True  # same area (1) as the matched blob
    assert run(pred, gt)["false_alarm_pixels"] == 1
    assert run(pred, gt, "legacy")["false_alarm_pixels"] == 0


def test_one_blob_covering_two_targets_detects_only_one():
    gt = blank()
    gt[10, 10] = True
    gt[10, 14] = True
    pred = blank()
    pred[10, 10:15] = True  # one component, centroid (10, 12): 2 px from both targets
    r = run(pred, gt)
    assert r["targets"] == 2 and r["detected"] == 1 and r["pd"] == 50.0
    assert r["false_alarm_pixels"] == 0  # the blob is matched
    assert r["iou"] == pytest.approx(100 * 2 / 5)
    assert r["record"]["missed"] == 1


def test_two_targets_4px_apart_greedy_pd_50_optimal_pd_100():
    """Issue 13's hand case, numbers from the written rules (64 x 64 frame: 4096 pixels).

    T1 (10, 10) and T2 (10, 14) are 4 px apart. P1 (10, 12) is 2 px from both; P2 (12, 9) is sqrt(5) = 2.24 px
    from T1 and sqrt(29) = 5.39 px from T2. Labels in raster order: T1 before T2, P1 (row 10) before P2.
    basicirstd: T1 takes the first free component within 3 px, P1; T2 then has only P2, 5.39 px away: missed.
    Pd = 1/2 = 50 %, Fa = P2's 1 pixel / 4096 = 244.140625e-6.
    optimal: T1-P2 and T2-P1 credit both: Pd 100 %, Fa 0.
    legacy: the greedy matching (Pd 50 %), but P2 has P1's area (1 px), so its pixel is dropped: Fa 0.
    """
    gt = blank()
    gt[10, 10] = True  # T1
    gt[10, 14] = True  # T2
    pred = blank()
    pred[10, 12] = True  # P1
    pred[12, 9] = True  # P2
    greedy = run(pred, gt, "basicirstd")
    assert greedy["detected"] == 1 and greedy["pd"] == 50.0
    assert greedy["false_alarm_pixels"] == 1 and greedy["fa"] == 1e6 / 4096 == 244.140625
    opt = run(pred, gt, "optimal")
    assert opt["detected"] == 2 and opt["pd"] == 100.0 and opt["false_alarm_pixels"] == 0 and opt["fa"] == 0
    leg = run(pred, gt, "legacy")
    assert leg["detected"] == 1 and leg["pd"] == 50.0 and leg["false_alarm_pixels"] == 0
    assert analyse_frame(pred, gt, "basicirstd").pairs == [(0, 0)]  # (P1, T1)
    assert sorted(analyse_frame(pred, gt, "optimal").pairs) == [(0, 1), (1, 0)]


def test_second_blob_2px_beside_a_target_greedy_and_optimal_fa_differ():
    """Issue 13's second hand case: a 2-pixel blob 2 px beside a target, above it in raster order.

    Target: 3 x 3 at rows 19-21, cols 19-21, centroid (20, 20). A: one pixel on the target centre (20, 20),
    0 px away. B: pixels (18, 19) and (18, 20), centroid (18, 19.5), sqrt(4.25) = 2.06 px away, not touching A
    (two rows apart). B's first pixel comes first in raster order, so B is label 1, A label 2.
    basicirstd: the target takes B (first free within 3 px); A's 1 pixel is a false alarm: Fa = 1/4096.
    optimal: the target takes A (the smaller distance); B's 2 pixels are false alarms: Fa = 2/4096.
    legacy: matches B like basicirstd; A's area (1) differs from B's (2), so Fa = 1/4096.
    Pd is 100 % under every rule; IoU = 1 / 11 (intersection: A's pixel; union: 9 target pixels and B's 2).
    """
    gt = blank()
    gt[19:22, 19:22] = True
    pred = blank()
    pred[20, 20] = True  # A
    pred[18, 19:21] = True  # B
    res = {p: run(pred, gt, p) for p in PROTOCOLS}
    for r in res.values():
        assert r["detected"] == 1 and r["pd"] == 100.0 and r["pred_components"] == 2
        assert r["iou"] == pytest.approx(100 / 11)
    assert res["basicirstd"]["false_alarm_pixels"] == 1 and res["basicirstd"]["fa"] == 1e6 / 4096
    assert res["optimal"]["false_alarm_pixels"] == 2 and res["optimal"]["fa"] == 2e6 / 4096
    assert res["legacy"]["false_alarm_pixels"] == 1
    assert analyse_frame(pred, gt, "basicirstd").pairs == [(0, 0)]  # B is label 1 (index 0)
    assert analyse_frame(pred, gt, "optimal").pairs == [(1, 0)]


def test_unmatched_blob_with_a_matched_blobs_area():
    gt = blank()
    gt[5:7, 5:7] = True
    pred = blank()
    pred[5:7, 5:7] = True  # matched, area 4
    pred[30:32, 30:32] = True  # unmatched, area 4 (same)
    pred[50, 40:43] = True  # unmatched, area 3
    leg = run(pred, gt, "legacy")
    for protocol in ("basicirstd", "optimal"):
        std = run(pred, gt, protocol)
        assert std["detected"] == leg["detected"] == 1
        assert std["false_alarm_pixels"] == 7
        assert leg["false_alarm_pixels"] == 3
        assert std["false_alarm_pixels"] - leg["false_alarm_pixels"] == 4  # the same-area blob's pixels
        assert std["fa"] - leg["fa"] == pytest.approx(4 / 4096 * 1e6)
        assert std["protocol"] == protocol and leg["protocol"] == "legacy"


def legacy_reference(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """The popular codebases' PD_FA loop, written out plainly: (detected, false-alarm pixels)."""
    s = np.ones((3, 3))
    pl, npred = ndimage.label(pred, s)
    gl, ngt = ndimage.label(gt, s)
    comps = [(np.argwhere(pl == i).mean(0), int((pl == i).sum())) for i in range(1, npred + 1)]
    all_areas = [a for _, a in comps]
    true_areas, detected = [], 0
    for j in range(1, ngt + 1):
        c = np.argwhere(gl == j).mean(0)
        for m in range(len(comps)):
            if np.linalg.norm(comps[m][0] - c) < 3:
                detected += 1
                true_areas.append(comps[m][1])
                del comps[m]
                break
    return detected, int(sum(a for a in all_areas if a not in true_areas))


def basicirstd_reference(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """The field's rule written out plainly from its text, pixel by pixel: (detected, false-alarm pixels).

    Targets in label order; each takes the first still-free predicted component in label order whose centroid
    is strictly closer than 3 px; Fa = every predicted pixel outside the matched components.
    """
    s = np.ones((3, 3))
    pl, npred = ndimage.label(pred, s)
    gl, ngt = ndimage.label(gt, s)
    free = list(range(1, npred + 1))
    matched_pixels = np.zeros(pred.shape, bool)
    detected = 0
    for j in range(1, ngt + 1):
        c = np.argwhere(gl == j).mean(0)
        for m in free:
            if np.linalg.norm(np.argwhere(pl == m).mean(0) - c) < 3:
                detected += 1
                matched_pixels |= pl == m
                free.remove(m)
                break
    return detected, int((pred & ~matched_pixels).sum())


def random_frames(seed: int, n: int = 30) -> list[tuple[np.ndarray, np.ndarray]]:
    """Targets and predictions with nearby blobs: ambiguous matchings happen often."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = ndimage.binary_dilation(rng.random((48, 48)) > 0.992, iterations=1)
        pred = ndimage.binary_dilation(rng.random((48, 48)) > 0.985) | (rng.random((48, 48)) > 0.99)
        out.append((pred, gt))
    return out


def test_legacy_protocol_reproduces_the_reference_loop_on_random_frames():
    for pred, gt in random_frames(0):
        a = analyse_frame(pred, gt, "legacy")
        assert (len(a.pairs), a.false_alarm_pixels) == legacy_reference(pred, gt)


def test_basicirstd_protocol_reproduces_the_written_rule_on_random_frames():
    differs = 0
    for pred, gt in random_frames(7, 60):
        a = analyse_frame(pred, gt, "basicirstd")
        assert (len(a.pairs), a.false_alarm_pixels) == basicirstd_reference(pred, gt)
        o = analyse_frame(pred, gt, "optimal")
        differs += (len(o.pairs), o.false_alarm_pixels) != (len(a.pairs), a.false_alarm_pixels)
        assert len(o.pairs) >= len(a.pairs)  # the optimal assignment never credits fewer targets
    assert differs > 0  # the frames do exercise the difference between the rules


def test_labels_are_in_raster_order_of_the_first_pixel():
    # the label order scikit-image (BasicIRSTD, PyIRSTDMetrics) uses too; greedy matching depends on it
    rng = np.random.default_rng(8)
    mask = rng.random((64, 64)) > 0.8
    labels, n, _, _ = _components(mask)
    first = [np.flatnonzero(labels.ravel() == i)[0] for i in range(1, n + 1)]
    assert n > 10 and first == sorted(first)


def test_default_protocol_and_deprecated_names():
    assert DEFAULT_PROTOCOL == "basicirstd" == SegmentationMetrics().protocol == ROCAccumulator().protocol
    with pytest.warns(FutureWarning, match="optimal"):
        m = SegmentationMetrics(protocol="standard")
    assert m.protocol == "optimal" and m.compute()["protocol"] == "optimal"
    assert expand_protocols("all") == PROTOCOLS == ("basicirstd", "optimal", "legacy")
    with pytest.warns(FutureWarning, match="all"):
        assert expand_protocols("both") == PROTOCOLS
    with pytest.raises(ValueError, match="unknown metrics protocol"):
        expand_protocols("greedy")


def test_optimal_matching_is_maximum_cardinality():
    rng = np.random.default_rng(1)
    for _ in range(40):
        gt = rng.random((32, 32)) > 0.97
        pred = rng.random((32, 32)) > 0.96
        a = analyse_frame(pred, gt, "optimal")
        d = np.linalg.norm(a.pred_centroids[:, None] - a.gt_centroids[None], axis=-1)
        graph = csr_matrix((d < 3).astype(np.int8)) if d.size else csr_matrix((a.n_pred, a.n_gt))
        best = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum()) if d.size else 0
        assert len(a.pairs) == best
        assert len({p for p, _ in a.pairs}) == len(a.pairs) == len({g for _, g in a.pairs})
        assert all(d[p, g] < 3 for p, g in a.pairs)
        assert a.false_alarm_pixels == int(a.pred_areas[~a.pred_matched].sum())


def test_vectorised_components_match_ndimage_on_noise():
    rng = np.random.default_rng(2)
    mask = rng.random((256, 256)) > 0.7  # thousands of components
    labels, n, areas, cents = _components(mask)
    ref_labels, ref_n = ndimage.label(mask, np.ones((3, 3)))
    assert n == ref_n > 1000
    idx = np.arange(1, n + 1)
    np.testing.assert_array_equal(areas, ndimage.sum_labels(mask, ref_labels, idx))
    np.testing.assert_allclose(cents, np.array(ndimage.center_of_mass(mask, ref_labels, idx)))
    # and the full analysis runs on it
    for protocol in PROTOCOLS:
        a = analyse_frame(mask, mask, protocol)
        assert len(a.pairs) == n and a.false_alarm_pixels == 0


# -- empty frames, sizes, thresholds ------------------------------------------------------------------------
def test_empty_ground_truth_without_and_with_predictions():
    m = SegmentationMetrics()
    m.update(np.full((64, 64), -5.0), blank())
    r = m.compute()
    assert r["targets"] == 0 and math.isnan(r["pd"]) and math.isnan(r["iou"])
    # nIoU: a frame with no target and no prediction counts 0, as in the field's reference code
    assert r["fa"] == 0.0 and r["niou"] == 0.0 and m.per_image[0]["iou"] == 0.0

    pred = np.full((64, 64), -5.0)
    pred[3:5, 3:5] = 5.0
    m.update(pred, blank(), name="noisy")
    r = m.compute()
    assert r["false_alarm_pixels"] == 4
    assert r["fa"] == pytest.approx(4 / (2 * 4096) * 1e6)
    assert r["iou"] == 0.0 and r["niou"] == 0.0  # (0 + 0) / 2
    assert m.per_image[1]["name"] == "noisy" and m.per_image[1]["iou"] == 0.0


def test_frames_of_different_sizes():
    m = SegmentationMetrics()
    g1 = blank(64, 64)
    g1[10:13, 10:13] = True  # 9 px
    p1 = g1.copy()
    p1[10, 13] = True  # 10 px, inter 9, union 10
    g2 = blank(48, 80)
    g2[40:42, 70:72] = True  # 4 px, missed
    p2 = blank(48, 80)
    p2[5, 5] = True  # false alarm 1 px
    g3 = blank(96, 135)
    p3 = blank(96, 135)
    m.update(p1, g1, "a")
    m.update(p2, g2, "b")
    m.update(p3, g3, "c")
    r = m.compute()
    assert r["frames"] == 3 and r["pixels"] == 64 * 64 + 48 * 80 + 96 * 135
    assert r["iou"] == pytest.approx(100 * 9 / (10 + 5))
    assert r["niou"] == pytest.approx(100 * (0.9 + 0.0 + 0.0) / 3)  # the empty frame c counts 0
    assert r["pd"] == 50.0
    assert r["fa"] == pytest.approx(1e6 * 1 / r["pixels"])
    assert [(p["height"], p["width"]) for p in m.per_image] == [(64, 64), (48, 80), (96, 135)]
    with pytest.raises(ValueError, match="sizes differ for a"):
        m.update(p1, g2, "a")


def test_threshold_is_strict_and_configurable():
    gt = blank(16, 16)
    gt[4:6, 4:6] = True
    score = np.zeros((16, 16), np.float32)
    score[4:6, 4:6] = 0.5
    m0 = SegmentationMetrics()  # default: score > 0
    m0.update(score, gt)
    assert m0.compute()["iou"] == 100.0
    m_eq = SegmentationMetrics(threshold=0.5)  # equal to the threshold: not predicted
    m_eq.update(score, gt)
    assert m_eq.compute()["iou"] == 0.0 and m_eq.compute()["pd"] == 0.0
    m_lo = SegmentationMetrics(threshold=-np.inf)  # everything predicted: one blob covering the frame
    m_lo.update(score, gt)
    r = m_lo.compute()
    assert r["iou"] == pytest.approx(100 * 4 / 256) and r["pred_components"] == 1
    m_hi = SegmentationMetrics(threshold=np.inf)
    m_hi.update(score, gt)
    assert m_hi.compute()["iou"] == 0.0 and m_hi.compute()["false_alarm_pixels"] == 0


def test_torch_inputs_and_bad_shapes():
    gt = torch.zeros(1, 32, 32)
    gt[0, 8:10, 8:10] = 1
    logits = torch.full((1, 1, 32, 32), -3.0)
    logits[..., 8:10, 8:10] = 3.0
    m = SegmentationMetrics()
    m.update(logits, gt)
    assert m.compute()["iou"] == 100.0
    with pytest.raises(ValueError, match="expected a"):
        m.update(torch.zeros(2, 32, 32), gt, "x")
    with pytest.raises(ValueError, match="protocol"):
        SegmentationMetrics(protocol="bogus")


def test_gt_encodings():
    g255 = np.zeros((16, 16), np.uint8)
    g255[3, 3] = 255
    for g in (g255, g255 > 0, (g255 > 0).astype(np.float32)):
        m = SegmentationMetrics()
        m.update(g255.astype(np.float32) - 1, g)
        assert m.compute()["targets"] == 1 and m.compute()["detected"] == 1


def test_state_dict_merge_equals_single_pass():
    rng = np.random.default_rng(3)
    frames = []
    for i in range(6):
        h, w = (32, 48) if i % 2 else (40, 40)
        gt = ndimage.binary_dilation(rng.random((h, w)) > 0.99)
        frames.append((rng.normal(size=(h, w)) + 2.5 * gt - 1.5, gt, f"f{i}"))
    whole = SegmentationMetrics()
    a, b = SegmentationMetrics(), SegmentationMetrics()
    for i, (s, g, n) in enumerate(frames):
        whole.update(s, g, n)
        (a if i < 2 else b).update(s, g, n)
    merged = SegmentationMetrics().merge(a.state_dict()).merge(b)
    assert merged.compute() == whole.compute()
    assert merged.per_image == whole.per_image
    restored = SegmentationMetrics()
    restored.load_state_dict(whole.state_dict())
    assert restored.compute() == whole.compute()
    with pytest.raises(ValueError, match="protocol"):
        SegmentationMetrics(protocol="legacy").merge(a)


# -- ROC ----------------------------------------------------------------------------------------------------
def test_roc_perfect_and_random_auc():
    rng = np.random.default_rng(4)
    gt = rng.random((128, 128)) > 0.8
    perfect = ROCAccumulator(pdfa_thresholds=None)
    perfect.update(gt.astype(np.float32), gt)
    assert perfect.compute()["auc"] == pytest.approx(1.0)
    random = ROCAccumulator(pdfa_thresholds=None)
    for _ in range(3):
        random.update(rng.random((128, 128)), gt)
    assert random.compute()["auc"] == pytest.approx(0.5, abs=0.01)
    inverted = ROCAccumulator(pdfa_thresholds=None)
    inverted.update(1.0 - gt.astype(np.float32), gt)
    assert inverted.compute()["auc"] == pytest.approx(0.0, abs=1e-9)


def test_roc_monotonic_counts_and_edges():
    rng = np.random.default_rng(5)
    roc = ROCAccumulator(thresholds=[0.0, 0.25, 0.5, 0.75, 1.0])
    gts = []
    for shape in ((64, 64), (40, 72)):
        gt = ndimage.binary_dilation(rng.random(shape) > 0.99)
        s = np.clip(rng.random(shape) * 0.6 + 0.4 * gt, 0, 1)
        s[0, 0] = 0.5  # exactly on a threshold: not above it
        roc.update(s, gt)
        gts.append((s, gt))
    r = roc.compute()
    tpr, fpr = np.array(r["tpr"]), np.array(r["fpr"])
    assert (np.diff(tpr) <= 0).all() and (np.diff(fpr) <= 0).all()
    for k, t in enumerate(r["thresholds"]):  # against a direct count
        tp = sum(int(((s > t) & g).sum()) for s, g in gts)
        fp = sum(int(((s > t) & ~g).sum()) for s, g in gts)
        assert roc.tp[k] == tp and roc.fp[k] == fp
    assert r["tpr"][-1] == 0.0 and r["fpr"][-1] == 0.0  # nothing above 1
    # Pd-Fa at a threshold equals SegmentationMetrics at that threshold
    for k, t in enumerate(r["pdfa_thresholds"]):
        m = SegmentationMetrics(threshold=t)
        for s, g in gts:
            m.update(s, g)
        assert r["pd"][k] == m.compute()["pd"] and r["fa"][k] == m.compute()["fa"]


def test_roc_merge_and_outputs(tmp_path):
    rng = np.random.default_rng(6)
    whole, a, b = ROCAccumulator(), ROCAccumulator(), ROCAccumulator()
    for i in range(4):
        gt = ndimage.binary_dilation(rng.random((32, 32)) > 0.98)
        s = rng.random((32, 32)) * 0.7 + 0.3 * gt
        whole.update(s, gt)
        (a if i % 2 else b).update(s, gt)
    a.merge(b.state_dict())
    assert a.compute() == whole.compute()
    r = whole.compute()
    roc_csv = save_roc_csv(r, tmp_path / "roc.csv")
    pdfa_csv = save_pdfa_csv(r, tmp_path / "pdfa.csv")
    png = plot_curves(r, tmp_path / "roc.png", title="test")
    assert len(roc_csv.read_text().splitlines()) == 1 + len(r["thresholds"])
    assert len(pdfa_csv.read_text().splitlines()) == 1 + len(r["pdfa_thresholds"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="thresholds"):
        ROCAccumulator(thresholds=[0.1, 0.2]).merge(whole)


def test_auc_trapezoid_closes_the_curve():
    assert auc_trapezoid(np.array([0.5]), np.array([0.5])) == pytest.approx(0.5)
    assert auc_trapezoid(np.array([0.0]), np.array([1.0])) == pytest.approx(1.0)
    assert math.isnan(auc_trapezoid(np.array([np.nan]), np.array([0.5])))
