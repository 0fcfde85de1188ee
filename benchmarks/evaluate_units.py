"""Benchmark rows for ``xai_lab.evaluate.units`` (called by ``benchmarks/bench_evaluate.py``).

On ``N_FLOWERS`` test flowers (seed 1), layer ``features.14`` (the ReLU after the last conv, 128
units) and ``K_UNITS`` units drawn by ``torch.randperm`` (seed 0):

- ``ablate_units``: floor = the ``N * (K + 1)`` no-grad forwards it must run (the context's floor).
- ``semantic_coverage``: floor = ``N`` no-grad forwards as far as the layer (``normalize`` and
  ``features``; the pooling and ``fc`` are not needed), at the best batch size.

Both at their default batch size (64) and at the best batch size of plain forwards when it differs
(see ``evaluate_ablation.py``: on this machine a batch of 256 64-px images is slower per image). No library implements either metric: no peer.
``ablate_units``'s accuracies are checked against a plain loop over the K + 1 steps (a forward hook
zeroing the switched-off units, one pass over the data per step).
"""
from __future__ import annotations

import torch
from torch import nn

from xai_lab import data as flowers_data, evaluate as V
from xai_lab.hooks import forward_to

LAYER, N_FLOWERS, K_UNITS = "features.14", 256, 16


def reference_ablation(model, images, labels, module, width, order, batch_size):
    """Accuracy after k = 0..K units off, one pass over the images per step."""
    acc = []
    for k in range(len(order) + 1):
        keep = torch.ones(width)
        keep[order[:k]] = 0
        handle = module.register_forward_hook(lambda m, i, out: out * keep.view(1, -1, 1, 1))
        try:
            with torch.no_grad():
                pred = torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
        finally:
            handle.remove()
        acc.append(float((pred == labels).float().mean()))
    return torch.tensor(acc)


def rows(ctx, repeat):
    best_of, agreement, clock, floor = ctx["best_of"], ctx["agreement"], ctx["clock"], ctx["floor"]
    model, best_bs = ctx["model"], ctx["best_batch_size"]
    data = flowers_data.flowers(N_FLOWERS, "single", seed=1, split="test")
    data.concepts  # noqa: B018 (built once and cached, not part of the metric's time)
    module = dict(model.named_modules())[LAYER]
    width = int(forward_to(model, data.images[:1], LAYER)[LAYER].shape[1])
    order = torch.randperm(width, generator=torch.Generator().manual_seed(0))[:K_UNITS]
    out = []

    n_images = N_FLOWERS * (K_UNITS + 1)
    ref = reference_ablation(model, data.images, data.labels, module, width, order, best_bs)
    for bs in sorted({64, best_bs}, reverse=True):
        (ours_t,), (res,) = best_of([lambda: V.ablate_units(model, data, LAYER, order, batch_size=bs)], repeat, clock)
        out.append({"metric": f"ablate_units ({K_UNITS} units, {N_FLOWERS} imgs, batch {bs})", "ours": ours_t,
                    "floor": floor(n_images), "peer": None, "peer_name": None,
                    "values": f"no peer (none in a library); accuracy {float(res.accuracy[0]):.3f} -> "
                              f"{float(res.accuracy[-1]):.3f}; per-step loop: {agreement(res.accuracy, ref)}"})

    trunk = nn.Sequential(model.normalize, model.features)  # FlowerCNN's forward up to features.14

    def to_layer():
        with torch.no_grad():
            for i in range(0, N_FLOWERS, best_bs):
                trunk(data.images[i:i + best_bs])

    for bs in sorted({64, best_bs}, reverse=True):
        (ours_t, floor_t), (cov, _) = best_of(
            [lambda: V.semantic_coverage(model, data, LAYER, order, batch_size=bs), to_layer], repeat, clock)
        top = ", ".join(f"{c} {iou:.2f}" for c, iou, _ in cov.top(2))
        out.append({"metric": f"semantic_coverage ({K_UNITS} units, {N_FLOWERS} imgs, batch {bs})",
                    "ours": ours_t, "floor": floor_t, "peer": None, "peer_name": None,
                    "values": f"no peer (none in a library); top IoU: {top}"})
    out[-1]["note"] = (f"semantic_coverage's floor: {N_FLOWERS} no-grad forwards through normalize + features "
                       f"(up to {LAYER}) at batch {best_bs}.")
    return out
