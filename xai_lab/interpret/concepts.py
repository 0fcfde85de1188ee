"""What a probe set shows and what a unit sees in it: concept masks L_c and unit masks M_k.

Network Dissection (:mod:`.dissection`) and compositional explanations (:mod:`.composition`)
both compare a unit's binary mask M_k = [up(A_k) > T_k] with the concept masks L_c of a probe set,
over all pixels of all images. This module holds what they share:

- :class:`Concepts`: the concept masks of a probe set, as per-category label maps (fast) or
  ``(N, C, H, W)`` masks, with the counts dissection needs and the pixel patterns composition needs;
- :func:`concept_patterns`: the distinct concept patterns of the pixels of ``(N, C, H, W)`` masks;
- :func:`unit_pixels`: the pixels of the unit masks M_k of a batch, thresholded at T_k;
- :func:`iou_scores`: IoU over the whole probe set from pixel counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Concepts", "concept_patterns", "unit_pixels", "iou_scores"]


def unit_pixels(a: torch.Tensor, thresholds: torch.Tensor, size) -> tuple:
    """The pixels of the unit masks M_k = [up(A_k) > T_k] of a batch: ``(image, unit, pixel)``.

    ``a (B, K, h, w)`` is upsampled bilinearly (``align_corners=False``) to ``size``. A map can
    exceed T_k only where its maximum does (bilinear weights are convex; ``slack`` covers float
    rounding), so only those maps are upsampled: about 1 in 10 at the default quantile.
    """
    if thresholds.shape != (a.shape[1],):
        raise ValueError(f"thresholds must have shape ({a.shape[1]},) for this layer, "
                         f"got {tuple(thresholds.shape)}")
    flat = a.flatten(2)  # (B, K, h*w)
    slack = 8 * torch.finfo(a.dtype).eps * flat.abs().amax(2)
    b, k = (flat.amax(2) + slack > thresholds).nonzero(as_tuple=True)
    up = F.interpolate(a[b, k][:, None], size=size, mode="bilinear", align_corners=False)  # (S, 1, H, W)
    s, pix = (up.flatten(1) > thresholds[k, None]).nonzero(as_tuple=True)
    return b[s], k[s], pix


def iou_scores(inter: torch.Tensor, size, unit_size) -> torch.Tensor:
    """IoU = sum_x |M ∩ L| / sum_x |M ∪ L| over the probe set, from pixel counts: ``inter`` =
    |M ∩ L|, ``size`` = |L|, ``unit_size`` = |M| (tensors that broadcast, or numbers), with
    |M ∪ L| = |M| + |L| - |M ∩ L|; 0 where the union is empty."""
    return inter / (size + unit_size - inter).clamp(min=1)


def concept_patterns(concepts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct concept patterns of the pixels of ``concepts (N, C, H, W)``: ``patterns (U, C)``
    bool, and for each pixel (in ``(N, H, W)`` order) the index of its pattern. Bits are packed 62
    to an int64 word."""
    n, c = concepts.shape[:2]
    words = (c + 61) // 62
    code = torch.zeros(words, n, *concepts.shape[2:], dtype=torch.long)  # (words, N, H, W)
    for j in range(c):
        code[j // 62] |= concepts[:, j].long() << (j % 62)
    code = code.flatten(1)  # (words, N*H*W)
    if words == 1:
        uniq, inverse = torch.unique(code[0], return_inverse=True)
        uniq = uniq[None]
    else:
        uniq, inverse = torch.unique(code, dim=1, return_inverse=True)  # (words, U)
    bit = torch.arange(c)
    return ((uniq[bit // 62] >> (bit % 62)[:, None]) & 1).bool().T, inverse


@dataclass
class Concepts:
    """The concept masks L_c of a probe set: per-category label maps (fast) or ``(N, C, H, W)`` masks.

    Label maps: ``maps[category] (N, H, W)`` long, label j = the j-th concept of that category in
    ``names`` order, -1 = none. They give the same IoU as the masks, with a bincount per category.
    Build one with :meth:`of` from a data set (e.g. :func:`xai_lab.data.flowers`).
    """
    names: tuple
    categories: tuple
    size: tuple  # (H, W) of the masks
    maps: dict | None = None
    masks: torch.Tensor | None = None  # (N, C, H*W) bool

    @classmethod
    def of(cls, data) -> "Concepts":
        """From a data set with ``concept_names``, ``concept_categories`` and ``concept_maps``
        (label maps by category) or ``concepts (N, C, H, W)`` masks."""
        names = tuple(getattr(data, "concept_names", ()))
        cats = tuple(getattr(data, "concept_categories", ()))
        if not names or len(names) != len(cats):
            raise TypeError(f"data must have concept_names and concept_categories of equal length, "
                            f"got {type(data).__name__}")
        maps = getattr(data, "concept_maps", None)
        if maps is not None:
            for cat, labels in maps.items():
                n_cat = cats.count(cat)
                if labels.dim() != 3 or labels.dtype.is_floating_point or (labels.numel() and (
                        int(labels.max()) >= n_cat or int(labels.min()) < -1)):
                    raise ValueError(f"concept_maps[{cat!r}] must be (N, H, W) int labels in "
                                     f"[-1, {n_cat}), got {labels.dtype} {tuple(labels.shape)}")
            return cls(names, cats, tuple(next(iter(maps.values())).shape[-2:]), maps=maps)
        masks = getattr(data, "concepts", None)
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != len(names):
            raise ValueError(f"data.concepts must be (N, {len(names)}, H, W) masks, "
                             f"got {getattr(masks, 'shape', masks)}")
        return cls(names, cats, tuple(masks.shape[-2:]), masks=masks.bool().flatten(2))

    @property
    def n(self) -> int:
        return len(self.masks) if self.masks is not None else len(next(iter(self.maps.values())))

    def columns(self, cat) -> list:
        return [i for i, c in enumerate(self.categories) if c == cat]

    def sizes(self) -> torch.Tensor:
        """``(C,)`` int64: |L_c|, the pixels of concept c over the whole probe set."""
        if self.masks is not None:
            return self.masks.sum((0, 2))
        out = torch.zeros(len(self.names), dtype=torch.long)
        for cat, labels in self.maps.items():
            cols = self.columns(cat)
            out[cols] = torch.bincount(labels.flatten() + 1, minlength=len(cols) + 1)[1:]  # -1: none
        return out

    def count(self, b, k, pix, n_units) -> torch.Tensor:
        """``(K, C)`` int64: how many of the unit pixels ``(image b, unit k, pixel pix)`` are in L_c."""
        out = torch.zeros(n_units, len(self.names), dtype=torch.long)
        if self.masks is not None:
            return out.index_add_(0, k, self.masks[b, :, pix].long())  # (P, C) rows into units
        flat = b * (self.size[0] * self.size[1]) + pix  # (P,) index into (N, H, W)
        for cat, labels in self.maps.items():
            cols = self.columns(cat)
            lab = labels.view(-1)[flat] + 1  # (P,) label of each unit pixel, 0: none
            bins = torch.bincount(k * (len(cols) + 1) + lab, minlength=n_units * (len(cols) + 1))
            out[:, cols] += bins.view(n_units, len(cols) + 1)[:, 1:]
        return out

    def patterns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct concept patterns of the pixels ``(U, C)`` bool, and each pixel's pattern
        ``(N*H*W,)`` (as :func:`concept_patterns`). From label maps: one mixed-radix code per pixel."""
        if self.masks is not None:
            return concept_patterns(self.masks)
        radix = [len(self.columns(cat)) + 1 for cat in self.maps]
        if math.prod(radix) >= 2 ** 62:
            return concept_patterns(torch.stack([self.mask(c, slice(None)) for c in range(len(self.names))], 1))
        code = torch.zeros_like(next(iter(self.maps.values())))
        for n, labels in zip(radix, self.maps.values()):
            code = code * n + (labels + 1)  # (N, H, W), label + 1 in [0, n)
        uniq, inverse = torch.unique(code.flatten(), return_inverse=True)
        patterns = torch.zeros(len(uniq), len(self.names), dtype=torch.bool)
        for n, cat in reversed(list(zip(radix, self.maps))):
            lab, uniq = uniq % n - 1, uniq // n
            has = (lab >= 0).nonzero().flatten()
            patterns[has, torch.tensor(self.columns(cat))[lab[has]]] = True
        return patterns, inverse

    def mask(self, c: int, index) -> torch.Tensor:
        """``(n, H, W)`` bool: the mask of concept ``c`` in images ``index``."""
        if self.masks is not None:
            return self.masks[index, c].view(-1, *self.size)
        cat = self.categories[c]
        return self.maps[cat][index] == self.columns(cat).index(c)
