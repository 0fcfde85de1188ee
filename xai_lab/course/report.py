"""Measured figures for the README: data generation time, model accuracies, the watermark and bias
effects (``print_models``, part of ``xai-lab bench``), and the sample figures (``figures``,
``xai-lab figures``)."""
from __future__ import annotations

import time

import torch

from .. import analysis, data, models
from .layout import REPO

DOCS = REPO / "docs"


def model_figures(n_test: int = 3000, seed: int = 101) -> dict:
    """Evaluate every shipped model on a fresh test split (a seed no model was trained on)."""
    out = {}
    t0 = time.perf_counter()
    data.flowers(10_000, "single", seed=seed)
    out["data_seconds_10k"] = time.perf_counter() - t0
    for name in models.available():
        model = models.load(name)
        variant = model_variant(name)
        test = data.flowers(n_test, variant, seed=seed, split="test")
        pred = models.predict(model, test.images)
        row = {"accuracy": analysis.accuracy(pred, test.labels)}
        if variant == "watermark":
            agree, disagree = analysis.watermark_effect(pred, test.labels, test.watermark)
            row.update(mark_agrees=agree, mark_lies=disagree, drop=agree - disagree)
        if variant == "biased":
            table = analysis.subgroup_accuracy(pred, test.labels, test.group, test.num_classes)
            gap, k = analysis.largest_gap(table)
            day = analysis.accuracy(pred[test.group == 0], test.labels[test.group == 0])
            dusk = analysis.accuracy(pred[test.group == 1], test.labels[test.group == 1])
            row.update(day=day, dusk=dusk, largest_gap=gap, gap_class=test.class_names[k])
        out[name] = row
    return out


def model_variant(name: str) -> str:
    import json
    return json.loads(models.MANIFEST.read_text())[name]["variant"]


def print_models() -> None:
    figs = model_figures()
    print(f"data: 10,000 flowers of 64 x 64 in {figs.pop('data_seconds_10k'):.1f} s")
    print("| model | test accuracy | notes |\n|---|---|---|")
    for name, row in figs.items():
        notes = ""
        if "drop" in row:
            notes = (f"glyph names the true class: {row['mark_agrees']:.1%}; names another: "
                     f"{row['mark_lies']:.1%} (drop {100 * row['drop']:.0f} points)")
        if "largest_gap" in row:
            notes = (f"day {row['day']:.1%}, dusk {row['dusk']:.1%}; largest gap "
                     f"{100 * row['largest_gap']:.0f} points ({row['gap_class']})")
        print(f"| {name} | {row['accuracy']:.1%} | {notes} |")


def figures() -> None:
    import matplotlib
    matplotlib.use("Agg")
    from .. import viz

    DOCS.mkdir(exist_ok=True)
    fig = viz.show_flowers(data.flowers(10, "single", seed=2), n=10, size=1.4)
    fig.savefig(DOCS / "flowers.png", dpi=80)
    variants = [data.flowers(6, v, seed=3, split="train") for v in ("double", "watermark")]
    variants.append(data.flowers(6, "biased", seed=5, split="test"))
    images = torch.cat([v.images for v in variants])
    titles = [f"{v.variant}\n{v.class_names[int(y)]}" + (f", {v.group_names[int(g)]}" if v.variant == "biased" else "")
              for v in variants for y, g in zip(v.labels, v.group)]
    viz.show(images, titles=titles, ncols=6, size=2.2).savefig(DOCS / "variants.png", dpi=80)
    print(f"wrote {DOCS / 'flowers.png'} and {DOCS / 'variants.png'}")

