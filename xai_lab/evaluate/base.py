"""What every evaluation metric shares: its direction, the checks of maps and ground truth, batching
over (image, step) pairs, and the result of a curve.

A metric is a plain function marked with :func:`metric`, which records whether a higher value is
better and which part of the lecture it belongs to (``fn.higher_is_better``, ``fn.category``).
Metrics that run the model go through :func:`pairs`: the ``N * S`` (image, step) pairs of a curve
are one flat index, cut into batches of at most ``batch_size`` perturbed images, so neither images
nor steps are looped over in Python. Bad input raises ``ValueError``/``TypeError`` from
:func:`check_maps`, :func:`check_masks` and :func:`check_boxes` (never a silently broadcast number).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..checks import check_images, check_int

__all__ = ["metric", "check_maps", "check_x_maps", "check_masks", "check_boxes", "pairs", "Curve", "CATEGORIES"]

CATEGORIES = ("interpretation", "sanity", "ablation", "localisation", "agreement")


def metric(higher_is_better: bool | None, category: str):
    """Mark ``fn`` as a metric: ``fn.higher_is_better`` (``None``: it depends on an argument, e.g.
    MoRF vs LeRF; the result then says) and ``fn.category`` (one of :data:`CATEGORIES`)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")

    def mark(fn):
        fn.higher_is_better = higher_is_better
        fn.category = category
        return fn
    return mark


def check_maps(maps, n: int | None = None, size: tuple | None = None, name: str = "maps") -> torch.Tensor:
    """Heatmaps ``(N, H, W)`` (a ``(N, 1, H, W)`` stack is squeezed), float, finite; with ``n`` /
    ``size`` their count and ``(H, W)`` must match. Returned detached, float32."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of heatmaps (N, H, W), got {type(maps).__name__}")
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3 or 0 in maps.shape:
        raise ValueError(f"{name} must be non-empty heatmaps (N, H, W), got shape {tuple(maps.shape)}")
    if not maps.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor, got dtype {maps.dtype}")
    if n is not None and len(maps) != n:
        raise ValueError(f"{name} must hold one map per image ({n}), got {len(maps)} maps")
    if size is not None and tuple(maps.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} must have the images' size {tuple(size)}, got {tuple(maps.shape[-2:])}")
    if not torch.isfinite(maps).all():
        raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(maps)).sum())} NaN/inf values")
    return maps.detach().float()


def check_masks(masks, like: torch.Tensor, name: str = "masks", allow_empty: bool = False) -> torch.Tensor:
    """Ground-truth masks ``(N, H, W)`` of the same shape as the maps ``like``; bool (or 0/1
    numbers). An image whose mask is empty raises (its score would be undefined) unless
    ``allow_empty``. Returned as bool."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, H, W) of bool, got {type(masks).__name__}")
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if tuple(masks.shape) != tuple(like.shape):
        raise ValueError(f"{name} must have the maps' shape {tuple(like.shape)}, got {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if not ((masks == 0) | (masks == 1)).all():
            raise ValueError(f"{name} must be bool or hold only 0 and 1, got values in "
                             f"[{float(masks.min()):.3g}, {float(masks.max()):.3g}]")
        masks = masks != 0
    if not allow_empty:
        empty = (~masks.flatten(1).any(1)).nonzero().flatten()
        if len(empty):
            raise ValueError(f"{name} must mark at least one pixel per image; empty at images "
                             f"{empty[:10].tolist()}{' ...' if len(empty) > 10 else ''}")
    return masks.detach()


def check_boxes(boxes, n: int, size: tuple, name: str = "boxes") -> torch.Tensor:
    """Boxes ``(N, 4)`` as ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive, finite, inside ``size =
    (H, W)`` and not empty. Returned float32."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, 4) of (x0, y0, x1, y1), got {type(boxes).__name__}")
    if tuple(boxes.shape) != (n, 4):
        raise ValueError(f"{name} must have shape ({n}, 4) (x0, y0, x1, y1 per image), got {tuple(boxes.shape)}")
    b = boxes.detach().float()
    h, w = size
    bad = (~torch.isfinite(b).all(1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]) | (b[:, :2] < 0).any(1)
           | (b[:, 2] > w) | (b[:, 3] > h))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name} must be non-empty (x0, y0, x1, y1) boxes inside the {h}x{w} image, "
                         f"got {b[i].tolist()} at image {i}")
    return b


def pairs(n: int, steps: int, batch_size: int, progress: bool, desc: str):
    """``(image, step)`` index tensors of at most ``batch_size`` pairs, over all ``n * steps`` pairs
    (image-major), with a progress bar counting perturbed images."""
    batch_size = check_int("batch_size", batch_size)
    total = n * steps
    with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
        for k in torch.arange(total).split(batch_size):
            yield k // steps, k % steps
            bar.update(len(k))


@dataclass
class Curve:
    """A score measured along ``steps``: ``x (S,)`` the abscissa in [0, 1] (fraction of the input
    perturbed, or of the units removed), ``scores (N, S)`` one curve per image (or ``(S,)`` for one
    curve over a data set), and whether a higher area is better for it (``higher_is_better``).
    ``name`` says which curve (``"morf"``, ``"lerf"``, ``"deletion"``, ``"insertion"``, ...)."""
    x: torch.Tensor
    scores: torch.Tensor
    higher_is_better: bool
    name: str = ""

    def auc(self) -> torch.Tensor:
        """Area under each curve by the trapezoid rule over ``x`` (``x`` spans [0, 1], so a curve
        with scores in [0, 1] has an AUC in [0, 1]): ``(N,)`` (or a 0-dim tensor)."""
        return torch.trapezoid(self.scores, self.x, dim=-1)

    def drop(self) -> torch.Tensor:
        """``f(x^(0)) - f(x^(k))`` for every step: ``(N, S)``."""
        return self.scores[..., :1] - self.scores

    def aopc(self) -> torch.Tensor:
        """Area over the perturbation curve (Samek 2017): the mean of :meth:`drop` over the
        ``L + 1`` steps, ``(N,)``."""
        return self.drop().mean(-1)

    def __post_init__(self):
        if self.x.dim() != 1 or self.scores.shape[-1] != len(self.x):
            raise ValueError(f"scores (.., S) must have one value per step of x (S,), got "
                             f"{tuple(self.scores.shape)} and {tuple(self.x.shape)}")


def check_x_maps(x, maps):
    """Images ``(N, C, H, W)`` and their maps ``(N, H, W)``, checked against each other."""
    x = check_images(x)
    return x, check_maps(maps, len(x), x.shape[-2:])

