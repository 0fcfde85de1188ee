"""Benchmark rows for ``xai_lab.evaluate.localisation`` (called by ``benchmarks/bench_evaluate.py``).

The 64 Grad-CAM maps of the context against the flowers' ground-truth masks and boxes; no model
runs, so there is no floor; the goal is 10x the speed of Quantus, faster than a bare SciPy loop
(``box_iou``). Every call is timed over
``NUMBER`` runs (a call takes milliseconds).

- ``pointing_game`` vs Quantus 0.6.0 ``PointingGame``; ``relevance_mass`` vs ``RelevanceMassAccuracy``
  and vs ``AttributionLocalisation(positive_attributions=True)`` (the same sum of the positive
  relevance in the mask over the total, up to Quantus's ``+ 1e-9`` in the denominator);
  ``relevance_rank`` vs ``RelevanceRankAccuracy``. All with ``abs=False, normalise=False``.
- ``box_iou`` vs the CAM protocol as a per-image loop with ``scipy.ndimage.label`` (threshold at
  0.2 max, largest 8-connected component, its bounding box, IoU with the ground-truth box).
- ``mask_iou``: no peer (Quantus has no IoU of a binarised map); checked against NumPy.

Where the definitions differ (localisation.py's docstrings): Quantus's pointing game counts a hit
if *any* tied maximum is in the mask (ours shares ties), its rank accuracy breaks ties at the K-th
value by an unstable ``np.argsort`` (ours shares them), and ``RelevanceMassAccuracy`` sums signed
values (ours only positive ones). So the maps fed to both must be non-negative and tie-free at the
maximum and the K-th value: Grad-CAM maps are non-negative (ReLU); if any has such a tie, both sides
get the maps re-encoded by their (stable) rank, which keeps the order and removes every tie.
Quantus ``TopKIntersection`` (the share of the top ``k`` pixels in the mask, one ``k`` for all
images) is ``relevance_rank`` only if every mask has ``k`` pixels; it is not compared.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch

from xai_lab import evaluate as V

NUMBER = 10  # runs per timed measurement


def tie_free(maps, masks):
    """``(maps, changed)``: ``maps`` if no map has a tie at its maximum or at its K-th largest value
    (K = mask size), else every map re-encoded as ``H*W - stable rank`` (no ties, same order)."""
    a = maps.flatten(1)
    k = masks.flatten(1).sum(1)
    ranked = a.sort(dim=1, descending=True, stable=True).values
    at_k = ranked.gather(1, (k - 1)[:, None])
    ties = ((a == a.amax(1, keepdim=True)).sum(1) > 1) | ((a == at_k).sum(1) > 1)
    if not ties.any():
        return maps, 0
    order = a.sort(dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(a.shape[1]).expand_as(order))
    return (a.shape[1] - rank).float().view_as(maps), int(ties.sum())


def cam_box_iou_scipy(maps, boxes, threshold=0.2):
    """The CAM protocol per image: pixels >= threshold * max (all if max <= 0), largest
    8-connected component (``scipy.ndimage.label``, the first of equal size), its box, IoU."""
    from scipy import ndimage
    eight = np.ones((3, 3), dtype=bool)
    out = np.empty(len(maps))
    for i, (a, g) in enumerate(zip(maps, boxes)):
        top = a.max()
        keep = a >= threshold * top if top > 0 else np.ones(a.shape, dtype=bool)
        lab, _ = ndimage.label(keep, structure=eight)
        comp = lab == np.bincount(lab.ravel())[1:].argmax() + 1
        ys, xs = np.nonzero(comp)
        b = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
        lo, hi = np.maximum(b[:2], g[:2]), np.minimum(b[2:], g[2:])
        inter = np.prod(np.clip(hi - lo, 0, None))
        out[i] = inter / (np.prod(b[2:] - b[:2]) + np.prod(g[2:] - g[:2]) - inter)
    return out


def mask_iou_numpy(maps, masks, threshold=0.2):
    top = maps.reshape(len(maps), -1).max(1)[:, None, None]
    keep = (maps >= threshold * top) | (top <= 0)
    return (keep & masks).sum((1, 2)) / (keep | masks).sum((1, 2))


def rows(ctx, repeat):
    import quantus
    warnings.filterwarnings("ignore")
    best_of, agreement, clock = ctx["best_of"], ctx["agreement"], ctx["clock"]
    x, y, masks, boxes = ctx["x"], ctx["y"], ctx["masks"], ctx["boxes"]
    maps, changed = tie_free(ctx["maps"], masks)
    if float(maps.min()) < 0:
        raise ValueError("the localisation rows need non-negative maps (Quantus sums signed relevance)")
    how = "" if not changed else f" (maps rank-encoded: {changed} had ties)"
    xn, yn = x.numpy(), y.numpy()
    an, sn = maps[:, None].numpy(), masks[:, None].numpy().astype(np.float32)
    common = dict(abs=False, normalise=False, disable_warnings=True)
    with contextlib.redirect_stdout(io.StringIO()):  # AttributionLocalisation prints about abs=False
        attribution_localisation = quantus.AttributionLocalisation(positive_attributions=True, weighted=False,
                                                                   max_size=1.0, **common)
    peers = [
        ("pointing_game", lambda: V.pointing_game(maps, masks), "Quantus PointingGame", quantus.PointingGame(**common)),
        ("relevance_mass", lambda: V.relevance_mass(maps, masks), "Quantus RelevanceMassAccuracy",
         quantus.RelevanceMassAccuracy(**common)),
        ("relevance_mass", lambda: V.relevance_mass(maps, masks), "Quantus AttributionLocalisation",
         attribution_localisation),
        ("relevance_rank", lambda: V.relevance_rank(maps, masks), "Quantus RelevanceRankAccuracy",
         quantus.RelevanceRankAccuracy(**common)),
    ]
    out = []
    for name, ours, peer_name, metric in peers:
        def theirs(metric=metric):
            return metric(None, xn, yn, an, sn, channel_first=True, batch_size=len(xn))
        (ours_t, peer_t), (v_ours, v_peer) = best_of([ours, theirs], repeat, clock, NUMBER)
        out.append({"metric": f"{name} (64 maps)", "ours": ours_t, "floor": None, "peer": peer_t,
                    "peer_name": peer_name, "values": agreement(v_ours, np.asarray(v_peer)) + how})
    out[-1]["note"] = ("Quantus TopKIntersection (share of the top k pixels in the mask, one k for all "
                       "images) is relevance_rank only where k = |mask|; the masks here have "
                       f"{int(masks.flatten(1).sum(1).min())}-{int(masks.flatten(1).sum(1).max())} pixels: "
                       "not compared.")

    mn, bn = maps.numpy(), boxes.numpy().astype(np.float64)
    (ours_t, peer_t), (v_ours, v_peer) = best_of([lambda: V.box_iou(maps, boxes),
                                                  lambda: cam_box_iou_scipy(mn, bn)], repeat, clock, NUMBER)
    out.append({"metric": "box_iou (64 maps, 8-connected)", "ours": ours_t, "floor": None, "peer": peer_t,
                "peer_name": "SciPy ndimage.label loop", "values": agreement(v_ours, v_peer)})

    (ours_t,), (v_ours,) = best_of([lambda: V.mask_iou(maps, masks)], repeat, clock, NUMBER)
    out.append({"metric": "mask_iou (64 maps)", "ours": ours_t, "floor": None, "peer": None, "peer_name": None,
                "values": "no peer (none in Quantus 0.6.0); NumPy reference: "
                          + agreement(v_ours, mask_iou_numpy(mn, masks.numpy()))})
    return out
