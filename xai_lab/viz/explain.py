"""Figures of explanations: images x methods as heatmap overlays (``xai_lab.explain.show``).

matplotlib is imported when a figure is drawn (by :func:`xai_lab.viz.show`), not with this module.
"""
from __future__ import annotations

import torch

from ..checks import check_images
from ..explain import SHOWN, explain_all
from . import show as show_images

__all__ = ["show"]


def show(model, x, target, methods=SHOWN, options=None, foil=None, titles=None, **show_kwargs):
    """Images (rows) x methods (columns) as heatmap overlays, via ``xai_lab.viz.show``.

    The maps come from :func:`xai_lab.explain.explain_all` (``methods``, ``options``, ``foil``).
    ``titles`` default to the target (and foil) of each image; contrastive maps (``foil``) are drawn
    on a diverging scale. Returns the matplotlib Figure.
    """
    x = check_images(x)
    maps = explain_all(model, x, target, methods, options, foil)
    if titles is None and not callable(target):
        def per_image(v):
            return v.tolist() if isinstance(v, torch.Tensor) and v.dim() else [int(v)] * len(x)
        titles = [f"class {t}" for t in per_image(target)]
        if foil is not None:
            titles = [f"{t} not {f}" for t, f in zip(titles, per_image(foil))]
    show_kwargs.setdefault("diverging", foil is not None)
    return show_images(x, heatmaps=maps, titles=titles, **show_kwargs)
