"""The training split held on the training device, augmented there in batch (issue 12, ``data.on_device``).

:class:`DeviceTrainSet` reads every training frame once (normalised, as :class:`~irsam2.data.FrameDataset`
does), keeps them as one padded ``(N, H_max, W_max)`` tensor on the device with each frame's own size, and
builds a whole training batch with batched tensor ops: no per-sample Python work, no host-device sync, no
data-dependent shape. Frames of different sizes are supported: every sampling index is computed from the
frame's own ``(h, w)``, so the padding is never read.

The augmentation follows :class:`~irsam2.data.transforms.TrainAugment` (the same object configures both:
``crop_size``, ``scale``, ``scale_base``, ``flip_p``, ``blur_p``, ``blur_sigma``, ``target_crop_p``), step by
step and with the same probabilities:

2. horizontal flip with probability ``flip_p``;
3. zoom: long side ``u * scale_base`` (or ``u *`` the frame's long side), ``u ~ U[scale]``, new size rounded
   as ``round`` does; image bilinear with OpenCV's half-pixel rule and border clamp (``INTER_LINEAR``), mask
   by ``INTER_NEAREST_EXACT``'s rule ``floor((d + 0.5) * src / dst)`` (OpenCV's arithmetic rounds some exact
   ties the other way: about 0.5 % of rows/columns at some zooms, a one-pixel shift of a mask edge).
   Composed with step 5 as one gather: only the crop's pixels are sampled, the zoomed frame is never built;
4. / 5. pad bottom/right with 0 (normalised units) to the crop size and take a ``crop_size`` square crop at a
   uniform origin, or, with probability ``target_crop_p`` (when the frame has a target), an origin uniform
   among those whose window holds one target pixel drawn uniformly from the frame's target pixels (mapped
   into the zoomed frame; the CPU pipeline draws among the zoomed mask's pixels, the same distribution up to
   the rounding of the zoom);
6. Gaussian blur of the image with probability ``blur_p``, sigma ``~ U[blur_sigma]``, skipped at sigma <=
   0.05, kernel size as OpenCV picks it for float images (``round(8 sigma + 1) | 1``), border ``REFLECT``;
   one grouped separable convolution for the batch (a delta kernel where a sample is not blurred).

Not done in batch: **copy-paste** (step 1). Pasting up to 100 crops of various sizes per frame, with later
pastes covering earlier ones, is possible with scatter ops but not implemented; a dataset with a copy-paste
bank is refused with a :class:`~irsam2.utils.UserError` (use ``data.on_device=false`` for IRSTD-1k's recipe,
or ``data.copy_paste=false``).

Per-target annotations (``boxes``, ``areas``, ``centroids``, ``contrasts``, as :mod:`irsam2.data.targets`
computes them, contrast margin 3) come from each frame's 8-connected components labelled once at load time:
the label map goes through the same zoom and crop as the mask, and per-label sums, minima and maxima
(``index_add`` / ``scatter_reduce``) and integral images give the annotations of the crop. Every image gets
``K`` slots (``K`` = the most targets of any frame); ``box_valid`` marks the slots that hold a target (the
target-centric loss ignores the others). One difference from the CPU pipeline: a target that the crop edge or
a zoom-out cuts into pieces stays one target here (the CPU pipeline relabels the crop), and two targets that
a zoom-out joins stay two.

Randomness: one ``torch.rand`` of fixed shape per batch from a ``torch.Generator`` on the device, so a seed
gives the same batches (per device type) and skipping ``k`` batches is ``k`` draws.

Memory: about ``N * H_max * W_max * 6`` bytes (float32 frames and int16 labels) plus the target pixel list;
NUDT-SIRST's 600 frames of 256 x 256 take 0.24 GB, IRSTD-1k's 800 of 512 x 512 1.3 GB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from irsam2.data.targets import components
from irsam2.data.transforms import TrainAugment, boxes_from_stats, normalise, window_cuts
from irsam2.utils import UserError

CONTRAST_MARGIN = 3  # as compute_targets(..., margin=3) in FrameDataset
_N_DRAWS = (
    8  # uniforms per sample: flip, scale, target?, which target pixel, origin y, origin x, blur?, sigma
)


class DeviceTrainSet:
    """A training dataset's frames on ``device`` and the batched version of its ``augment`` (module doc).

    ``dataset``: any :class:`~irsam2.data.FrameDataset` (its ``load`` and ``norm`` are used, once);
    ``augment``: defaults to the dataset's own. :meth:`batch` builds one collated training batch.
    """

    def __init__(self, dataset: Any, device: torch.device | str, augment: TrainAugment | None = None) -> None:
        self.device = torch.device(device)
        aug = augment if augment is not None else dataset.augment
        if aug.bank is not None and len(aug.bank) and aug.copy_paste_p > 0:
            raise UserError(
                "data.on_device: copy-paste is not implemented for batches built on the device; "
                "set data.copy_paste=false or data.on_device=false"
            )
        self.aug = aug
        self.crop = int(aug.crop_size)
        n = len(dataset)
        if n < 1:
            raise UserError("data.on_device: the training split is empty")
        norm = dataset.norm
        frames, labels, boxes_list, pixels, self.stems, self.paths = [], [], [], [], [], []
        for i in range(n):
            frame, mask, stem, path = dataset.load(i)
            if frame.ndim != 2 or frame.shape != mask.shape:
                raise UserError(
                    f"data.on_device: {path}: frame {frame.shape} and mask {mask.shape} differ or are not 2-D"
                )
            frames.append(normalise(frame, norm).astype(np.float32))
            _, lab, stats, _ = components(mask)
            labels.append(lab)
            boxes_list.append(boxes_from_stats(stats))  # label j + 1 is row j
            pixels.append(np.stack(np.nonzero(mask), axis=1))
            self.stems.append(stem)
            self.paths.append(path)
        self.sizes_host = [f.shape for f in frames]
        hm = max(s[0] for s in self.sizes_host)
        wm = max(s[1] for s in self.sizes_host)
        self.k = max(1, max(int(lab.max()) for lab in labels))
        if self.k > np.iinfo(np.int16).max:
            raise UserError(f"data.on_device: a frame has {self.k} targets, more than the int16 labels hold")
        img = np.zeros((n, hm, wm), np.float32)
        lab = np.zeros((n, hm, wm), np.int16)
        p_max = max(1, max(len(p) for p in pixels))
        pix = np.zeros((n, p_max, 2), np.int64)
        for i, (f, la, p) in enumerate(zip(frames, labels, pixels, strict=True)):
            img[i, : f.shape[0], : f.shape[1]] = f
            lab[i, : la.shape[0], : la.shape[1]] = la
            pix[i, : len(p)] = p
        dev = self.device
        self.images = torch.from_numpy(img).to(dev)
        self.labels = torch.from_numpy(lab).to(dev)
        self.sizes = torch.tensor(self.sizes_host, dtype=torch.long).to(dev)  # (N, 2): h, w
        self.pixels = torch.from_numpy(pix).to(dev)  # (N, P, 2): y, x of target pixels, padded
        self.n_pixels = torch.tensor([len(p) for p in pixels], dtype=torch.long).to(dev)
        # each target's bounding box (y0, x0, y1, x1), for crops that must not cut one (``whole_targets``)
        boxes = np.zeros((n, self.k, 4), np.int64)
        for i, bx in enumerate(boxes_list):
            boxes[i, : len(bx)] = bx
        self.boxes = torch.from_numpy(boxes).to(dev)  # (N, K, 4)
        n_targets = torch.tensor([len(bx) for bx in boxes_list])
        self.box_valid = (torch.arange(self.k) < n_targets[:, None]).to(dev)  # (N, K)
        self.hw = (hm, wm)
        # blur: the largest kernel radius OpenCV would use over the sigma range (float images: 8 sigma + 1)
        self.blur_r = (int(round(8 * float(aug.blur_sigma[1]) + 1)) | 1) // 2
        if self.blur_r >= self.crop:
            raise UserError(f"data.on_device: blur sigma {aug.blur_sigma[1]} too large for crop {self.crop}")
        self._acc = torch.float32 if dev.type == "mps" else torch.float64  # annotation sums, as targets.py

    def __len__(self) -> int:
        return len(self.stems)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.images, self.labels, self.pixels))

    def generator(self, seed: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        return g

    def draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """The uniforms of one batch ``(8, B)`` (with ``whole_targets`` 4 more per extra crop candidate): the
        only random draw :meth:`batch` makes."""
        n = _N_DRAWS + (4 * (self.aug.WHOLE_TRIES - 1) if self.aug.whole_targets else 0)
        return torch.rand(n, batch_size, generator=generator, device=self.device)

    def _origin(
        self,
        idx: torch.Tensor,
        flip: torch.Tensor,
        nh: torch.Tensor,
        nw: torch.Tensor,
        r_tsel: torch.Tensor,
        r_tpick: torch.Tensor,
        r_oy: torch.Tensor,
        r_ox: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop origins in the zoomed, padded frames: uniform, or holding a target pixel. The draws are
        ``(B,)``, or ``(R, B)`` for R candidates per sample (the per-sample tensors broadcast)."""
        aug, c = self.aug, self.crop
        h, w = self.sizes[idx, 0], self.sizes[idx, 1]
        hmax = (nh - c).clamp(min=0)
        wmax = (nw - c).clamp(min=0)
        oy = _uniform_int(r_oy, torch.zeros_like(hmax), hmax)
        ox = _uniform_int(r_ox, torch.zeros_like(wmax), wmax)
        if aug.target_crop_p > 0:
            count = self.n_pixels[idx]
            k = (r_tpick * count).long().clamp(max=(count - 1).clamp(min=0))
            p = self.pixels[idx, k]  # (..., B, 2)
            py, px = p[..., 0], torch.where(flip, w - 1 - p[..., 1], p[..., 1])
            ty = torch.minimum(((py.float() + 0.5) * nh / h.float()).long(), nh - 1)
            tx = torch.minimum(((px.float() + 0.5) * nw / w.float()).long(), nw - 1)
            oy_t = _uniform_int(r_oy, (ty - c + 1).clamp(min=0), torch.minimum(hmax, ty))
            ox_t = _uniform_int(r_ox, (tx - c + 1).clamp(min=0), torch.minimum(wmax, tx))
            use = (r_tsel < aug.target_crop_p) & (count > 0)
            oy, ox = torch.where(use, oy_t, oy), torch.where(use, ox_t, ox)
        return oy, ox

    def _cuts(
        self,
        idx: torch.Tensor,
        flip: torch.Tensor,
        nh: torch.Tensor,
        nw: torch.Tensor,
        oy: torch.Tensor,
        ox: torch.Tensor,
    ) -> torch.Tensor:
        """``(R, B)``: whether the crop at ``(oy, ox)`` (``(R, B)``) holds part, not all, of a target's box.

        Boxes are mapped into the zoomed frame outward (floor / ceil), so a box is never taken for smaller
        than it is."""
        h, w = self.sizes[idx, 0].float(), self.sizes[idx, 1].float()
        bx = self.boxes[idx].float()  # (B, K, 4): y0, x0, y1, x1 (inclusive), source frame
        y0, x0, y1, x1 = bx.unbind(-1)
        wl = w[:, None] - 1
        x0, x1 = torch.where(flip[:, None], wl - x1, x0), torch.where(flip[:, None], wl - x0, x1)
        sy, sx = (nh.float() / h)[:, None], (nw.float() / w)[:, None]
        y0, x0 = torch.floor(y0 * sy), torch.floor(x0 * sx)
        y1, x1 = torch.ceil((y1 + 1) * sy) - 1, torch.ceil((x1 + 1) * sx) - 1
        oy, ox = oy[..., None].float(), ox[..., None].float()  # (R, B, 1)
        cut = window_cuts(y0, x0, y1, x1, oy, ox, self.crop)  # (R, B, K)
        return (cut & self.box_valid[idx]).any(-1)

    # -- one batch ------------------------------------------------------------------------------------------
    def batch(self, idx: torch.Tensor, generator: torch.Generator, meta: bool = True) -> dict[str, Any]:
        """A collated training batch of the frames ``idx`` (``(B,)`` long on the device), augmented.

        ``meta``: add ``stem`` / ``path`` / ``orig_size`` lists (reads ``idx`` on the host: pass the host copy
        via :meth:`with_meta` instead when ``idx`` lives on a GPU)."""
        aug, c, dev = self.aug, self.crop, self.device
        b = idx.shape[0]
        draws = self.draw(b, generator)
        r_flip, r_scale, r_tsel, r_tpick, r_oy, r_ox, r_blur, r_sigma = draws[:_N_DRAWS]
        hw = self.sizes[idx]
        h, w = hw[:, 0], hw[:, 1]
        hf, wf = h.float(), w.float()
        long_side = torch.maximum(hf, wf)
        lo, hi = float(aug.scale[0]), float(aug.scale[1])
        base = long_side if aug.scale_base is None else float(aug.scale_base)
        f = (lo + (hi - lo) * r_scale) * base / long_side
        nh = torch.round(hf * f).clamp(min=1).long()
        nw = torch.round(wf * f).clamp(min=1).long()
        flip = r_flip < aug.flip_p

        # crop origin in the zoomed, padded frame
        if aug.whole_targets:
            # the CPU pipeline draws again while the crop cuts a target; here every sample gets
            # WHOLE_TRIES candidates at once, in one call, and keeps the first that cuts none (the first if
            # all do)
            first_draw = torch.stack([r_tsel, r_tpick, r_oy, r_ox])[None]
            r = torch.cat([first_draw, draws[_N_DRAWS:].view(-1, 4, b)]).unbind(1)  # 4 x (R, B)
            cy, cx = self._origin(idx, flip, nh, nw, *r)  # (R, B)
            ok = ~self._cuts(idx, flip, nh, nw, cy, cx)
            first = torch.argmax(ok.int(), dim=0, keepdim=True)  # argmax returns the first maximum
            oy, ox = cy.gather(0, first)[0], cx.gather(0, first)[0]
        else:
            oy, ox = self._origin(idx, flip, nh, nw, r_tsel, r_tpick, r_oy, r_ox)

        # the crop's pixels in zoomed coordinates, then in the source frame (one gather per neighbour)
        ar = torch.arange(c, device=dev)
        yy, xx = oy[:, None] + ar, ox[:, None] + ar  # (B, c)
        in_y, in_x = yy < nh[:, None], xx < nw[:, None]
        y0, y1, ly = _linear_axis(yy, h, nh)
        x0, x1, lx = _linear_axis(xx, w, nw)
        yn, xn = _nearest_axis(yy, h, nh), _nearest_axis(xx, w, nw)
        wl = w[:, None] - 1
        fl = flip[:, None]
        x0, x1, xn = (torch.where(fl, wl - v, v) for v in (x0, x1, xn))
        hm, wm = self.hw
        base_i = (idx * (hm * wm))[:, None, None]
        flat_img = self.images.reshape(-1)

        def at(rows: torch.Tensor, cols: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
            return src[base_i + rows[:, :, None] * wm + cols[:, None, :]]

        lyv, lxv = ly[:, :, None], lx[:, None, :]
        image = (1 - lyv) * ((1 - lxv) * at(y0, x0, flat_img) + lxv * at(y0, x1, flat_img)) + lyv * (
            (1 - lxv) * at(y1, x0, flat_img) + lxv * at(y1, x1, flat_img)
        )
        inside = in_y[:, :, None] & in_x[:, None, :]
        image = torch.where(inside, image, 0.0)
        labels = torch.where(inside, at(yn, xn, self.labels.reshape(-1)).long(), 0)
        image = self._blur(image, r_blur, r_sigma)

        out = self._targets(image, labels)
        out["image"] = image[:, None].expand(b, 3, c, c).contiguous()
        out["mask"] = (labels > 0).float()[:, None]
        return out

    def with_meta(self, batch: dict[str, Any], idx_host: list[int]) -> dict[str, Any]:
        """``stem``, ``path`` and ``orig_size`` of a batch, from the host's copy of its indices."""
        batch["stem"] = [self.stems[i] for i in idx_host]
        batch["path"] = [self.paths[i] for i in idx_host]
        batch["orig_size"] = [(self.crop, self.crop)] * len(idx_host)
        return batch

    # -- steps ----------------------------------------------------------------------------------------------
    def _blur(self, image: torch.Tensor, r_blur: torch.Tensor, r_sigma: torch.Tensor) -> torch.Tensor:
        aug, r = self.aug, self.blur_r
        if aug.blur_p <= 0 or r == 0:
            return image
        b, c, _ = image.shape
        sigma = aug.blur_sigma[0] + (aug.blur_sigma[1] - aug.blur_sigma[0]) * r_sigma
        apply = (r_blur < aug.blur_p) & (sigma > 0.05)
        radius = (torch.bitwise_or(torch.round(sigma * 8 + 1).long(), 1) - 1) // 2  # OpenCV's ksize
        t = torch.arange(-r, r + 1, device=image.device, dtype=torch.float32)
        s = sigma.clamp(min=0.05)[:, None]
        k = torch.exp(-(t * t) / (2 * s * s)) * (t.abs() <= radius[:, None])
        k = k / k.sum(1, keepdim=True)
        delta = (t == 0).float().expand_as(k)
        k = torch.where(apply[:, None], k, delta)  # (B, 2r + 1)
        # BORDER_REFLECT (edge pixel repeated: fedcba|abcdef) as an index map
        p = torch.arange(-r, c + r, device=image.device)
        p = torch.where(p < 0, -p - 1, torch.where(p >= c, 2 * c - 1 - p, p))
        x = image[:, :, p][None]  # (1, B, c, c + 2r)
        x = F.conv2d(x, k[:, None, None, :], groups=b)
        x = x[:, :, p, :]  # (1, B, c + 2r, c)
        x = F.conv2d(x, k[:, None, :, None], groups=b)
        return x[0]

    def _targets(self, image: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-slot annotations of the crops (``K`` slots per image; targets.py's definitions)."""
        b, c, _ = image.shape
        k1, acc, dev = self.k + 1, self._acc, image.device
        seg = (torch.arange(b, device=dev)[:, None, None] * k1 + labels).reshape(-1)
        ar = torch.arange(c, device=dev)
        ys = ar[:, None].expand(c, c).reshape(-1).repeat(b)
        xs = ar[None, :].expand(c, c).reshape(-1).repeat(b)
        img = image.reshape(-1).to(acc)

        def total(v: torch.Tensor) -> torch.Tensor:
            return torch.zeros(b * k1, dtype=v.dtype, device=dev).index_add_(0, seg, v).view(b, k1)[:, 1:]

        def extreme(v: torch.Tensor, how: str, init: int) -> torch.Tensor:
            out = torch.full((b * k1,), init, dtype=v.dtype, device=dev)
            return out.scatter_reduce_(0, seg, v, how, include_self=True).view(b, k1)[:, 1:]

        area = total(torch.ones_like(img))
        valid = area > 0
        safe = area.clamp(min=1)
        x0, x1 = extreme(xs, "amin", c), extreme(xs, "amax", -1) + 1
        y0, y1 = extreme(ys, "amin", c), extreme(ys, "amax", -1) + 1
        # empty slots get the box (0, 0, 1, 1): any in-range box does, the loss weighs them 0
        boxes = torch.stack([torch.where(valid, v, d) for v, d in ((x0, 0), (y0, 0), (x1, 1), (y1, 1))], -1)
        centroids = torch.stack([total(xs.to(acc)) / safe, total(ys.to(acc)) / safe], -1)
        inside = total(img) / safe
        # background mean over each box dilated by the margin (clipped), from integral images
        bg = labels == 0
        s_val = _integral(torch.where(bg, image.to(acc), 0.0))
        s_cnt = _integral(bg.to(acc))
        m = CONTRAST_MARGIN
        px0, py0 = (x0 - m).clamp(0, c), (y0 - m).clamp(0, c)
        px1, py1 = (x1 + m).clamp(0, c), (y1 + m).clamp(0, c)
        cnt = _box_sum(s_cnt, px0, py0, px1, py1)
        out_mean = _box_sum(s_val, px0, py0, px1, py1) / cnt.clamp(min=1)
        contrast = torch.where(valid & (cnt > 0.5), (inside - out_mean).abs(), 0.0)
        zero = torch.zeros((), dtype=acc, device=dev)
        return {
            "boxes": boxes.reshape(-1, 4).float(),
            "areas": area.reshape(-1).float(),
            "centroids": torch.where(valid[..., None], centroids, zero).reshape(-1, 2).float(),
            "contrasts": contrast.reshape(-1).float(),
            "box_batch": torch.arange(b, device=dev)[:, None].expand(b, self.k).reshape(-1),
            "box_valid": valid.reshape(-1),
        }


def _uniform_int(u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """An integer uniform in ``[lo, hi]`` from ``u ~ U[0, 1)`` (``hi >= lo``)."""
    return lo + (u * (hi - lo + 1).float()).long().clamp(max=(hi - lo).clamp(min=0))


def _linear_axis(dst: torch.Tensor, src_len: torch.Tensor, dst_len: torch.Tensor):
    """OpenCV ``INTER_LINEAR`` source indices and weight along one axis (half-pixel centres, border clamp)."""
    scale = (src_len.float() / dst_len.float())[:, None]
    fy = (dst.float() + 0.5) * scale - 0.5
    s0 = fy.floor()
    lam = fy - s0
    last = (src_len - 1)[:, None]
    s0 = s0.long()
    lam = torch.where((s0 < 0) | (s0 >= last), 0.0, lam)
    s0 = s0.clamp(min=0)
    s0 = torch.minimum(s0, last)
    s1 = torch.minimum(s0 + 1, last)
    return s0, s1, lam


def _nearest_axis(dst: torch.Tensor, src_len: torch.Tensor, dst_len: torch.Tensor) -> torch.Tensor:
    """OpenCV ``INTER_NEAREST_EXACT``: ``floor((d + 0.5) * src / dst)``, clamped."""
    scale = (src_len.float() / dst_len.float())[:, None]
    return torch.minimum(((dst.float() + 0.5) * scale).long(), (src_len - 1)[:, None])


def _integral(x: torch.Tensor) -> torch.Tensor:
    """``(B, c + 1, c + 1)`` integral images (zero first row and column)."""
    return F.pad(x.cumsum(1).cumsum(2), (1, 0, 1, 0))


def _box_sum(s: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor):
    """Sums over ``[y0, y1) x [x0, x1)`` per ``(B, K)`` box from integral images ``s``."""
    b, n1, _ = s.shape
    flat = s.reshape(b, -1)

    def g(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.gather(1, yy * n1 + xx)

    return g(y1, x1) - g(y0, x1) - g(y1, x0) + g(y0, x0)


__all__ = ["DeviceTrainSet"]
