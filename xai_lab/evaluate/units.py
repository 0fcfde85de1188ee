"""Evaluating interpretations: do the units an interpretation names matter, and what do they cover?

- :func:`ablate_units`: switch the units of a layer off one by one in a given order (e.g. the
  relevant units of a class, :func:`xai_lab.interpret.relevant_units`) and follow the accuracy;
  relevant units should make it drop faster than units in random order (``torch.randperm``).
- :func:`semantic_coverage` (Behzadi & Oramas 2023): aggregate the responses of the relevant units,
  binarise, and measure how the result overlaps the annotated concepts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_fraction, check_images, check_int, check_model, check_units, device_of
from ..explain.base import chunks, upsample
from ..hooks import capture, edited, forward_to, frozen, resolve_layer
from .base import Curve, metric, pairs

__all__ = ["ablate_units", "UnitAblation", "semantic_coverage", "Coverage"]


def _labelled(data) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N, C, H, W), labels (N,))`` of a data set with ``images``/``labels`` or a pair."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"data must be a data set or a pair (images, labels), got {len(data)} items")
        images, labels = data
    else:
        images, labels = getattr(data, "images", None), getattr(data, "labels", None)
    images = check_images(images, "data's images")
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"data's labels must be an integer tensor (N,), got {type(labels).__name__} "
                        f"{getattr(labels, 'dtype', '')}")
    if tuple(labels.shape) != (len(images),) or (len(labels) and labels.min() < 0):
        raise ValueError(f"data's labels must hold one class >= 0 per image ({len(images)},), got "
                         f"shape {tuple(labels.shape)}")
    return images, labels.long().cpu()


@dataclass
class UnitAblation:
    """Result of :func:`ablate_units`: ``units (K,)`` in the order switched off, ``accuracy (K+1,)``
    after k = 0..K units off, ``per_class (K+1, C)`` the accuracy among the images of each class
    (NaN for a class without images), ``layer``."""
    units: torch.Tensor
    accuracy: torch.Tensor
    per_class: torch.Tensor
    layer: str

    def curve(self, c: int | None = None) -> Curve:
        """The accuracy (of class ``c`` only, if given) against x = k / K, the fraction of the
        units switched off. Lower is better: the faster it drops, the more the units mattered."""
        k, classes = len(self.units), self.per_class.shape[1]
        if c is not None and check_int("c", c, low=0) >= classes:
            raise ValueError(f"c must be a class < {classes} (the model's outputs), got {c!r}")
        scores = self.accuracy if c is None else self.per_class[:, c]
        return Curve(torch.arange(k + 1) / k, scores, higher_is_better=False, name="unit ablation")


@metric(higher_is_better=False, category="interpretation")
def ablate_units(model: nn.Module, data, layer, order, batch_size: int = 64,
                 progress: bool = False) -> UnitAblation:
    """Accuracy on ``data`` as the units (channels) of ``layer`` are switched off one by one.

    Step k = 0..K: the output of ``layer`` is multiplied by a mask that is 0 for the units
    ``order[:k]`` and 1 elsewhere (an ablation by zeroing, e.g. after a ReLU: "the unit does not
    fire"), then acc_k = mean_x 1[argmax f_k(x) = y]. ``order`` (K,) holds distinct unit indices,
    e.g. ``interpret.relevant_units(...).relevant(c)`` or ``torch.randperm(width)`` for a baseline.
    Lower is better for the interpretation that gave ``order``: if its units matter, the accuracy
    (and that of class c among ``per_class``) drops faster than for random units.

    All ``N * (K + 1)`` (image, step) pairs are one flat batch (:func:`~.base.pairs`): each row's
    mask comes from its step, applied by one hook (:func:`xai_lab.hooks.edited`) per batch.

    Args:
        data: a data set with ``images`` and ``labels`` (e.g. :func:`xai_lab.data.flowers`), or a
            pair ``(images, labels)``.
        layer: a module of ``model`` or its dotted name giving ``(N, U, ...)`` outputs.
    """
    check_model(model)
    images, labels = _labelled(data)
    name, _ = resolve_layer(model, layer)
    batch_size = check_int("batch_size", batch_size)
    device, n = device_of(model), len(images)
    with frozen(model), torch.no_grad():
        with capture(model, name) as cap:
            logits = model(images[:1].to(device))
        a = cap.activations.get(name)
        if a is None or a.dim() < 2:
            raise ValueError(f"layer {name!r} must give (N, units, ...) outputs, got "
                             f"{None if a is None else tuple(a.shape)}")
        classes = logits.shape[1]
        if int(labels.max()) >= classes:
            raise ValueError(f"data's labels must be classes < {classes} (the model's outputs), "
                             f"got {int(labels.max())}")
        order = check_units(order, a.shape[1], "order")
        if len(order.unique()) != len(order):
            raise ValueError(f"order must hold distinct units, got {order.tolist()}")
        k = len(order)
        off_from = torch.full((a.shape[1],), k + 1, device=device)  # unit order[j] is off from step j + 1
        off_from[order.to(device)] = torch.arange(1, k + 1, device=device)
        correct = torch.zeros((k + 1) * classes, dtype=torch.float64)
        for i, s in pairs(n, k + 1, batch_size, progress, "unit ablation"):
            keep = (off_from[None] > s.to(device)[:, None]).to(a.dtype)  # (B, U)
            with edited(model, name, lambda out: out * keep.view(*keep.shape, *[1] * (out.dim() - 2))):
                pred = model(images[i].to(device)).argmax(1).cpu()
            hit = (pred == labels[i]).double()
            correct += torch.bincount(s * classes + labels[i], hit, minlength=(k + 1) * classes)
    correct = correct.view(k + 1, classes)
    per_class = correct / torch.bincount(labels, minlength=classes).double()  # 0 / 0 = NaN: no image
    return UnitAblation(order, (correct.sum(1) / n).float(), per_class.float(), name)


@dataclass
class Coverage:
    """Result of :func:`semantic_coverage`: per concept (``concepts`` its names) the ``iou (C,)``
    and ``coverage (C,)`` (NaN for a concept absent from the data), the ``threshold`` applied to the
    aggregated response and the ``area`` (fraction of all pixels) it selected."""
    concepts: tuple
    iou: torch.Tensor
    coverage: torch.Tensor
    threshold: float
    area: float

    def top(self, n: int = 5) -> list:
        """``[(concept, iou, coverage), ...]`` of the ``n`` concepts of highest IoU, highest first."""
        rows = torch.sort(-self.iou, stable=True).indices[:check_int("n", n)]
        return [(self.concepts[i], float(self.iou[i]), float(self.coverage[i])) for i in rows.tolist()]


def _concept_masks(data, n: int) -> tuple[torch.Tensor, tuple]:
    masks, names = getattr(data, "concepts", None), tuple(getattr(data, "concept_names", ()))
    if not isinstance(masks, torch.Tensor) or not names:
        raise TypeError(f"data must have concepts (N, C, H, W) and concept_names, got {type(data).__name__}")
    if masks.dim() != 4 or masks.shape[:2] != (n, len(names)):
        raise ValueError(f"data.concepts must have shape ({n}, {len(names)}, H, W) (one mask per image "
                         f"and concept name), got {tuple(masks.shape)}")
    return masks.bool(), names


@metric(higher_is_better=True, category="interpretation")
def semantic_coverage(model: nn.Module, data, layer, units, quantile: float = 0.05,
                      batch_size: int = 64, progress: bool = False) -> Coverage:
    """How the aggregated responses of ``units`` cover the annotated concepts (Behzadi & Oramas
    2023: "aggregate responses from relevant units; measure overlap w.r.t. annotated concepts").

    Everything at the concept masks' resolution (H, W): every unit's map at ``layer`` is upsampled
    bilinearly (``align_corners=False``), negative responses count as 0, and each unit is divided by
    its largest value over the data set (all images and pixels), so every unit weighs the same:
    R(x) = (1/U) sum_u up(A_u(x))^+ / max_{x', p} up(A_u(x'))^+ (p pixels). M(x) = [R(x) > T] with T
    the ``1 - quantile`` quantile of R over all pixels of all images (linear interpolation, as
    ``torch.quantile``): about ``quantile`` of the pixels are selected, whatever the scale of the
    responses, so unit sets are compared at equal area and an image where the units stay silent
    gets little or nothing. Default 0.05: a few times the smallest part concepts (a flower's centre
    is ~2 % of the pixels), as several units are aggregated. Per concept c, over the whole data set
    (Network Dissection): IoU_c = sum_x |M ∩ L_c| / sum_x |M ∪ L_c|, coverage_c = sum_x |M ∩ L_c| /
    sum_x |L_c| (both NaN for a concept absent from the data). This is the definition of the
    ``03_evaluation`` exercise.

    Args:
        data: images with ``concepts (N, C, H, W)`` bool and ``concept_names`` (e.g. flowers).
        units: unit indices at ``layer`` (e.g. ``interpret.relevant_units(...).relevant(c)``).
    """
    check_model(model)
    images = check_images(getattr(data, "images", None), "data's images")
    masks, names = _concept_masks(data, len(images))
    name, _ = resolve_layer(model, layer)
    quantile = check_fraction("quantile", quantile)
    batch_size = check_int("batch_size", batch_size)
    device, acts = device_of(model), []
    with frozen(model), torch.no_grad():
        for k in chunks(len(images), batch_size, progress, "semantic coverage"):
            a = forward_to(model, images[k].to(device), name)[name]
            if a.dim() != 4:
                raise ValueError(f"layer {name!r} must give conv maps (N, units, h, w), got {tuple(a.shape)}")
            acts.append(a[:, check_units(units, a.shape[1]).to(device)].clamp(min=0).float().cpu())
    a, size = torch.cat(acts), masks.shape[-2:]  # (N, U, h, w)
    # per-unit peak of the upsampled maps, a few images at a time (at most ~16M values at once)
    step = max(1, 2 ** 24 // (a.shape[1] * size[0] * size[1]))
    peak = torch.stack([F.interpolate(a[k0:k0 + step], size=tuple(size), mode="bilinear",
                                      align_corners=False).amax((0, 2, 3)) for k0 in range(0, len(a), step)])
    peak = peak.amax(0).clamp(min=torch.finfo(a.dtype).tiny)  # (U,)
    # bilinear upsampling is linear: the mean of the upsampled, scaled units is the upsampled mean
    r = upsample((a / peak.view(1, -1, 1, 1)).mean(1), size)  # (N, H, W) aggregated response
    v = r.flatten().double().sort().values
    pos = (1 - quantile) * (len(v) - 1)
    threshold = float(torch.lerp(v[int(pos)], v[min(int(pos) + 1, len(v) - 1)], pos - int(pos)))
    inter, sizes, selected = torch.zeros(len(names), dtype=torch.float64), torch.zeros(len(names), dtype=torch.float64), 0
    for k in chunks(len(images), batch_size, False, ""):
        m = (r[k] > threshold).flatten(1)  # (B, H*W)
        mk = masks[k].view(torch.uint8).flatten(2)  # (B, C, H*W) 0/1 (bool sums over dims are slow)
        inter += mk.transpose(1, 2)[m].sum(0, dtype=torch.int32).double()  # (C,) |M ∩ L_c|, selected pixels only
        sizes += mk.sum(2, dtype=torch.int32).sum(0).double()  # (C,) |L_c|
        selected += int(m.sum())
    union = sizes + selected - inter  # > 0 wherever the concept is present
    iou = torch.where(sizes > 0, inter / union.clamp(min=1), torch.nan)  # NaN: concept absent
    coverage = inter / sizes  # 0 / 0 = NaN: concept absent
    return Coverage(names, iou.float(), coverage.float(), threshold, selected / masks[:, 0].numel())
