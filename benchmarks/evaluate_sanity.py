"""Benchmark rows for ``xai_lab.evaluate.sanity`` (called by ``benchmarks/bench_evaluate.py``).

- ``rank_correlation`` (Spearman of |maps|) and ``ssim`` of the context's 64 Grad-CAM maps against the
  64 saliency maps of the same images, vs the per-image loops Quantus 0.6.0 builds on:
  ``scipy.stats.spearmanr`` of each pair of flattened |maps|, and
  ``skimage.metrics.structural_similarity(win_size=7, data_range=1)`` of each pair of maps scaled
  to [0, 1] (our definition; Quantus's own ``ssim`` takes the data range of the pair unscaled).
  ``rank_correlation`` also vs Quantus's batched ``correlation_spearman`` (what its ``MPRT`` calls:
  ``spearmanr`` of the whole batch, a (2N x 2N) matrix, of which it keeps the diagonal block).
  No model runs: no floor; goal 10x the speed of Quantus, faster than a bare scipy/skimage loop;
  each call timed over ``NUMBER`` runs.
- ``model_randomisation`` of ``explain.saliency`` (cascading over all 9 layers with parameters,
  logits first, Spearman of |maps|) vs Quantus ``MPRT(layer_order="top_down", abs=True,
  normalise=False, similarity_func=correlation_spearman)`` with an ``explain_func`` that calls our
  saliency, and the original maps given as ``a_batch`` (both then compute 1 + 9 sets of maps), batch
  64. Its floor is not plain forwards but the 10 saliency calls themselves (the method's cost): the
  goal ``ours / floor <= 1.2`` says the randomisation and similarities add at most 20 %.
  Quantus re-initialises each layer after ``torch.manual_seed(seed + 1)``, as ``randomize`` does
  after ``torch.manual_seed(seed)``: ours with ``seed = s + 1`` gets the same weights as
  ``MPRT(seed=s)``, so the values can be compared layer for layer.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from xai_lab import evaluate as V, explain as E

NUMBER = 5      # runs per timed measurement of the similarities
SEED = 42       # Quantus MPRT's default seed


def spearman_loop(a, b):
    from scipy.stats import spearmanr
    return np.array([spearmanr(np.abs(p).ravel(), np.abs(q).ravel())[0] for p, q in zip(a, b)])


def ssim_loop(a, b, window=7):
    from skimage.metrics import structural_similarity

    def unit(m):
        lo, hi = m.min(), m.max()
        return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return np.array([structural_similarity(unit(p.astype(np.float64)), unit(q.astype(np.float64)),
                                           win_size=window, data_range=1.0) for p, q in zip(a, b)])


def quantus_spearman(a, b):
    from quantus.functions.similarity_func import correlation_spearman
    n = len(a)
    return correlation_spearman(np.abs(a).reshape(n, -1), np.abs(b).reshape(n, -1), batched=True)


def saliency_numpy(model, inputs, targets, **kwargs):
    """Quantus ``explain_func``: our saliency of numpy inputs, as ``(N, 1, H, W)`` numpy."""
    return E.saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()[:, None]


def rows(ctx, repeat):
    import quantus
    from quantus.functions.similarity_func import correlation_spearman
    warnings.filterwarnings("ignore")
    best_of, agreement, clock = ctx["best_of"], ctx["agreement"], ctx["clock"]
    model, x, y, cams = ctx["model"], ctx["x"], ctx["y"], ctx["maps"]
    sal = E.saliency(model, x, y)
    cn, sn = cams.numpy(), sal.numpy()
    out = []

    (ours_t, loop_t, q_t), (v_ours, v_loop, v_q) = best_of(
        [lambda: V.rank_correlation(cams, sal), lambda: spearman_loop(cn, sn), lambda: quantus_spearman(cn, sn)],
        repeat, clock, NUMBER)
    for t, v, name in ((loop_t, v_loop, "scipy spearmanr loop"), (q_t, v_q, "Quantus correlation_spearman")):
        # correlation_spearman is one batched scipy call, not a metric class: no per-image overhead, goal "faster"
        out.append({"metric": "rank_correlation (64 pairs of |maps|)", "ours": ours_t, "floor": None, "peer": t,
                    "peer_name": name, "values": agreement(v_ours, v), "goal": 1.0})

    (ours_t, loop_t), (v_ours, v_loop) = best_of([lambda: V.ssim(cams, sal), lambda: ssim_loop(cn, sn)],
                                                 repeat, clock, NUMBER)
    out.append({"metric": "ssim (64 pairs, window 7)", "ours": ours_t, "floor": None, "peer": loop_t,
                "peer_name": "skimage SSIM loop", "values": agreement(v_ours, v_loop)})

    layers = V.layers_top_down(model)
    mprt = quantus.MPRT(similarity_func=correlation_spearman, layer_order="top_down", seed=SEED, abs=True,
                        normalise=False, disable_warnings=True, display_progressbar=False)
    xn, yn, an = x.numpy(), y.numpy(), sal[:, None].numpy()

    def ours():
        return V.model_randomisation(model, x, y, E.saliency, mode="cascading", seed=SEED + 1,
                                     similarity="spearman_abs", batch_size=64, progress=False)

    def theirs():
        return mprt(model, xn, yn, an, channel_first=True, explain_func=saliency_numpy, batch_size=64)

    def floor():  # the maps alone: 1 + L saliency calls on the same images, batch 64
        for _ in range(len(layers) + 1):
            for k in range(0, len(x), 64):
                E.saliency(model, x[k:k + 64], y[k:k + 64])

    (ours_t, peer_t, floor_t), (result, scores, _) = best_of([ours, theirs, floor], repeat, clock)
    peer_values = np.array([scores[name] for name in result.layers])  # (L, N), Quantus's layer names
    same_layers = list(scores)[1:] == list(result.layers)
    out.append({"metric": f"model_randomisation (saliency, {len(layers)} layers)", "ours": ours_t,
                "floor": floor_t, "peer": peer_t, "peer_name": "Quantus MPRT",
                "values": agreement(result.scores["spearman_abs"], peer_values)
                + ("" if same_layers else f" (layer order differs: {list(scores)[1:]})"),
                "note": f"model_randomisation's floor: {len(layers) + 1} calls of explain.saliency on the "
                        f"64 images at batch 64 (the maps it must compute), not plain forwards."})
    return out
