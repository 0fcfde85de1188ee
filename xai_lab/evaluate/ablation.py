"""Input ablation: remove what the map calls relevant, watch the score fall.

:func:`morf_curve` and :func:`aopc` (Samek et al. 2017) replace ``region x region`` squares in the
order of their summed relevance, most relevant first (MoRF) or least relevant first (LeRF);
:func:`deletion` and :func:`insertion` (Petsiuk, Das, Saenko 2018) change ``step`` pixels at a time,
deleting them (set to the baseline) or inserting them into a blurred copy (:func:`blur`).

All four come down to one loop (:func:`_scores`): each image gets, once, the rank of each pixel in
the order of removal ``(N, H*W)``; the image of pair ``(i, k)`` is ``torch.where(rank[i] <
limit[k], changed, start[i])``, built per batch over the flat ``(image, step)`` index
(``base.pairs``) with one no-grad forward per batch. Step 0 is the unperturbed start image, run
once. Ties in the ordering go to the lower region/pixel index (stable sort), in both directions.

Directions. A :class:`~xai_lab.evaluate.base.Curve`'s ``higher_is_better`` is about its AUC: for
MoRF and deletion a *lower* area is better (the score falls fast), for LeRF and insertion a
*higher* one. AOPC measures the fall, so for MoRF a *higher* AOPC is better and for LeRF a lower
one; ``aopc.higher_is_better`` is therefore ``None`` (it depends on ``order``).
"""
from __future__ import annotations

import math

import torch

from ..checks import (check_baseline, check_choice, check_float, check_images, check_index, check_int,
                      check_model)
from ..explain.base import Target, separable
from ..hooks import frozen
from .base import Curve, check_x_maps, metric, pairs

__all__ = ["morf_curve", "aopc", "deletion", "insertion", "blur"]

SCORES = ("logit", "probability")
ORDERS = ("morf", "lerf")


def _rank(values, descending):
    """``(N, P)``: the position of each entry of ``values (N, P)`` in its row's stable sort (ties:
    lower index first)."""
    order = values.sort(dim=1, descending=descending, stable=True).indices  # (N, P)
    rank = torch.empty_like(order)
    return rank.scatter_(1, order, torch.arange(values.shape[1], device=values.device).expand_as(order))


def _scores(model, tgt, start, changed, rank, limits, score, batch_size, progress, desc):
    """``(N, S)`` scores of the images ``start[i]`` with the pixels ``rank[i] < limits[k]`` taken
    from ``changed`` (a float or ``(N, C, H, W)``), over all ``N * S`` pairs ``(i, k)``."""
    n, s, (h, w), dev = len(start), len(limits), start.shape[-2:], start.device
    limits = limits.to(dev)
    out = torch.empty(n * s, dtype=start.dtype, device=dev)
    with frozen(model), torch.no_grad():
        for i, k in pairs(n, s, batch_size, progress, desc):
            i, k = i.to(dev), k.to(dev)
            mask = (rank[i] < limits[k, None]).view(-1, 1, h, w)  # (B, 1, H, W)
            images = (start[i].masked_fill_(mask, changed) if isinstance(changed, float) else
                      torch.where(mask, changed[i], start[i]))  # (B, C, H, W)
            logits = model(images)  # (B, K)
            out[i * s + k] = tgt(logits.softmax(1) if score == "probability" else logits, rows=i)
    return out.view(n, s)


def _setup(model, x, target, maps, score):
    """The checks every metric here starts with: ``(x, maps, target as a Target)``."""
    check_model(model)
    x, maps = check_x_maps(x, maps)
    check_choice("score", score, SCORES)
    return x, maps, Target(check_index(target, len(x), "target"), len(x))


@metric(higher_is_better=None, category="ablation")
def morf_curve(model, x, target, maps, region=8, steps=None, order="morf", baseline=0.5,
               score="logit", batch_size=64, progress=False) -> Curve:
    """Region perturbation (Samek et al. 2017): ``f(x^(k))`` for ``k = 0..L``.

    The image is cut into non-overlapping ``region x region`` squares (``H`` and ``W`` must be
    multiples of ``region``), ordered by summed relevance, decreasing for ``order="morf"`` (most
    relevant first), increasing for ``"lerf"``; ties by region index (row-major). ``x^(0) = x`` and
    ``x^(k)`` is ``x`` with its first ``k`` regions set to ``baseline`` (a float in input space,
    default 0.5 = zero after the model's normalisation, or a tensor broadcast to ``x``). ``L =
    steps`` (default: all regions). ``score``: the target's ``"logit"`` or softmax
    ``"probability"``. ``target``: an int or a LongTensor ``(N,)``.

    Returns a ``Curve`` with ``x = k / (number of regions)``, ``scores (N, L+1)``, and
    ``higher_is_better`` about its AUC: False for MoRF (a fast fall is good), True for LeRF.
    ``curve.aopc()`` is :func:`aopc`.
    """
    x, maps, tgt = _setup(model, x, target, maps, score)
    check_choice("order", order, ORDERS)
    region = check_int("region", region)
    (h, w), fill = x.shape[-2:], check_baseline("baseline", baseline, x)
    if h % region or w % region:
        raise ValueError(f"region must divide the images' height and width ({h} x {w}), got {region}")
    rh, rw = h // region, w // region
    steps = rh * rw if steps is None else check_int("steps", steps)
    if steps > rh * rw:
        raise ValueError(f"steps must be at most the number of regions ({rh * rw}), got {steps}")
    sums = maps.view(len(x), rh, region, rw, region).sum((2, 4)).flatten(1)  # (N, R)
    rows = torch.arange(h, device=x.device) // region
    cols = torch.arange(w, device=x.device) // region
    region_of = (rows[:, None] * rw + cols[None, :]).flatten()  # (H*W,) region of each pixel
    rank = _rank(sums, descending=order == "morf")[:, region_of]  # (N, H*W) rank of each pixel's region
    k = torch.arange(steps + 1)
    scores = _scores(model, tgt, x, fill, rank, k, score, batch_size, progress, order)
    return Curve(k / (rh * rw), scores, higher_is_better=order == "lerf", name=order)


