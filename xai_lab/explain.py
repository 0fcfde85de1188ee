"""Explanation methods: which input evidence supports a prediction (notebook 02_explanation).

Every method is one function ``method(model, x, target, ...) -> (N, H, W)`` float32 heatmap at the
input resolution, raw unless ``normalise=True`` (then divided, per image, by its largest absolute
value: the sign and the zero level stay, the largest |value| becomes 1).

- gradients: :func:`saliency` (Simonyan 2013), :func:`deconvnet` (Zeiler & Fergus 2014),
  :func:`guided_backprop` (Springenberg 2015), :func:`integrated_gradients` (Sundararajan 2017),
  :func:`smoothgrad` (Smilkov 2017, wraps any of them);
- perturbation: :func:`occlusion` (Zeiler & Fergus 2014), :func:`rise` (Petsiuk 2018),
  :func:`lime` (Ribeiro 2016);
- class activation maps: :func:`cam` (Zhou 2016), :func:`grad_cam` (Selvaraju 2017),
  :func:`grad_cam_pp` (Chattopadhyay 2018);
- relevance: :func:`lrp` (Bach 2015, rules as in Montavon 2019 and Zennit);
- :func:`by_interpretation` (Oramas 2019): the relevant units of the class (found by
  :func:`xai_lab.interpret.relevant_units`) visualised with deconvnet on the image;
- :func:`contrastive`: why ``target`` and not ``foil``.

``METHODS`` maps names to the functions (for widgets and loops), :func:`explain_all` runs several
of them and :func:`show` draws images x methods. :func:`count_passes` counts the forward and
backward passes a method makes (which method is the most expensive?).

Conventions (shared/API.md): ``x`` is ``(N, C, H, W)`` float in [0, 1]; ``target`` is an int, a
LongTensor ``(N,)`` (one class per image) or a callable ``logits (N, K) -> scores (N,)`` that works
row by row (perturbation methods call it on batches of perturbed images); ``layer`` is a module of
the model or its dotted name. The model comes back exactly as it was given - train/eval mode of
every module, hooks, ``requires_grad`` of the parameters, weights, submodules - also when a call
raises; methods run it in eval mode with frozen parameters. ``x`` is never modified and never gets
a ``.grad``.

ReLU handling. Deconvnet, guided backprop and LRP change the backward pass of activations. For the
duration of the call every ``nn.ReLU`` module (every activation module, for LRP) is swapped for a
module that applies a custom autograd function, out of place, and the originals are put back
afterwards. So an in-place ReLU (``nn.ReLU(inplace=True)``) and a ReLU module called several times
in one forward (torchvision's ResNet blocks do both) get the rule at every call. Functional calls
in forward code (``torch.relu``, ``F.relu``) cannot be seen: they keep the plain gradient. A model
in which no ReLU module runs raises a ValueError for deconvnet and guided backprop.
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from .hooks import frozen, resolve_layer, resolve_layers

__all__ = ["saliency", "deconvnet", "guided_backprop", "integrated_gradients", "smoothgrad",
           "occlusion", "rise", "lime", "superpixels", "cam", "grad_cam", "grad_cam_pp", "lrp",
           "contrastive", "by_interpretation", "METHODS", "count_passes", "Passes", "explain_all", "show"]


# ================================================================================================
# Shared plumbing: argument checks, targets, the model session, resizing, batching
# ================================================================================================
def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_float(name, value, low=-math.inf, high=math.inf, open_low=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (low < value if open_low else low <= value) or value > high or math.isnan(value):
        bounds = [f"> {low}" if open_low else f">= {low}"] if low > -math.inf else []
        bounds += [f"<= {high}"] if high < math.inf else []
        raise ValueError(f"{name} must be a number {' and '.join(bounds)}, got {value!r}")
    return value


def _check_choice(name, value, options):
    try:
        ok = value in options
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def _check_pair(name, value):
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(_check_int(name, v) for v in pair)


def _check_images(x, name="x"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images (N, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty batch of images (N, 3, H, W), "
                         f"got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    return x.detach()


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_baseline(name, value, x):
    """A float, or a tensor broadcast to ``x``'s shape."""
    if isinstance(value, torch.Tensor):
        try:
            return torch.broadcast_to(value.detach().to(x), x.shape)
        except RuntimeError:
            raise ValueError(f"{name} must broadcast to x's shape {tuple(x.shape)}, "
                             f"got shape {tuple(value.shape)}") from None
    return _check_float(name, value)


def _check_index(value, n, name, callable_ok=False):
    """An int class or a LongTensor ``(n,)`` of classes (range checked against K at scoring)."""
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got dtype {value.dtype}")
        if value.dim() == 0:
            value = int(value)
        elif tuple(value.shape) != (n,):
            raise ValueError(f"{name} must be an int or a LongTensor of shape ({n},) (one class per "
                             f"image), got shape {tuple(value.shape)}")
        else:
            return value.long()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        extra = " or a callable logits -> scores" if callable_ok else ""
        raise TypeError(f"{name} must be an int class index, a LongTensor ({n},){extra}, "
                        f"got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a class index >= 0, got {value!r}")
    return int(value)


class _Contrast:
    """Target ``y_target - y_foil`` (row by row); :func:`contrastive` passes it as ``target``."""

    def __init__(self, target, foil):
        self.target, self.foil = target, foil

    def __call__(self, logits):
        return _Target(self, len(logits))(logits)


class _Target:
    """A ``target`` argument checked once; ``score(logits, rows)`` gives the ``(B,)`` scores.

    ``rows`` (B,) says which image of the batch each row of ``logits`` belongs to (perturbation
    methods score batches of perturbed copies); ``None`` means row i is image i.
    """

    def __init__(self, target, n, name="target"):
        self.name, self.fn, self.neg = name, None, None
        if isinstance(target, _Contrast):
            self.pos = _check_index(target.target, n, "target")
            self.neg = _check_index(target.foil, n, "foil")
        elif callable(target) and not isinstance(target, torch.Tensor):
            self.fn, self.pos = target, None
        else:
            self.pos = _check_index(target, n, name, callable_ok=True)

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
        return sel(self.pos) if self.neg is None else _Contrast(sel(self.pos), sel(self.neg))


def _score_grad(tgt, logits):
    """``d score / d logits`` ``(N, K)`` (one-hot for a class target)."""
    with torch.enable_grad():
        z = logits.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(tgt(z).sum(), z)
    return g


@contextmanager
def _session(model, x, target):
    """Check ``model``, ``x``, ``target``; run the model in eval mode with frozen parameters.

    Yields ``(x, target)`` with ``x`` detached and ``target`` a :class:`_Target`. On exit, also on
    error, every module's train/eval mode and every parameter's ``requires_grad`` are restored.
    """
    _check_model(model)
    x = _check_images(x)
    tgt = _Target(target, len(x))
    with frozen(model):
        yield x, tgt


@contextmanager
def _swapped(model, replacement):
    """Put ``replacement(module)`` (when not None) in place of each submodule while in the block.

    One replacement per module object, so a module registered under several names, or called
    several times, stays one module. The originals are put back on exit, also on error.
    """
    done, memo = [], {}
    try:
        for parent in list(model.modules()):
            for key, child in list(parent._modules.items()):
                if child is None:
                    continue
                if id(child) not in memo:
                    memo[id(child)] = replacement(child)
                if memo[id(child)] is not None:
                    parent._modules[key] = memo[id(child)]
                    done.append((parent, key, child))
        yield [m for m in memo.values() if m is not None]
    finally:
        for parent, key, child in reversed(done):
            parent._modules[key] = child


