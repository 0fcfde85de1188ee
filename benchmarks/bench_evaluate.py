"""Benchmark of xai_lab.evaluate (not a test): prints one table of times, ratios and value agreement.

Each part of ``xai_lab.evaluate`` has its rows in ``benchmarks/evaluate_<part>.py`` (a function
``rows(ctx, repeat)`` returning dicts ``{metric, ours, floor, peer, peer_name, values}``); this
driver builds the shared context once, runs the parts and prints one table:

- ``floor``: for a metric that runs the model, the time of the same number of distinct images
  through the model, no grad, at the best batch size (of 32/64/128/256, measured once here), or
  the part's own floor named in a note below the table. Goal: ``ours / floor <= 1.2``.
- ``peer``: the same metric in a published library (Quantus 0.6.0) or the per-image SciPy /
  scikit-image loop it uses, on the same maps. Goal: faster than the peer, and at least 10x
  faster than Quantus for metrics that do not run a model (there Quantus's per-image Python
  overhead dominates). Against a bare loop of C routines (``spearmanr``, skimage's SSIM,
  ``ndimage.label``, Quantus's batched ``correlation_spearman``) on 64 x 64 maps there is little
  overhead to remove: the goal is "faster" (a part may set a row's ``goal``).
- ``values``: whether our values equal the peer's, else the difference and why.

Context: the shipped ``single`` model, 64 test flowers, their predicted classes as targets, Grad-CAM
maps, the data's masks and boxes. Every time is the best of ``--repeat`` runs, ours and the peer's
interleaved. By default the clock is this process's CPU time with one torch (and BLAS) thread
(``--clock cpu --threads 1``): on a shared machine wall-clock times vary several-fold between runs,
CPU time does not count the time other processes hold the cores. ``--clock wall --threads 2``
measures wall time. Run from the repository root (``xai-lab bench evaluate`` runs it with the
defaults):  ``.venv/bin/python benchmarks/bench_evaluate.py [--repeat 3] [--parts sanity units]``
(a few minutes).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from xai_lab import data, explain as E, models  # noqa: E402

warnings.filterwarnings("ignore")

ORDER = ("localisation", "sanity", "ablation", "units", "agreement")  # others follow alphabetically
FLOOR_GOAL = 1.2


def available_parts() -> list[str]:
    found = [p.stem.removeprefix("evaluate_") for p in HERE.glob("evaluate_*.py")]
    return sorted(found, key=lambda p: (ORDER.index(p) if p in ORDER else len(ORDER), p))


def best_of(fns, repeat, clock, number=1):
    """Best-of-``repeat`` times of the callables (each run ``number`` times per measurement, the
    time divided by ``number``), interleaved; and the last results."""
    times, out = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeat):
        for j, fn in enumerate(fns):
            t0 = clock()
            for _ in range(number):
                out[j] = fn()
            times[j].append((clock() - t0) / number)
    return [min(t) for t in times], out


def plain_forwards(model, pool, total, batch_size):
    """``total`` no-grad forwards of distinct images (cycling through ``pool``) in batches."""
    with torch.no_grad():
        for k0 in range(0, total, batch_size):
            model(pool[torch.arange(k0, min(k0 + batch_size, total)) % len(pool)])


def agreement(ours, peer, tol=1e-7):
    """``"equal to 1e-7"`` if the values (NaN where both are NaN) agree to ``tol``, else the
    largest difference."""
    a = torch.as_tensor(ours, dtype=torch.float64).flatten()
    b = torch.as_tensor(peer, dtype=torch.float64).flatten()
    if a.shape != b.shape:
        return f"differ: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    if not torch.equal(nan_a, nan_b):
        return f"differ: NaN at {int((nan_a ^ nan_b).sum())} of {len(a)} values"
    err = float((a - b)[~nan_a].abs().max()) if (~nan_a).any() else 0.0
    return f"equal to {tol:.0e}" if err <= tol else f"max |diff| {err:.1e}"


def context(args, clock):
    """What every part shares (built once)."""
    model = models.load("single")
    flowers = data.flowers(64, "single", seed=0, split="test")
    pool = data.flowers(512, "single", seed=0, split="test").images
    x = flowers.images
    y = models.predict(model, x)
    maps = E.grad_cam(model, x, y)

    sizes = (32, 64, 128, 256)
    plain_forwards(model, pool, 256, 256)  # warm-up
    per_image = {bs: best_of([lambda: plain_forwards(model, pool, 2 * max(sizes), bs)], args.repeat, clock)[0][0]
                 / (2 * max(sizes)) for bs in sizes}
    best_bs = min(per_image, key=per_image.get)
    floors = {}

    def floor(n_images):
        """Time of ``n_images`` distinct no-grad forwards at the best batch size (best of ``repeat``)."""
        if n_images not in floors:
            floors[n_images] = best_of([lambda: plain_forwards(model, pool, n_images, best_bs)], args.repeat,
                                       clock)[0][0]
        return floors[n_images]

    print(f"flower CNN, 64 px: best plain forward {per_image[best_bs] * 1e3:.3f} ms/image at batch {best_bs} ("
          + ", ".join(f"{bs}: {t * 1e3:.3f}" for bs, t in per_image.items()) + ")", flush=True)
    return {"model": model, "data": flowers, "x": x, "y": y, "maps": maps, "masks": flowers.gt_masks,
            "boxes": flowers.boxes, "clock": clock, "floor": floor, "best_batch_size": best_bs,
            "pool": pool, "plain_forwards": plain_forwards, "best_of": best_of, "agreement": agreement,
            "args": args}


def fmt(v, width=9):
    return f"{'-':>{width}s}" if v is None else f"{v:{width}.4g}"


def print_table(rows):
    notes, names = [], []
    for r in rows:
        if r.get("note"):
            notes.append(r["note"])
            names.append(f"{r['metric']} [{len(notes)}]")
        else:
            names.append(r["metric"])
    w = max(44, *map(len, names))
    pw = max(12, *(len(r.get("peer_name") or "") for r in rows))
    print(f"\n{'metric':{w}s} {'ours':>9s} {'floor':>9s} {'ours/floor':>17s} {'peer':>9s} "
          f"{'peer/ours':>19s}  {'peer':{pw}s}  values")
    slower = []
    for name, r in zip(names, rows):
        ours, floor, peer = r["ours"], r.get("floor"), r.get("peer")
        f_col = p_col = "-"
        if floor is not None:
            ratio = ours / floor
            ok = ratio <= FLOOR_GOAL
            f_col = f"{ratio:5.2f} <={FLOOR_GOAL} {'ok' if ok else 'SLOWER'}"
            if not ok:
                slower.append(f"{r['metric']}: ours/floor {ratio:.2f} > {FLOOR_GOAL}")
        if peer is not None:
            # no model, Quantus: its per-image overhead dominates, 10x; a bare C loop or a model: faster
            goal = r.get("goal", 10.0 if floor is None and r["peer_name"].startswith("Quantus") else 1.0)
            speed = peer / max(ours, 1e-9)
            ok = speed >= goal if goal > 1 else speed > goal
            rel = ">=" if goal > 1 else ">"
            p_col = f"{speed:6.1f}x {rel}{goal:g} {'ok' if ok else 'SLOWER'}"
            if not ok:
                slower.append(f"{r['metric']}: {speed:.1f}x the speed of {r['peer_name']} (goal {rel} {goal:g}x)")
        print(f"{name:{w}s} {fmt(ours)} {fmt(floor)} {f_col:>17s} {fmt(peer)} {p_col:>19s}  "
              f"{r.get('peer_name') or '-':{pw}s}  {r['values']}", flush=True)
    for i, note in enumerate(notes, 1):
        print(f"[{i}] {note}")
    print("\nslower than the goal:" + ("".join(f"\n  {s}" for s in slower) if slower else " none"))


def main(argv=None):
    parts = available_parts()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch (and BLAS) threads")
    parser.add_argument("--parts", nargs="+", choices=parts, default=parts, metavar="PART",
                        help=f"parts to run, of {', '.join(parts)} (default: all)")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(args.threads)  # noqa: F841 (kept for the whole run)
    except ImportError:
        pass
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} time "
          f"(seconds, best of {args.repeat}); parts: {', '.join(args.parts)}", flush=True)
    ctx = context(args, clock)
    rows = []
    for part in args.parts:
        t0 = time.perf_counter()
        new = importlib.import_module(f"evaluate_{part}").rows(ctx, args.repeat)
        rows += new
        print(f"  {part}: {len(new)} rows in {time.perf_counter() - t0:.0f} s wall", flush=True)
    print_table(rows)
    print(f"(whole benchmark: {time.perf_counter() - start:.0f} s wall)")


if __name__ == "__main__":
    main()
