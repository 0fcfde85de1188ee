"""Network Dissection (Bau, Zhou, Khosla, Oliva & Torralba, CVPR 2017).

Per unit k of a conv layer, a threshold T_k with P(a_k > T_k) = 0.005 over all positions of all
probe images (:func:`quantile_thresholds`); the unit's mask M_k = [up(A_k) > T_k] at the concept
masks' resolution (:func:`unit_masks`); IoU_{k,c} = sum_x |M_k ∩ L_c| / sum_x |M_k ∪ L_c| over the
whole probe set; unit label = argmax_c IoU, a detector if IoU > 0.04 (:func:`dissect` ->
:class:`Dissection`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_fraction, check_units, images_of
from ..hooks import frozen, resolve_layer
from .concepts import Concepts, iou_scores, unit_pixels
from .probe import activation_batches, conv_maps

__all__ = ["quantile_thresholds", "dissect", "Dissection", "unit_masks"]


def quantile_thresholds(model: nn.Module, data_or_images, layer, quantile: float = 0.005,
                        batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """Per-unit thresholds T_k of Network Dissection (Bau et al., CVPR 2017): ``(K,)`` float32.

    T_k is the ``1 - quantile`` quantile of unit k's activations a_k(x, u, v) over all positions
    (u, v) of the layer's own maps (before upsampling, as NetDissect does) and all probe images x,
    so P(a_k > T_k) = quantile. It interpolates linearly between order statistics at rank
    r = (1 - quantile)(n - 1) as ``torch.quantile`` does, with r and the interpolation in float64
    (equal to ``torch.quantile`` on float64 values; float32 ``torch.quantile`` rounds r).

    Memory stays bounded: per unit only the ``n - floor(r)`` largest values seen so far are kept,
    merged with each batch by ``torch.topk``, which is exact.
    """
    images = images_of(data_or_images, "data_or_images")
    name, _ = resolve_layer(model, layer)
    return _threshold_pass(model, images, name, quantile, batch_size, progress)[0]


def _threshold_pass(model, images, name, quantile, batch_size, progress, cache_bytes=0):
    """:func:`quantile_thresholds` and, if they take at most ``cache_bytes``, the activations of
    every batch as ``[(start, (B, K, h, w)), ...]`` (else None), so a second pass can skip the model."""
    quantile = check_fraction("quantile", quantile)
    top, n, keep, cache, used = None, 0, 0, [], 0
    with frozen(model):
        for start, acts in activation_batches(model, images, name, batch_size, progress, "thresholds"):
            a = conv_maps(acts[name], name)
            vals = a.transpose(0, 1).flatten(1)  # (K, B*h*w)
            if top is None:
                n = len(images) * a.shape[2] * a.shape[3]
                keep = n - math.floor((1 - quantile) * (n - 1))
                top = vals[:, :0]
            top = torch.cat([top, vals], 1)
            top = top.topk(min(keep, top.shape[1]), dim=1).values  # (K, <= keep), descending
            used += a.numel() * a.element_size()
            cache = cache + [(start, {name: a})] if cache is not None and used <= cache_bytes else None
    rank = (1 - quantile) * (n - 1)
    lo, w = math.floor(rank), rank - math.floor(rank)
    below, above = top[:, n - 1 - lo].double(), top[:, n - 1 - math.ceil(rank)].double()
    return torch.lerp(below, above, w).float(), cache


@dataclass
class Dissection:
    """Result of :func:`dissect`: the unit x concept IoU table of one layer and what follows.

    ``iou (K, C)``, ``intersection`` / ``union (K, C)`` pixel counts over the probe set,
    ``thresholds (K,)``; ``labels (K,)`` each unit's best concept, ``best_iou``, ``label_names``,
    ``label_categories``; ``detectors (K,)`` bool, best IoU > ``iou_threshold``.
    """
    iou: torch.Tensor
    intersection: torch.Tensor
    union: torch.Tensor
    thresholds: torch.Tensor
    concept_names: tuple
    concept_categories: tuple
    layer: str
    iou_threshold: float = 0.04

    @property
    def labels(self) -> torch.Tensor:
        return self.iou.argmax(1)  # first maximum on ties

    @property
    def best_iou(self) -> torch.Tensor:
        return self.iou.max(1).values

    @property
    def label_names(self) -> tuple:
        return tuple(self.concept_names[i] for i in self.labels.tolist())

    @property
    def label_categories(self) -> tuple:
        return tuple(self.concept_categories[i] for i in self.labels.tolist())

    @property
    def detectors(self) -> torch.Tensor:
        return self.best_iou > self.iou_threshold

    def top(self, n: int = 10) -> torch.Tensor:
        """Indices of the ``n`` units with the highest best IoU, highest first."""
        return torch.sort(-self.best_iou, stable=True).indices[:n]

    def detectors_per_category(self, unique: bool = False) -> dict:
        """Detectors per concept category (every category, zeros included); with ``unique=True``
        the number of distinct concepts detected, as in Bau et al.'s "unique detectors"."""
        out = dict.fromkeys(dict.fromkeys(self.concept_categories), 0)
        seen = set()
        for unit in self.detectors.nonzero().flatten().tolist():
            c = int(self.labels[unit])
            if not unique or c not in seen:
                out[self.concept_categories[c]] += 1
                seen.add(c)
        return out

    def detectors_per_concept(self) -> dict:
        """``{concept name: number of detector units}``, concepts with at least one, most first."""
        counts = torch.bincount(self.labels[self.detectors], minlength=len(self.concept_names))
        order = torch.sort(-counts, stable=True).indices
        return {self.concept_names[i]: int(counts[i]) for i in order.tolist() if counts[i] > 0}

    def summary(self, n: int = 10) -> str:
        lines = [f"{self.layer}: {int(self.detectors.sum())} of {len(self.iou)} units are detectors "
                 f"(IoU > {self.iou_threshold}); per category {self.detectors_per_category()}"]
        for u in self.top(n).tolist():
            c = int(self.labels[u])
            lines.append(f"  unit {u:4d}  {self.concept_names[c]:<12} ({self.concept_categories[c]})"
                         f"  IoU {float(self.best_iou[u]):.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Dissection(layer={self.layer!r}, units={len(self.iou)}, "
                f"concepts={len(self.concept_names)}, detectors={int(self.detectors.sum())})")


