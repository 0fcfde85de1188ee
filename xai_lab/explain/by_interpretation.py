"""Explanation by interpretation (Oramas, Wang, Tuytelaars, ICLR 2019).

The interpretation step, :func:`xai_lab.interpret.relevant_units`, finds the units relevant to each
class; :func:`by_interpretation` shows the most relevant of them on a test image, each visualised
with deconvnet (the ReLU rule of :mod:`.gradient`) from its own feature map.
"""
from __future__ import annotations

import torch

from ..checks import check_choice, check_int
from ..hooks import taps
from ..interpret.relevance import RelevantUnits, filter_energy, relevant_units
from .base import REDUCE, chunks, default_layer, finish, session
from .gradient import relu_rule

__all__ = ["minmax", "unit_scores", "by_interpretation"]


def minmax(maps):
    """Each ``(H, W)`` map of ``(N, H, W)`` scaled to [0, 1] (a constant map becomes 0)."""
    low = maps.flatten(1).amin(1)[:, None, None]
    span = maps.flatten(1).amax(1)[:, None, None] - low
    return torch.where(span > 0, (maps - low) / span.clamp(min=torch.finfo(maps.dtype).tiny), 0.0)


def unit_scores(relevant, energies, classes):
    """``(B, D)`` test-time unit scores (``RelevantUnits.scores``) of each image for its class."""
    scores = torch.empty_like(energies)
    for c in classes.unique().tolist():  # a loop over classes, not images
        rows = classes == c
        scores[rows] = relevant.scores(energies[rows], c).to(energies)
    return scores.nan_to_num(nan=0.0)  # weights summing to 0: no unit scores


def _batch(model, x, classes, relevant, names, k, reduce):
    """``(B, H, W)`` maps of :func:`by_interpretation` for one batch: one forward, <= k backward."""
    xi = x.detach().requires_grad_(True)
    with taps(model, names, mode="graph", once=True) as tapped, torch.enable_grad():
        model(xi)
    missing = [name for name in names if tapped[name].value is None]
    if missing:
        raise ValueError(f"layers {missing} of relevant did not run in the model's forward")
    acts = [tapped[name].value for name in names]  # (B, K_l, h_l, w_l) each, in the graph down to xi
    columns = tuple((name, j) for name, a in zip(names, acts) for j in range(a.shape[1]))
    if columns != tuple(relevant.units):
        raise ValueError(f"relevant was fitted on other layers or another model: its {len(relevant.units)} "
                         f"units do not match the {len(columns)} units of layers {names} here")
    energies = torch.cat([filter_energy(a.detach().float()) for a in acts], 1).cpu()  # (B, D)
    top = unit_scores(relevant, energies, classes.cpu()).topk(min(k, len(columns)), dim=1)
    keep = (top.values > 0).to(x.device)  # (B, k) units with a positive score, best first
    layer_of = torch.tensor([names.index(name) for name, _ in columns])[top.indices].to(x.device)  # (B, k)
    unit_of = torch.tensor([j for _, j in columns])[top.indices].to(x.device)
    out = torch.zeros(len(x), *x.shape[-2:], device=x.device)
    for j in range(top.indices.shape[1]):
        if not keep[:, j].any():
            break  # scores are sorted: no image has a j-th positive unit, nor a later one
        signals = []  # the unit's own feature map, every other unit zero (Zeiler & Fergus)
        for layer, a in enumerate(acts):
            rows = (keep[:, j] & (layer_of[:, j] == layer)).nonzero()[:, 0]
            s = torch.zeros_like(a)
            s[rows, unit_of[rows, j]] = a.detach()[rows, unit_of[rows, j]]
            signals.append(s)
        (g,) = torch.autograd.grad(acts, xi, signals, retain_graph=True)
        maps = minmax(REDUCE[reduce](g))  # (B, H, W)
        out = torch.where(keep[:, j, None, None], torch.maximum(out, maps), out)
    return out


def by_interpretation(model, x, target, relevant=None, data=None, layers=None, k=3, mu=10.0,
                      reduce="abs_max", batch_size=64, progress=False, normalise=False):
    """Explanation by interpretation (Oramas, Wang, Tuytelaars, ICLR 2019).

    The relevant units of each class come from the interpretation step,
    :func:`xai_lab.interpret.relevant_units` (L1-constrained regression of the labels on filter
    energies): pass the fitted ``relevant`` (a ``RelevantUnits``), or a probe set ``data`` (with
    ``images`` and ``labels``) to fit it here on ``layers`` (default: the last module of
    ``model.features``) with ``mu``. A test image is explained through them: its filter energies
    x (sum of squared activations per unit, L1-normalised per layer) are L2-normalised and scored
    s_i = x_i w_{i,c} / sum_i w_{i,c} for its target class c (``RelevantUnits.scores``); each of
    the ``k`` units with the largest positive scores is visualised with deconvnet from the test
    image (its own feature map sent down, every other unit zero, R_l = max(R, 0) at each ReLU;
    ``reduce`` as in :func:`~xai_lab.explain.saliency`), the maps are min-max normalised and
    combined by pixel-wise maximum. Values in [0, 1]; an image whose class has no unit with a
    positive score gets a zero map.

    ``target``: an int or a LongTensor (N,) of classes (a callable cannot choose units). Needs
    ``nn.ReLU`` modules, like :func:`~xai_lab.explain.deconvnet`. Per batch of ``batch_size``
    images: one forward and up to ``k`` backward passes from the units' layers down to the input.
    """
    k = check_int("k", k)
    check_choice("reduce", reduce, REDUCE)
    batch_size = check_int("batch_size", batch_size)
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be an int class index or a LongTensor (N,) for by_interpretation "
                        f"(the class chooses the relevant units), got {type(target).__name__}")
    if (relevant is None) == (data is None):
        raise ValueError("by_interpretation needs relevant (a fitted interpret.RelevantUnits) or data (a "
                         f"probe set to fit one on), got {'both' if data is not None else 'neither'}")
    if relevant is not None and not isinstance(relevant, RelevantUnits):
        raise TypeError(f"relevant must be an interpret.RelevantUnits, got {type(relevant).__name__}")
    if relevant is not None and layers is not None:
        raise ValueError("layers goes with data: relevant already names the layers it was fitted on")
    with session(model, x, target) as (x, tgt):
        if relevant is None:
            relevant = relevant_units(model, data, default_layer(model) if layers is None else layers,
                                      mu=mu, batch_size=batch_size, progress=progress)
        n, n_classes = len(x), relevant.weights.shape[1]
        classes = tgt.pos if isinstance(tgt.pos, torch.Tensor) else torch.full((n,), tgt.pos)
        if classes.max() >= n_classes:
            raise ValueError(f"target must be a class index < {n_classes} (relevant was fitted for "
                             f"{n_classes} classes), got {int(classes.max())}")
        names = list(dict.fromkeys(name for name, _ in relevant.units))  # layers, in column order
        maps = []
        with relu_rule(model, "deconvnet", "by_interpretation"):  # inside: layer names give the stand-ins
            for rows in chunks(n, batch_size, progress, "by interpretation"):
                maps.append(_batch(model, x[rows.to(x.device)], classes[rows], relevant, names, k, reduce))
    return finish(torch.cat(maps), normalise)
