"""Interpretation: what has the model learned? (the methods of 01_interpretation)

One file per part of the lecture:

- ``dissection.py``: Network Dissection (Bau, Zhou, Khosla, Oliva & Torralba, CVPR 2017):
  :func:`quantile_thresholds`, :func:`unit_masks`, :func:`dissect` -> :class:`Dissection`
  (unit x concept IoU table, labels, detectors).
- ``composition.py``: compositional explanations of neurons (Mu & Andreas, NeurIPS 2020):
  :func:`compose` (beam search over AND / OR / AND NOT), :func:`compose_units`,
  :func:`compose_unit`; formulas as :class:`Leaf` / :class:`Formula`, :data:`OPERATORS`.
- ``relevance.py``: relevant units (Oramas, Wang & Tuytelaars, ICLR 2019): :func:`filter_energy`,
  :func:`filter_energies`, :func:`project_l1`, :func:`l1_regression`, :func:`relevant_units`
  -> :class:`RelevantUnits`.
- ``maximization.py``: activation maximisation (Simonyan, Vedaldi & Zisserman 2013; Olah,
  Mordvintsev & Schubert, Distill 2017): :func:`maximize` and its regularisers.
- ``atlas.py``: top-activating patches (:func:`top_patches`) and a small activation atlas
  (Carter, Armstrong, Schubert, Johnson & Olah, Distill 2019): :func:`atlas` -> :class:`Atlas`.

Shared by them: ``concepts.py`` (the concept masks of a probe set, :class:`~.concepts.Concepts`,
and the unit masks' pixels, :func:`~.concepts.unit_pixels`) and ``probe.py`` (a probe set
streamed through a model, batch by batch). The figures (:func:`plot_detectors`,
:func:`plot_unit`, :func:`plot_formulas`, :func:`plot_relevant_units`, :func:`plot_atlas`) live
in :mod:`xai_lab.viz.interpret`; they are reachable from here too, and matplotlib is imported only
when one of them is first used.

Every function runs the model in eval mode without parameter gradients and gives it back as it
came (train/eval mode of every module, ``requires_grad``, no hooks left), also after an error.
Probe sets are streamed in batches; nothing holds all activation maps of a probe set at once.
"""
from __future__ import annotations

from .atlas import Atlas, atlas, top_patches
from .composition import OPERATORS, Composition, Formula, Leaf, compose, compose_unit, compose_units
from .dissection import Dissection, dissect, quantile_thresholds, unit_masks
from .maximization import maximize
from .relevance import (RelevantUnits, filter_energies, filter_energy, l1_regression, project_l1,
                        relevant_units)

_PLOTS = ("plot_detectors", "plot_unit", "plot_formulas", "plot_relevant_units", "plot_atlas")

__all__ = ["quantile_thresholds", "dissect", "Dissection", "unit_masks",
           "compose", "compose_unit", "compose_units", "Composition", "Leaf", "Formula", "OPERATORS",
           "filter_energy", "filter_energies", "l1_regression", "project_l1", "relevant_units",
           "RelevantUnits", "maximize", "atlas", "Atlas", "top_patches", *_PLOTS]


def __getattr__(name: str):
    """The figures, from :mod:`xai_lab.viz.interpret`, imported (with matplotlib) on first use."""
    if name in _PLOTS:
        from ..viz import interpret as figures
        return getattr(figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_PLOTS))
