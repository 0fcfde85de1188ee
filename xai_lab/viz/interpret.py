"""Figures of the interpretation methods (:mod:`xai_lab.interpret`): Bau et al.'s detector
histogram and unit masks, compositional formulas against single concepts, Oramas et al.'s relevant
units with their top patches, and the activation atlas. Each returns a matplotlib ``Figure``."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..checks import check_units, images_of
from ..interpret.atlas import Atlas, top_patches
from ..interpret.concepts import Concepts
from ..interpret.dissection import Dissection, unit_masks
from ..interpret.relevance import RelevantUnits
from . import bars, np_image, outline, pyplot

__all__ = ["plot_detectors", "plot_unit", "plot_formulas", "plot_relevant_units", "plot_atlas"]


def plot_detectors(dissection: Dissection, title: str | None = None):
    """Bau et al.'s histogram: detectors per concept, coloured by category, and per category."""
    plt = pyplot()
    per_concept = dissection.detectors_per_concept()
    per_cat = dissection.detectors_per_category()
    cats = list(per_cat)
    colours = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(cats)}
    cat_of = dict(zip(dissection.concept_names, dissection.concept_categories))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 3]})
    ax1.bar(cats, [per_cat[c] for c in cats], color=[colours[c] for c in cats])
    ax1.set_ylabel("detector units")
    ax1.set_title("per category", fontsize=9)
    names = list(per_concept)
    ax2.bar(range(len(names)), [per_concept[n] for n in names], color=[colours[cat_of[n]] for n in names])
    ax2.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax2.set_title("per concept (unit label)", fontsize=9)
    fig.suptitle(title or f"{dissection.layer}: {int(dissection.detectors.sum())} of "
                          f"{len(dissection.iou)} units with IoU > {dissection.iou_threshold}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_unit(model: nn.Module, data, dissection: Dissection, unit: int, k: int = 6,
              batch_size: int = 64, progress: bool = False):
    """The ``k`` top images of ``unit`` (by its maximum activation): the raw images (top row), its
    mask M_k and the mask of its best concept (rows below, outlined), with the dataset-level IoU."""
    plt = pyplot()
    images = images_of(data)
    unit = int(check_units([unit], len(dissection.thresholds))[0])
    _, idx = top_patches(model, images, [(dissection.layer, unit)], k, 1, batch_size, progress)
    top = images[idx[0]]
    masks = unit_masks(model, top, dissection.layer, [unit], dissection.thresholds, progress=False)[:, 0]
    c = int(dissection.labels[unit])
    cmask = Concepts.of(data).mask(c, idx[0])
    fig, axes = plt.subplots(3, len(top), figsize=(1.6 * len(top), 5.1), squeeze=False)
    for i in range(len(top)):
        axes[0, i].imshow(np_image(top[i]))
        axes[0, i].set_label("raw")
        axes[0, i].set_xticks([]); axes[0, i].set_yticks([])
        _mask_overlay(axes[1, i], top[i], masks[i], "yellow")
        _mask_overlay(axes[2, i], top[i], cmask[i], "cyan")
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel(f"unit {unit}", fontsize=8)
    axes[2, 0].set_ylabel(dissection.concept_names[c], fontsize=8)
    fig.suptitle(f"{dissection.layer} unit {unit}: {dissection.concept_names[c]} "
                 f"(IoU {float(dissection.best_iou[unit]):.3f})", fontsize=10)
    fig.tight_layout()
    return fig


def _mask_overlay(ax, img, mask, colour):
    """The image darkened outside ``mask`` and the mask outlined in ``colour`` with a black halo (as
    Bau et al. show units; the halo keeps a yellow line readable on a yellow flower)."""
    m = mask.numpy()
    ax.imshow(np_image(img))
    shade = np.zeros(m.shape + (4,))
    shade[~m] = (0, 0, 0, 0.55)
    ax.imshow(shade)
    outline(ax, m, colour, width=0.9)
    ax.set_label("overlay")
    ax.set_xticks([]); ax.set_yticks([])


def plot_formulas(results: dict, title: str | None = None):
    """Bars of the best single concept's IoU and the best formula's IoU per unit, from
    ``{label: Composition}`` (e.g. ``{"unit 12": compose_unit(...)}``)."""
    labels = [f"{k}\n{v.formula}" for k, v in results.items()]
    values = {"best single concept": torch.tensor([v.single_iou for v in results.values()]),
              "best formula": torch.tensor([v.iou for v in results.values()])}
    return bars(values, labels, ylabel="IoU", title=title or "compositional explanations")


def plot_relevant_units(model: nn.Module, data, result: RelevantUnits, c: int, n_units: int = 3,
                        k: int = 8, patch: int | None = None, batch_size: int = 64,
                        progress: bool = False):
    """Oramas et al.'s interpretation visualisation of class ``c``: for each of its ``n_units``
    most relevant units (largest positive weights), the average of its top-``k`` patches and the
    patches themselves."""
    top = result.top(c, n_units)
    if not top:
        raise ValueError(f"class {c} has no unit with a positive weight (mu={result.mu})")
    patches, _ = top_patches(model, data, [(l, u) for l, u, _ in top], k, patch, batch_size, progress)
    plt = pyplot()
    fig, axes = plt.subplots(len(top), k + 1, figsize=(1.3 * (k + 1), 1.4 * len(top)), squeeze=False)
    for i, (layer, unit, w) in enumerate(top):
        for j, img in enumerate([patches[i].mean(0)] + list(patches[i])):
            axes[i, j].imshow(np_image(img))
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(f"{layer}:{unit}\nw={w:.2f}", fontsize=7)
    axes[0, 0].set_title("average", fontsize=8)
    name = result.class_names[c] if c < len(result.class_names) else f"class {c}"
    fig.suptitle(f"relevant units of {name}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_atlas(result: Atlas, title: str = "activation atlas"):
    """The atlas tiles, with the number of points per cell in small print."""
    plt = pyplot()
    g = result.counts.shape[0]
    p = result.image.shape[-1] // g
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(np_image(result.image))
    for r in range(g):
        for col in range(g):
            if result.counts[r, col] > 0:
                ax.text(col * p + 1, r * p + 3, str(int(result.counts[r, col])), fontsize=5, color="w")
    ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
