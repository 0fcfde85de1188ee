"""Why interpret and explain: the measurements of 00_foundations (reference implementations).

Accuracy overall, per class and per subgroup x class (the lecture's Fisher-vs-DeepNet and Gender
Shades tables), the Clever-Hans test of a watermark, and the top-activating images of a unit.
All functions take and return torch tensors; predictions are computed with ``models.predict``.
"""
from __future__ import annotations

import torch

__all__ = ["accuracy", "per_class_accuracy", "subgroup_accuracy", "largest_gap",
           "watermark_effect", "top_k_images", "unit_scores"]


def _check_1d_int(name, t, n=None):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 1 or t.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 1-D integer tensor, got shape {tuple(t.shape)} {t.dtype}")
    if n is not None and len(t) != n:
        raise ValueError(f"{name} must have length {n}, got {len(t)}")


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``pred == labels``, a float in [0, 1]."""
    _check_1d_int("pred", pred)
    _check_1d_int("labels", labels, len(pred))
    return (pred == labels).float().mean().item()


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K,)`` float: for each true class k, the fraction of its images predicted as k (NaN if none)."""
    _check_1d_int("pred", pred)
    _check_1d_int("labels", labels, len(pred))
    correct = torch.bincount(labels, weights=(pred == labels).double(), minlength=num_classes)
    count = torch.bincount(labels, minlength=num_classes).double()
    return (correct / count).float()  # 0/0 -> NaN: no image of that class


def subgroup_accuracy(pred, labels, group, num_classes: int, num_groups: int = 2) -> torch.Tensor:
    """``(G, K)`` float: accuracy on the images of group g and true class k (NaN if none)."""
    _check_1d_int("pred", pred)
    _check_1d_int("labels", labels, len(pred))
    _check_1d_int("group", group, len(pred))
    cell = group * num_classes + labels  # (N,) index of (group, class)
    return per_class_accuracy(torch.where(pred == labels, cell, -1), cell,
                              num_groups * num_classes).view(num_groups, num_classes)


def largest_gap(table: torch.Tensor) -> tuple[float, int]:
    """Largest accuracy gap between subgroups of one class, and that class: over the columns of a
    ``(G, K)`` table, max over classes of (max - min over groups), ignoring NaN cells."""
    if not isinstance(table, torch.Tensor) or table.dim() != 2:
        raise ValueError(f"table must be a 2-D tensor (groups, classes), got {table!r}")
    hi = torch.where(table.isnan(), -torch.inf, table).max(0).values
    lo = torch.where(table.isnan(), torch.inf, table).min(0).values
    gap = torch.nan_to_num(hi - lo, nan=0.0, posinf=0.0, neginf=0.0)
    k = int(gap.argmax())
    return gap[k].item(), k


def watermark_effect(pred, labels, watermark) -> tuple[float, float]:
    """Accuracy on images whose watermark names the true class, and on those where it names another."""
    _check_1d_int("watermark", watermark, len(labels))
    agree = watermark == labels
    correct = (pred == labels).float()
    return correct[agree].mean().item(), correct[~agree & (watermark >= 0)].mean().item()


def unit_scores(activations: torch.Tensor, unit: int, reduce: str = "max") -> torch.Tensor:
    """``(N,)`` score of channel ``unit`` per image of ``activations (N, C, H, W)``: max or mean."""
    if not isinstance(activations, torch.Tensor) or activations.dim() != 4:
        raise ValueError(f"activations must be a (N, C, H, W) tensor, got {getattr(activations, 'shape', activations)}")
    if not 0 <= unit < activations.shape[1]:
        raise ValueError(f"unit must be in [0, {activations.shape[1]}), got {unit}")
    a = activations[:, unit].flatten(1)  # (N, H*W)
    if reduce == "max":
        return a.max(1).values
    if reduce == "mean":
        return a.mean(1)
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")


def top_k_images(activations: torch.Tensor, unit: int, k: int = 8, reduce: str = "max") -> torch.Tensor:
    """Indices ``(k,)`` of the images where channel ``unit`` responds most, strongest first
    (ties broken by the lower index)."""
    scores = unit_scores(activations, unit, reduce)
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be in [1, {len(scores)}], got {k}")
    order = torch.sort(-scores, stable=True).indices  # descending, stable: ties by index
    return order[:k]
