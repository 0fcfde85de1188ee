"""Interpretation: what has the model learned? (the methods of 01_interpretation)

- Network Dissection (Bau, Zhou, Khosla, Oliva & Torralba, CVPR 2017): :func:`quantile_thresholds`,
  :func:`dissect` -> :class:`Dissection` (unit x concept IoU table, labels, detectors).
- Compositional explanations of neurons (Mu & Andreas, NeurIPS 2020): :func:`compose` (beam search
  over AND / OR / AND NOT) and :func:`compose_unit`, formulas as :class:`Leaf` / :class:`Formula`.
- Relevant units (Oramas, Wang & Tuytelaars, ICLR 2019): :func:`filter_energies`,
  :func:`l1_regression`, :func:`relevant_units` -> :class:`RelevantUnits`.
- Activation maximisation (Simonyan, Vedaldi & Zisserman 2013; Olah, Mordvintsev & Schubert,
  Distill 2017): :func:`maximize`.
- Activation atlas (Carter, Armstrong, Schubert, Johnson & Olah, Distill 2019): :func:`atlas`.
- Figures: :func:`plot_detectors`, :func:`plot_unit`, :func:`plot_formulas`,
  :func:`plot_relevant_units`, :func:`plot_atlas`.

Every function runs the model in eval mode without parameter gradients and gives it back as it
came (train/eval mode of every module, ``requires_grad``, no hooks left), also after an error.
Probe sets are streamed in batches; nothing holds all activation maps of a probe set at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .hooks import capture, frozen, resolve_layer, resolve_layers
from .viz import _np_image

__all__ = ["quantile_thresholds", "dissect", "Dissection", "unit_masks",
           "compose", "compose_unit", "compose_units", "Composition", "Leaf", "Formula", "OPERATORS",
           "filter_energies", "l1_regression", "project_l1", "relevant_units", "RelevantUnits",
           "maximize", "atlas", "Atlas", "top_patches",
           "plot_detectors", "plot_unit", "plot_formulas", "plot_relevant_units", "plot_atlas"]


# ------------------------------------------------------------------------------------------------
# plumbing: model state, forward to a layer, batches, argument checks
# ------------------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by a hook once every requested layer has run: the rest of the forward is skipped."""


def _forward_to(model: nn.Module, x: torch.Tensor, layers, detach: bool = True) -> dict:
    """Outputs of ``layers`` for ``x`` by name, running the model only as far as they need.

    Stopping right after the last requested layer saves the rest of the forward and keeps the
    captured tensors safe from later in-place operations (``out += identity`` in a ResNet block).
    A module that runs several times in one forward is captured at its first call.
    """
    named = resolve_layers(model, layers)
    with capture(model, list(named), detach=detach) as cap:
        def stop(module, inputs, output):
            if len(cap.activations) == len(named):
                raise _Stop

        handles = [m.register_forward_hook(stop) for m in named.values()]
        try:
            model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
    missing = [n for n in named if n not in cap.activations]
    if missing:
        raise ValueError(f"layers {missing} did not run in the model's forward pass")
    return cap.activations


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_fraction(name, value, low_open=True):
    ok = isinstance(value, (float, int)) and not isinstance(value, bool)
    if not ok or not ((0 < value < 1) if low_open else (0 <= value <= 1)):
        raise ValueError(f"{name} must be a number in {'(0, 1)' if low_open else '[0, 1]'}, got {value!r}")
    return float(value)


def _images(data, name="data") -> torch.Tensor:
    """The images ``(N, C, H, W)`` of a data set with ``.images``, or the tensor itself."""
    x = data if isinstance(data, torch.Tensor) else getattr(data, "images", None)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be images (N, 3, H, W) or a data set with .images, "
                        f"got {type(data).__name__}")
    if x.dim() != 4 or not x.is_floating_point() or len(x) == 0:
        raise ValueError(f"{name} must hold non-empty float images (N, C, H, W), "
                         f"got shape {tuple(x.shape)} {x.dtype}")
    return x


def _maps(a: torch.Tensor, name: str) -> torch.Tensor:
    if a.dim() != 4:
        raise ValueError(f"layer {name!r} gives activations of shape {tuple(a.shape)}; "
                         f"expected conv maps (N, K, h, w)")
    return a


def _batches(model, images, layers, batch_size, progress, desc):
    """Yield ``(start, {layer name: activations (B, K, ...)})`` over ``images``, without gradients."""
    batch_size = _check_int("batch_size", batch_size)
    device = _device(model)
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        with torch.no_grad():
            acts = _forward_to(model, images[start:start + batch_size].to(device), layers)
        yield start, {k: v.float().cpu() for k, v in acts.items()}


def _check_units(units, k: int) -> torch.Tensor:
    units = torch.as_tensor(units).flatten()
    if units.dtype.is_floating_point or units.dtype == torch.bool or len(units) == 0:
        raise TypeError(f"units must be int unit indices, got {units!r}")
    if units.min() < 0 or units.max() >= k:
        raise ValueError(f"units must be in [0, {k}), got {units.tolist()}")
    return units.long()


# ------------------------------------------------------------------------------------------------
# Network Dissection
# ------------------------------------------------------------------------------------------------
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
    images = _images(data_or_images, "data_or_images")
    name, _ = resolve_layer(model, layer)
    return _threshold_pass(model, images, name, quantile, batch_size, progress)[0]


