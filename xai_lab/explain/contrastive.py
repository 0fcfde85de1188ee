"""Contrastive explanations: why ``target`` and not ``foil``.

Any method that explains a score explains the difference y_target - y_foil just as well: the
target becomes a :class:`~xai_lab.explain.base.Contrast`, which every method accepts.
"""
from __future__ import annotations

import torch

from ..checks import check_images, check_index
from .base import Contrast

__all__ = ["NOT_CONTRASTIVE", "contrastive"]

NOT_CONTRASTIVE = {  # methods for which a difference of two scores means nothing, and why
    "rise": "RISE averages a class probability over masks; a difference of two scores is not one",
    "lime": "LIME fits a surrogate of a class probability; a difference of two scores is not one",
    "by_interpretation": "the class chooses the relevant units that are shown; a difference of two "
                         "scores chooses none",
}


def contrastive(model, x, target, foil, method="grad_cam", **kwargs):
    """Why ``target`` and not ``foil``: ``method`` explaining the score y_target - y_foil.

    Grad-CAM on y_A - y_B (the default; ``relu=False`` keeps the evidence for B as negative
    values), and every gradient method (saliency, deconvnet, guided backprop, integrated
    gradients, smoothgrad), CAM, LRP (relevance starts as +y_target, -y_foil) and occlusion on that
    difference. ``target`` and ``foil`` are ints or LongTensors (N,). RISE and LIME raise a
    ValueError (they explain a probability). Signed maps (``relu=False``, ``reduce="sum"``, LRP,
    occlusion) are best drawn with ``diverging=True``.
    """
    from . import METHODS  # the registry of the package, complete once it is imported

    name = method if isinstance(method, str) else next((k for k, f in METHODS.items() if f is method), None)
    if name is None or name not in METHODS:
        allowed = sorted(set(METHODS) - set(NOT_CONTRASTIVE))
        raise ValueError(f"method must be one of {allowed}, got {method!r}")
    if name in NOT_CONTRASTIVE:
        raise ValueError(f"contrastive explanations are not meaningful with method={name!r}: "
                         f"{NOT_CONTRASTIVE[name]}")
    x = check_images(x)
    t, f = check_index(target, len(x), "target"), check_index(foil, len(x), "foil")
    same = torch.as_tensor(t) == torch.as_tensor(f)
    if same.any():
        raise ValueError(f"foil must differ from target, got the same class for image(s) "
                         f"{torch.nonzero(same.expand(len(x))).flatten().tolist()}")
    return METHODS[name](model, x, Contrast(t, f), **kwargs)
