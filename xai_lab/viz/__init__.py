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

__all__ = ["show", "show_flowers", "bars", "table", "curves", "matrix", "np_image", "pyplot", "this_looks_like_that"]


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


def show(images: torch.Tensor, heatmaps=None, titles=None, ncols: int | None = None,
         cmap: str | None = None, alpha: float = 0.55, diverging: bool = False, size: float = 2.0):
    """Images with optional heatmap overlays.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1] (or one image ``(3, H, W)``).
        heatmaps: ``None``; ``(N, H, W)``; or a dict ``{method name: (N, H, W)}``, drawn as a
            grid of images (rows) x methods (columns), each map min-max scaled per image
            (or, with ``diverging=True``, symmetric around 0 in a red-blue map).
        titles: one title per image (a list), shown on the first column.
        ncols: columns when there is no dict of heatmaps (default: up to 8).
    """
    plt = pyplot()
    images = _as_batch(images, "images", 4)
    n = len(images)
    if isinstance(heatmaps, dict):
        maps = {k: _as_batch(v, f"heatmaps[{k!r}]", 3) for k, v in heatmaps.items()}
        for k, v in maps.items():
            if len(v) != n:
                raise ValueError(f"heatmaps[{k!r}] has {len(v)} maps for {n} images")
        cols = ["image"] + list(maps)
        fig, axes = plt.subplots(n, len(cols), figsize=(size * len(cols), size * n), squeeze=False)
        for i in range(n):
            for j, col in enumerate(cols):
                ax = axes[i, j]
                ax.imshow(np_image(images[i]))
                if col != "image":
                    _overlay(ax, maps[col][i], cmap, alpha, diverging)
                if i == 0:
                    ax.set_title(col, fontsize=9)
                if j == 0 and titles is not None:
                    ax.set_ylabel(str(titles[i]), fontsize=8)
                ax.set_xticks([]); ax.set_yticks([])
        fig.tight_layout()
        return fig
    if heatmaps is not None:
        heatmaps = _as_batch(heatmaps, "heatmaps", 3)
        if len(heatmaps) != n:
            raise ValueError(f"heatmaps has {len(heatmaps)} maps for {n} images")
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(np_image(images[k]))
        if heatmaps is not None:
            _overlay(ax, heatmaps[k], cmap, alpha, diverging)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    fig.tight_layout()
    return fig


def _overlay(ax, hmap: torch.Tensor, cmap, alpha, diverging):
    h = hmap.numpy()
    if diverging:
        m = float(np.abs(h).max()) or 1.0
        ax.imshow(h, cmap=cmap or "bwr", vmin=-m, vmax=m, alpha=alpha)
    else:
        lo, hi = float(h.min()), float(h.max())
        ax.imshow((h - lo) / (hi - lo) if hi > lo else np.zeros_like(h), cmap=cmap or "jet",
                  vmin=0, vmax=1, alpha=alpha)


def show_flowers(data, n: int = 8, size: float = 1.6):
    """A sample of flowers with their ground truth: image, part map, colour concepts, GT mask + box."""
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
        mask = data.gt_masks[i].numpy()
        axes[3, i].imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.6)
        x0, y0, x1, y1 = data.boxes[i].tolist()
        axes[3, i].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.2))
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
