"""Figures of 03_evaluation: curves over steps (MoRF, deletion, insertion, unit ablation, a
randomisation cascade) and a labelled matrix (methods x metrics, metric x metric agreement)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["curves", "matrix"]


def curves(values: dict, x=None, xlabel: str = "step", ylabel: str = "score", title: str | None = None,
           xticks=None, ylim=None):
    """One line per entry of ``{name: (S,) values}`` over ``x`` (default ``0..S-1``); ``xticks``:
    labels for the points of ``x`` (e.g. layer names). Returns the Figure."""
    from . import pyplot

    if not isinstance(values, dict) or not values:
        raise ValueError(f"values must be a non-empty dict {{name: (S,) tensor}}, got {type(values).__name__}")
    lines = {name: torch.as_tensor(v).detach().float().flatten() for name, v in values.items()}
    steps = {len(v) for v in lines.values()}
    if len(steps) != 1:
        raise ValueError(f"values must all have the same length, got lengths {sorted(steps)}")
    s = steps.pop()
    xs = np.arange(s) if x is None else torch.as_tensor(x).float().numpy()
    if len(xs) != s:
        raise ValueError(f"x must have one entry per value ({s}), got {len(xs)}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5 if xticks is not None else 5.2, 3.2))
    for name, v in lines.items():
        ax.plot(xs, v.numpy(), marker="o" if s <= 20 else None, ms=3, lw=1.4, label=str(name),
                ls="--" if str(name).startswith("random") else "-")
    if xticks is not None:
        ax.set_xticks(xs, [str(t) for t in xticks], rotation=45, ha="right", fontsize=7)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def matrix(values, rows, cols, title: str | None = None, fmt: str = "{:.2f}", vmin=None, vmax=None,
           cmap: str = "viridis"):
    """A matrix ``(R, C)`` as a coloured grid with its values written in, rows and columns labelled."""
    from . import pyplot

    v = torch.as_tensor(values).detach().float().numpy()
    if v.shape != (len(rows), len(cols)):
        raise ValueError(f"values has shape {v.shape}, the labels give {(len(rows), len(cols))}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(0.9 * len(cols) + 2.2, 0.45 * len(rows) + 1.6))
    im = ax.imshow(v, cmap=cmap, vmin=vmin, vmax=vmax)
    lo, hi = im.get_clim()
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            dark = (v[i, j] - lo) / max(hi - lo, 1e-12) < 0.5
            ax.text(j, i, "-" if np.isnan(v[i, j]) else fmt.format(v[i, j]), ha="center", va="center",
                    fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig
