"""Synthetic infrared small-target scenes: the project's built-in data (issue 3).

A scene is a cluttered background plus one to several small targets with exact masks, fully determined by
``(seed, index)``.

Background (radiance, then sensor effects)
    - ``sky``: vertical gradient and clouds (soft-thresholded 1/f^3 noise, bright edges and dark gaps);
    - ``sea``: optional sky band above a horizon, anisotropic 1/f wave texture stretched horizontally, and sun
      glint (sparse bright specks where the fine wave field peaks: target-like false alarms);
    - ``ground``: 1/f^2 terrain texture, "urban" blocks and roads (sharp edges), a few small warm spots;
    then for every kind: a random linear gradient, vignetting (``1 - v r^2``), fixed-pattern noise (column and
    row offsets, per-pixel gain), single-frame sensor noise, and scaling to a random sub-range of [0, 1].

Targets
    Footprint ``S``: the ``a`` top pixels of a rotated anisotropic quadratic (plus a little smooth noise for
    irregular outlines), so the area is exactly ``a`` pixels, drawn log-uniform in ``area_range`` (default 1
    to
    80) -- point-like targets for small ``a``, small extended shapes for larger ones. The intensity profile is
    ``S`` times a hot-spot falloff, blurred by a Gaussian point-spread function (sigma 0.4 to 0.8 px, so less
    than half of the peak spreads outside ``S``), scaled so that its mean over ``S`` equals ``scr * sigma_b``
    where ``sigma_b`` is the standard deviation of the background in a 21 x 21 window around the target:
    the signal-to-clutter ratio ``(mean_target - mean_bg) / sigma_b`` is controlled by ``scr_range``.
    The mask is exactly ``S``; targets are kept at least 3 px apart so each is one 8-connected component.

Real clutter (``clutter`` > 0; 0 leaves the stream above unchanged)
    The hard negatives of real infrared frames, each drawn with a probability (or count) scaled by
    ``clutter``: sun-lit cloud rims (thin bright lines along cloud edges, sharper cloud boundaries); bright
    buildings (hot roofs with sharp edges, 3 to 12 px across: target-sized but flat-topped and
    unblurred); stronger sea glint; sensor defects (isolated hot and dead pixels that the optics never
    blurred); and targets placed on clutter (the most cluttered of several candidate positions, so dim
    targets sit beside edges and glint). Every one is something a fixed filter confuses with a target and a
    learned detector can tell apart by shape, profile or context; none makes a target easier to see.

Output frames are quantised to the chosen bit depth (8 or 16), so an in-memory scene equals the same scene
written with :func:`write_synthetic_dataset` and read back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from irsam2.data.io import write_frame, write_mask
from irsam2.utils import UserError

BACKGROUNDS = ("sky", "sea", "ground")


@dataclass
class SceneConfig:
    """Knobs of the generator (all ranges inclusive)."""

    size: tuple[int, int] = (256, 256)
    n_targets: tuple[int, int] = (1, 4)
    area_range: tuple[int, int] = (1, 80)
    scr_range: tuple[float, float] = (2.0, 10.0)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    bit_depth: int = 8
    noise_std: tuple[float, float] = (0.003, 0.015)
    clutter: float = 0.0  # real-clutter hard negatives (see the module docstring); 0 = the basic scenes

    def __post_init__(self) -> None:
        if isinstance(self.size, int):
            self.size = (self.size, self.size)
        h, w = self.size
        if h < 16 or w < 16:
            raise UserError(f"synthetic scene size must be at least 16x16, got {h}x{w}")
        if self.bit_depth not in (8, 16):
            raise UserError(f"synthetic bit_depth must be 8 or 16, got {self.bit_depth}")
        lo, hi = self.area_range
        if not 1 <= lo <= hi:
            raise UserError(f"area_range must satisfy 1 <= lo <= hi, got {self.area_range}")
        if not 0 <= self.n_targets[0] <= self.n_targets[1]:
            raise UserError(f"n_targets must satisfy 0 <= lo <= hi, got {self.n_targets}")
        bad = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if bad or not self.backgrounds:
            raise UserError(f"unknown synthetic background(s) {bad}; choose from {BACKGROUNDS}")
        if not 0.0 <= self.clutter <= 2.0:
            raise UserError(f"synthetic clutter must be in [0, 2], got {self.clutter}")


@dataclass
class Scene:
    """One generated frame: ``image`` float32 in [0, 1] (quantised), ``mask`` bool, and per-target truth."""

    image: np.ndarray
    mask: np.ndarray
    background: str
    areas: list[int] = field(default_factory=list)
    centroids: list[tuple[float, float]] = field(default_factory=list)  # (x, y)
    scr: list[float] = field(default_factory=list)  # requested signal-to-clutter ratio


def fractal_noise(
    shape: tuple[int, int], beta: float, rng: np.random.Generator, aspect: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum ``1 / f^beta`` (``aspect < 1`` stretches it along x)."""
    h, w = shape
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :] * np.float32(aspect)
    f2 = fx * fx + fy * fy
    f2[0, 0] = 1.0
    amp = f2 ** np.float32(-beta / 4.0)  # |f|^(-beta/2)
    amp[0, 0] = 0.0
    spec = rng.standard_normal((h, w // 2 + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
    out = np.fft.irfft2(spec * amp, s=(h, w)).astype(np.float32)
    out -= out.mean()
    return out / np.float32(out.std() + 1e-12)


def _sky(shape: tuple[int, int], rng: np.random.Generator, clutter: float = 0.0) -> np.ndarray:
    h, w = shape
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    base = 0.3 + rng.uniform(-0.2, 0.2) * y
    cover = rng.uniform(-0.8, 1.2)  # threshold: low = overcast, high = clear sky
    clouds = fractal_noise(shape, rng.uniform(2.6, 3.4), rng)
    sharp = rng.uniform(0.08, 0.4)
    if clutter > 0 and rng.random() < min(0.6 * clutter, 1.0):
        sharp = rng.uniform(0.02, 0.08)  # hard cloud boundaries
    with np.errstate(over="ignore"):  # exp overflows to inf far outside sharp edges: soft is then 0
        soft = 1.0 / (1.0 + np.exp(-(clouds - cover) / sharp))
    detail = fractal_noise(shape, 2.0, rng)
    amp = rng.uniform(0.15, 0.5)
    out = base + amp * soft * (1.0 + 0.15 * detail) + 0.01 * detail
    if clutter > 0 and rng.random() < min(0.7 * clutter, 1.0):
        # sun-lit rims: a thin bright line along the cloud edge (the gradient of the cloud cover)
        # a sky strip one row high (a sea scene's horizon near the top) has no vertical gradient
        gy = np.gradient(soft, axis=0) if h > 1 else np.zeros_like(soft)
        gx = np.gradient(soft, axis=1) if w > 1 else np.zeros_like(soft)
        rim = np.hypot(gx, gy)
        rim = rim / np.float32(rim.max() + 1e-6)
        out = out + np.float32(amp * rng.uniform(0.3, 1.0)) * rim**2
    return out.astype(np.float32)


def _sea(shape: tuple[int, int], rng: np.random.Generator, clutter: float = 0.0) -> np.ndarray:
    h, w = shape
    out = np.empty(shape, np.float32)
    horizon = int(rng.uniform(0.0, 0.45) * h) if rng.random() < 0.7 else 0
    if horizon > 0:
        out[:horizon] = _sky((horizon, w), rng, clutter) * 0.8
    sh = h - horizon
    waves = fractal_noise((sh, w), rng.uniform(2.0, 2.8), rng, aspect=rng.uniform(0.2, 0.5))
    fine = fractal_noise((sh, w), 1.2, rng, aspect=0.4)
    glint = np.clip(fine - np.quantile(fine, rng.uniform(0.985, 0.998)), 0.0, None)
    glint = cv2.GaussianBlur(glint, (0, 0), 0.7) * rng.uniform(0.5, 3.0)
    if clutter > 0:  # sun glint: more specks, brighter, sharper (low sun, calm patches)
        q = rng.uniform(max(0.985 - 0.02 * clutter, 0.9), 0.99)
        sharp = np.clip(fine - np.quantile(fine, q), 0.0, None)
        glint = glint + cv2.GaussianBlur(sharp, (0, 0), 0.45) * np.float32(rng.uniform(1.0, 4.0) * clutter)
    depth = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None]  # near water is warmer, rougher
    out[horizon:] = 0.35 + 0.1 * depth + (0.03 + 0.05 * depth) * waves + glint
    return out


def _ground(shape: tuple[int, int], rng: np.random.Generator, clutter: float = 0.0) -> np.ndarray:
    h, w = shape
    out = 0.4 + 0.08 * fractal_noise(shape, rng.uniform(1.6, 2.4), rng)
    if rng.random() < 0.7:  # urban blocks and roads
        for _ in range(int(rng.integers(3, 15))):
            bh, bw = int(rng.integers(4, max(h // 4, 5))), int(rng.integers(4, max(w // 4, 5)))
            y, x = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
            out[y : y + bh, x : x + bw] += rng.uniform(-0.12, 0.15)
        for _ in range(int(rng.integers(0, 4))):
            t = int(rng.integers(1, 4))
            if rng.random() < 0.5:
                y = int(rng.integers(0, h - t))
                out[y : y + t] += rng.uniform(-0.08, 0.08)
            else:
                x = int(rng.integers(0, w - t))
                out[:, x : x + t] += rng.uniform(-0.08, 0.08)
        out = cv2.GaussianBlur(out, (0, 0), 0.6)
    spots = np.zeros(shape, np.float32)  # warm clutter spots: not targets
    n = int(rng.integers(0, 6))
    spots[rng.integers(0, h, n), rng.integers(0, w, n)] = rng.uniform(0.5, 2.0, n)
    out = out + cv2.GaussianBlur(spots, (0, 0), 1.0) * 0.3
    if clutter > 0:  # bright buildings: hot roofs with sharp edges, 3 to 12 px across
        for _ in range(int(rng.poisson(4.0 * clutter))):
            bh, bw = int(rng.integers(3, 13)), int(rng.integers(3, 13))
            y, x = int(rng.integers(0, max(h - bh, 1))), int(rng.integers(0, max(w - bw, 1)))
            out[y : y + bh, x : x + bw] += np.float32(rng.uniform(0.08, 0.3))
    return out


def _sensor(img: np.ndarray, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    h, w = img.shape
    yy = (np.arange(h, dtype=np.float32) / max(h - 1, 1) - 0.5)[:, None]
    xx = (np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5)[None, :]
    ang = rng.uniform(0, 2 * np.pi)
    img = img + np.float32(rng.uniform(0.0, 0.15)) * (
        np.float32(np.cos(ang)) * xx + np.float32(np.sin(ang)) * yy
    )
    img = img * (1.0 - np.float32(rng.uniform(0.0, 0.5) * 2.0) * (xx * xx + yy * yy))  # vignetting
    lo, span = rng.uniform(0.05, 0.35), rng.uniform(0.2, 0.45)
    img = np.float32(lo) + np.float32(span) * (img - img.min()) / np.float32(np.ptp(img) + 1e-6)
    # Fixed-pattern noise: column/row offsets and per-pixel gain; then single-frame sensor noise.
    fpn = rng.uniform(0.0, 0.006)
    gain = rng.standard_normal((h, w), dtype=np.float32) * np.float32(0.01) + np.float32(1.0)
    offsets = rng.normal(0, fpn, (1, w)).astype(np.float32) + rng.normal(0, fpn / 2, (h, 1)).astype(
        np.float32
    )
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(*cfg.noise_std))
    img = (img * gain + offsets + noise).astype(np.float32, copy=False)
    if cfg.clutter > 0:  # defective pixels: hot and dead, never blurred by the optics
        for sign, rate in ((1.0, 1.0), (-1.0, 0.5)):  # per 64x64 pixels at clutter 1
            n = int(rng.poisson(rate * cfg.clutter * h * w / 4096.0))
            ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
            img[ys, xs] += np.float32(sign) * rng.uniform(0.05, 0.25, n).astype(np.float32) * np.float32(span)
    return img


def _footprint(area: int, rng: np.random.Generator) -> np.ndarray:
    """A connected boolean footprint of exactly ``area`` pixels (top pixels of an anisotropic quadratic)."""
    r = int(np.ceil(np.sqrt(area) * 2.5)) + 2
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    th = rng.uniform(0, np.pi)
    ar = rng.uniform(1.0, 3.0) if area > 4 else 1.0
    u, v = np.cos(th) * xx + np.sin(th) * yy, -np.sin(th) * xx + np.cos(th) * yy
    q = u * u / ar + v * v * ar
    for jitter in (0.6, 0.2, 0.0):
        score = q + jitter * area**0.5 * cv2.GaussianBlur(
            rng.standard_normal(q.shape).astype(np.float32), (0, 0), 1.0
        )
        score += 1e-4 * rng.random(q.shape)  # tie-break without position bias
        order = np.argsort(score, axis=None)[:area]
        fp = np.zeros(q.size, bool)
        fp[order] = True
        fp = fp.reshape(q.shape)
        if cv2.connectedComponents(fp.view(np.uint8), connectivity=8)[0] == 2:
            break
    ys, xs = np.nonzero(fp)
    return fp[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def generate_scene(index: int, seed: int = 0, config: SceneConfig | None = None) -> Scene:
    """Scene number ``index`` of the stream defined by ``seed`` (deterministic)."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0x1A5A2])
    h, w = cfg.size
    kind = cfg.backgrounds[int(rng.integers(0, len(cfg.backgrounds)))]
    bg = {"sky": _sky, "sea": _sea, "ground": _ground}[kind]((h, w), rng, cfg.clutter)
    img = _sensor(bg, rng, cfg)
    busy = None  # local clutter (7x7 std) of the target-free frame, for targets placed on clutter
    if cfg.clutter > 0:
        mean = cv2.blur(img, (7, 7))
        busy = np.sqrt(np.maximum(cv2.blur(img * img, (7, 7)) - mean * mean, 0.0))

    mask = np.zeros((h, w), bool)
    keep_out = np.zeros((h, w), bool)  # targets must stay 3 px apart to remain separate components
    scene = Scene(image=img, mask=mask, background=kind)
    lo_a, hi_a = cfg.area_range
    for _ in range(int(rng.integers(cfg.n_targets[0], cfg.n_targets[1] + 1))):
        area = int(round(np.exp(rng.uniform(np.log(lo_a), np.log(hi_a + 0.999)) - 0.4999)))
        area = min(max(area, lo_a), hi_a)
        fp = _footprint(area, rng)
        fh, fw = fp.shape
        if fh > h - 4 or fw > w - 4:
            continue
        on_clutter = busy is not None and rng.random() < min(0.5 * cfg.clutter, 1.0)
        free = []
        for _attempt in range(30):
            y, x = int(rng.integers(2, h - fh - 1)), int(rng.integers(2, w - fw - 1))
            if not keep_out[y : y + fh, x : x + fw][fp].any():
                free.append((y, x))
                if not on_clutter or len(free) == 8:
                    break
        if not free:
            continue
        if on_clutter:  # the most cluttered of the free candidates: beside an edge, a roof, glint
            y, x = max(free, key=lambda p: float(busy[p[0] + fh // 2, p[1] + fw // 2]))
        else:
            y, x = free[0]
        # Local clutter from the target-free frame in a 21x21 window.
        cy, cx = y + fh // 2, x + fw // 2
        win = img[max(cy - 10, 0) : cy + 11, max(cx - 10, 0) : cx + 11]
        sigma_b = max(float(win.std()), 1e-3)
        scr = float(rng.uniform(*cfg.scr_range))
        # Profile: footprint with a hot spot, blurred by the PSF, mean 1 over the footprint.
        p = 3
        prof = np.zeros((fh + 2 * p, fw + 2 * p), np.float32)
        yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
        ys, xs = np.nonzero(fp)
        d2 = (yy - ys.mean()) ** 2 + (xx - xs.mean()) ** 2
        hot = 0.6 + 0.4 * np.exp(-d2 / (2.0 * max(area / np.pi, 0.5)))
        prof[p : p + fh, p : p + fw] = fp * hot
        prof = cv2.GaussianBlur(prof, (0, 0), rng.uniform(0.4, 0.8))
        prof /= prof[p : p + fh, p : p + fw][fp].mean()
        y0, x0 = y - p, x - p
        sy0, sx0 = max(-y0, 0), max(-x0, 0)
        sy1, sx1 = (
            prof.shape[0] - max(y0 + prof.shape[0] - h, 0),
            prof.shape[1] - max(x0 + prof.shape[1] - w, 0),
        )
        img[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1] += scr * sigma_b * prof[sy0:sy1, sx0:sx1]
        mask[y : y + fh, x : x + fw] |= fp
        keep_out[max(y - 3, 0) : y + fh + 3, max(x - 3, 0) : x + fw + 3] = True
        scene.areas.append(int(fp.sum()))
        scene.centroids.append((float(x + xs.mean()), float(y + ys.mean())))
        scene.scr.append(scr)

    top = 255.0 if cfg.bit_depth == 8 else 65535.0
    scene.image = (np.rint(np.clip(img, 0.0, 1.0) * top) / top).astype(np.float32)
    return scene


def write_synthetic_dataset(
    folder: str | os.PathLike,
    n_train: int = 100,
    n_test: int = 50,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    bit_depth: int = 8,
    layout: str = "plain",
    **scene_kwargs,
) -> Path:
    """Write ``n_train + n_test`` scenes as ``images/<stem>.png`` + ``masks/<stem>.png`` with split files.

    ``layout`` chooses where the split files go: ``plain`` (``train.txt``/``test.txt`` at the root),
    ``50_50`` (``50_50/train.txt``/``test.txt``), ``idx_427`` (``idx_427/trainval.txt``/``test.txt``),
    ``img_idx`` (``img_idx/train_synthetic.txt``/``test_synthetic.txt``), ``pixels0`` (like ``idx_427`` with
    NUAA-SIRST's ``<stem>_pixels0.png`` mask names) or ``irstd1k`` (``IRSTD1k_Img``/``IRSTD1k_Label``,
    ``trainval.txt``/``test.txt``). Scene ``i`` is ``generate_scene(i, seed)``; stems are ``syn_000000`` etc.
    Returns the folder.
    """
    layouts = ("plain", "50_50", "idx_427", "img_idx", "pixels0", "irstd1k")
    if layout not in layouts:
        raise UserError(f"unknown synthetic layout {layout!r}; choose from {layouts}")
    cfg = SceneConfig(size=size, bit_depth=bit_depth, **scene_kwargs)
    root = Path(folder)
    img_dir, mask_dir = ("IRSTD1k_Img", "IRSTD1k_Label") if layout == "irstd1k" else ("images", "masks")
    suffix = "_pixels0" if layout == "pixels0" else ""
    (root / img_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    stems = [f"syn_{i:06d}" for i in range(n_train + n_test)]
    for i, stem in enumerate(stems):
        scene = generate_scene(i, seed, cfg)
        write_frame(root / img_dir / f"{stem}.png", scene.image, bit_depth)
        write_mask(root / mask_dir / f"{stem}{suffix}.png", scene.mask)
    train, test = stems[:n_train], stems[n_train:]
    split_dir, train_name, test_name = {
        "plain": (root, "train.txt", "test.txt"),
        "50_50": (root / "50_50", "train.txt", "test.txt"),
        "idx_427": (root / "idx_427", "trainval.txt", "test.txt"),
        "pixels0": (root / "idx_427", "trainval.txt", "test.txt"),
        "img_idx": (root / "img_idx", "train_synthetic.txt", "test_synthetic.txt"),
        "irstd1k": (root, "trainval.txt", "test.txt"),
    }[layout]
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / train_name).write_text("".join(s + "\n" for s in train))
    (split_dir / test_name).write_text("".join(s + "\n" for s in test))
    return root