def _upsample(maps, size):
    """``(N, h, w)`` -> ``(N, H, W)``, bilinear (half-pixel centres, like cv2.resize)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def _finish(maps, normalise):
    """float32 ``(N, H, W)``; with ``normalise`` divided per image by its largest |value|."""
    maps = maps.detach().float()
    if normalise:
        peak = maps.abs().flatten(1).amax(1).clamp(min=torch.finfo(torch.float32).tiny)  # (N,)
        maps = maps / peak[:, None, None]
    return maps.contiguous()


_REDUCE = {  # (N, C, H, W) per-channel attributions -> (N, H, W) map
    "abs_max": lambda g: g.abs().amax(1),
    "sum": lambda g: g.sum(1),
    "abs_sum": lambda g: g.abs().sum(1),
    "l2": lambda g: g.norm(dim=1),
}


def _scatter_rows(rows, n, values):
    """``(n, B)`` matrix with ``values[b]`` at ``(rows[b], b)``: a sum per image by matmul (CPU
    ``index_add_`` is slow)."""
    return (rows[None, :] == torch.arange(n, device=rows.device)[:, None]).to(values) * values


def _chunks(total, batch_size, progress, desc):
    """Index tensors ``[k0, k1)`` of at most ``batch_size`` items, with an optional progress bar."""
    with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
        for k0 in range(0, total, batch_size):
            k = torch.arange(k0, min(k0 + batch_size, total))
            yield k
            bar.update(len(k))


def _input_gradients(model, x, tgt, rows=None):
    """``d score / d x`` ``(B, C, H, W)`` for the batch ``x`` (through a detached leaf: the caller's
    tensor gets no ``.grad``)."""
    xi = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(tgt(model(xi), rows).sum(), xi)
    return g


def _default_layer(model):
    """The last module of ``model.features`` (Flower CNNs, VGG); other models must say ``layer``."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise ValueError(f"layer is required for a {type(model).__name__}: it has no `features` "
                         f"module to take the last layer from (e.g. layer='layer4' for a torchvision "
                         f"ResNet)")
    return list(features.modules())[-1]


