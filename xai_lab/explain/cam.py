"""Class activation maps: a layer's feature maps weighted by how much the class score uses them.

:func:`cam` (Zhou et al. 2016) reads the weights off a GAP + linear head; :func:`grad_cam`
(Selvaraju et al. 2017) and :func:`grad_cam_pp` (Chattopadhyay et al. 2018) take them from the
gradient at the layer (:func:`~xai_lab.explain.base.layer_gradients`). ``layer`` defaults to the
last module of ``model.features``; maps are upsampled bilinearly to the input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import resolve_layer
from .base import feature_maps, finish, layer_gradients, score_grad, session, tapped, upsample

__all__ = ["cam", "grad_cam", "grad_cam_pp"]


def cam(model, x, target, layer=None, fc=None, normalise=False):
    """Class activation map (Zhou et al. 2016): M_c = sum_k w^c_k A_k.

    For a model whose ``layer`` feeds global average pooling and the linear head ``fc`` (default:
    ``model.fc``); ``w^c`` is the head's row of the target (for a callable target, dS/dlogits times
    the head's weights). Raw (signed, no ReLU) at input resolution. Raises a ValueError when the
    model is not GAP + linear after ``layer`` (checked: mean of the map + bias = score). One
    forward, no backward.
    """
    with session(model, x, target) as (x, tgt):
        if fc is None and not isinstance(getattr(model, "fc", None), nn.Linear):
            raise ValueError(f"fc is required: this {type(model).__name__} has no `fc` linear head "
                             f"(pass the linear layer after global average pooling)")
        head = model.fc if fc is None else resolve_layer(model, fc)[1]
        if not isinstance(head, nn.Linear):
            raise ValueError(f"fc must be an nn.Linear head, got {type(head).__name__}")
        with tapped(model, layer) as tap, torch.no_grad():
            logits = model(x)
            a = feature_maps(tap)
        if a.shape[1] != head.in_features:
            raise ValueError(f"layer {tap.name!r} has {a.shape[1]} channels but fc takes "
                             f"{head.in_features} inputs: CAM needs layer -> global average pool -> fc")
        g = score_grad(tgt, logits)  # (N, K)
        maps = torch.einsum("nc,nchw->nhw", g @ head.weight, a)  # (N, h, w)
        bias = g @ head.bias if head.bias is not None else 0.0
        expected, got = (g * logits).sum(1), maps.mean((1, 2)) + bias
        if not torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()) + 1e-5):
            raise ValueError(f"cam needs layer {tap.name!r} -> global average pooling -> fc; this model "
                             f"computes something else after the layer (use grad_cam)")
    return finish(upsample(maps, x.shape[-2:]), normalise)


def grad_cam(model, x, target, layer=None, relu=True, normalise=False):
    """Grad-CAM (Selvaraju et al. 2017): L = ReLU(sum_k alpha_k A^k), alpha_k = mean_ij dS / dA^k_ij.

    ``S`` is the target's pre-softmax score, ``layer`` a conv layer (default: the last module of
    ``model.features``), upsampled bilinearly. ``relu=False`` keeps the negative part (useful for
    contrastive maps). One forward, one backward from the output down to ``layer`` only.
    """
    with session(model, x, target) as (x, tgt):
        a, g = layer_gradients(model, x, tgt, layer)
        maps = torch.einsum("nc,nchw->nhw", g.mean((2, 3)), a)  # (N, h, w)
    return finish(upsample(F.relu(maps) if relu else maps, x.shape[-2:]), normalise)


def grad_cam_pp(model, x, target, layer=None, normalise=False):
    """Grad-CAM++ (Chattopadhyay et al. 2018): L = ReLU(sum_k w_k A^k), w_k = sum_ij a_ij ReLU(g_ij),
    a = g^2 / (2 g^2 + sum_ab A_ab g^3 + 1e-6) and 0 where g = dS/dA = 0 (pytorch-grad-cam's form).
    """
    with session(model, x, target) as (x, tgt):
        a, g = layer_gradients(model, x, tgt, layer)
        g2 = g * g
        coef = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g + 1e-6)
        coef = torch.where(g != 0, coef, torch.zeros_like(coef))
        weights = (coef * F.relu(g)).sum((2, 3))  # (N, C)
        maps = torch.einsum("nc,nchw->nhw", weights, a)
    return finish(upsample(F.relu(maps), x.shape[-2:]), normalise)
