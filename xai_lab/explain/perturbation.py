"""Perturbation: change the input, watch the score (outputs only, no gradients).

:func:`occlusion` (Zeiler & Fergus 2014) slides a grey window over the image; :func:`rise`
(Petsiuk, Das, Saenko 2018) averages random smooth masks weighted by the score they leave.
LIME (Ribeiro 2016), the third perturbation method, fits a surrogate: :mod:`.lime`.
Every perturbed image of every input goes through the model in batches of ``batch_size``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..checks import check_baseline, check_fraction, check_int, check_pair
from .base import chunks, finish, scatter_rows, session

__all__ = ["windows", "occlusion", "rise_draws", "rise_masks", "rise"]


def windows(size, window, stride):
    """``(P, size)`` bool: the pixels of each window position along one axis; the last window is
    clipped at the border (as in Captum), so every pixel is covered."""
    starts = torch.arange(math.ceil((size - window) / stride) + 1) * stride  # (P,)
    pos = torch.arange(size)
    return (pos >= starts[:, None]) & (pos < starts[:, None] + window)


def occlusion(model, x, target, window=None, stride=None, baseline=0.5, batch_size=64,
              progress=False, normalise=False):
    """Occlusion (Zeiler & Fergus 2014): S(p) = f(x) - f(x with the window at p set to baseline),
    averaged over the windows that cover each pixel. Windows start every ``stride`` pixels; the last
    one in each direction is clipped at the border (as in Captum), so every pixel is covered.

    ``window`` and ``stride`` are ints or (h, w) pairs; defaults: window = min(H, W) // 8, stride =
    window // 2 (about 15 x 15 positions). ``baseline`` is a float (default 0.5, the paper's grey
    square) or a tensor broadcast to ``x``. N x positions occluded images, plus N unoccluded, go
    forward in batches of ``batch_size``; no backward.
    """
    batch_size = check_int("batch_size", batch_size)
    with session(model, x, target) as (x, tgt):
        n, _, h, w = x.shape
        window = max(1, min(h, w) // 8) if window is None else window
        wh, ww = check_pair("window", window)
        if wh > h or ww > w:
            raise ValueError(f"window must fit in the {h} x {w} images, got {window!r}")
        sh, sw = check_pair("stride", max(1, min(wh, ww) // 2) if stride is None else stride)
        fill = check_baseline("baseline", baseline, x)
        rows, cols = windows(h, wh, sh).to(x.device), windows(w, ww, sw).to(x.device)
        patches = (rows[:, None, :, None] & cols[None, :, None, :]).flatten(0, 1)  # (P, H, W)
        p = len(patches)
        drops = torch.empty(n * p, device=x.device)
        with torch.no_grad():
            full = tgt(model(x))  # (N,)
            for k in chunks(n * p, batch_size, progress, "occlusion"):
                i, j = (k // p).to(x.device), (k % p).to(x.device)  # image, window position
                window = patches[j][:, None]  # (B, 1, H, W)
                occluded = (x[i].masked_fill_(window, fill) if isinstance(fill, float) else
                            torch.where(window, fill[i], x[i]))
                drops[k.to(x.device)] = full[i] - tgt(model(occluded), rows=i)
        covered = patches.flatten(1).float()  # (P, H*W)
        maps = drops.view(n, p) @ covered / covered.sum(0)  # (N, H*W)
    return finish(maps.view(n, h, w), normalise)


def rise_masks(grids, shifts, size):
    """RISE masks ``(M, H, W)``: each ``s x s`` grid upsampled bilinearly to ``(s+1) C`` and cropped
    to ``H x W`` at its offset (``shifts (M, 2)`` in [0, C))."""
    h, w = size
    s = grids.shape[-1]
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    up = F.interpolate(grids, size=((s + 1) * ch, (s + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0]  # (M, (s+1)ch, (s+1)cw)
    r = shifts[:, :1] + torch.arange(h, device=grids.device)  # (M, H)
    c = shifts[:, 1:] + torch.arange(w, device=grids.device)  # (M, W)
    return up[torch.arange(len(up), device=grids.device)[:, None, None], r[:, :, None], c[:, None, :]]


def rise_draws(n_masks, s, p, size, seed=0):
    """The random part of :func:`rise`, from ``seed`` alone: ``n_masks`` binary ``s x s`` grids
    with P(1) = ``p`` (float32 ``(M, s, s)``) and the crop offset of each (long ``(M, 2)``, row
    and column in [0, ceil(H / s)) x [0, ceil(W / s)) for images of ``size`` (H, W)).
    :func:`rise_masks` turns them into masks."""
    h, w = check_pair("size", size)
    gen = torch.Generator().manual_seed(seed)
    grids = (torch.rand(check_int("n_masks", n_masks), check_int("s", s), s, generator=gen)
             < check_fraction("p", p, open_low=True, open_high=False)).float()  # (M, s, s)
    shifts = torch.stack([torch.randint(0, math.ceil(h / s), (n_masks,), generator=gen),
                          torch.randint(0, math.ceil(w / s), (n_masks,), generator=gen)], 1)  # (M, 2)
    return grids, shifts


def rise(model, x, target, n_masks=2000, s=8, p=0.5, baseline=0.0, probability=True,
         batch_size=64, seed=0, progress=False, normalise=False):
    """RISE (Petsiuk, Das, Saenko 2018): S = 1 / (N p) sum_i f(x ⊙ M_i) M_i.

    ``n_masks`` (default 2000; the paper uses 4000-8000 on ImageNet) binary ``s x s`` grids with
    P(1) = ``p``, upsampled bilinearly to (s+1) C (C = ceil(H / s)) and cropped at a random offset
    in [0, C): smooth masks (:func:`rise_masks`). ``f`` is the softmax probability of the target
    (``probability=False``: the target score on the logits). Masked pixels take ``baseline``
    (default 0, black: the formula; the authors' code masks normalised images, i.e. towards the
    mean colour). The masks depend only on ``seed``, ``n_masks``, ``s``, ``p`` and the image size,
    are shared by all images, and N x n_masks masked images go forward in batches of
    ``batch_size``; no backward.
    """
    n_masks = check_int("n_masks", n_masks)
    s = check_int("s", s)
    p = check_fraction("p", p, open_low=True, open_high=False)
    batch_size = check_int("batch_size", batch_size)
    with session(model, x, target) as (x, tgt):
        n, _, h, w = x.shape
        fill = check_baseline("baseline", baseline, x)
        grids, shifts = rise_draws(n_masks, s, p, (h, w), seed)
        grids, shifts = grids[:, None].to(x), shifts.to(x.device)  # (M, 1, s, s), (M, 2)
        sal = torch.zeros(n, h * w, device=x.device)
        with torch.no_grad():
            for k in chunks(n * n_masks, batch_size, progress, "rise"):
                k = k.to(x.device)
                i, m = k % n, k // n  # image, mask (mask-major: each mask is made once)
                masks = rise_masks(grids[m[0]:m[-1] + 1], shifts[m[0]:m[-1] + 1], (h, w))  # (M_b, H, W)
                keep = masks[m - m[0], None]  # (B, 1, H, W)
                if isinstance(fill, float):  # x M + baseline (1 - M)
                    masked = x[i].mul_(keep) if fill == 0 else x[i].sub_(fill).mul_(keep).add_(fill)
                else:
                    masked = torch.lerp(fill[i], x[i], keep)
                out = model(masked)
                scores = tgt(out.softmax(1) if probability else out, rows=i)  # (B,)
                sal += scatter_rows(i, n, scores) @ keep.flatten(1)  # (N, H*W)
    return finish(sal.view(n, h, w) / (n_masks * p), normalise)
