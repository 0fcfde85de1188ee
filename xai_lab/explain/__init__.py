"""Explanation methods: which input evidence supports a prediction (notebook 02_explanation).

Every method is one function ``method(model, x, target, ...) -> (N, H, W)`` float32 heatmap at the
input resolution, raw unless ``normalise=True`` (then divided, per image, by its largest absolute
value: the sign and the zero level stay, the largest |value| becomes 1). One file per part of the
lecture:

- :mod:`.gradient`: :func:`saliency` (Simonyan 2013), :func:`deconvnet` (Zeiler & Fergus 2014),
  :func:`guided_backprop` (Springenberg 2015), :func:`integrated_gradients` (Sundararajan 2017),
  :func:`smoothgrad` (Smilkov 2017, wraps any method), and the ReLU rules they use;
- :mod:`.perturbation`: :func:`occlusion` (Zeiler & Fergus 2014), :func:`rise` (Petsiuk 2018);
- :mod:`.lime`: :func:`lime` (Ribeiro 2016) and its :func:`superpixels`;
- :mod:`.cam`: :func:`cam` (Zhou 2016), :func:`grad_cam` (Selvaraju 2017), :func:`grad_cam_pp`
  (Chattopadhyay 2018);
- :mod:`.lrp_rules` (the rules, as data) and :mod:`.lrp`: :func:`lrp` (Bach 2015, rules as in
  Montavon 2019 and Zennit);
- :mod:`.by_interpretation`: :func:`by_interpretation` (Oramas 2019), the relevant units of the class
  (found by :func:`xai_lab.interpret.relevant_units`) visualised with deconvnet on the image;
- :mod:`.contrastive`: :func:`contrastive`, why ``target`` and not ``foil``;
- :mod:`.base`: the plumbing they share (the target, the session, resizing, batching, gradients
  at the input and at a layer).

``METHODS`` maps names to the functions (for widgets and loops), :func:`explain_all` runs several
of them and :func:`show` draws images x methods (:mod:`xai_lab.viz.explain`). :func:`count_passes`
(from :mod:`xai_lab.hooks`) counts the forward and backward passes a method makes (which method is
the most expensive?).

Conventions (shared/API.md): ``x`` is ``(N, C, H, W)`` float in [0, 1]; ``target`` is an int, a
LongTensor ``(N,)`` (one class per image) or a callable ``logits (N, K) -> scores (N,)`` that works
row by row (perturbation methods call it on batches of perturbed images); ``layer`` is a module of
the model or its dotted name. The model comes back exactly as it was given - train/eval mode of
every module, hooks, ``requires_grad`` of the parameters, weights, submodules - also when a call
raises; methods run it in eval mode with frozen parameters. ``x`` is never modified and never gets
a ``.grad``. Layers are tapped and modules swapped only through :mod:`xai_lab.hooks`, arguments
checked only through :mod:`xai_lab.checks`.

ReLU handling. Deconvnet, guided backprop and LRP change the backward pass of activations: for the
duration of the call every ``nn.ReLU`` module (every activation module, for LRP) is swapped for a
stand-in that applies a custom autograd function, out of place, and the originals are put back
afterwards. An in-place ReLU and a ReLU module called several times in one forward get the rule
at every call; functional calls (``torch.relu``, ``F.relu``) keep the plain gradient (see
:mod:`.gradient`).
"""
from __future__ import annotations

from ..checks import check_choice
from ..hooks import Passes, count_passes
from .by_interpretation import by_interpretation
from .cam import cam, grad_cam, grad_cam_pp
from .contrastive import contrastive
from .gradient import deconvnet, guided_backprop, integrated_gradients, saliency, smoothgrad
from .lime import lime, lime_samples, superpixels
from .lrp import lrp
from .perturbation import occlusion, rise, rise_draws

__all__ = ["saliency", "deconvnet", "guided_backprop", "integrated_gradients", "smoothgrad",
           "occlusion", "rise", "rise_draws", "lime", "lime_samples", "superpixels", "cam", "grad_cam", "grad_cam_pp", "lrp",
           "contrastive", "by_interpretation", "METHODS", "SHOWN", "count_passes", "Passes",
           "explain_all", "show"]

METHODS = {
    "saliency": saliency,
    "deconvnet": deconvnet,
    "guided_backprop": guided_backprop,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "occlusion": occlusion,
    "rise": rise,
    "lime": lime,
    "cam": cam,
    "grad_cam": grad_cam,
    "grad_cam_pp": grad_cam_pp,
    "lrp": lrp,
    "by_interpretation": by_interpretation,
}

SHOWN = ("saliency", "guided_backprop", "integrated_gradients", "grad_cam", "lrp", "occlusion")


def explain_all(model, x, target, methods=SHOWN, options=None, foil=None, normalise=False):
    """``{name: (N, H, W) map}`` for each of ``methods`` (names in ``METHODS``), with per-method
    keyword arguments in ``options`` (``{"occlusion": {"window": 8}}``); with ``foil``, each map is
    the :func:`contrastive` one."""
    options = {} if options is None else options
    unknown = set(options) - set(methods)
    if unknown:
        raise ValueError(f"options has entries for methods not in methods: {sorted(unknown)}")
    maps = {}
    for name in methods:
        check_choice("methods", name, METHODS)
        kw = {"normalise": normalise, **options.get(name, {})}
        maps[name] = (METHODS[name](model, x, target, **kw) if foil is None else
                      contrastive(model, x, target, foil, method=name, **kw))
    return maps


def show(model, x, target, methods=SHOWN, options=None, foil=None, titles=None, **show_kwargs):
    """Images (rows) x methods (columns) as heatmap overlays: :func:`xai_lab.viz.explain.show`
    (imported, with matplotlib, when called). Returns the matplotlib Figure."""
    from ..viz.explain import show as draw

    return draw(model, x, target, methods, options, foil, titles, **show_kwargs)
