"""Benchmark of xai_lab.explain (not a test): prints a table of times and ratios.

1. Perturbation methods on the flower CNN: ``occlusion`` and ``rise`` vs the time of the same number
   of plain forward passes (distinct images, no grad) at the best batch size (goal: ratio <= 1.2).
2. ``grad_cam``, ``integrated_gradients`` and ``lrp`` on a random ResNet-18, batch 8, 224 px, vs
   pytorch-grad-cam, Captum and Zennit with the same settings (goal: ratio <= 1.0).

Every time is the best of ``--repeat`` runs, ours and the peer's interleaved, measured in this run.
By default the clock is this process's CPU time with one torch thread (``--clock cpu --threads 1``):
on a shared machine wall-clock times of the same work varied 4x between runs, CPU time does not
count the time other processes hold the cores. ``--clock wall --threads 2`` measures wall time.
Run from the repository root:  ``.venv/bin/python benchmarks/bench_explain.py``  (a few minutes).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xai_lab import data, explain as E, models  # noqa: E402

warnings.filterwarnings("ignore")


CLOCK = time.process_time


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return min(times)


def interleaved(ours, theirs, repeat):
    """Best-of-``repeat`` times of two callables, run alternately (fair under a varying load)."""
    a, b = [], []
    for _ in range(repeat):
        a.append(best_time(ours, 1))
        b.append(best_time(theirs, 1))
    return min(a), min(b)


def plain_forwards(model, pool, total, batch_size):
    """``total`` no-grad forwards of distinct images (cycling through ``pool``) in batches."""
    with torch.no_grad():
        for k0 in range(0, total, batch_size):
            model(pool[torch.arange(k0, min(k0 + batch_size, total)) % len(pool)])


def best_batch_size(model, pool, sizes, repeat):
    """The batch size with the best plain forward time per image, and that time."""
    plain_forwards(model, pool, sizes[0], sizes[0])  # warm-up
    times = {bs: best_time(lambda: plain_forwards(model, pool, 2 * max(sizes), bs), repeat) / (2 * max(sizes))
             for bs in sizes}
    bs = min(times, key=times.get)
    return bs, times[bs]


def row(name, ours, ref, ref_name, goal):
    ratio = ours / ref
    flag = "ok" if ratio <= goal else "SLOWER"
    print(f"{name:38s} {ours:8.2f} {ref:8.2f}  {ref_name:30s} {ratio:5.2f}x  (goal <= {goal}) {flag}")


def perturbation(args):
    model = models.load("single")
    pool = data.flowers(512, "single", seed=0, split="test").images
    best_bs, per_image = best_batch_size(model, pool, [32, 64, 128, 256], args.repeat)
    print(f"flower CNN, 64 px: best plain forward {per_image * 1e3:.2f} ms/image at batch {best_bs}")
    x = pool[:args.n_flowers]
    y = models.predict(model, x)
    cases = {
        "occlusion (window 8, stride 4)": lambda bs: E.occlusion(model, x, y, window=8, stride=4, batch_size=bs),
        f"rise ({args.n_masks} masks)": lambda bs: E.rise(model, x, y, n_masks=args.n_masks, batch_size=bs),
    }
    for name, run in cases.items():
        with E.count_passes(model) as passes:
            run(best_bs)
        for bs in sorted({best_bs, 64}):  # the best plain batch size and the methods' default
            ours, ref = interleaved(lambda: run(bs), lambda: plain_forwards(model, pool, passes.forward, best_bs),
                                    args.repeat)
            row(f"{name}, batch {bs}", ours, ref, f"{passes.forward} plain forwards, batch {best_bs}", 1.2)


def peers(args):
    import torchvision
    from captum.attr import IntegratedGradients
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import Epsilon, Norm, Pass, ZBox
    from zennit.torchvision import ResNetCanonizer
    from zennit.types import Activation, AvgPool, Linear

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()  # parameters require grad, as a user's would
    x = torch.rand(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    y = torch.arange(args.batch) * 7
    with torch.no_grad():
        model(x)  # warm-up

    cam = GradCAM(model=model, target_layers=[model.layer4])
    targets = [ClassifierOutputTarget(int(t)) for t in y]
    ours, ref = interleaved(lambda: E.grad_cam(model, x, y, layer="layer4"),
                            lambda: cam(input_tensor=x, targets=targets), args.repeat)
    row("grad_cam (layer4)", ours, ref, "pytorch-grad-cam GradCAM", 1.0)
    cam.activations_and_grads.release()

    ig = IntegratedGradients(model)
    steps = args.ig_steps
    ours, ref = interleaved(
        lambda: E.integrated_gradients(model, x, y, steps=steps, batch_size=args.ig_batch),
        lambda: ig.attribute(x, target=y, n_steps=steps, method="riemann_middle",
                             internal_batch_size=args.ig_batch), args.repeat)
    row(f"integrated_gradients ({steps} steps)", ours, ref, "Captum IntegratedGradients", 1.0)

    composite = SpecialFirstLayerMapComposite(
        [(Activation, Pass()), (AvgPool, Norm()), (Linear, Epsilon(1e-6))], [(Linear, ZBox(0.0, 1.0))],
        canonizers=[ResNetCanonizer()])

    def zennit():
        with Gradient(model=model, composite=composite) as attributor:
            return attributor(x.clone().requires_grad_(), lambda out: torch.eye(1000)[y] * out)[1].sum(1)

    ours, ref = interleaved(lambda: E.lrp(model, x, y), zennit, args.repeat)
    row("lrp (epsilon, z^B input)", ours, ref, "Zennit, same rules", 1.0)
    a, b = E.lrp(model, x, y), zennit()
    with torch.no_grad():
        logit = model(x).gather(1, y[:, None])[:, 0]
    print(f"  lrp: sum of the map / target logit, median over images: ours "
          f"{float((a.sum((1, 2)) / logit).median()):.3g}, Zennit {float((b.sum((1, 2)) / logit).median()):.3g}; "
          f"max |difference| / max |ours| = {float((a - b).abs().max() / a.abs().max()):.3g}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--n-flowers", type=int, default=4, help="images for occlusion and RISE")
    parser.add_argument("--n-masks", type=int, default=250)
    parser.add_argument("--batch", type=int, default=8, help="ResNet-18 batch")
    parser.add_argument("--ig-steps", type=int, default=4)
    parser.add_argument("--ig-batch", type=int, default=32)
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} time "
          f"(seconds, best of {args.repeat})")
    print(f"{'method':38s} {'ours':>10s} {'reference':>10s}  {'':30s} {'ratio':>6s}")
    perturbation(args)
    peers(args)


if __name__ == "__main__":
    main()
