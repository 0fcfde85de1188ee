"""Evaluation: how good is the feedback? (the metrics of 03_evaluation)

One file per part of the lecture:

- ``units.py``, for interpretations: :func:`ablate_units` (switch relevant units off one by one,
  accuracy after each) and :func:`semantic_coverage` (Behzadi & Oramas 2023: how the aggregated
  responses of the relevant units cover the annotated concepts).
- ``sanity.py``, sanity checks (Adebayo et al. 2018): :func:`randomize` (cascading or independent
  re-initialisation of layers, on a copy), :func:`model_randomisation` (a method's maps along the
  cascade), :func:`rank_correlation` (Spearman, of absolute or signed maps) and :func:`ssim`.
- ``ablation.py``, input ablation: :func:`morf_curve` and :func:`aopc` (Samek et al. 2017, MoRF and
  LeRF), :func:`deletion` and :func:`insertion` (Petsiuk et al. 2018), curves as :class:`Curve`.
- ``localisation.py``, against the ground truth: :func:`pointing_game` (Zhang et al. 2016),
  :func:`box_iou` (Zhou et al. 2016, box of the thresholded map), :func:`mask_iou`,
  :func:`relevance_mass` and :func:`relevance_rank` (Arras et al. 2022, CLEVR-XAI).
- ``agreement.py``: :func:`metric_agreement` (Vandersmissen & Oramas 2024): rank methods under
  each metric and measure how much the rankings agree.

Every metric is a plain function that says whether higher is better (``fn.higher_is_better``; a
:class:`Curve` says it for itself) and to which part it belongs (``fn.category``); it takes
``batch_size=`` and ``progress=``, works on whole batches (images and the steps of a curve in one
flat batch, no Python loop over samples), and rejects maps, masks or boxes of the wrong shape with
a ``ValueError`` naming them. Metrics that run a model give it back as it came (``hooks.frozen``).
Maps are ``(N, H, W)`` at the input's resolution, as ``xai_lab.explain`` returns them.

Names are imported from their file on first use, so ``from xai_lab import evaluate`` stays light.
"""
from __future__ import annotations

import importlib

from .base import CATEGORIES, Curve

_WHERE = {
    "ablate_units": "units", "semantic_coverage": "units", "UnitAblation": "units", "Coverage": "units",
    "randomize": "sanity", "model_randomisation": "sanity", "Randomisation": "sanity",
    "rank_correlation": "sanity", "ssim": "sanity", "layers_top_down": "sanity", "SIMILARITIES": "sanity",
    "morf_curve": "ablation", "aopc": "ablation", "deletion": "ablation", "insertion": "ablation",
    "blur": "ablation",
    "pointing_game": "localisation", "box_iou": "localisation", "heatmap_boxes": "localisation",
    "mask_iou": "localisation", "relevance_mass": "localisation", "relevance_rank": "localisation",
    "metric_agreement": "agreement", "Agreement": "agreement", "rank_methods": "agreement",
}

__all__ = ["Curve", "CATEGORIES", "METRICS", *_WHERE]

# name -> metric function, for loops over metrics (and the widgets); filled on first use
_METRIC_NAMES = ("ablate_units", "semantic_coverage", "rank_correlation", "ssim", "morf_curve", "aopc",
                 "deletion", "insertion", "pointing_game", "box_iou", "mask_iou", "relevance_mass",
                 "relevance_rank")


def __getattr__(name: str):
    if name == "METRICS":
        return {n: __getattr__(n) for n in _METRIC_NAMES}
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