class _Tap:
    """Activation ``a`` of one layer in one forward; in grad mode ``a`` is a leaf, so the backward
    stops at the layer (``leaf=False``: ``a`` keeps its graph down to the input). The forward
    continues on a copy, so in-place operations after the layer cannot change ``a``."""

    def __init__(self, name, leaf=True):
        self.name, self.a, self.leaf = name, None, leaf

    def __call__(self, module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer {self.name!r} returned {type(output).__name__}, expected a Tensor")
        if self.a is not None:
            raise ValueError(f"layer {self.name!r} ran more than once in one forward (a reused module): "
                             f"choose a layer that runs once")
        self.a = output.detach().requires_grad_(torch.is_grad_enabled()) if self.leaf else output
        return self.a.clone()

    def activation(self):
        if self.a is None:
            raise ValueError(f"layer {self.name!r} did not run in the model's forward")
        if self.a.dim() != 4:
            raise ValueError(f"layer {self.name!r} gives activations of shape {tuple(self.a.shape)}; "
                             f"CAM methods need (N, C, h, w) maps")
        return self.a


@contextmanager
def _taps(model, layers, leaf=True):
    """A :class:`_Tap` on each of ``layers`` while in the block: ``{name: tap}``."""
    taps, handles = {}, []
    try:
        for name, module in resolve_layers(model, layers).items():
            taps[name] = _Tap(name, leaf)
            handles.append(module.register_forward_hook(taps[name]))
        yield taps
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _tapped(model, layer):
    """A :class:`_Tap` on ``layer`` (default: the last module of ``model.features``)."""
    name, _ = resolve_layer(model, _default_layer(model) if layer is None else layer)
    with _taps(model, name) as taps:
        yield taps[name]


# ================================================================================================
# Counting passes
# ================================================================================================
@dataclass
class Passes:
    """Work done through a model: images sent forward / whose gradient came back, and calls."""
    forward: int = 0
    backward: int = 0
    forward_calls: int = 0
    backward_calls: int = 0

    def __str__(self):
        return (f"{self.forward} images forward in {self.forward_calls} calls, "
                f"{self.backward} images backward in {self.backward_calls} calls")


@contextmanager
def count_passes(model):
    """Count the forward and backward passes through ``model`` while in the block.

    A forward hook on the model counts each call and its images; a backward is counted when the
    gradient reaches the model's output (a hook on the output tensor) or, for a backward that
    starts inside the model (``by_interpretation``, from a unit), when it reaches the model's
    input. Partial forward passes that stop inside the model (``lrp`` finding its input bounds)
    are not counted.

        >>> with count_passes(model) as n:
        ...     occlusion(model, x, 3)
        >>> n.forward, n.backward
    """
    _check_model(model)
    counts = Passes()
    handles = []

    def count(grad):
        counts.backward += len(grad)
        counts.backward_calls += 1

    def on_forward(module, inputs, output):
        first = output if isinstance(output, torch.Tensor) else inputs[0]
        counts.forward += len(first)
        counts.forward_calls += 1
        pending = [0]  # backward passes of this call counted at the output, not yet at the input

        def at_output(grad):
            pending[0] += 1
            count(grad)

        def at_input(grad):
            if pending[0]:
                pending[0] -= 1
            else:
                count(grad)

        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(at_output)
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if x is not None and x.requires_grad:
            handles.append(x.register_hook(at_input))  # removed on exit: x may be the caller's

    handles.append(model.register_forward_hook(on_forward))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


# ================================================================================================
# Gradient family
# ================================================================================================
class _ReLUFunction(torch.autograd.Function):
    """ReLU forward (out of place); backward by ``rule``, with R the signal from above and f the
    forward input: gradient 1[f>0] R, deconvnet max(R, 0), guided 1[f>0] 1[R>0] R, pass R."""

    @staticmethod
    def forward(ctx, f, rule):
        ctx.rule = rule
        ctx.save_for_backward(f)
        return f.clamp(min=0)

    @staticmethod
    def backward(ctx, r):
        (f,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return r.clamp(min=0), None
        if ctx.rule == "guided":
            return r.clamp(min=0) * (f > 0), None
        return r * (f > 0), None


class _RuleReLU(nn.Module):
    """Stands in for an ``nn.ReLU`` during a call: every call applies ``rule`` in the backward."""

    def __init__(self, rule):
        super().__init__()
        self.rule, self.calls = rule, 0

    def forward(self, x):
        self.calls += 1
        return _ReLUFunction.apply(x, self.rule)


@contextmanager
def _relu_rule(model, rule, method):
    """Every ``nn.ReLU`` module of ``model`` applies ``rule`` in the backward while in the block
    (each swapped for a :class:`_RuleReLU`); a ValueError at the end if none ran."""
    with _swapped(model, lambda m: _RuleReLU(rule) if isinstance(m, nn.ReLU) else None) as relus:
        yield
    if not any(r.calls for r in relus):
        raise ValueError(f"{method} needs nn.ReLU modules, and none ran in the forward of this "
                         f"{type(model).__name__}: functional relu calls (torch.relu, F.relu) cannot be "
                         f"modified")


def _rule_gradients(model, x, tgt, rule, method):
    """Input gradients with every ``nn.ReLU`` module applying ``rule`` in the backward."""
    with _relu_rule(model, rule, method):
        return _input_gradients(model, x, tgt)


def saliency(model, x, target, reduce="abs_max", normalise=False):
    """Saliency map (Simonyan, Vedaldi, Zisserman 2013): M = max_c |dS_target / dx_c|.

    One forward and one backward. ``reduce`` turns the ``(N, C, H, W)`` gradient into a map:
    ``"abs_max"`` (the paper), ``"sum"``, ``"abs_sum"``, ``"l2"`` over channels.
    """
    _check_choice("reduce", reduce, _REDUCE)
    with _session(model, x, target) as (x, tgt):
        g = _input_gradients(model, x, tgt)
    return _finish(_REDUCE[reduce](g), normalise)


def deconvnet(model, x, target, reduce="abs_max", normalise=False):
    """Deconvnet (Zeiler & Fergus 2014): the backward through each ReLU is R_l = max(R, 0).

    The map ignores the forward ReLU masks (max-pool switches are kept). Needs ``nn.ReLU``
    modules (see the module docstring); ``reduce`` as in :func:`saliency`.
    """
    _check_choice("reduce", reduce, _REDUCE)
    with _session(model, x, target) as (x, tgt):
        g = _rule_gradients(model, x, tgt, "deconvnet", "deconvnet")
    return _finish(_REDUCE[reduce](g), normalise)


def guided_backprop(model, x, target, reduce="abs_max", normalise=False):
    """Guided backpropagation (Springenberg et al. 2015): R_l = 1[f > 0] 1[R > 0] R at each ReLU.

    Needs ``nn.ReLU`` modules (see the module docstring); ``reduce`` as in :func:`saliency`.
    """
    _check_choice("reduce", reduce, _REDUCE)
    with _session(model, x, target) as (x, tgt):
        g = _rule_gradients(model, x, tgt, "guided", "guided_backprop")
    return _finish(_REDUCE[reduce](g), normalise)


def _quadrature(steps, method):
    """Points ``alpha`` in (0, 1) and weights summing to 1 for the path integral."""
    if method == "riemann_middle":
        alphas = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
        return alphas, torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    import numpy as np  # constants only

    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)


def integrated_gradients(model, x, target, baseline=0.0, steps=50, method="riemann_middle",
                         batch_size=32, reduce="sum", progress=False, normalise=False):
    """Integrated gradients (Sundararajan, Taly, Yan 2017).

    IG_i = (x_i - x'_i) * sum_j w_j dS(x' + alpha_j (x - x')) / dx_i, with ``steps`` points
    ``alpha_j``: the midpoint rule (``"riemann_middle"``, w_j = 1/steps, the default) or
    ``"gausslegendre"`` (Captum's default). Completeness: the map summed (``reduce="sum"``, the
    default) equals S(x) - S(x') up to the quadrature error. ``baseline`` x' is a float or a tensor
    broadcast to ``x`` (default black). ``steps * N`` interpolated images go through the model in
    batches of ``batch_size`` (one forward and one backward each).
    """
    steps = _check_int("steps", steps, low=1)
    batch_size = _check_int("batch_size", batch_size)
    _check_choice("method", method, ("riemann_middle", "gausslegendre"))
    _check_choice("reduce", reduce, _REDUCE)
    with _session(model, x, target) as (x, tgt):
        base = _check_baseline("baseline", baseline, x)
        base = torch.full_like(x, base) if isinstance(base, float) else base
        alphas, weights = (t.to(x) for t in _quadrature(steps, method))
        n = len(x)
        total = torch.zeros(n, x[0].numel(), dtype=x.dtype, device=x.device)
        for k in _chunks(n * steps, batch_size, progress, "integrated gradients"):
            k = k.to(x.device)
            i, j = k % n, k // n  # image, step
            g = _input_gradients(model, torch.lerp(base[i], x[i], alphas[j].view(-1, 1, 1, 1)), tgt, rows=i)
            total += _scatter_rows(i, n, weights[j]) @ g.flatten(1)  # (N, C*H*W)
        attributions = (x - base) * total.view_as(x)  # (N, C, H, W)
    return _finish(_REDUCE[reduce](attributions), normalise)


def smoothgrad(model, x, target, method="saliency", n=50, sigma=0.15, batch_size=32, seed=0,
               progress=False, normalise=False, **kwargs):
    """SmoothGrad (Smilkov et al. 2017): M(x) = 1/n sum_i M_method(x + eps_i).

    eps_i ~ N(0, (sigma (max x - min x))^2) per image (``sigma`` 0.15 = 15 % noise level, the
    paper's 10-20 %). ``method`` is any explanation function or its name in ``METHODS`` (default
    saliency); ``kwargs`` go to it. The maps of the noisy copies are averaged. Noisy copies go to
    ``method`` in batches of about ``batch_size`` images; the noise of copy i depends only on
    ``(seed, i)``.
    """
    fn = METHODS[_check_choice("method", method, METHODS)] if isinstance(method, str) else method
    if not callable(fn):
        raise TypeError(f"method must be an explanation function or one of {list(METHODS)}, got {method!r}")
    n = _check_int("n", n)
    sigma = _check_float("sigma", sigma, low=0.0)
    batch_size = _check_int("batch_size", batch_size)
    _check_model(model)
    x = _check_images(x)
    tgt = _Target(target, len(x))
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    per_chunk = max(1, batch_size // len(x))  # noisy copies per call
    total = 0.0
    with tqdm(total=n, disable=not progress, desc="smoothgrad", unit="copy", leave=False) as bar:
        for c0 in range(0, n, per_chunk):
            copies = range(c0, min(c0 + per_chunk, n))
            noise = torch.cat([torch.randn(x.shape, generator=torch.Generator().manual_seed(
                seed * 1_000_003 + c)) for c in copies]).to(x)  # (copies * N, C, H, W)
            rows = torch.arange(len(x)).repeat(len(copies))  # image of each noisy copy
            maps = fn(model, x[rows] + sigma * span[rows] * noise, tgt.select(rows), **kwargs)
            total = total + maps.view(len(copies), *x.shape[:1], *maps.shape[1:]).sum(0)
            bar.update(len(copies))
    return _finish(total / n, normalise)


# ================================================================================================
# Perturbation
# ================================================================================================
def _windows(size, window, stride):
    """``(P, size)`` bool: the pixels of each window position along one axis; the last window is
    clipped at the border (as in Captum), so every pixel is covered."""
    starts = torch.arange(math.ceil((size - window) / stride) + 1) * stride  # (P,)
    pos = torch.arange(size)
    return (pos >= starts[:, None]) & (pos < starts[:, None] + window)


def occlusion(model, x, target, window=None, stride=None, baseline=0.5, batch_size=64,
              progress=False, normalise=False):
    """Occlusion (Zeiler & Fergus 2014): S(p) = f(x) - f(x with the window at p set to baseline),
    averaged over the windows that cover each pixel. Windows start every ``stride`` pixels; the last
    one in each direction is clipped at the border (as in Captum), so every pixel is covered.

    ``window`` and ``stride`` are ints or (h, w) pairs; defaults: window = min(H, W) // 8, stride =
    window // 2 (about 15 x 15 positions). ``baseline`` is a float (default 0.5, the paper's grey
    square) or a tensor broadcast to ``x``. N x positions occluded images, plus N unoccluded, go
    forward in batches of ``batch_size``; no backward.
    """
    batch_size = _check_int("batch_size", batch_size)
    with _session(model, x, target) as (x, tgt):
        n, _, h, w = x.shape
        window = max(1, min(h, w) // 8) if window is None else window
        wh, ww = _check_pair("window", window)
        if wh > h or ww > w:
            raise ValueError(f"window must fit in the {h} x {w} images, got {window!r}")
        sh, sw = _check_pair("stride", max(1, min(wh, ww) // 2) if stride is None else stride)
        fill = _check_baseline("baseline", baseline, x)
        rows, cols = _windows(h, wh, sh).to(x.device), _windows(w, ww, sw).to(x.device)
        patches = (rows[:, None, :, None] & cols[None, :, None, :]).flatten(0, 1)  # (P, H, W)
        p = len(patches)
        drops = torch.empty(n * p, device=x.device)
        with torch.no_grad():
            full = tgt(model(x))  # (N,)
            for k in _chunks(n * p, batch_size, progress, "occlusion"):
                i, j = (k // p).to(x.device), (k % p).to(x.device)  # image, window position
                window = patches[j][:, None]  # (B, 1, H, W)
                occluded = (x[i].masked_fill_(window, fill) if isinstance(fill, float) else
                            torch.where(window, fill[i], x[i]))
                drops[k.to(x.device)] = full[i] - tgt(model(occluded), rows=i)
        covered = patches.flatten(1).float()  # (P, H*W)
        maps = drops.view(n, p) @ covered / covered.sum(0)  # (N, H*W)
    return _finish(maps.view(n, h, w), normalise)


def _rise_masks(grids, shifts, size):
    """RISE masks ``(M, H, W)``: each ``s x s`` grid upsampled bilinearly to ``(s+1) C`` and cropped
    to ``H x W`` at its offset (``shifts (M, 2)`` in [0, C))."""
    h, w = size
    s = grids.shape[-1]
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    up = F.interpolate(grids, size=((s + 1) * ch, (s + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0]  # (M, (s+1)ch, (s+1)cw)
    r = shifts[:, :1] + torch.arange(h, device=grids.device)  # (M, H)
    c = shifts[:, 1:] + torch.arange(w, device=grids.device)  # (M, W)
    return up[torch.arange(len(up), device=grids.device)[:, None, None], r[:, :, None], c[:, None, :]]


def rise(model, x, target, n_masks=2000, s=8, p=0.5, baseline=0.0, probability=True,
         batch_size=64, seed=0, progress=False, normalise=False):
    """RISE (Petsiuk, Das, Saenko 2018): S = 1 / (N p) sum_i f(x ⊙ M_i) M_i.

    ``n_masks`` (default 2000; the paper uses 4000-8000 on ImageNet) binary ``s x s`` grids with
    P(1) = ``p``, upsampled bilinearly to (s+1) C (C = ceil(H / s)) and cropped at a random offset
    in [0, C): smooth masks. ``f`` is the softmax probability of the target (``probability=False``:
    the target score on the logits). Masked pixels take ``baseline`` (default 0, black: the formula;
    the authors' code masks normalised images, i.e. towards the mean colour). The masks depend
    only on ``seed``, ``n_masks``, ``s``, ``p`` and the image size, are shared by all images, and
    N x n_masks masked images go forward in batches of ``batch_size``; no backward.
    """
    n_masks = _check_int("n_masks", n_masks)
    s = _check_int("s", s)
    p = _check_float("p", p, low=0.0, high=1.0, open_low=True)
    batch_size = _check_int("batch_size", batch_size)
    with _session(model, x, target) as (x, tgt):
        n, _, h, w = x.shape
        fill = _check_baseline("baseline", baseline, x)
        gen = torch.Generator().manual_seed(seed)
        grids = (torch.rand(n_masks, 1, s, s, generator=gen) < p).to(x)  # (M, 1, s, s)
        shifts = torch.stack([torch.randint(0, math.ceil(h / s), (n_masks,), generator=gen),
                              torch.randint(0, math.ceil(w / s), (n_masks,), generator=gen)], 1).to(x.device)
        sal = torch.zeros(n, h * w, device=x.device)
        with torch.no_grad():
            for k in _chunks(n * n_masks, batch_size, progress, "rise"):
                k = k.to(x.device)
                i, m = k % n, k // n  # image, mask (mask-major: each mask is made once)
                masks = _rise_masks(grids[m[0]:m[-1] + 1], shifts[m[0]:m[-1] + 1], (h, w))  # (M_b, H, W)
                keep = masks[m - m[0], None]  # (B, 1, H, W)
                if isinstance(fill, float):  # x M + baseline (1 - M)
                    masked = x[i].mul_(keep) if fill == 0 else x[i].sub_(fill).mul_(keep).add_(fill)
                else:
                    masked = torch.lerp(fill[i], x[i], keep)
                out = model(masked)
                scores = tgt(out.softmax(1) if probability else out, rows=i)  # (B,)
                sal += _scatter_rows(i, n, scores) @ keep.flatten(1)  # (N, H*W)
    return _finish(sal.view(n, h, w) / (n_masks * p), normalise)


def _contiguous(segments):
    """Relabel ``(N, H, W)`` integer segments to 0 .. d_n - 1 within each image (vectorised)."""
    n = len(segments)
    flat = segments.flatten(1).long()
    flat = flat - flat.amin(1, keepdim=True)
    span = int(flat.max()) + 1
    offsets = span * torch.arange(n, device=flat.device)
    uniq, inverse = torch.unique(flat + offsets[:, None], return_inverse=True)
    first = torch.searchsorted(uniq, offsets)  # (N,) index of each image's first label
    return (inverse - first[:, None]).view(segments.shape)


def superpixels(x, segments="slic", n_segments=50):
    """Superpixels ``(N, H, W)`` long, labels 0 .. d_n - 1 per image, for :func:`lime`.

    ``"slic"``: scikit-image SLIC (compactness 10, one call per image: the only per-image loop of
    this module, a segmentation step outside the method); ``"grid"``: a regular grid of about
    ``n_segments`` cells; or a given integer tensor ``(N, H, W)`` / ``(H, W)`` (relabelled).
    """
    x = _check_images(x)
    n, _, h, w = x.shape
    if isinstance(segments, torch.Tensor):
        seg = segments.expand(n, *segments.shape) if segments.dim() == 2 else segments
        if tuple(seg.shape) != (n, h, w) or seg.dtype.is_floating_point:
            raise ValueError(f"segments must be an integer tensor of shape ({n}, {h}, {w}) or ({h}, {w}), "
                             f"got {segments.dtype} {tuple(segments.shape)}")
        return _contiguous(seg.to(x.device))
    _check_choice("segments", segments, ("slic", "grid"))
    n_segments = _check_int("n_segments", n_segments)
    if segments == "grid":
        g = max(1, round(math.sqrt(n_segments)))
        r = torch.arange(h, device=x.device) * g // h
        c = torch.arange(w, device=x.device) * g // w
        return (r[:, None] * g + c[None, :]).expand(n, h, w).clone()
    from skimage.segmentation import slic

    images = x.permute(0, 2, 3, 1).double().cpu().numpy()  # (N, H, W, C)
    seg = [torch.from_numpy(slic(img, n_segments=n_segments, compactness=10, start_label=0,
                                 channel_axis=-1)) for img in images]
    return _contiguous(torch.stack(seg).to(x.device))


def _weighted_ridge(z, y, weights, alpha):
    """Per image, the coefficients b of argmin_{b, c} sum_s w_s (y_s - c - z_s b)^2 + alpha |b|^2
    (scikit-learn's Ridge with sample weights and an unpenalised intercept). ``z (N, S, d)``,
    ``y, weights (N, S)`` -> ``(N, d)``, solved in float64."""
    z, y, weights = z.double(), y.double(), weights.double()
    total = weights.sum(1, keepdim=True)  # (N, 1)
    zc = z - (weights[..., None] * z).sum(1, keepdim=True) / total[..., None]  # (N, S, d)
    yc = y - (weights * y).sum(1, keepdim=True) / total  # (N, S)
    eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    a = zc.transpose(1, 2) @ (weights[..., None] * zc) + alpha * eye  # (N, d, d)
    b = zc.transpose(1, 2) @ (weights * yc)[..., None]  # (N, d, 1)
    return torch.linalg.solve(a, b)[..., 0]


def lime(model, x, target, n_samples=1000, segments="slic", n_segments=50, kernel_width=0.25,
         alpha=1.0, hide_color=None, probability=True, batch_size=64, seed=0, progress=False,
         normalise=False):
    """LIME for images (Ribeiro, Singh, Guestrin 2016): a weighted linear surrogate on superpixels.

    ``n_samples`` binary vectors z (P(1) = 1/2; the first is all ones) switch superpixels on or off;
    hidden superpixels take their mean colour (or ``hide_color``). Each sample weighs
    pi = sqrt(exp(-d^2 / w^2)), d the cosine distance of z to all ones, w = ``kernel_width``; a
    ridge regression (``alpha``, with intercept) of f(z) on z gives one coefficient per
    superpixel, painted on it. ``f`` is the softmax probability of the target (``probability``).
    ``segments``: ``"slic"``, ``"grid"`` or a tensor, see :func:`superpixels`. Unlike the ``lime``
    package every superpixel is kept (no feature selection). N x n_samples images go forward in
    batches of ``batch_size``; no backward.
    """
    n_samples = _check_int("n_samples", n_samples)
    kernel_width = _check_float("kernel_width", kernel_width, low=0.0, open_low=True)
    alpha = _check_float("alpha", alpha, low=0.0)
    batch_size = _check_int("batch_size", batch_size)
    with _session(model, x, target) as (x, tgt):
        n, c, h, w = x.shape
        seg = superpixels(x, segments, n_segments).flatten(1)  # (N, H*W)
        d = int(seg.max()) + 1
        pixels = torch.zeros(n, d, device=x.device).scatter_add_(1, seg, torch.ones_like(seg, dtype=x.dtype))
        valid = (pixels > 0).to(x.dtype)  # (N, d) superpixels present in each image
        if hide_color is None:
            sums = torch.zeros(n, c, d, device=x.device).scatter_add_(
                2, seg[:, None].expand(n, c, -1), x.flatten(2))  # (N, C, d)
            fill = (sums / pixels.clamp(min=1)[:, None]).gather(2, seg[:, None].expand(n, c, -1)).view_as(x)
        else:
            fill = torch.full_like(x, _check_float("hide_color", hide_color))
        gen = torch.Generator().manual_seed(seed)
        z = (torch.rand(n, n_samples, d, generator=gen) < 0.5).to(x)  # (N, S, d)
        z[:, 0] = 1
        z = z * valid[:, None]
        cos = z.sum(2) / (z.sum(2).sqrt() * valid.sum(1, keepdim=True).sqrt()).clamp(min=1e-12)  # (N, S)
        weights = torch.exp(-((1 - cos) ** 2) / kernel_width ** 2).sqrt()
        y = torch.empty(n * n_samples, device=x.device)
        with torch.no_grad():
            for k in _chunks(n * n_samples, batch_size, progress, "lime"):
                k = k.to(x.device)
                i, j = k // n_samples, k % n_samples  # image, sample
                hide = z[i, j].gather(1, seg[i]).view(len(k), 1, h, w) == 0  # (B, 1, H, W)
                out = model(torch.where(hide, fill[i], x[i]))
                y[k] = tgt(out.softmax(1) if probability else out, rows=i)
        coef = _weighted_ridge(z, y.view(n, n_samples), weights, alpha).to(x)  # (N, d)
    return _finish(coef.gather(1, seg).view(n, h, w), normalise)


# ================================================================================================
# Class activation maps
# ================================================================================================
def _layer_gradients(model, x, tgt, layer):
    """Activations ``A (N, C, h, w)`` of ``layer`` and ``dS / dA``; the backward stops at the layer."""
    with _tapped(model, layer) as tap, torch.enable_grad():
        scores = tgt(model(x))
        a = tap.activation()
        (g,) = torch.autograd.grad(scores.sum(), a, allow_unused=True)
    if g is None:
        raise ValueError(f"the target score does not depend on layer {tap.name!r}")
    return a.detach(), g


def cam(model, x, target, layer=None, fc=None, normalise=False):
    """Class activation map (Zhou et al. 2016): M_c = sum_k w^c_k A_k.

    For a model whose ``layer`` feeds global average pooling and the linear head ``fc`` (default:
    ``model.fc``); ``w^c`` is the head's row of the target (for a callable target, dS/dlogits times
    the head's weights). Raw (signed, no ReLU) at input resolution. Raises a ValueError when the
    model is not GAP + linear after ``layer`` (checked: mean of the map + bias = score). One
    forward, no backward.
    """
    with _session(model, x, target) as (x, tgt):
        if fc is None and not isinstance(getattr(model, "fc", None), nn.Linear):
            raise ValueError(f"fc is required: this {type(model).__name__} has no `fc` linear head "
                             f"(pass the linear layer after global average pooling)")
        head = model.fc if fc is None else resolve_layer(model, fc)[1]
        if not isinstance(head, nn.Linear):
            raise ValueError(f"fc must be an nn.Linear head, got {type(head).__name__}")
        with _tapped(model, layer) as tap, torch.no_grad():
            logits = model(x)
            a = tap.activation()
        if a.shape[1] != head.in_features:
            raise ValueError(f"layer {tap.name!r} has {a.shape[1]} channels but fc takes "
                             f"{head.in_features} inputs: CAM needs layer -> global average pool -> fc")
        g = _score_grad(tgt, logits)  # (N, K)
        maps = torch.einsum("nc,nchw->nhw", g @ head.weight, a)  # (N, h, w)
        bias = g @ head.bias if head.bias is not None else 0.0
        expected, got = (g * logits).sum(1), maps.mean((1, 2)) + bias
        if not torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()) + 1e-5):
            raise ValueError(f"cam needs layer {tap.name!r} -> global average pooling -> fc; this model "
                             f"computes something else after the layer (use grad_cam)")
    return _finish(_upsample(maps, x.shape[-2:]), normalise)


def grad_cam(model, x, target, layer=None, relu=True, normalise=False):
    """Grad-CAM (Selvaraju et al. 2017): L = ReLU(sum_k alpha_k A^k), alpha_k = mean_ij dS / dA^k_ij.

    ``S`` is the target's pre-softmax score, ``layer`` a conv layer (default: the last module of
    ``model.features``), upsampled bilinearly. ``relu=False`` keeps the negative part (useful for
    contrastive maps). One forward, one backward from the output down to ``layer`` only.
    """
    with _session(model, x, target) as (x, tgt):
        a, g = _layer_gradients(model, x, tgt, layer)
        maps = torch.einsum("nc,nchw->nhw", g.mean((2, 3)), a)  # (N, h, w)
    return _finish(_upsample(F.relu(maps) if relu else maps, x.shape[-2:]), normalise)


def grad_cam_pp(model, x, target, layer=None, normalise=False):
    """Grad-CAM++ (Chattopadhyay et al. 2018): L = ReLU(sum_k w_k A^k), w_k = sum_ij a_ij ReLU(g_ij),
    a = g^2 / (2 g^2 + sum_ab A_ab g^3 + 1e-6) and 0 where g = dS/dA = 0 (pytorch-grad-cam's form).
    """
    with _session(model, x, target) as (x, tgt):
        a, g = _layer_gradients(model, x, tgt, layer)
        g2 = g * g
        coef = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g + 1e-6)
        coef = torch.where(g != 0, coef, torch.zeros_like(coef))
        weights = (coef * F.relu(g)).sum((2, 3))  # (N, C)
        maps = torch.einsum("nc,nchw->nhw", weights, a)
    return _finish(_upsample(F.relu(maps), x.shape[-2:]), normalise)


# ================================================================================================
# Layer-wise relevance propagation
# ================================================================================================
_STABILIZER = 1e-6  # Zennit's default stabiliser of the gamma, alpha-beta, z^B, flat and pooling rules
_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
          nn.AdaptiveAvgPool3d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Tanh,
                nn.Sigmoid, nn.Softplus, nn.ReLU6, nn.Hardtanh, nn.Mish, nn.Hardswish)


def _stabilize(z, eps):
    """z + eps sign(z), sign(0) = +1 (Zennit's convention); with eps = 0, 0 becomes 1 (0/0 -> 0)."""
    den = z + torch.where(z >= 0, eps, -eps)
    return den if eps else torch.where(den == 0, torch.ones_like(den), den)


def _lrp_epsilon(layer, a, z, r, eps):
    """LRP-epsilon (Bach 2015): R_i = sum_j a_i w_ij R_j / (z_j + eps sign z_j); eps = 0: LRP-0."""
    return a * layer.vjp(a.shape, layer.weight, r / _stabilize(z, eps))


def _sign_pairs(a, w_pos, w_neg, b_pos, b_neg):
    """The (input, weight, bias) pairs whose contributions z_ij = a_i w_ij are positive, and those
    whose contributions are negative: a+ with w_pos (w_neg), and, where inputs can be negative,
    a- with w_neg (w_pos)."""
    ap, an = a.clamp(min=0), a.clamp(max=0)
    pos, neg = [(ap, w_pos, b_pos)], [(ap, w_neg, b_neg)]
    if (a < 0).any():
        pos.append((an, w_neg, None))
        neg.append((an, w_pos, None))
    return pos, neg


def _lrp_gamma(layer, a, z, r, gamma):
    """LRP-gamma (Montavon 2019), Zennit's generalisation to signed inputs: w -> w + gamma w^+ for
    the contributions that share the sign of z_j (w + gamma w^- where z_j < 0)."""
    w, b = layer.weight, layer.bias
    pairs_pos, pairs_neg = _sign_pairs(a, w + gamma * w.clamp(min=0), w + gamma * w.clamp(max=0),
                                       b + gamma * b.clamp(min=0), b + gamma * b.clamp(max=0))
    out = 0
    for pairs, mask in ((pairs_pos, z > 0), (pairs_neg, z < 0)):
        s = r * mask / _stabilize(sum(layer.fn(ai, wi, bi) for ai, wi, bi in pairs), _STABILIZER)
        out = out + sum(ai * layer.vjp(a.shape, wi, s) for ai, wi, _ in pairs)
    return out


def _lrp_alpha_beta(layer, a, z, r, alpha, beta):
    """LRP-alpha-beta (Bach 2015): R_i = sum_j (alpha z+_ij / z+_j - beta z-_ij / z-_j) R_j, with
    z+ the positive contributions a+ w+ and a- w- (and b+), z- the negative ones."""
    w, b = layer.weight, layer.bias
    pos, neg = _sign_pairs(a, w.clamp(min=0), w.clamp(max=0), b.clamp(min=0), b.clamp(max=0))
    out = 0
    for pairs, factor in ((pos, alpha), (neg, -beta)):
        if factor == 0:
            continue
        s = r / _stabilize(sum(layer.fn(ai, wi, bi) for ai, wi, bi in pairs), _STABILIZER)
        out = out + factor * sum(ai * layer.vjp(a.shape, wi, s) for ai, wi, _ in pairs)
    return out


def _lrp_zb(layer, a, z, r, low, high):
    """z^B (Montavon 2017) for inputs in [l, h]: R_i = sum_j (a_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j."""
    w = layer.weight
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    den = layer.fn(a, w, None) - layer.fn(low, wp, None) - layer.fn(high, wn, None)
    s = r / _stabilize(den, _STABILIZER)
    return a * layer.vjp(a.shape, w, s) - low * layer.vjp(a.shape, wp, s) - high * layer.vjp(a.shape, wn, s)


def _lrp_flat(layer, a, z, r):
    """Flat rule (Lapuschkin 2019): R_j spread equally over the inputs j sees (all weights 1)."""
    ones_w = torch.ones_like(layer.weight)
    den = layer.fn(torch.ones_like(a[:1]), ones_w, None)
    return layer.vjp(a.shape, ones_w, r / _stabilize(den, _STABILIZER))


class _Stop(Exception):
    """Ends the probe forward of :func:`_lrp_bounds` at the first layer."""


class _LRPState:
    """What the LRP layers share during one call: the rules, the first-layer bookkeeping."""

    def __init__(self, rule):
        self.rule, self.input_rule = rule, None
        self.probing, self.probe, self.leaf, self.first_done = False, None, None, False


class _LRPFunction(torch.autograd.Function):
    """A linear layer's forward; its backward maps output relevance to input relevance by ``rule``."""

    @staticmethod
    def forward(ctx, a, layer, rule):
        z = layer.fn(a, layer.weight, layer.bias)
        ctx.layer, ctx.rule = layer, rule
        ctx.save_for_backward(a)
        ctx.z = z.clone()  # a copy: forward code may add to z in place (`out += identity`)
        return z

    @staticmethod
    def backward(ctx, r):
        (a,) = ctx.saved_tensors
        return ctx.rule(ctx.layer, a, ctx.z, r), None, None


class _LRPLayer(nn.Module):
    """Stands in for a Conv / Linear during :func:`lrp`, with the BatchNorm that follows it merged
    into its own copy of the weights (the original module is not touched)."""

    def __init__(self, module, bn, state):
        super().__init__()
        w = module.weight.detach()
        b = module.bias.detach() if module.bias is not None else torch.zeros(w.shape[0]).to(w)
        if bn is not None:  # y = (z - mean) / sqrt(var + eps) * gamma + beta, folded into w and b
            scale = (bn.running_var + bn.eps).rsqrt()
            scale = scale * bn.weight.detach() if bn.weight is not None else scale
            shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(scale)
            w = w * scale.view(-1, *[1] * (w.dim() - 1))
            b = (b - bn.running_mean) * scale + shift
        self.weight, self.bias, self.state, self.last = w, b, state, None
        self._original = [module]  # a list: not registered as a submodule

    def fn(self, a, w, b=None):
        m = self._original[0]
        return F.linear(a, w, b) if isinstance(m, nn.Linear) else m._conv_forward(a, w, b)

    def vjp(self, shape, w, s):
        """``(d fn(a, w) / d a)^T s`` for an input of ``shape`` (fn is linear in a)."""
        m = self._original[0]
        if isinstance(m, nn.Linear):
            return s @ w
        if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            return torch.nn.grad.conv2d_input(shape, w, s, m.stride, m.padding, m.dilation, m.groups)
        with torch.enable_grad():
            a0 = torch.zeros(shape, dtype=s.dtype, device=s.device, requires_grad=True)
            return torch.autograd.grad(self.fn(a0, w), a0, s)[0]

    def forward(self, a):
        state, rule = self.state, self.state.rule
        if not state.first_done:  # the first linear layer of this forward: the input layer
            state.first_done = True
            if state.probing:
                state.probe = a.detach()
                raise _Stop
            a = state.leaf = a.detach().requires_grad_(True)
            rule = state.input_rule or rule
        self.last = _LRPFunction.apply(a, self, rule)
        return self.last


class _MergedBatchNorm(nn.Module):
    """Stands in for a BatchNorm merged into the layer before it: the identity, after checking
    that its input really is that layer's output in this forward."""

    def __init__(self, layer, name, layer_name):
        super().__init__()
        self.layer, self.name, self.layer_name = [layer], name, layer_name

    def forward(self, x):
        if x is not self.layer[0].last:
            raise ValueError(f"lrp merges BatchNorm {self.name!r} into {self.layer_name!r}, but in the "
                             f"forward it does not take that layer's output")
        return x


class _Refused(nn.Module):
    """Stands in for a module LRP has no rule for: raises a ValueError if the forward uses it."""

    def __init__(self, message):
        super().__init__()
        self.message = message

    def forward(self, *args, **kwargs):
        raise ValueError(self.message)


class _PassFunction(torch.autograd.Function):
    """An activation (or average pooling, ``norm=True``): forward as the module, out of place;
    backward passes relevance through (activations) or in proportion to the inputs (pooling:
    R_i = a_i sum_j w_ij R_j / z_j, Zennit's Norm rule)."""

    @staticmethod
    def forward(ctx, a, module, norm):
        ctx.module, ctx.norm = module, norm
        if norm:
            ctx.save_for_backward(a)
        return module(a.clone() if getattr(module, "inplace", False) else a)

    @staticmethod
    def backward(ctx, r):
        if not ctx.norm:
            return r, None, None
        (a,) = ctx.saved_tensors
        with torch.enable_grad():
            a0 = a.detach().requires_grad_(True)
            z = ctx.module(a0)
            (c,) = torch.autograd.grad(z, a0, r / _stabilize(z.detach(), _STABILIZER))
        return a * c, None, None


class _PassLayer(nn.Module):
    def __init__(self, module, norm):
        super().__init__()
        self._original, self.norm = [module], norm

    def forward(self, a):
        return _PassFunction.apply(a, self._original[0], self.norm)


class _SumFunction(torch.autograd.Function):
    """a + b; the backward splits relevance in proportion to the summands (R_a = a R / (a + b))."""

    @staticmethod
    def forward(ctx, a, b, inplace):
        den = _stabilize(a + b, _STABILIZER)
        ctx.shares = (a / den, b / den)
        if inplace:
            ctx.mark_dirty(a)
            return a.add_(b)
        return a + b

    @staticmethod
    def backward(ctx, r):
        return ctx.shares[0] * r, ctx.shares[1] * r, None


class _ResidualSums(TorchFunctionMode):
    """Routes ``a + b`` of two activations (both in the graph, same shape) through
    :class:`_SumFunction`: residual connections written as ``out + identity`` or ``out += identity``
    in forward code."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (getattr(func, "__name__", "") in ("add", "add_", "__add__", "__iadd__", "__radd__")
                and not kwargs and len(args) == 2 and torch.is_grad_enabled()
                and all(isinstance(t, torch.Tensor) and t.requires_grad for t in args)
                and args[0].shape == args[1].shape):
            return _SumFunction.apply(args[0], args[1], func.__name__ in ("add_", "__iadd__"))
        return func(*args, **(kwargs or {}))


def _lrp_replacements(model, state):
    """``{id(module): stand-in}`` for :func:`_swapped`: linear layers (BatchNorm merged into the
    layer just before it, in registration order, checked at run time), activations, average
    pooling, and refusals for modules with parameters LRP has no rule for."""
    names = {id(m): name for name, m in model.named_modules()}
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    batch_norms = nn.modules.batchnorm._BatchNorm
    pairs = [(prev, bn) for prev, bn in zip(leaves, leaves[1:])
             if isinstance(bn, batch_norms) and isinstance(prev, _LINEAR) and bn.track_running_stats
             and prev.weight.shape[0] == bn.num_features]
    bn_after = {id(prev): bn for prev, bn in pairs}
    merged = {id(bn): prev for prev, bn in pairs}
    out = {}
    for m in leaves:
        if isinstance(m, _LINEAR):
            out[id(m)] = _LRPLayer(m, bn_after.get(id(m)), state)
    for m in leaves:
        name = names.get(id(m), type(m).__name__)
        if isinstance(m, batch_norms):
            prev = merged.get(id(m))
            out[id(m)] = (_MergedBatchNorm(out[id(prev)], name, names.get(id(prev))) if prev is not None else
                          _Refused(f"lrp cannot merge BatchNorm {name!r}: it does not follow a Conv or "
                                   f"Linear layer with running statistics"))
        elif isinstance(m, _ACTIVATIONS):
            out[id(m)] = _PassLayer(m, norm=False)
        elif isinstance(m, _POOLS):
            out[id(m)] = _PassLayer(m, norm=True)
        elif not isinstance(m, _LINEAR) and any(True for _ in m.parameters(recurse=False)):
            out[id(m)] = _Refused(f"lrp has no rule for {name!r} ({type(m).__name__}); it handles "
                                  f"Conv, Linear, BatchNorm after them, activations and pooling")
    return out


@contextmanager
def _lrp_model(model, state):
    """The model with its LRP stand-ins while in the block (originals restored on exit)."""
    table = _lrp_replacements(model, state)
    with _swapped(model, lambda m: table.get(id(m))):
        yield


def _lrp_bounds(model, state, x, low, high):
    """The z^B bounds at the first layer's input: images of ``low``, ``high`` (image space) under
    what the model does before that layer (e.g. FlowerCNN.normalize), found by sending constant
    images up to it; checked to be a per-pixel increasing affine map."""
    c, h, w = x.shape[1:]
    probe = torch.tensor([low, high, (low + high) / 2]).to(x).view(3, 1, 1, 1).expand(3, c, h, w)
    state.probing, state.first_done, state.probe = True, False, None
    try:
        with torch.no_grad(), _ResidualSums():
            model(probe.contiguous())
    except _Stop:
        pass
    finally:
        state.probing = False
    if state.probe is None:
        raise ValueError("lrp found no Conv or Linear layer in the forward of the model")
    lo, hi, mid = state.probe.split(1)
    if (lo.numel() != c * h * w or (hi < lo).any()
            or not torch.allclose(mid, (lo + hi) / 2, rtol=1e-4, atol=1e-5)):
        raise ValueError("input_rule='zb' needs the model to map images to its first layer by a "
                         "per-pixel increasing affine map (such as normalisation); use input_rule='flat' "
                         "or None")
    return lo, hi


def _lrp_rule(rule, epsilon, gamma, alpha, beta):
    _check_choice("rule", rule, ("0", "epsilon", "gamma", "alpha_beta"))
    epsilon = _check_float("epsilon", epsilon, low=0.0)
    gamma = _check_float("gamma", gamma, low=0.0)
    alpha, beta = _check_float("alpha", alpha, low=0.0), _check_float("beta", beta, low=0.0)
    if rule == "alpha_beta" and abs(alpha - beta - 1) > 1e-9:
        raise ValueError(f"alpha - beta must equal 1 (conservation), got alpha={alpha}, beta={beta}")
    return {"0": partial(_lrp_epsilon, eps=0.0), "epsilon": partial(_lrp_epsilon, eps=epsilon),
            "gamma": partial(_lrp_gamma, gamma=gamma),
            "alpha_beta": partial(_lrp_alpha_beta, alpha=alpha, beta=beta)}[rule]


def lrp(model, x, target, rule="epsilon", epsilon=1e-6, gamma=0.25, alpha=2.0, beta=1.0,
        input_rule="zb", low=0.0, high=1.0, normalise=False):
    """Layer-wise relevance propagation (Bach et al. 2015; rules as in Montavon et al. 2019).

    Relevance starts at the logits as R = logits * dS/dlogits (the target logit itself for a class
    target; +y_target and -y_foil for a contrast) and goes down layer by layer, as a modified
    gradient. Conv and Linear layers use ``rule`` (formulas in the ``_lrp_*`` functions, equal to
    Zennit's): ``"0"`` (z_ij / z_j), ``"epsilon"`` (denominator z_j + eps sign z_j; ``epsilon``
    1e-6 as Zennit, Captum uses 1e-9), ``"gamma"`` (w + gamma w+, gamma 0.25) or ``"alpha_beta"``
    (alpha z+ / z+ - beta z- / z-, alpha - beta = 1). The first layer the forward runs uses
    ``input_rule``: ``"zb"`` (bounds ``low``, ``high`` in image space, i.e. before the model's own
    normalisation), ``"flat"``, or ``None`` (``rule`` there too).

    Relevance passes unchanged through activation modules, to the winner through max pooling, and
    in proportion to the inputs through average pooling and at sums of two activations (residual
    connections, also ``out += identity``). Other ways of merging branches in forward code
    (``torch.stack(...).sum``, products) keep the plain gradient. A BatchNorm right after a Conv /
    Linear (in registration order; checked in the forward) is merged into a copy of that layer's
    weights for the call; the model's own parameters are not changed. Modules with parameters of
    other kinds raise a ValueError.

    The map is the relevance at the first layer's input, summed over channels: with ``"0"`` on a
    bias-free ReLU network it sums to the target logit (conservation). One forward and one
    backward (plus three constant images sent up to the first layer, for ``"zb"``).
    """
    rule_fn = _lrp_rule(rule, epsilon, gamma, alpha, beta)
    _check_choice("input_rule", input_rule, ("zb", "flat", None))
    low, high = _check_float("low", low), _check_float("high", high)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    with _session(model, x, target) as (x, tgt):
        state = _LRPState(rule_fn)
        with _lrp_model(model, state):
            if input_rule == "zb":
                lo, hi = _lrp_bounds(model, state, x, low, high)  # (1, ...) at the first layer's input
                state.input_rule = partial(_lrp_zb, low=lo, high=hi)
            elif input_rule == "flat":
                state.input_rule = _lrp_flat
            state.first_done, state.leaf = False, None
            with torch.enable_grad():
                with _ResidualSums():
                    logits = model(x)
                r = logits.detach() * _score_grad(tgt, logits)  # relevance at the logits (N, K)
                if state.leaf is None or not logits.requires_grad:
                    raise ValueError("lrp found no Conv or Linear layer in the forward of the model")
                (rel,) = torch.autograd.grad(logits, state.leaf, r)
    if rel.numel() != x.numel():
        raise ValueError(f"lrp: the first layer's input {tuple(rel.shape)} does not match the images "
                         f"{tuple(x.shape)} pixel for pixel")
    return _finish(rel.reshape(x.shape).sum(1), normalise)


# ================================================================================================
# Explanation by interpretation
# ================================================================================================
def _minmax(maps):
    """Each ``(H, W)`` map of ``(N, H, W)`` scaled to [0, 1] (a constant map becomes 0)."""
    low = maps.flatten(1).amin(1)[:, None, None]
    span = maps.flatten(1).amax(1)[:, None, None] - low
    return torch.where(span > 0, (maps - low) / span.clamp(min=torch.finfo(maps.dtype).tiny), 0.0)


def _unit_scores(relevant, energies, classes):
    """``(B, D)`` test-time unit scores (``RelevantUnits.scores``) of each image for its class."""
    scores = torch.empty_like(energies)
    for c in classes.unique().tolist():  # a loop over classes, not images
        rows = classes == c
        scores[rows] = relevant.scores(energies[rows], c).to(energies)
    return scores.nan_to_num(nan=0.0)  # weights summing to 0: no unit scores


def _by_interpretation_batch(model, x, classes, relevant, names, k, reduce):
    """``(B, H, W)`` maps of :func:`by_interpretation` for one batch: one forward, <= k backward."""
    from .interpret import _energy

    xi = x.detach().requires_grad_(True)
    with _taps(model, names, leaf=False) as taps, torch.enable_grad():
        model(xi)
    missing = [name for name in names if taps[name].a is None]
    if missing:
        raise ValueError(f"layers {missing} of relevant did not run in the model's forward")
    acts = [taps[name].a for name in names]  # (B, K_l, h_l, w_l) each, in the graph down to xi
    columns = tuple((name, j) for name, a in zip(names, acts) for j in range(a.shape[1]))
    if columns != tuple(relevant.units):
        raise ValueError(f"relevant was fitted on other layers or another model: its {len(relevant.units)} "
                         f"units do not match the {len(columns)} units of layers {names} here")
    energies = torch.cat([_energy(a.detach().float()) for a in acts], 1).cpu()  # (B, D)
    top = _unit_scores(relevant, energies, classes.cpu()).topk(min(k, len(columns)), dim=1)
    keep = (top.values > 0).to(x.device)  # (B, k) units with a positive score, best first
    layer_of = torch.tensor([names.index(name) for name, _ in columns])[top.indices].to(x.device)  # (B, k)
    unit_of = torch.tensor([j for _, j in columns])[top.indices].to(x.device)
    out = torch.zeros(len(x), *x.shape[-2:], device=x.device)
    for j in range(top.indices.shape[1]):
        if not keep[:, j].any():
            break  # scores are sorted: no image has a j-th positive unit, nor a later one
        signals = []  # the unit's own feature map, every other unit zero (Zeiler & Fergus)
        for layer, a in enumerate(acts):
            rows = (keep[:, j] & (layer_of[:, j] == layer)).nonzero()[:, 0]
            s = torch.zeros_like(a)
            s[rows, unit_of[rows, j]] = a.detach()[rows, unit_of[rows, j]]
            signals.append(s)
        (g,) = torch.autograd.grad(acts, xi, signals, retain_graph=True)
        maps = _minmax(_REDUCE[reduce](g))  # (B, H, W)
        out = torch.where(keep[:, j, None, None], torch.maximum(out, maps), out)
    return out


def by_interpretation(model, x, target, relevant=None, data=None, layers=None, k=3, mu=10.0,
                      reduce="abs_max", batch_size=64, progress=False, normalise=False):
    """Explanation by interpretation (Oramas, Wang, Tuytelaars, ICLR 2019).

    The relevant units of each class come from the interpretation step,
    :func:`xai_lab.interpret.relevant_units` (L1-constrained regression of the labels on filter
    energies): pass the fitted ``relevant`` (a ``RelevantUnits``), or a probe set ``data`` (with
    ``images`` and ``labels``) to fit it here on ``layers`` (default: the last module of
    ``model.features``) with ``mu``. A test image is explained through them: its filter energies
    x (sum of squared activations per unit, L1-normalised per layer) are L2-normalised and scored
    s_i = x_i w_{i,c} / sum_i w_{i,c} for its target class c (``RelevantUnits.scores``); each of
    the ``k`` units with the largest positive scores is visualised with deconvnet from the test
    image (its own feature map sent down, every other unit zero, R_l = max(R, 0) at each ReLU;
    ``reduce`` as in :func:`saliency`), the maps are min-max normalised and combined by
    pixel-wise maximum. Values in [0, 1]; an image whose class has no unit with a positive score
    gets a zero map.

    ``target``: an int or a LongTensor (N,) of classes (a callable cannot choose units). Needs
    ``nn.ReLU`` modules, like :func:`deconvnet`. Per batch of ``batch_size`` images: one forward
    and up to ``k`` backward passes from the units' layers down to the input.
    """
    from .interpret import RelevantUnits, relevant_units

    k = _check_int("k", k)
    _check_choice("reduce", reduce, _REDUCE)
    batch_size = _check_int("batch_size", batch_size)
    if callable(target) and not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be an int class index or a LongTensor (N,) for by_interpretation "
                        f"(the class chooses the relevant units), got {type(target).__name__}")
    if (relevant is None) == (data is None):
        raise ValueError("by_interpretation needs relevant (a fitted interpret.RelevantUnits) or data (a "
                         f"probe set to fit one on), got {'both' if data is not None else 'neither'}")
    if relevant is not None and not isinstance(relevant, RelevantUnits):
        raise TypeError(f"relevant must be an interpret.RelevantUnits, got {type(relevant).__name__}")
    if relevant is not None and layers is not None:
        raise ValueError("layers goes with data: relevant already names the layers it was fitted on")
    with _session(model, x, target) as (x, tgt):
        if relevant is None:
            relevant = relevant_units(model, data, _default_layer(model) if layers is None else layers,
                                      mu=mu, batch_size=batch_size, progress=progress)
        n, n_classes = len(x), relevant.weights.shape[1]
        classes = tgt.pos if isinstance(tgt.pos, torch.Tensor) else torch.full((n,), tgt.pos)
        if classes.max() >= n_classes:
            raise ValueError(f"target must be a class index < {n_classes} (relevant was fitted for "
                             f"{n_classes} classes), got {int(classes.max())}")
        names = list(dict.fromkeys(name for name, _ in relevant.units))  # layers, in column order
        maps = []
        with _relu_rule(model, "deconvnet", "by_interpretation"):  # inside: layer names give the stand-ins
            for rows in _chunks(n, batch_size, progress, "by interpretation"):
                maps.append(_by_interpretation_batch(model, x[rows.to(x.device)], classes[rows], relevant,
                                                     names, k, reduce))
    return _finish(torch.cat(maps), normalise)


# ================================================================================================
# Contrastive
# ================================================================================================
_NOT_CONTRASTIVE = {
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
    name = method if isinstance(method, str) else next((k for k, f in METHODS.items() if f is method), None)
    if name is None or name not in METHODS:
        allowed = sorted(set(METHODS) - set(_NOT_CONTRASTIVE))
        raise ValueError(f"method must be one of {allowed}, got {method!r}")
    if name in _NOT_CONTRASTIVE:
        raise ValueError(f"contrastive explanations are not meaningful with method={name!r}: "
                         f"{_NOT_CONTRASTIVE[name]}")
    x = _check_images(x)
    t, f = _check_index(target, len(x), "target"), _check_index(foil, len(x), "foil")
    same = torch.as_tensor(t) == torch.as_tensor(f)
    if same.any():
        raise ValueError(f"foil must differ from target, got the same class for image(s) "
                         f"{torch.nonzero(same.expand(len(x))).flatten().tolist()}")
    return METHODS[name](model, x, _Contrast(t, f), **kwargs)


# ================================================================================================
# Registry and plots
# ================================================================================================
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
        _check_choice("methods", name, METHODS)
        kw = {"normalise": normalise, **options.get(name, {})}
        maps[name] = (METHODS[name](model, x, target, **kw) if foil is None else
                      contrastive(model, x, target, foil, method=name, **kw))
    return maps


def show(model, x, target, methods=SHOWN, options=None, foil=None, titles=None, **show_kwargs):
    """Images (rows) x methods (columns) as heatmap overlays, via ``xai_lab.viz.show``.

    ``titles`` default to the target (and foil) of each image; contrastive maps (``foil``) are drawn
    on a diverging scale. Returns the matplotlib Figure.
    """
    from . import viz

    x = _check_images(x)
    maps = explain_all(model, x, target, methods, options, foil)
    if titles is None and not callable(target):
        def per_image(v):
            return v.tolist() if isinstance(v, torch.Tensor) and v.dim() else [int(v)] * len(x)
        titles = [f"class {t}" for t in per_image(target)]
        if foil is not None:
            titles = [f"{t} not {f}" for t, f in zip(titles, per_image(foil))]
    show_kwargs.setdefault("diverging", foil is not None)
    return viz.show(x, heatmaps=maps, titles=titles, **show_kwargs)