def dissect(model: nn.Module, data, layer, quantile: float = 0.005, iou_threshold: float = 0.04,
            thresholds: torch.Tensor | None = None, batch_size: int = 64,
            progress: bool = True) -> Dissection:
    """Network Dissection (Bau et al., CVPR 2017) of one conv layer over a probe set.

    M_k(x) = [up(A_k(x)) > T_k] with ``up`` bilinear upsampling to the mask size and T_k from
    :func:`quantile_thresholds`; IoU_{k,c} = sum_x |M_k(x) ∩ L_c(x)| / sum_x |M_k(x) ∪ L_c(x)|,
    sums over the whole probe set (not a per-image average). Unit label = argmax_c IoU_{k,c};
    detector if that IoU > ``iou_threshold``.

    All units and concepts are counted at once per batch: the unit pixels are listed (few, at the
    top quantile) and binned by concept label; |M_k ∪ L_c| = |M_k| + |L_c| - |M_k ∩ L_c|.

    Args:
        model: any model; ``layer`` a module of it or its dotted name giving maps (N, K, h, w).
        data: a probe set with ``images``, ``concept_names``, ``concept_categories`` and either
            ``concept_maps`` (label maps by category, fast) or ``concepts (N, C, H, W)`` masks.
        thresholds: ``(K,)`` to reuse; computed with ``quantile`` otherwise, and then the
            activations of that pass are reused for the IoU pass if they take <= 256 MB.
    """
    name, _ = resolve_layer(model, layer)
    iou_threshold = check_fraction("iou_threshold", iou_threshold, open_low=False, open_high=False)
    images = images_of(data)
    src = Concepts.of(data)
    if src.n != len(images):
        raise ValueError(f"data has {len(images)} images but concept masks for {src.n}")
    cache = None
    if thresholds is None:  # keep the activations of this pass if small (2,000 x 128 x 8 x 8: 66 MB)
        thresholds, cache = _threshold_pass(model, images, name, quantile, batch_size, progress, 2 ** 28)
    thresholds = torch.as_tensor(thresholds, dtype=torch.float32).cpu()
    n_units = len(thresholds)
    inter = torch.zeros(n_units, len(src.names), dtype=torch.long)
    unit_px = torch.zeros(n_units, dtype=torch.long)
    with frozen(model):
        batches = cache if cache is not None else \
            activation_batches(model, images, name, batch_size, progress, "dissection")
        for start, acts in batches:
            b, k, pix = unit_pixels(conv_maps(acts[name], name), thresholds, src.size)
            inter += src.count(start + b, k, pix, n_units)
            unit_px += torch.bincount(k, minlength=n_units)
    sizes = src.sizes()[None]  # (1, C) |L_c|
    union = unit_px[:, None] + sizes - inter  # (K, C)
    iou = iou_scores(inter, sizes, unit_px[:, None]).float()
    return Dissection(iou, inter, union, thresholds, src.names, src.categories, name, iou_threshold)


def unit_masks(model: nn.Module, data_or_images, layer, units, thresholds: torch.Tensor | None = None,
               quantile: float = 0.005, size=None, batch_size: int = 64,
               progress: bool = True) -> torch.Tensor:
    """Binary masks M_k = [up(A_k) > T_k] of ``units``: ``(N, U, H, W)`` bool at ``size``
    (default: the image size), as in :func:`dissect`. ``thresholds (K,)`` of all units of the
    layer (e.g. ``Dissection.thresholds``); computed with ``quantile`` if not given."""
    name, _ = resolve_layer(model, layer)
    images = images_of(data_or_images, "data_or_images")
    if thresholds is None:
        thresholds = quantile_thresholds(model, images, name, quantile, batch_size, progress)
    thresholds = torch.as_tensor(thresholds, dtype=torch.float32).cpu()
    units = check_units(units, len(thresholds))
    size = tuple(images.shape[-2:]) if size is None else tuple(size)
    out = torch.zeros(len(images), len(units), size[0] * size[1], dtype=torch.bool)
    with frozen(model):
        for start, acts in activation_batches(model, images, name, batch_size, progress, "unit masks"):
            a = conv_maps(acts[name], name)
            if a.shape[1] != len(thresholds):
                raise ValueError(f"thresholds has {len(thresholds)} entries for {a.shape[1]} units")
            b, u, pix = unit_pixels(a[:, units], thresholds[units], size)
            out[start + b, u, pix] = True
    return out.view(len(images), len(units), *size)