@metric(higher_is_better=None, category="ablation")
def aopc(model, x, target, maps, region=8, steps=None, order="morf", baseline=0.5, score="logit",
         batch_size=64, progress=False) -> torch.Tensor:
    """Area over the perturbation curve (Samek et al. 2017), per image ``(N,)``:

        AOPC = 1/(L+1) sum_{k=0..L} f(x^(0)) - f(x^(k))

    on the curve of :func:`morf_curve` (same arguments); the lecture's ``< . >`` is the mean of the
    result over images. Direction depends on ``order``: for MoRF a *higher* AOPC is better (the
    relevant regions remove the score fastest), for LeRF a *lower* one (removing the least
    relevant regions keeps the score); hence ``aopc.higher_is_better is None``.
    """
    return morf_curve(model, x, target, maps, region, steps, order, baseline, score, batch_size,
                      progress).aopc()


def _pixel_steps(p, step):
    """Numbers of pixels changed ``(S+1,)``: ``0, step, 2 step, ..., p`` (the last step partial)."""
    return (torch.arange(math.ceil(p / step) + 1) * step).clamp(max=p)


@metric(higher_is_better=False, category="ablation")
def deletion(model, x, target, maps, step=64, baseline=0.5, score="probability", batch_size=64,
             progress=False) -> Curve:
    """Deletion (Petsiuk et al. 2018): the target's softmax probability as the pixels are deleted
    in decreasing order of saliency (ties: lower pixel index first), ``step`` pixels (all channels)
    per iteration, replaced by ``baseline`` (default 0.5 = zero in the model's normalised space, as
    in the paper; a float or a tensor broadcast to ``x``).

    Returns a ``Curve``: ``x`` = fraction of pixels deleted (0, step/HW, ..., 1; the last step may
    be partial), ``scores (N, ceil(HW/step)+1)`` from ``f(x)`` to ``f(baseline image)``;
    ``curve.auc()`` (trapezoid over [0, 1]) is the score, lower is better.
    """
    x, maps, tgt = _setup(model, x, target, maps, score)
    step, fill = check_int("step", step), check_baseline("baseline", baseline, x)
    rank = _rank(maps.flatten(1), descending=True)  # (N, H*W)
    done = _pixel_steps(rank.shape[1], step)
    scores = _scores(model, tgt, x, fill, rank, done, score, batch_size, progress, "deletion")
    return Curve(done / rank.shape[1], scores, higher_is_better=False, name="deletion")


@metric(higher_is_better=True, category="ablation")
def insertion(model, x, target, maps, step=64, blur_kernel=11, blur_sigma=5.0, score="probability",
              batch_size=64, progress=False) -> Curve:
    """Insertion (Petsiuk et al. 2018): the target's softmax probability as the pixels of ``x`` are
    inserted into ``blur(x, blur_kernel, blur_sigma)`` in decreasing order of saliency (ties: lower
    pixel index first), ``step`` pixels (all channels) per iteration.

    Returns a ``Curve``: ``x`` = fraction of pixels inserted (0 .. 1, the last step may be partial),
    ``scores (N, ceil(HW/step)+1)`` from ``f(blur(x))`` to ``f(x)``; ``curve.auc()`` (trapezoid over
    [0, 1]) is the score, higher is better.
    """
    x, maps, tgt = _setup(model, x, target, maps, score)
    step = check_int("step", step)
    blurred = blur(x, blur_kernel, blur_sigma)
    rank = _rank(maps.flatten(1), descending=True)  # (N, H*W)
    done = _pixel_steps(rank.shape[1], step)
    scores = _scores(model, tgt, blurred, x, rank, done, score, batch_size, progress, "insertion")
    return Curve(done / rank.shape[1], scores, higher_is_better=True, name="insertion")


def blur(x, kernel=11, sigma=5.0) -> torch.Tensor:
    """Gaussian blur of images ``(N, C, H, W)``, channel by channel: a ``kernel``-tap sampled Gaussian
    of std ``sigma`` (normalised to sum 1), applied along rows then columns.

    Borders: *replicate* padding (works for any image size, keeps the border colours). Petsiuk's
    RISE code zero-pads instead (``conv2d(padding=klen//2)`` on normalised images, i.e. a grey
    frame), and builds its kernel with ``scipy.ndimage.gaussian_filter`` on an 11 x 11 delta, which
    differs slightly from a sampled Gaussian at the edges of the kernel.
    """
    x = check_images(x)
    kernel = check_int("kernel", kernel)
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be an odd int (a centred Gaussian), got {kernel}")
    sigma = check_float("sigma", sigma, 0.0, open_low=True)
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return separable(x, g / g.sum(), "replicate")
