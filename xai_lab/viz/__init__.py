"""Plots: images with heatmap overlays in a grid, flowers with their masks, bars and tables.

Everything takes torch tensors and returns a matplotlib ``Figure`` (numpy only here, at plotting).
matplotlib is imported when the first figure is drawn (:func:`pyplot`), not with this package.
The figures of a method family live beside these: :mod:`xai_lab.viz.interpret` (dissection,
formulas, relevant units, atlas) and :mod:`xai_lab.viz.evaluate` (:func:`curves`, :func:`matrix`,
re-exported here).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["show", "show_segments", "show_flowers", "bars", "table", "curves", "matrix", "np_image", "pyplot",
           "this_looks_like_that", "grey", "heat_rgba", "is_mask", "outline"]


def pyplot():
    """``matplotlib.pyplot``, imported on first use (so that ``import xai_lab.viz`` does not)."""
    import matplotlib.pyplot as plt

    return plt


def np_image(img: torch.Tensor) -> np.ndarray:
    """An image ``(3, H, W)`` as a numpy array ``(H, W, 3)`` clamped to [0, 1], for ``imshow``."""
    return img.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()


def _as_batch(x, name, dims):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == dims - 1:
        x = x.unsqueeze(0)
    if x.dim() != dims:
        raise ValueError(f"{name} must have {dims} dims, got shape {tuple(x.shape)}")
    return x.detach().cpu().float()


# Heatmaps are drawn over a dimmed greyscale copy of the image, in a perceptually uniform map whose
# opacity grows with the value (alpha x sqrt(value)): on grey, a value looks the same on a red, yellow,
# blue or white flower. Measured on the palette's petal and background colours (CIEDE2000): the
# largest difference between two flowers at the top value is 2.7 (50.4 for the former jet at alpha
# 0.55 over the colour image, where purple meant "high" on a blue flower and "low" on a red one), and
# top vs zero differ by at least 24.5 (15.9 before, on blue). The flower's colour is read in the raw
# panel beside the overlay. Masks (maps of 0 and 1: a ground-truth part, a concept) are outlined on
# the colour image with a black halo, never filled.
HEATMAP_CMAP, DIVERGING_CMAP, OUTLINE = "inferno", "RdBu_r", "white"


def grey(img: torch.Tensor) -> np.ndarray:
    """``img (3, H, W)`` as a dimmed greyscale ``(H, W, 3)`` in [0.25, 0.75] (luminance, Rec. 601):
    the background of a heatmap, so that the map's colours never mix with the flower's."""
    lum = np_image(img) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat((0.25 + 0.5 * lum)[..., None], 3, axis=2)


def heat_rgba(hmap: torch.Tensor, cmap=None, alpha: float = 0.85, diverging: bool = False) -> np.ndarray:
    """``hmap (H, W)`` as colours ``(H, W, 4)`` to lay over :func:`grey`: min-max scaled in
    ``inferno`` (or, with ``diverging``, symmetric around 0 in ``RdBu_r``: red positive, blue
    negative, scaled by the 99th percentile of ``|h|``), opacity ``alpha`` x the square root of the
    scaled value (of its magnitude when diverging), so a zero shows the image. A ``cmap`` of your
    own (e.g. ``"tab20"`` for a label map) is drawn over the whole range at a constant ``alpha``."""
    h = hmap.detach().cpu().float().numpy()
    if diverging:  # scaled by the 99th percentile of |h| (a few outlier pixels saturate, as in Captum)
        v = np.clip(h / (float(np.quantile(np.abs(h), 0.99)) or float(np.abs(h).max()) or 1.0), -1, 1)
        # without a cmap of your own: the outer halves of the map only (sign -> hue, magnitude -> depth)
        at = (v + 1) / 2 if cmap is not None else 0.5 + 0.25 * np.sign(v) * (1 + np.abs(v))
        rgba, strength = pyplot().get_cmap(cmap or DIVERGING_CMAP)(at), np.abs(v)
    else:
        lo, hi = float(h.min()), float(h.max())
        v = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)
        rgba, strength = pyplot().get_cmap(cmap or HEATMAP_CMAP)(v), v
    rgba[..., 3] = alpha if cmap is not None else alpha * np.sqrt(strength)
    return rgba


def is_mask(hmap: torch.Tensor) -> bool:
    """A map of 0 and 1 only (a ground-truth part, a concept): drawn as an outline, not a heatmap."""
    return bool(((hmap == 0) | (hmap == 1)).all())


def outline(ax, mask, colour: str = OUTLINE, width: float = 1.2):
    """The border of ``mask (H, W)`` as a contour line in ``colour`` with a black halo (readable on
    any flower, white ones included). Returns the ContourSet (None for an empty or full mask)."""
    from matplotlib import patheffects

    m = torch.as_tensor(mask).detach().cpu().float().numpy()
    if not (m > 0.5).any() or (m > 0.5).all():
        return None
    return ax.contour(m, levels=[0.5], colors=[colour], linewidths=width,
                      path_effects=[patheffects.withStroke(linewidth=2.2 * width, foreground="black")])


def show(images: torch.Tensor, heatmaps=None, titles=None, ncols: int | None = None,
         cmap: str | None = None, alpha: float = 0.85, diverging: bool = False, size: float = 2.0,
         outlines=None):
    """Images with optional heatmap overlays, each overlay next to the raw image.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1] (or one image ``(3, H, W)``).
        heatmaps: ``None``; ``(N, H, W)``, drawn under each image's raw panel; or a dict
            ``{method name: (N, H, W)}``, drawn as a grid of images (rows) x [raw image, methods]
            (columns). A heatmap is min-max scaled per image (or, with ``diverging=True``, symmetric
            around 0, red positive, blue negative) and drawn over a greyscale copy of the image
            (:func:`heat_rgba`); a map of 0 and 1 only (a ground-truth part, a concept mask) is drawn
            as an outline on the colour image.
        titles: one title per image (a list), shown on the first column (raw panel).
        ncols: images per row when there is no dict of heatmaps (default: up to 8).
        cmap, alpha: the colour map (default ``inferno``, ``RdBu_r`` if diverging) and the largest
            opacity of a heatmap (constant if you give a ``cmap``).
        outlines: optional masks ``(N, H, W)`` (e.g. ``data.gt_masks``) outlined on every overlay.
    The axes are labelled ``"raw"`` or ``"overlay"`` (``ax.get_label()``).
    """
    plt = pyplot()
    images = _as_batch(images, "images", 4)
    n = len(images)
    if outlines is not None:
        outlines = _maps(outlines, "outlines", n)
    if isinstance(heatmaps, dict):
        maps = {k: _maps(v, f"heatmaps[{k!r}]", n) for k, v in heatmaps.items()}
        cols = ["image"] + list(maps)
        fig, axes = plt.subplots(n, len(cols), figsize=(size * len(cols), size * n), squeeze=False)
        for i in range(n):
            for j, col in enumerate(cols):
                ax = axes[i, j]
                if col == "image":
                    _raw(ax, images[i])
                else:
                    _overlay(ax, images[i], maps[col][i], cmap, alpha, diverging,
                             None if outlines is None else outlines[i])
                if i == 0:
                    ax.set_title(col, fontsize=9)
                if j == 0 and titles is not None:
                    ax.set_ylabel(str(titles[i]), fontsize=8)
        fig.tight_layout()
        return fig
    if heatmaps is not None:
        heatmaps = _maps(heatmaps, "heatmaps", n)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    per = 1 if heatmaps is None else 2  # rows of panels per row of images: raw (+ overlay below it)
    fig, axes = plt.subplots(nrows * per, ncols, figsize=(size * ncols, size * nrows * per), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, c = divmod(k, ncols)
        ax = axes[r * per, c]
        _raw(ax, images[k])
        ax.axis("off")
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
        if heatmaps is not None:
            _overlay(axes[r * per + 1, c], images[k], heatmaps[k], cmap, alpha, diverging,
                     None if outlines is None else outlines[k])
            axes[r * per + 1, c].axis("off")
    fig.tight_layout()
    return fig


def _maps(v, name, n):
    v = _as_batch(v, name, 3)
    if len(v) != n:
        raise ValueError(f"{name} has {len(v)} maps for {n} images")
    return v


def _raw(ax, img):
    ax.imshow(np_image(img))
    ax.set_label("raw")
    ax.set_xticks([]); ax.set_yticks([])


def _overlay(ax, img, hmap: torch.Tensor, cmap, alpha, diverging, extra=None):
    """``hmap`` on ``img``: a mask as an outline on the colour image, any other map as
    :func:`heat_rgba` over :func:`grey`; ``extra`` (a mask, or None) outlined on top."""
    if is_mask(hmap) and cmap is None:
        ax.imshow(np_image(img))
        outline(ax, hmap)
    else:
        ax.imshow(grey(img))
        ax.imshow(heat_rgba(hmap, cmap, alpha, diverging))
    if extra is not None:
        outline(ax, extra)
    ax.set_label("overlay")
    ax.set_xticks([]); ax.set_yticks([])


def show_segments(images: torch.Tensor, segments: torch.Tensor, titles=None, size: float = 2.0):
    """Each image beside itself with the borders of its segments outlined (white, black halo: readable
    on every flower), e.g. the superpixels of :func:`xai_lab.explain.superpixels`.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1] (or one image ``(3, H, W)``).
        segments: ``(N, H, W)`` integer labels (or ``(H, W)``), one region per label.
        titles: one title per image (a list), shown beside its row.
    The right panel's title says how many segments the image has.
    """
    plt = pyplot()
    images = _as_batch(images, "images", 4)
    segments = _maps(segments, "segments", len(images))
    if not torch.equal(segments, segments.round()):
        raise ValueError("segments must hold integer labels, one per region")
    fig, axes = plt.subplots(len(images), 2, figsize=(2 * size, size * len(images)), squeeze=False)
    for i, (raw, over) in enumerate(axes):
        _raw(raw, images[i])
        over.imshow(np_image(images[i]))
        labels = segments[i].unique()
        for label in labels:
            outline(over, segments[i] == label, width=0.6)
        over.set_label("overlay")
        over.set_xticks([]); over.set_yticks([])
        over.set_title(f"{len(labels)} segments", fontsize=8)
        if titles is not None:
            raw.set_ylabel(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def show_flowers(data, n: int = 8, size: float = 1.6):
    """A sample of flowers with their ground truth: image, part map, colour concepts, and the image
    again with the discriminative part outlined (its colour stays visible) and its box."""
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    from ..data import COLOURS, PARTS, PALETTE

    plt = pyplot()
    n = min(n, len(data))
    rows = ["image", "parts", "colours", "discriminative part"]
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows)), squeeze=False)
    palette = np.array([PALETTE[c] for c in COLOURS])
    part_cmap = plt.get_cmap("tab10", len(PARTS))
    for i in range(n):
        img = np_image(data.images[i])
        panels = [img, data.parts[i].numpy(), palette[data.colour_map[i].numpy()], img]
        for r, panel in enumerate(panels):
            ax = axes[r, i]
            if r == 1:
                ax.imshow(panel, cmap=part_cmap, vmin=-0.5, vmax=len(PARTS) - 0.5, interpolation="nearest")
            else:
                ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([]); ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(rows[r], fontsize=8)
        outline(axes[3, i], data.gt_masks[i], width=0.9)
        x0, y0, x1, y1 = data.boxes[i].tolist()
        box = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=0.7)
        box.set_path_effects([patheffects.withStroke(linewidth=1.6, foreground="black")])
        axes[3, i].add_patch(box)
        axes[0, i].set_title(data.class_names[int(data.labels[i])], fontsize=7)
    fig.tight_layout()
    return fig


def bars(values: dict, labels, ylabel: str = "accuracy", title: str | None = None):
    """Grouped bars: ``{series name: (K,) values}`` over ``labels`` (e.g. per-class accuracy of models)."""
    plt = pyplot()
    names = list(values)
    k = len(labels)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * k + 1), 3))
    for j, name in enumerate(names):
        v = torch.as_tensor(values[name]).float().numpy()
        if len(v) != k:
            raise ValueError(f"values[{name!r}] has {len(v)} entries for {k} labels")
        ax.bar(np.arange(k) + (j - (len(names) - 1) / 2) * width, v, width, label=name)
    ax.set_xticks(np.arange(k), [str(s) for s in labels], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table(values: torch.Tensor, row_labels, col_labels, title: str | None = None, fmt: str = "{:.0%}"):
    """A 2-D table of numbers as a coloured grid with the values written in (e.g. group x class accuracy)."""
    plt = pyplot()
    v = torch.as_tensor(values).float().numpy()
    if v.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values has shape {v.shape}, labels give {(len(row_labels), len(col_labels))}")
    fig, ax = plt.subplots(figsize=(1.0 * len(col_labels) + 1.5, 0.5 * len(row_labels) + 1.2))
    ax.imshow(v, cmap="RdYlGn", vmin=0, vmax=1)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            ax.text(j, i, "-" if np.isnan(v[i, j]) else fmt.format(v[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels], fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


from .evaluate import curves, matrix  # noqa: E402 (the figures of 03_evaluation; they import pyplot from here)
from .design import this_looks_like_that  # noqa: E402 (the figures of 04_interpretable_by_design)
