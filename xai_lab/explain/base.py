"""The plumbing every explanation method shares: the target, the session, resizing, batching.

A method reads as: check its own arguments (``xai_lab.checks``), open a :func:`session` (the model
in eval mode with frozen parameters, ``x`` checked and detached, ``target`` a :class:`Target`),
compute, and :func:`finish` the maps. Gradients come from :func:`input_gradients` (``d score /
d x``) or :func:`layer_gradients` (``d score / d A`` at a layer, tapped by :func:`tapped` through
``xai_lab.hooks``); many images go through the model in :func:`chunks`.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_images, check_index, check_model
from ..hooks import frozen, resolve_layer, taps

__all__ = ["Contrast", "Target", "score_grad", "session", "upsample", "finish", "REDUCE",
           "scatter_rows", "chunks", "input_gradients", "default_layer", "tapped", "feature_maps",
           "layer_gradients"]


# ------------------------------------------------------------------------------------------------
# targets: which score is explained
# ------------------------------------------------------------------------------------------------
class Contrast:
    """Target ``y_target - y_foil`` (row by row); :func:`~xai_lab.explain.contrastive` passes it as
    ``target``."""

    def __init__(self, target, foil):
        self.target, self.foil = target, foil

    def __call__(self, logits):
        return Target(self, len(logits))(logits)


class Target:
    """A ``target`` argument checked once; ``score(logits, rows)`` gives the ``(B,)`` scores.

    ``rows`` (B,) says which image of the batch each row of ``logits`` belongs to (perturbation
    methods score batches of perturbed copies); ``None`` means row i is image i.
    """

    def __init__(self, target, n, name="target"):
        self.name, self.fn, self.neg = name, None, None
        if isinstance(target, Contrast):
            self.pos = check_index(target.target, n, "target")
            self.neg = check_index(target.foil, n, "foil")
        elif callable(target) and not isinstance(target, torch.Tensor):
            self.fn, self.pos = target, None
        else:
            self.pos = check_index(target, n, name, callable_ok=True)

    @staticmethod
    def _pick(logits, index, rows, name):
        k = logits.shape[1]
        if isinstance(index, int):
            if index >= k:
                raise ValueError(f"{name} must be a class index < {k} (the model has {k} outputs), "
                                 f"got {index}")
            return logits[:, index]
        index = index.to(logits.device)
        index = index if rows is None else index[rows]
        if len(index) and (index.min() < 0 or index.max() >= k):
            raise ValueError(f"{name} must hold class indices in [0, {k}), got values in "
                             f"[{int(index.min())}, {int(index.max())}]")
        return logits.gather(1, index[:, None])[:, 0]

    def __call__(self, logits, rows=None):
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"model must return logits of shape (N, K), got {shape}")
        if self.fn is not None:
            scores = self.fn(logits)
            if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (len(logits),):
                got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(f"{self.name} callable must map logits {tuple(logits.shape)} to scores "
                                 f"of shape ({len(logits)},), got {got}")
            return scores
        scores = self._pick(logits, self.pos, rows, self.name)
        return scores if self.neg is None else scores - self._pick(logits, self.neg, rows, "foil")

    def select(self, rows):
        """The target for a batch whose row i is image ``rows[i]`` (to call another method on it)."""
        def sel(index):
            return index if isinstance(index, int) else index[rows.to(index.device)]
        if self.fn is not None:
            return self.fn
        return sel(self.pos) if self.neg is None else Contrast(sel(self.pos), sel(self.neg))


def score_grad(tgt, logits):
    """``d score / d logits`` ``(N, K)`` (one-hot for a class target)."""
    with torch.enable_grad():
        z = logits.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(tgt(z).sum(), z)
    return g


# ------------------------------------------------------------------------------------------------
# the session: the model given back as it came
# ------------------------------------------------------------------------------------------------
@contextmanager
def session(model, x, target):
    """Check ``model``, ``x``, ``target``; run the model in eval mode with frozen parameters.

    Yields ``(x, target)`` with ``x`` detached and ``target`` a :class:`Target`. On exit, also on
    error, every module's train/eval mode and every parameter's ``requires_grad`` are restored.
    """
    check_model(model)
    x = check_images(x)
    tgt = Target(target, len(x))
    with frozen(model):
        yield x, tgt


# ------------------------------------------------------------------------------------------------
# maps: resizing, reducing channels, finishing
# ------------------------------------------------------------------------------------------------
def upsample(maps, size):
    """``(N, h, w)`` -> ``(N, H, W)``, bilinear (half-pixel centres, like cv2.resize)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def separable(x, kernel, padding="reflect"):
    """``x (N, C, H, W)`` filtered channel by channel with the 1-D ``kernel`` (odd length 2r + 1)
    along W, then along H, after padding r pixels on every side (``padding``: an ``F.pad`` mode):
    the blurs of ``evaluate.blur`` and ``design.low_pass``."""
    r, c, k = len(kernel) // 2, x.shape[1], kernel.to(x)
    x = F.pad(x, (r, r, r, r), mode=padding)
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # along W
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # along H