def _threshold_pass(model, images, name, quantile, batch_size, progress, cache_bytes=0):
    """:func:`quantile_thresholds` and, if they take at most ``cache_bytes``, the activations of
    every batch as ``[(start, (B, K, h, w)), ...]`` (else None), so a second pass can skip the model."""
    quantile = _check_fraction("quantile", quantile)
    top, n, keep, cache, used = None, 0, 0, [], 0
    with frozen(model):
        for start, acts in _batches(model, images, name, batch_size, progress, "thresholds"):
            a = _maps(acts[name], name)
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


def _unit_pixels(a: torch.Tensor, thresholds: torch.Tensor, size) -> tuple:
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


@dataclass
class _Concepts:
    """The concept masks L_c of a probe set: per-category label maps (fast) or ``(N, C, H, W)`` masks.

    Label maps: ``maps[category] (N, H, W)`` long, label j = the j-th concept of that category in
    ``names`` order, -1 = none. They give the same IoU as the masks, with a bincount per category.
    """
    names: tuple
    categories: tuple
    size: tuple  # (H, W) of the masks
    maps: dict | None = None
    masks: torch.Tensor | None = None  # (N, C, H*W) bool

    @classmethod
    def of(cls, data):
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
        ``(N*H*W,)`` (see :func:`compose`). From label maps: one mixed-radix code per pixel."""
        if self.masks is not None:
            return _patterns(self.masks)
        radix = [len(self.columns(cat)) + 1 for cat in self.maps]
        if math.prod(radix) >= 2 ** 62:
            return _patterns(torch.stack([self.mask(c, slice(None)) for c in range(len(self.names))], 1))
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
    iou_threshold = _check_fraction("iou_threshold", iou_threshold, low_open=False)
    images = _images(data)
    src = _Concepts.of(data)
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
            _batches(model, images, name, batch_size, progress, "dissection")
        for start, acts in batches:
            b, k, pix = _unit_pixels(_maps(acts[name], name), thresholds, src.size)
            inter += src.count(start + b, k, pix, n_units)
            unit_px += torch.bincount(k, minlength=n_units)
    union = unit_px[:, None] + src.sizes()[None] - inter  # (K, C)
    iou = (inter / union.clamp(min=1)).float()
    return Dissection(iou, inter, union, thresholds, src.names, src.categories, name, iou_threshold)


def unit_masks(model: nn.Module, data_or_images, layer, units, thresholds: torch.Tensor | None = None,
               quantile: float = 0.005, size=None, batch_size: int = 64,
               progress: bool = True) -> torch.Tensor:
    """Binary masks M_k = [up(A_k) > T_k] of ``units``: ``(N, U, H, W)`` bool at ``size``
    (default: the image size), as in :func:`dissect`. ``thresholds (K,)`` of all units of the
    layer (e.g. ``Dissection.thresholds``); computed with ``quantile`` if not given."""
    name, _ = resolve_layer(model, layer)
    images = _images(data_or_images, "data_or_images")
    if thresholds is None:
        thresholds = quantile_thresholds(model, images, name, quantile, batch_size, progress)
    thresholds = torch.as_tensor(thresholds, dtype=torch.float32).cpu()
    units = _check_units(units, len(thresholds))
    size = tuple(images.shape[-2:]) if size is None else tuple(size)
    out = torch.zeros(len(images), len(units), size[0] * size[1], dtype=torch.bool)
    with frozen(model):
        for start, acts in _batches(model, images, name, batch_size, progress, "unit masks"):
            a = _maps(acts[name], name)
            if a.shape[1] != len(thresholds):
                raise ValueError(f"thresholds has {len(thresholds)} entries for {a.shape[1]} units")
            b, u, pix = _unit_pixels(a[:, units], thresholds[units], size)
            out[start + b, u, pix] = True
    return out.view(len(images), len(units), *size)


# ------------------------------------------------------------------------------------------------
# Compositional explanations
# ------------------------------------------------------------------------------------------------
OPERATORS = ("AND", "OR", "AND NOT")
_APPLY = {"AND": lambda a, b: a & b, "OR": lambda a, b: a | b, "AND NOT": lambda a, b: a & ~b}


@dataclass(frozen=True)
class Leaf:
    """One concept of a formula: column ``index`` of the concept masks, called ``name``."""
    index: int
    name: str

    def __str__(self) -> str:
        return self.name

    def mask(self, concepts: torch.Tensor) -> torch.Tensor:
        """``(N, H, W)`` bool from concept masks ``(N, C, H, W)``."""
        return concepts[:, self.index].bool()

    def leaves(self) -> tuple:
        return (self.index,)

    @property
    def length(self) -> int:
        return 1


@dataclass(frozen=True)
class Formula:
    """``left op right`` with op in AND, OR, AND NOT; prints as ``(petal AND red) OR centre``."""
    op: str
    left: "Leaf | Formula"
    right: "Leaf | Formula"

    def __post_init__(self):
        if self.op not in _APPLY:
            raise ValueError(f"op must be one of {OPERATORS}, got {self.op!r}")

    def __str__(self) -> str:
        left, right = (f"({s})" if isinstance(s, Formula) else str(s) for s in (self.left, self.right))
        return f"{left} {self.op} {right}"

    def mask(self, concepts: torch.Tensor) -> torch.Tensor:
        return _APPLY[self.op](self.left.mask(concepts), self.right.mask(concepts))

    def leaves(self) -> tuple:
        return self.left.leaves() + self.right.leaves()

    @property
    def length(self) -> int:
        return len(self.leaves())


@dataclass
class Composition:
    """Result of :func:`compose`: the best ``formula`` and its ``iou``, the final ``beam``
    ``[(formula, iou), ...]`` best first, and the best single concept for comparison."""
    formula: Leaf | Formula
    iou: float
    beam: list
    single: Leaf
    single_iou: float

    def __str__(self) -> str:
        return (f"{self.formula}  IoU {self.iou:.3f}  "
                f"(best single concept: {self.single}, IoU {self.single_iou:.3f})")


def _patterns(concepts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct concept patterns of the pixels: ``patterns (U, C)`` bool, and for each pixel
    (in ``(N, H, W)`` order) the index of its pattern. Bits are packed 62 to an int64 word."""
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


