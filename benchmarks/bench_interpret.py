"""Network Dissection of the shipped ``single`` model: figures and timings for the report.

    python benchmarks/bench_interpret.py [--n 2000] [--layer features.14] [--units 5]

Prints the detectors per category, the best concept of the top units, the time of the full
dissection (thresholds + IoU pass) against one plain forward pass over the same images, and
the best compositional formulas of the top units, the relevant units per class, and the
detectors of every shipped model on its own variant's probe set.
"""
from __future__ import annotations

import argparse
import time

import torch

from xai_lab import data as flowers_data
from xai_lab import interpret, models
from xai_lab.course import report


def forward_time(model, images, batch_size):
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            model(images[i:i + batch_size])
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--layer", default="features.14")
    parser.add_argument("--units", type=int, default=5, help="top units to explain with formulas")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    data = flowers_data.flowers(args.n, "single", seed=3, split="test")
    model = models.load("single")
    bs = args.batch_size
    forward_time(model, data.images[:bs], bs)  # warm-up

    t_fwd = forward_time(model, data.images, bs)
    t0 = time.perf_counter()
    result = interpret.dissect(model, data, args.layer, batch_size=bs, progress=False)
    t_all = time.perf_counter() - t0
    thresholds = result.thresholds
    t0 = time.perf_counter()
    again = interpret.dissect(model, data, args.layer, thresholds=thresholds, batch_size=bs, progress=False)
    t_iou = time.perf_counter() - t0
    assert torch.equal(again.iou, result.iou)
    t_fwd2 = forward_time(model, data.images, bs)

    print(f"probe set: {args.n} images, layer {args.layer}, accuracy {models.evaluate(model, data):.3f}")
    print(f"forward pass (whole model, batch {bs}): {t_fwd:.2f} s before, {t_fwd2:.2f} s after")
    print(f"full dissection (threshold pass + IoU from the kept activations): {t_all:.2f} s "
          f"= {t_all / t_fwd:.2f} x the forward pass")
    print(f"IoU pass alone with given thresholds (forward again + counting): {t_iou:.2f} s")
    print(result.summary(10))
    print("unique detectors per category:", result.detectors_per_category(unique=True))
    print("detectors per concept:", result.detectors_per_concept())

    top = result.top(args.units).tolist()
    t0 = time.perf_counter()
    comps = interpret.compose_units(model, data, args.layer, top, thresholds, batch_size=bs, progress=False)
    t_comp = time.perf_counter() - t0
    for unit, comp in zip(top, comps):
        print(f"unit {unit:4d}: {comp}\n           beam: " + "; ".join(f"{f} {v:.3f}" for f, v in comp.beam))
    print(f"(compose_units for these {len(top)} units, masks pass included: {t_comp:.2f} s)")
    t0 = time.perf_counter()
    masks = interpret.unit_masks(model, data, args.layer, top[:1], thresholds, batch_size=bs, progress=False)
    t_masks = time.perf_counter() - t0
    t0 = time.perf_counter()
    interpret.compose(masks[:, 0], data.concepts, data.concept_names)
    print(f"(one unit from dense masks: unit_masks {t_masks:.2f} s, compose {time.perf_counter() - t0:.2f} s)")

    for mu in (5.0, 10.0, 20.0):
        t0 = time.perf_counter()
        rel = interpret.relevant_units(model, data, args.layer, mu=mu, batch_size=bs, progress=False)
        dt = time.perf_counter() - t0
        print(f"relevant units, mu={mu} [{dt:.1f} s]: " + "; ".join(
            f"{data.class_names[c].split()[0]}: " + ", ".join(f"{u}({w:.1f})" for _, u, w in rel.table(c))
            for c in range(data.num_classes)))
        for c in range(data.num_classes):
            labels = [f"{u}:{result.label_names[u]}" for _, u, w in rel.top(c, 3)]
            print(f"    {data.class_names[c]:<15} top units and their dissection labels: {labels}")

    print(f"\nevery shipped model, {args.layer}, {args.n} probe images of its own variant:")
    for name in models.available():
        probe = flowers_data.flowers(args.n, report.model_variant(name), seed=3, split="test")
        d = interpret.dissect(models.load(name), probe, args.layer, batch_size=bs, progress=False)
        top = ", ".join(f"{u}:{d.label_names[u]} {float(d.best_iou[u]):.3f}" for u in d.top(3).tolist())
        print(f"  {name:<10} {int(d.detectors.sum()):3d} detectors {d.detectors_per_category()}  "
              f"{d.detectors_per_concept()}  top: {top}")

if __name__ == "__main__":
    main()
