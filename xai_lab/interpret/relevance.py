"""Relevant units (Oramas, Wang & Tuytelaars, "Visual explanation by interpretation", ICLR 2019).

For each image and each filter j of the chosen layers, its energy x_j = sum_{u,v} A_j(u,v)^2,
L1-normalised within the layer (:func:`filter_energy`, :func:`filter_energies`); then
W* = argmin_W ||X^T W - L^T||_F^2 s.t. ||w_j||_1 <= mu with L the one-hot labels
(:func:`l1_regression`, by FISTA with the exact L1-ball projection :func:`project_l1`). The relevant
units of class j are the non-zero entries of w_j (:func:`relevant_units` -> :class:`RelevantUnits`).
``xai_lab.explain.by_interpretation`` shows them on a test image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_float, check_int, images_of
from ..hooks import frozen, resolve_layers
from .probe import activation_batches

__all__ = ["filter_energy", "filter_energies", "project_l1", "l1_regression", "relevant_units",
           "RelevantUnits"]


def filter_energy(a: torch.Tensor) -> torch.Tensor:
    """``(B, K)``: the energy sum_{u,v} A_j(u,v)^2 of each unit of activations ``a (B, K, ...)``
    (``(B, K)`` taken as is, squared), L1-normalised over the K units of the layer."""
    e = a.pow(2).flatten(2).sum(2) if a.dim() > 2 else a.pow(2)
    return e / e.sum(1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def filter_energies(model: nn.Module, data_or_images, layers, batch_size: int = 64,
                    progress: bool = True) -> tuple[torch.Tensor, tuple]:
    """Per-image filter energies of Oramas et al. (ICLR 2019): ``X (N, D)`` and the
    ``(layer name, unit)`` of each of the D columns.

    x_{l,j} = sum_{u,v} A_{l,j}(u,v)^2, L1-normalised within each layer l, concatenated over
    ``layers`` (one or several modules or dotted names). The paper's X is this matrix transposed.
    """
    images = images_of(data_or_images, "data_or_images")
    names = list(resolve_layers(model, layers))
    chunks, widths = [], []
    with frozen(model):
        for _, acts in activation_batches(model, images, names, batch_size, progress, "energies"):
            chunks.append(torch.cat([filter_energy(acts[n]) for n in names], 1))
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
    mu = check_float("mu", mu, 0, open_low=True)
    max_iter = check_int("max_iter", max_iter)
    gram, xy = x.double().T @ x.double(), x.double().T @ y.double()  # (D, D), (D, C)
    step = 1 / (2 * torch.linalg.eigvalsh(gram)[-1].clamp_min(1e-300))
    w = torch.zeros_like(xy)
    z, t = w, torch.ones(1, xy.shape[1], dtype=xy.dtype)
    for _ in range(max_iter):
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
    if len(labels) != len(images_of(data)) or labels.min() < 0:
        raise ValueError(f"data.labels must hold one class index >= 0 per image, got {tuple(labels.shape)}")
    x, units = filter_energies(model, data, layers, batch_size, progress)
    names = tuple(getattr(data, "class_names", ()))
    y = F.one_hot(labels, max(len(names), int(labels.max()) + 1))
    return RelevantUnits(l1_regression(x, y, mu, nonnegative), units, float(mu), names)