def _score(truth: torch.Tensor, in_unit: torch.Tensor, total: torch.Tensor, unit_size) -> torch.Tensor:
    """IoU of formulas given by their truth on the patterns ``(..., U)``: I / (|F| + |M| - I) with
    I = sum of ``in_unit`` (pixels of M per pattern) and |F| = sum of ``total`` where F holds."""
    t = truth.double()
    inter, size = t @ in_unit, t @ total
    return inter / (size + unit_size - inter).clamp(min=1)


def _check_masks(masks, concepts, names):
    for arg, t, dims in (("masks", masks, 3), ("concepts", concepts, 4)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != dims:
            raise ValueError(f"{arg} must have {dims} dims, got shape {tuple(t.shape)}")
    if masks.shape != concepts.shape[:1] + concepts.shape[2:]:
        raise ValueError(f"masks {tuple(masks.shape)} and concepts {tuple(concepts.shape)} "
                         f"must share N, H, W")
    if len(names) != concepts.shape[1]:
        raise ValueError(f"names has {len(names)} entries for {concepts.shape[1]} concepts")


def _select(old: list, iou: torch.Tensor, make, width: int) -> list:
    """The ``width`` best entries among ``old`` and the new candidates, whose IoUs are ``iou``
    (any shape; -1 = excluded) and which ``make(flat index)`` builds lazily. Entries are
    ``(formula, iou, truth on the patterns (U,))``. Formulas with the same mask on the probe set
    (``a AND b`` and ``b AND a``; ``a OR c`` with c never present) take one place: the earlier,
    so the shorter one on ties."""
    scores = torch.cat([torch.tensor([e[1] for e in old], dtype=iou.dtype), iou.flatten()])
    new, seen = [], set()
    for j in torch.sort(scores, descending=True, stable=True).indices.tolist():
        if scores[j] < 0:
            break
        entry = old[j] if j < len(old) else make(j - len(old))
        key = entry[2].numpy().tobytes()
        if key not in seen:
            seen.add(key)
            new.append(entry)
        if len(new) == width:
            break
    return new


def _extend(beam: list, patterns, in_unit, total, unit_size, names, operators, width) -> list:
    """One beam-search step: every beam formula x every concept x every operator, scored at once."""
    f = torch.stack([e[2] for e in beam])[:, None]  # (B, 1, U)
    c = patterns.T[None]  # (1, C, U)
    truth = torch.stack([_APPLY[op](f, c) for op in operators])  # (O, B, C, U)
    iou = _score(truth, in_unit, total, unit_size)  # (O, B, C)
    used = torch.zeros(len(beam), len(names), dtype=torch.bool)
    for j, e in enumerate(beam):
        used[j, list(e[0].leaves())] = True  # a concept appears at most once in a formula
    iou = iou.masked_fill(used, -1.0)

    def make(j):
        o, b, k = (int(i) for i in np.unravel_index(j, iou.shape))
        return Formula(operators[o], beam[b][0], Leaf(k, names[k])), float(iou[o, b, k]), truth[o, b, k]

    return _select(beam, iou, make, width)


def _check_search(beam, max_length, operators) -> tuple:
    beam = _check_int("beam", beam)
    max_length = _check_int("max_length", max_length)
    if isinstance(operators, str) or not operators or any(op not in _APPLY for op in operators):
        raise ValueError(f"operators must be a non-empty subset of {OPERATORS}, got {operators!r}")
    return beam, max_length, tuple(operators)


def _search(patterns, inverse, masks, names, beam, max_length, operators) -> Composition:
    """Beam search on the pattern histogram of one unit's ``masks (N, H, W)``."""
    counts = torch.bincount(inverse * 2 + masks.bool().flatten().long(), minlength=2 * len(patterns))
    in_unit, total = counts.view(-1, 2)[:, 1].double(), counts.view(-1, 2).sum(1).double()  # (U,)
    unit_size = float(in_unit.sum())
    iou1 = _score(patterns.T, in_unit, total, unit_size)  # (C,)
    entries = _select([], iou1, lambda k: (Leaf(k, names[k]), float(iou1[k]), patterns[:, k]), beam)
    single = entries[0]
    for _ in range(max_length - 1):
        entries = _extend(entries, patterns, in_unit, total, unit_size, names, operators, beam)
    return Composition(entries[0][0], entries[0][1], [(e[0], e[1]) for e in entries],
                       single[0], single[1])


def compose(masks: torch.Tensor, concepts: torch.Tensor, names, beam: int = 5, max_length: int = 3,
            operators=OPERATORS) -> Composition:
    """Compositional explanation of a unit (Mu & Andreas, NeurIPS 2020) by beam search.

    IoU(M, F) = sum_x |M(x) ∩ F(x)| / sum_x |M(x) ∪ F(x)| over all pixels of all images, for
    formulas F over concept masks with AND, OR, AND NOT. The beam starts from the top-``beam``
    single concepts; each step extends every beam formula with every concept not already in it
    under each operator, and keeps the top ``beam`` formulas among the old beam and the new ones
    (as the authors' code does; one per distinct mask), so the best formula's IoU >= the best
    single concept's.

    Exact and fast: whether a pixel is in F depends only on which concepts it has, so the probe
    set is first reduced to its U distinct concept patterns with, per pattern, its pixels inside
    and outside the unit mask; every candidate of a step is then scored at once from vectors of
    length U (a few dozen here), without another pass over the pixels.

    Args:
        masks: ``(N, H, W)`` bool, the unit's binary masks (e.g. from :func:`unit_masks`).
        concepts: ``(N, C, H, W)`` bool concept masks; ``names`` their ``C`` names.
        beam: beam width; ``max_length``: most concepts in a formula.
    """
    _check_masks(masks, concepts, names)
    search = _check_search(beam, max_length, operators)
    patterns, inverse = _patterns(concepts.bool())
    return _search(patterns, inverse, masks, tuple(names), *search)


def compose_units(model: nn.Module, data, layer, units, thresholds: torch.Tensor | None = None,
                  quantile: float = 0.005, beam: int = 5, max_length: int = 3, operators=OPERATORS,
                  batch_size: int = 64, progress: bool = True) -> list:
    """:func:`compose` for several ``units`` of ``layer`` over a probe set (as for :func:`dissect`):
    their masks in one pass (pass ``Dissection.thresholds`` to skip the threshold pass), the
    concept patterns once (from the label maps when the data has them). A list of Compositions."""
    search = _check_search(beam, max_length, operators)
    src = _Concepts.of(data)
    masks = unit_masks(model, data, layer, units, thresholds, quantile, src.size, batch_size, progress)
    patterns, inverse = src.patterns()
    return [_search(patterns, inverse, masks[:, j], src.names, *search) for j in range(masks.shape[1])]


def compose_unit(model: nn.Module, data, layer, unit: int, thresholds: torch.Tensor | None = None,
                 quantile: float = 0.005, beam: int = 5, max_length: int = 3, operators=OPERATORS,
                 batch_size: int = 64, progress: bool = True) -> Composition:
    """:func:`compose_units` for one unit."""
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
        raise TypeError(f"unit must be an int, got {unit!r}")
    return compose_units(model, data, layer, [unit], thresholds, quantile, beam, max_length, operators,
                         batch_size, progress)[0]


# ------------------------------------------------------------------------------------------------
# Relevant units (Oramas et al. 2019)
# ------------------------------------------------------------------------------------------------
def _energy(a: torch.Tensor) -> torch.Tensor:
    """``(B, K)``: sum over positions of A^2, L1-normalised over the K units of the layer."""
    e = a.pow(2).flatten(2).sum(2) if a.dim() > 2 else a.pow(2)
    return e / e.sum(1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def filter_energies(model: nn.Module, data_or_images, layers, batch_size: int = 64,
                    progress: bool = True) -> tuple[torch.Tensor, tuple]:
    """Per-image filter energies of Oramas et al. (ICLR 2019): ``X (N, D)`` and the
    ``(layer name, unit)`` of each of the D columns.

    x_{l,j} = sum_{u,v} A_{l,j}(u,v)^2, L1-normalised within each layer l, concatenated over
    ``layers`` (one or several modules or dotted names). The paper's X is this matrix transposed.
    """
    images = _images(data_or_images, "data_or_images")
    names = list(resolve_layers(model, layers))
    chunks, widths = [], []
    with frozen(model):
        for _, acts in _batches(model, images, names, batch_size, progress, "energies"):
            chunks.append(torch.cat([_energy(acts[n]) for n in names], 1))
            widths = [acts[n].shape[1] for n in names]
    units = tuple((n, j) for n, k in zip(names, widths) for j in range(k))
    return torch.cat(chunks), units


def project_l1(v: torch.Tensor, mu: float, nonnegative: bool = False) -> torch.Tensor:
    """Euclidean projection of each column of ``v (D, C)`` onto {w : ||w||_1 <= mu} (and w >= 0
    if ``nonnegative``), exactly, by sorting (Duchi, Shalev-Shwartz, Singer & Chandra, ICML 2008)."""
    u = v.clamp(min=0) if nonnegative else v
    a = u.abs()
    s = a.sort(0, descending=True).values  # (D, C)
    excess = s.cumsum(0) - mu
    j = torch.arange(1, len(v) + 1, dtype=v.dtype).view(-1, 1)
    rho = (s - excess / j > 0).sum(0, keepdim=True).clamp(min=1)  # (1, C) size of the support
    theta = excess.gather(0, rho - 1) / rho
    w = u.sign() * (a - theta).clamp(min=0)
    return torch.where(a.sum(0, keepdim=True) <= mu, u, w)


def l1_regression(x: torch.Tensor, y: torch.Tensor, mu: float, nonnegative: bool = False,
                  max_iter: int = 20000, tol: float = 1e-10) -> torch.Tensor:
    """W* = argmin_W ||X W - Y||_F^2 s.t. ||w_j||_1 <= mu for every column j: ``(D, C)`` float32.

    ``x (N, D)``, ``y (N, C)`` (Oramas et al. 2019 write X^T W - L^T with X as D x N). Solved by
    FISTA (Beck & Teboulle 2009) with the exact L1-ball projection :func:`project_l1` and
    adaptive restart per column (O'Donoghue & Candes 2015), in float64, from W = 0 with step
    1 / (2 sigma_max(X)^2): deterministic. Stops when no weight moves by more than ``tol``
    (relative to the largest weight).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.dim() != 2 or y.dim() != 2 or len(x) != len(y):
        raise ValueError(f"x must be (N, D) and y (N, C), got {tuple(x.shape)} and {tuple(y.shape)}")
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not mu > 0:
        raise ValueError(f"mu must be a positive number, got {mu!r}")
    gram, xy = x.double().T @ x.double(), x.double().T @ y.double()  # (D, D), (D, C)
    step = 1 / (2 * torch.linalg.eigvalsh(gram)[-1].clamp_min(1e-300))
    w = torch.zeros_like(xy)
    z, t = w, torch.ones(1, xy.shape[1], dtype=xy.dtype)
    for _ in range(_check_int("max_iter", max_iter)):
        w_next = project_l1(z - step * 2 * (gram @ z - xy), mu, nonnegative)
        t = torch.where(((z - w_next) * (w_next - w)).sum(0) > 0, 1.0, t)  # restart: momentum off
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        z = w_next + ((t - 1) / t_next) * (w_next - w)
        moved = float((w_next - w).abs().max())
        w, t = w_next, t_next
        if moved <= tol * max(1.0, float(w.abs().max())):
            break
    return w.float()


@dataclass
class RelevantUnits:
    """Result of :func:`relevant_units`: ``weights (D, C)`` of the L1-constrained regression,
    ``units`` the ``(layer, unit)`` of each row, ``mu``, ``class_names``."""
    weights: torch.Tensor
    units: tuple
    mu: float
    class_names: tuple = ()

    def relevant(self, c: int) -> torch.Tensor:
        """Rows with a non-zero weight for class ``c``, largest weight first."""
        w = self.weights[:, c]
        rows = w.nonzero().flatten()
        return rows[torch.sort(-w[rows], stable=True).indices]

    def table(self, c: int, n: int | None = None) -> list:
        """``[(layer, unit, weight), ...]`` of the relevant units of class ``c``, largest weight first."""
        rows = self.relevant(c)[:n]
        return [(*self.units[r], float(self.weights[r, c])) for r in rows.tolist()]

    def top(self, c: int, n: int = 3) -> list:
        """The ``n`` relevant units of class ``c`` with the largest positive weights."""
        return [t for t in self.table(c) if t[2] > 0][:n]

    def scores(self, energies: torch.Tensor, c: int) -> torch.Tensor:
        """Test-time unit scores of Oramas et al.: s_i = x_i w_{i,c} / sum_i w_{i,c} with the
        energies ``(N, D)`` L2-normalised per image: ``(N, D)`` (NaN if the weights sum to 0)."""
        x = energies / energies.norm(dim=1, keepdim=True).clamp_min(1e-12)
        w = self.weights[:, c]
        return x * w / w.sum()


def relevant_units(model: nn.Module, data, layers, mu: float = 10.0, nonnegative: bool = False,
                   batch_size: int = 64, progress: bool = True) -> RelevantUnits:
    """Relevant units per class (Oramas, Wang & Tuytelaars, ICLR 2019).

    Per-image filter energies X (:func:`filter_energies` over ``layers``), then the
    L1-constrained regression W* = argmin ||X^T W - L^T||^2 s.t. ||w_j||_1 <= mu per class j
    with L the one-hot labels (:func:`l1_regression`). The relevant units of class j are the
    non-zero entries of w_j: the smaller ``mu``, the fewer. As the energies of a layer sum to 1,
    a prediction x.w_j is at most the largest weight, so mu must exceed 1 for w_j to reach the
    target 1; on the flower CNN's last layer mu = 5 to 20 gives 1 to 4 units per class.

    Args:
        data: a probe set with ``images`` and ``labels`` (and optionally ``class_names``).
        nonnegative: also constrain w >= 0 (one reimplementation's choice).
    """
    labels = getattr(data, "labels", None)
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        raise TypeError(f"data must have integer .labels (N,), got {type(data).__name__}")
    if len(labels) != len(_images(data)) or labels.min() < 0:
        raise ValueError(f"data.labels must hold one class index >= 0 per image, got {tuple(labels.shape)}")
    x, units = filter_energies(model, data, layers, batch_size, progress)
    names = tuple(getattr(data, "class_names", ()))
    y = F.one_hot(labels, max(len(names), int(labels.max()) + 1))
    return RelevantUnits(l1_regression(x, y, mu, nonnegative), units, float(mu), names)


# ------------------------------------------------------------------------------------------------
# Activation maximisation
# ------------------------------------------------------------------------------------------------
def _input_of(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``module`` (before it runs, so before an in-place ReLU), with its graph."""
    store = {}

    def hook(mod, inputs):
        store["a"] = inputs[0]
        raise _Stop

    handle = module.register_forward_pre_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return store["a"]


def _objective(model: nn.Module, target):
    """``x (1, 3, H, W) -> scalar``: a class logit (int) or the mean of a unit's map ((layer, unit)).
    A unit of a ReLU layer is read before the ReLU (as lucid's ``*_pre_relu`` objectives), so a
    start where the unit is off still has a gradient."""
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        def logit(x):
            out = model(x)
            if not 0 <= target < out.shape[1]:
                raise ValueError(f"target must be a class in [0, {out.shape[1]}), got {target}")
            return out[0, target]
        return logit
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], (int, np.integer)):
        name, module = resolve_layer(model, target[0])
        unit = int(target[1])

        def channel(x):
            a = _input_of(model, module, x) if isinstance(module, nn.ReLU) else \
                _forward_to(model, x, name, detach=False)[name]
            if a.dim() != 4 or not 0 <= unit < a.shape[1]:
                raise ValueError(f"target unit must be in [0, {a.shape[1]}) of conv maps of {name!r}, "
                                 f"got {unit}")
            return a[0, unit].mean()
        return channel
    raise TypeError(f"target must be a class index (int) or a (layer, unit) tuple, got {target!r}")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(2 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # along W
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # along H


def _jitter(x: torch.Tensor, j: int, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to ``j`` px in each direction (reflect padding, then a random crop), as lucid's
    ``jitter``."""
    if j == 0:
        return x
    h, w = x.shape[-2:]
    dy, dx = torch.randint(0, 2 * j + 1, (2,), generator=gen).tolist()
    return F.pad(x, (j, j, j, j), mode="reflect")[..., dy:dy + h, dx:dx + w]


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def maximize(model: nn.Module, target, size: int = 64, steps: int = 100, lr: float = 0.05,
             l2: float = 1.0, tv: float = 1.0, jitter: int = 4, blur: float = 0.5,
             blur_every: int = 4, noise: float = 0.5, seed: int = 0,
             progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation maximisation (Simonyan et al. 2013; Olah et al., Distill 2017).

    I* = argmax_I S(I) - l2 mean((I - 0.5)^2) - tv TV(I), with S a class's pre-softmax score
    (``target`` an int) or the mean activation of a unit's map (``target = (layer, unit)``; for a
    ReLU layer, of its input, so that a unit that is off at the start still gets a gradient).
    The image is I = sigmoid(p), always in [0, 1]; 0.5 is the data mean, the "zero" of the
    model's normalised input. p starts as Gaussian noise of std ``noise`` drawn with ``seed``;
    Adam on p. Regularisers: L2 towards 0.5, anisotropic total variation
    TV = mean|dI/dx| + mean|dI/dy|, a random shift of up to ``jitter`` px before each step
    (lucid), and a Gaussian blur of p with sigma ``blur`` every ``blur_every`` steps (Yosinski
    et al. 2015); 0 turns one off.

    Returns:
        The image ``(1, 3, size, size)`` in [0, 1] and the objective S at every step ``(steps,)``.
    """
    size, steps = _check_int("size", size, 8), _check_int("steps", steps)
    jitter = _check_int("jitter", jitter, 0)
    if jitter >= size:
        raise ValueError(f"jitter must be smaller than size={size}, got {jitter}")
    for name, v in (("lr", lr), ("l2", l2), ("tv", tv), ("blur", blur), ("noise", noise)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (name == "lr" and v == 0):
            kind = "positive" if name == "lr" else "non-negative"
            raise ValueError(f"{name} must be a {kind} number, got {v!r}")
    blur_every = _check_int("blur_every", blur_every)
    objective = _objective(model, target)
    gen = torch.Generator().manual_seed(seed)
    p = (noise * torch.randn(1, 3, size, size, generator=gen)).to(_device(model)).requires_grad_()
    opt = torch.optim.Adam([p], lr=lr)
    history = []
    with frozen(model):
        for i in tqdm(range(steps), desc="maximize", disable=not progress, leave=False):
            img = torch.sigmoid(p)
            score = objective(_jitter(img, jitter, gen))
            loss = -score + l2 * (img - 0.5).pow(2).mean() + tv * _total_variation(img)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if blur > 0 and (i + 1) % blur_every == 0:
                with torch.no_grad():
                    p.copy_(_gaussian_blur(p, blur))
            history.append(score.detach())
    return torch.sigmoid(p).detach().cpu(), torch.stack(history).cpu()


# ------------------------------------------------------------------------------------------------
# Patches, top-activating patches, activation atlas
# ------------------------------------------------------------------------------------------------
def _crops(images: torch.Tensor, idx, cy, cx, patch: int) -> torch.Tensor:
    """``(n, 3, patch, patch)`` crops centred at pixels (cy, cx) of ``images[idx]``; outside the
    image the border pixels repeat."""
    h, w = images.shape[-2:]
    off = torch.arange(patch) - patch // 2
    ys = (cy[:, None] + off).clamp(0, h - 1)  # (n, p)
    xs = (cx[:, None] + off).clamp(0, w - 1)
    out = images[idx[:, None, None], :, ys[:, :, None], xs[:, None, :]]  # (n, p, p, 3)
    return out.permute(0, 3, 1, 2)


def _centres(pos: torch.Tensor, map_size, image_size) -> tuple:
    """Pixel centres of flat positions ``pos`` on an (h, w) map, for images of ``image_size``."""
    (h, w), (H, W) = map_size, image_size
    cy = ((pos // w).float() + 0.5) * H / h
    cx = ((pos % w).float() + 0.5) * W / w
    return cy.long(), cx.long()


def _default_patch(map_h: int, image_h: int) -> int:
    return min(image_h, 3 * max(1, image_h // map_h))


def top_patches(model: nn.Module, data_or_images, units, k: int = 8, patch: int | None = None,
                batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-activating patches of units (Oramas et al.'s "interpretation visualizations").

    For each ``(layer, unit)`` of ``units``, the ``k`` images where the unit's maximum is highest,
    cropped around that maximum (``patch`` px; default 3 x the layer's stride).

    Returns:
        patches ``(U, k, 3, patch, patch)`` and image indices ``(U, k)``, strongest first.
    """
    images = _images(data_or_images, "data_or_images")
    k = _check_int("k", k)
    if k > len(images):
        raise ValueError(f"k must be at most the number of images {len(images)}, got {k}")
    if not isinstance(units, (list, tuple)) or not units or not all(
            isinstance(t, tuple) and len(t) == 2 and isinstance(t[1], (int, np.integer)) for t in units):
        raise TypeError(f"units must be a non-empty list of (layer, unit index) tuples, got {units!r}")
    units = [(resolve_layer(model, layer)[0], int(u)) for layer, u in units]
    names = list(dict.fromkeys(n for n, _ in units))
    best = torch.full((0, len(units)), -math.inf)
    idx = pos = torch.zeros(0, len(units), dtype=torch.long)
    with frozen(model):
        for start, acts in _batches(model, images, names, batch_size, progress, "top patches"):
            s, p = _unit_max(acts, units)  # (B, U)
            best, order = torch.cat([best, s]).topk(min(k, len(best) + len(s)), dim=0)
            idx = torch.cat([idx, torch.arange(start, start + len(s))[:, None].expand_as(s)]).gather(0, order)
            pos = torch.cat([pos, p]).gather(0, order)
            sizes = {n: tuple(acts[n].shape[-2:]) for n in names}
    h_min = min(h for h, _ in sizes.values())
    patch = _default_patch(h_min, images.shape[-2]) if patch is None else _check_int("patch", patch)
    out = []
    for j, (n, _) in enumerate(units):
        cy, cx = _centres(pos[:, j], sizes[n], images.shape[-2:])
        out.append(_crops(images, idx[:, j], cy, cx, patch))
    return torch.stack(out), idx.T


def _unit_max(acts: dict, units: list) -> tuple:
    """``(B, U)`` maxima of the units' maps and their flat positions."""
    for n, u in units:
        if not 0 <= u < _maps(acts[n], n).shape[1]:
            raise ValueError(f"unit {u} of {n!r} must be in [0, {acts[n].shape[1]})")
    vals, pos = zip(*(acts[n][:, u].flatten(1).max(1) for n, u in units))
    return torch.stack(vals, 1), torch.stack(pos, 1)


@dataclass
class Atlas:
    """Result of :func:`atlas`: ``image (3, G*p, G*p)`` the tiles, ``layout (n, 2)`` in [0, 1],
    ``cells (n,)`` the cell ``row * G + col`` of each point, ``counts (G, G)``, ``points (n, 3)``
    image index, row and column on the activation map of each sampled activation vector."""
    image: torch.Tensor
    layout: torch.Tensor
    cells: torch.Tensor
    counts: torch.Tensor
    points: torch.Tensor


def _pca_2d(v: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` projection on the two first principal axes, signs fixed (largest loading > 0)."""
    v = v.double() - v.double().mean(0)
    _, _, vh = torch.linalg.svd(v, full_matrices=False)
    axes = vh[:2]  # (2, K)
    sign = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return (v @ (axes * sign).T).float()


def atlas(model: nn.Module, data_or_images, layer, grid: int = 8, n_points: int = 2048,
          patch: int | None = None, seed: int = 0, batch_size: int = 64,
          progress: bool = True) -> Atlas:
    """A small activation atlas (Carter, Armstrong, Schubert, Johnson & Olah, Distill 2019).

    ``n_points`` activation vectors a(x, u, v) (one per image position, sampled with ``seed``)
    are laid out in 2-D by PCA (the paper uses UMAP; PCA keeps it deterministic and dependency
    free), the layout is cut into ``grid x grid`` cells, and each cell shows the average of the
    image patches (``patch`` px around the position) of its points. Empty cells are white.
    """
    images = _images(data_or_images, "data_or_images")
    grid, n_points = _check_int("grid", grid), _check_int("n_points", n_points)
    name, _ = resolve_layer(model, layer)
    vecs, points, map_size = [], [], None
    gen = torch.Generator().manual_seed(seed)
    with frozen(model):
        for start, acts in _batches(model, images, name, batch_size, progress, "atlas"):
            a = _maps(acts[name], name)
            if map_size is None:
                map_size = tuple(a.shape[-2:])
                total = len(images) * map_size[0] * map_size[1]
                chosen = torch.randperm(total, generator=gen)[:n_points].sort().values
            per = map_size[0] * map_size[1]
            mine = chosen[(chosen >= start * per) & (chosen < (start + len(a)) * per)] - start * per
            vecs.append(a.flatten(2)[mine // per, :, mine % per])  # (n_b, K)
            rows, cols = (mine % per) // map_size[1], mine % map_size[1]
            points.append(torch.stack([mine // per + start, rows, cols], 1))  # (n_b, 3)
    vecs, points = torch.cat(vecs), torch.cat(points)
    layout = _pca_2d(vecs)
    layout = (layout - layout.min(0).values) / (layout.max(0).values - layout.min(0).values).clamp_min(1e-12)
    rc = (layout.flip(1) * grid).long().clamp(max=grid - 1)  # (n, 2): row from y, col from x
    cells = rc[:, 0] * grid + rc[:, 1]
    patch = _default_patch(map_size[0], images.shape[-2]) if patch is None else _check_int("patch", patch)
    cy, cx = _centres(points[:, 1] * map_size[1] + points[:, 2], map_size, images.shape[-2:])
    crops = _crops(images, points[:, 0], cy, cx, patch)  # (n, 3, p, p)
    sums = torch.zeros(grid * grid, 3, patch, patch).index_add_(0, cells, crops)
    counts = torch.bincount(cells, minlength=grid * grid)
    tiles = torch.where(counts.view(-1, 1, 1, 1) > 0, sums / counts.clamp(min=1).view(-1, 1, 1, 1), 1.0)
    side = grid * patch
    image = tiles.view(grid, grid, 3, patch, patch).permute(2, 0, 3, 1, 4).reshape(3, side, side)
    return Atlas(image, layout, cells, counts.view(grid, grid), points)


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------
def plot_detectors(dissection: Dissection, title: str | None = None):
    """Bau et al.'s histogram: detectors per concept, coloured by category, and per category."""
    per_concept = dissection.detectors_per_concept()
    per_cat = dissection.detectors_per_category()
    cats = list(per_cat)
    colours = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(cats)}
    cat_of = dict(zip(dissection.concept_names, dissection.concept_categories))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 3]})
    ax1.bar(cats, [per_cat[c] for c in cats], color=[colours[c] for c in cats])
    ax1.set_ylabel("detector units")
    ax1.set_title("per category", fontsize=9)
    names = list(per_concept)
    ax2.bar(range(len(names)), [per_concept[n] for n in names], color=[colours[cat_of[n]] for n in names])
    ax2.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax2.set_title("per concept (unit label)", fontsize=9)
    fig.suptitle(title or f"{dissection.layer}: {int(dissection.detectors.sum())} of "
                          f"{len(dissection.iou)} units with IoU > {dissection.iou_threshold}", fontsize=10)
    fig.tight_layout()
    return fig


def _overlay(ax, img, mask, colour):
    """The image darkened outside ``mask`` and the mask outlined (as Bau et al. show units)."""
    m = mask.numpy()
    ax.imshow(_np_image(img))
    shade = np.zeros(m.shape + (4,))
    shade[~m] = (0, 0, 0, 0.55)
    ax.imshow(shade)
    if m.any() and not m.all():
        ax.contour(m.astype(float), levels=[0.5], colors=[colour], linewidths=0.8)
    ax.set_xticks([]); ax.set_yticks([])


def plot_unit(model: nn.Module, data, dissection: Dissection, unit: int, k: int = 6,
              batch_size: int = 64, progress: bool = False):
    """The ``k`` top images of ``unit`` (by its maximum activation): its mask M_k (top row) and
    the mask of its best concept (bottom row), with the dataset-level IoU."""
    images = _images(data)
    unit = int(_check_units([unit], len(dissection.thresholds))[0])
    _, idx = top_patches(model, images, [(dissection.layer, unit)], k, 1, batch_size, progress)
    top = images[idx[0]]
    masks = unit_masks(model, top, dissection.layer, [unit], dissection.thresholds, progress=False)[:, 0]
    c = int(dissection.labels[unit])
    cmask = _Concepts.of(data).mask(c, idx[0])
    fig, axes = plt.subplots(2, len(top), figsize=(1.6 * len(top), 3.5), squeeze=False)
    for i in range(len(top)):
        _overlay(axes[0, i], top[i], masks[i], "yellow")
        _overlay(axes[1, i], top[i], cmask[i], "cyan")
    axes[0, 0].set_ylabel(f"unit {unit}", fontsize=8)
    axes[1, 0].set_ylabel(dissection.concept_names[c], fontsize=8)
    fig.suptitle(f"{dissection.layer} unit {unit}: {dissection.concept_names[c]} "
                 f"(IoU {float(dissection.best_iou[unit]):.3f})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_formulas(results: dict, title: str | None = None):
    """Bars of the best single concept's IoU and the best formula's IoU per unit, from
    ``{label: Composition}`` (e.g. ``{"unit 12": compose_unit(...)}``)."""
    from .viz import bars

    labels = [f"{k}\n{v.formula}" for k, v in results.items()]
    values = {"best single concept": torch.tensor([v.single_iou for v in results.values()]),
              "best formula": torch.tensor([v.iou for v in results.values()])}
    return bars(values, labels, ylabel="IoU", title=title or "compositional explanations")


def plot_relevant_units(model: nn.Module, data, result: RelevantUnits, c: int, n_units: int = 3,
                        k: int = 8, patch: int | None = None, batch_size: int = 64,
                        progress: bool = False):
    """Oramas et al.'s interpretation visualisation of class ``c``: for each of its ``n_units``
    most relevant units (largest positive weights), the average of its top-``k`` patches and the
    patches themselves."""
    top = result.top(c, n_units)
    if not top:
        raise ValueError(f"class {c} has no unit with a positive weight (mu={result.mu})")
    patches, _ = top_patches(model, data, [(l, u) for l, u, _ in top], k, patch, batch_size, progress)
    fig, axes = plt.subplots(len(top), k + 1, figsize=(1.3 * (k + 1), 1.4 * len(top)), squeeze=False)
    for i, (layer, unit, w) in enumerate(top):
        for j, img in enumerate([patches[i].mean(0)] + list(patches[i])):
            axes[i, j].imshow(_np_image(img))
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(f"{layer}:{unit}\nw={w:.2f}", fontsize=7)
    axes[0, 0].set_title("average", fontsize=8)
    name = result.class_names[c] if c < len(result.class_names) else f"class {c}"
    fig.suptitle(f"relevant units of {name}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_atlas(result: Atlas, title: str = "activation atlas"):
    """The atlas tiles, with the number of points per cell in small print."""
    g = result.counts.shape[0]
    p = result.image.shape[-1] // g
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(_np_image(result.image))
    for r in range(g):
        for col in range(g):
            if result.counts[r, col] > 0:
                ax.text(col * p + 1, r * p + 3, str(int(result.counts[r, col])), fontsize=5, color="w")
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