def finish(maps, normalise):
    """float32 ``(N, H, W)``; with ``normalise`` divided per image by its largest |value|."""
    maps = maps.detach().float()
    if normalise:
        peak = maps.abs().flatten(1).amax(1).clamp(min=torch.finfo(torch.float32).tiny)  # (N,)
        maps = maps / peak[:, None, None]
    return maps.contiguous()


REDUCE = {  # (N, C, H, W) per-channel attributions -> (N, H, W) map
    "abs_max": lambda g: g.abs().amax(1),
    "sum": lambda g: g.sum(1),
    "abs_sum": lambda g: g.abs().sum(1),
    "l2": lambda g: g.norm(dim=1),
}


# ------------------------------------------------------------------------------------------------
# batching
# ------------------------------------------------------------------------------------------------
def scatter_rows(rows, n, values):
    """``(n, B)`` matrix with ``values[b]`` at ``(rows[b], b)``: a sum per image by matmul (CPU
    ``index_add_`` is slow)."""
    return (rows[None, :] == torch.arange(n, device=rows.device)[:, None]).to(values) * values


def chunks(total, batch_size, progress, desc):
    """Index tensors ``[k0, k1)`` of at most ``batch_size`` items, with an optional progress bar."""
    with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
        for k0 in range(0, total, batch_size):
            k = torch.arange(k0, min(k0 + batch_size, total))
            yield k
            bar.update(len(k))


# ------------------------------------------------------------------------------------------------
# gradients at the input and at a layer
# ------------------------------------------------------------------------------------------------
def input_gradients(model, x, tgt, rows=None):
    """``d score / d x`` ``(B, C, H, W)`` for the batch ``x`` (through a detached leaf: the caller's
    tensor gets no ``.grad``)."""
    xi = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(tgt(model(xi), rows).sum(), xi)
    return g


def default_layer(model):
    """The last module of ``model.features`` (Flower CNNs, VGG); other models must say ``layer``."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise ValueError(f"layer is required for a {type(model).__name__}: it has no `features` "
                         f"module to take the last layer from (e.g. layer='layer4' for a torchvision "
                         f"ResNet)")
    return list(features.modules())[-1]


@contextmanager
def tapped(model, layer):
    """A ``hooks.Tap`` on ``layer`` (default: :func:`default_layer`) while in the block.

    Its value is a leaf in grad mode, so a backward from the output stops at the layer; the
    forward goes on from a copy (later in-place operations cannot change it); a layer that runs
    twice in one forward raises a ValueError.
    """
    name, _ = resolve_layer(model, default_layer(model) if layer is None else layer)
    with taps(model, name, mode="leaf", once=True) as by_name:
        yield by_name[name]


def feature_maps(tap):
    """The ``(N, C, h, w)`` activation a :func:`tapped` layer gave (a ValueError for other shapes)."""
    a = tap.require()
    if a.dim() != 4:
        raise ValueError(f"layer {tap.name!r} gives activations of shape {tuple(a.shape)}; "
                         f"CAM methods need (N, C, h, w) maps")
    return a


def layer_gradients(model, x, tgt, layer):
    """Activations ``A (N, C, h, w)`` of ``layer`` and ``dS / dA``; the backward stops at the layer."""
    with tapped(model, layer) as tap, torch.enable_grad():
        scores = tgt(model(x))
        a = feature_maps(tap)
        (g,) = torch.autograd.grad(scores.sum(), a, allow_unused=True)
    if g is None:
        raise ValueError(f"the target score does not depend on layer {tap.name!r}")
    return a.detach(), g
