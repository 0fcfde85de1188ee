"""Explorers: ipywidgets that let a student turn a knob and watch an explanation, a unit, a curve or a
concept intervention change (one per part of the lecture). Each is one call that works with the
defaults (a shipped model, a small flower sample) and with the student's own model, data and functions:

- :func:`explain_explorer` (02_explanation): method x image x class (and foil) x layer;
- :func:`dissection_explorer` (01_interpretation): layer x unit, its top images, concept, formula;
- :func:`evaluation_explorer` (03_evaluation): method x image, a deletion / insertion / MoRF curve
  and a step slider showing the perturbed image;
- :func:`design_explorer` (04_interpretable_by_design): concept intervention on the concept
  bottleneck, the most activated prototypes of the prototype network.

Every explorer is an ``ipywidgets.VBox`` with ``controls`` (name -> control), ``image`` (the PNG
that changes) and ``info`` (the numbers); results are computed once and cached, so going back to a
value is instant. Models come back as they were given.
"""
from __future__ import annotations

from .design import design_explorer
from .dissection import dissection_explorer
from .evaluation import evaluation_explorer
from .explain import explain_explorer

__all__ = ["explain_explorer", "dissection_explorer", "evaluation_explorer", "design_explorer"]
