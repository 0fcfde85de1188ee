"""Benchmark rows for ``xai_lab.evaluate.ablation`` (called by ``benchmarks/bench_evaluate.py``).

- ``aopc`` / ``morf_curve`` (8 x 8 regions, all 64 of a 64 px image) vs Quantus 0.6.0
  ``RegionPerturbation`` (``patch_size=8``, ``regions_evaluation=64``, ``perturb_baseline=0.5``,
  logits);
- ``deletion`` (64 pixels a step) vs Quantus ``PixelFlipping`` (constant baseline 0.5, softmax);
- ``insertion`` (64 pixels a step, blur 11 / 5): Quantus 0.6.0 has no insertion metric, floor only.

Each with the floor: the same number of distinct images through the model, no grad, at the best
batch size. Ours runs at its default batch size (64) and at that best batch size when it differs
(the peer, whose time does not depend on ours, is timed once for both). The default was 256 until
this benchmark showed that on this machine a forward of 256 64-px images takes about twice as long
per image as one of 32-64, nearly all of it system time (glibc hands the > 32 MB activation
buffers back to the kernel after each layer and page-faults them in again on the next batch).

Where the definitions coincide. Quantus sorts with ``np.argsort`` (not stable), so ties (Grad-CAM's
zeros) may be ordered differently: Quantus gets the map re-encoded without ties in our order (the
same regions/pixels in the same order). PixelFlipping orders and flips *features* (channel
values), and requires ``features_in_step`` to divide ``H * W``; to make it flip whole pixels,
``step`` per iteration, it sees each image as one channel ``(N, 1, 3H, W)`` (a model wrapper puts
the channels back) and a map whose three channel values of a pixel are adjacent in the order.
Quantus's curves have no step 0: its region curve is ``f(x) - f(x^(k))`` for ``k = 1..L``
(``curve.drop()[:, 1:]``), its pixel-flipping curve ``f(x^(k))`` for ``k = 1..S``.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from xai_lab import evaluate as V

REGION, STEP = 8, 64


class AsOneChannel(nn.Module):
    """``model`` for images given as ``(N, 1, C*H, W)`` (what Quantus PixelFlipping is shown)."""

    def __init__(self, model, shape):
        super().__init__()
        self.model, self.shape = model, tuple(shape)
        self.training = model.training  # Quantus wants eval mode; the model's own mode is not touched

    def forward(self, z):
        return self.model(z.reshape(len(z), *self.shape))


def stable_rank(values, descending=True):
    """``(N, P)`` position of each entry in its row's order (ties: lower index first)."""
    order = values.sort(dim=1, descending=descending, stable=True).indices
    return torch.empty_like(order).scatter_(1, order, torch.arange(values.shape[1]).expand_as(order))


def region_map(maps, region):
    """The map with each region's pixels set to ``R - rank`` of its summed relevance (no ties)."""
    n, h, w = maps.shape
    rh, rw = h // region, w // region
    rank = stable_rank(maps.view(n, rh, region, rw, region).sum((2, 4)).flatten(1))  # (N, R)
    value = (rh * rw - rank).float().view(n, rh, 1, rw, 1)
    return value.expand(n, rh, region, rw, region).reshape(n, 1, h, w)


def channel_map(maps, channels):
    """``(N, 1, C*H, W)``: the three channel values of a pixel adjacent in the map's order."""
    n, h, w = maps.shape
    rank = stable_rank(maps.flatten(1))  # (N, H*W)
    value = channels * (h * w - rank)[:, None, :] - torch.arange(channels)[None, :, None]  # (N, C, H*W)
    return value.float().reshape(n, 1, channels * h, w)


def best_of(fns, repeat, clock):
    """Best-of-``repeat`` times of the callables, run interleaved; and the last results."""
    times, out = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeat):
        for j, fn in enumerate(fns):
            t0 = clock()
            out[j] = fn()
            times[j].append(clock() - t0)
    return [min(t) for t in times], out


def agreement(ours, peer):
    err = float((torch.as_tensor(ours, dtype=torch.float64) - torch.as_tensor(peer, dtype=torch.float64)).abs().max())
    return f"equal to {max(err, 1e-12):.0e}" if err < 1e-4 else f"differ: max |diff| {err:.2e}"


def rows(ctx, repeat):
    import quantus
    warnings.filterwarnings("ignore")
    model, x, y, maps, clock, floor = ctx["model"], ctx["x"], ctx["y"], ctx["maps"], ctx["clock"], ctx["floor"]
    n, c, h, w = x.shape
    batch_sizes = tuple(sorted({64, ctx["best_batch_size"]}, reverse=True))  # default, best plain
    xn, yn = x.numpy(), y.numpy()
    out = []

    n_regions = (h // REGION) * (w // REGION)
    region = quantus.RegionPerturbation(patch_size=REGION, order="morf", regions_evaluation=n_regions,
                                        perturb_baseline=0.5, normalise=False, abs=False, disable_warnings=True)
    a_region = region_map(maps, REGION).numpy()
    n_images = n * (n_regions + 1)
    # Quantus runs once per measurement (its time does not depend on our batch size)
    times, (*curves, peer) = best_of([
        *(lambda bs=bs: V.morf_curve(model, x, y, maps, region=REGION, batch_size=bs) for bs in batch_sizes),
        lambda: region(model, xn, yn, a_region, channel_first=True, softmax=False, batch_size=n)], repeat, clock)
    for bs, ours_t, curve in zip(batch_sizes, times, curves):
        out.append({"metric": f"morf_curve + aopc (8x8 regions, batch {bs})", "ours": ours_t,
                    "floor": floor(n_images), "peer": times[-1], "peer_name": "Quantus RegionPerturbation",
                    "values": agreement(curve.drop()[:, 1:], peer)})

    flip = quantus.PixelFlipping(features_in_step=c * STEP, perturb_baseline=0.5, normalise=False, abs=False,
                                 disable_warnings=True)
    wrapped = AsOneChannel(model, (c, h, w))
    xq, a_pixels = x.reshape(n, 1, c * h, w).numpy(), channel_map(maps, c).numpy()
    n_images = n * (-(-h * w // STEP) + 1)
    times, (*curves, peer) = best_of([
        *(lambda bs=bs: V.deletion(model, x, y, maps, step=STEP, batch_size=bs) for bs in batch_sizes),
        lambda: flip(wrapped, xq, yn, a_pixels, channel_first=True, batch_size=n)], repeat, clock)
    for bs, ours_t, curve in zip(batch_sizes, times, curves):
        out.append({"metric": f"deletion (64 px a step, batch {bs})", "ours": ours_t, "floor": floor(n_images),
                    "peer": times[-1], "peer_name": "Quantus PixelFlipping",
                    "values": agreement(curve.scores[:, 1:], peer)})

    times, _ = best_of([lambda bs=bs: V.insertion(model, x, y, maps, step=STEP, batch_size=bs)
                        for bs in batch_sizes], repeat, clock)
    for bs, ours_t in zip(batch_sizes, times):
        out.append({"metric": f"insertion (64 px a step, batch {bs})", "ours": ours_t, "floor": floor(n_images),
                    "peer": None, "peer_name": None, "values": "no peer (Quantus 0.6.0 has no insertion)"})
    return out
