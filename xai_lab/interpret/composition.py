"""Compositional explanations of neurons (Mu & Andreas, NeurIPS 2020).

A unit's binary mask M (as in Network Dissection, :func:`.dissection.unit_masks`) is explained by
a logical formula F over concept masks with AND, OR and AND NOT (:class:`Leaf`, :class:`Formula`),
found by beam search on IoU(M, F) = sum_x |M ∩ F| / sum_x |M ∪ F| over the whole probe set:
beam 5, formulas of up to 3 concepts, starting from the top-5 single concepts (:func:`compose`;
for units of a model over a probe set :func:`compose_units`, :func:`compose_unit`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import check_int
from .concepts import Concepts, concept_patterns, iou_scores
from .dissection import unit_masks

__all__ = ["compose", "compose_unit", "compose_units", "Composition", "Leaf", "Formula", "OPERATORS"]

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
    patterns, inverse = concept_patterns(concepts.bool())
    return _search(patterns, inverse, masks, tuple(names), *search)


def compose_units(model: nn.Module, data, layer, units, thresholds: torch.Tensor | None = None,
                  quantile: float = 0.005, beam: int = 5, max_length: int = 3, operators=OPERATORS,
                  batch_size: int = 64, progress: bool = True) -> list:
    """:func:`compose` for several ``units`` of ``layer`` over a probe set (as for :func:`dissect`):
    their masks in one pass (pass ``Dissection.thresholds`` to skip the threshold pass), the
    concept patterns once (from the label maps when the data has them). A list of Compositions."""
    search = _check_search(beam, max_length, operators)
    src = Concepts.of(data)
    masks = unit_masks(model, data, layer, units, thresholds, quantile, src.size, batch_size, progress)
    patterns, inverse = src.patterns()
    return [_search(patterns, inverse, masks[:, j], src.names, *search) for j in range(masks.shape[1])]


def compose_unit(model: nn.Module, data, layer, unit: int, thresholds: torch.Tensor | None = None,
                 quantile: float = 0.005, beam: int = 5, max_length: int = 3, operators=OPERATORS,
                 batch_size: int = 64, progress: bool = True) -> Composition:
    """:func:`compose_units` for one unit."""
    unit = check_int("unit", unit, 0)
    return compose_units(model, data, layer, [unit], thresholds, quantile, beam, max_length, operators,
                         batch_size, progress)[0]


# ------------------------------------------------------------------------------------------------
# the beam search, on the concept patterns of the pixels
# ------------------------------------------------------------------------------------------------
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


def _score(truth: torch.Tensor, in_unit: torch.Tensor, total: torch.Tensor, unit_size) -> torch.Tensor:
    """IoU of formulas given by their truth on the patterns ``(..., U)``: I / (|F| + |M| - I) with
    I = sum of ``in_unit`` (pixels of M per pattern) and |F| = sum of ``total`` where F holds."""
    t = truth.double()
    return iou_scores(t @ in_unit, t @ total, unit_size)


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


def _check_search(beam, max_length, operators) -> tuple:
    beam = check_int("beam", beam)
    max_length = check_int("max_length", max_length)
    if isinstance(operators, str) or not operators or any(op not in _APPLY for op in operators):
        raise ValueError(f"operators must be a non-empty subset of {OPERATORS}, got {operators!r}")
    return beam, max_length, tuple(operators)
