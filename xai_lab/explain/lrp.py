"""Layer-wise relevance propagation (Bach et al. 2015) as a modified gradient, the way Zennit does it.

For the duration of a call every module of the model that LRP must change is swapped
(``hooks.swapped``) for a stand-in, and put back afterwards: a Conv / Linear becomes an
:class:`LRPLayer` (with the BatchNorm after it merged into its own copy of the weights) whose
backward applies a rule of :mod:`.lrp_rules`; activations and average pooling become
:class:`PassLayer`; a merged BatchNorm becomes the identity (:class:`MergedBatchNorm`); modules
with parameters LRP has no rule for become :class:`Refused`. Sums of two activations in forward
code (residual connections) split relevance in proportion (:class:`ResidualSums`). Then
:func:`lrp` is one forward and one backward.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..checks import check_choice, check_float
from ..hooks import StopForward, run, swapped
from .base import finish, score_grad, session
from .lrp_rules import INPUT_RULES, RULES, STABILIZER, stabilize

__all__ = ["LINEAR", "POOLS", "ACTIVATIONS", "LRPState", "LRPFunction", "LRPLayer", "MergedBatchNorm",
           "Refused", "PassFunction", "PassLayer", "SumFunction", "ResidualSums", "replacements",
           "lrp_model", "input_bounds", "lrp"]

LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
         nn.AdaptiveAvgPool3d)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Tanh,
               nn.Sigmoid, nn.Softplus, nn.ReLU6, nn.Hardtanh, nn.Mish, nn.Hardswish)


# ------------------------------------------------------------------------------------------------
# stand-ins for linear layers
# ------------------------------------------------------------------------------------------------
class LRPState:
    """What the LRP layers share during one call: the rules, the first-layer bookkeeping."""

    def __init__(self, rule):
        self.rule, self.input_rule = rule, None
        self.probing, self.probe, self.leaf, self.first_done = False, None, None, False


class LRPFunction(torch.autograd.Function):
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


class LRPLayer(nn.Module):
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
        self.original = [module]  # a list: not registered as a submodule

    def fn(self, a, w, b=None):
        m = self.original[0]
        return F.linear(a, w, b) if isinstance(m, nn.Linear) else m._conv_forward(a, w, b)

    def vjp(self, shape, w, s):
        """``(d fn(a, w) / d a)^T s`` for an input of ``shape`` (fn is linear in a)."""
        m = self.original[0]
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
                raise StopForward
            a = state.leaf = a.detach().requires_grad_(True)
            rule = state.input_rule or rule
        self.last = LRPFunction.apply(a, self, rule)
        return self.last


class MergedBatchNorm(nn.Module):
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


class Refused(nn.Module):
    """Stands in for a module LRP has no rule for: raises a ValueError if the forward uses it."""

    def __init__(self, message):
        super().__init__()
        self.message = message

    def forward(self, *args, **kwargs):
        raise ValueError(self.message)


# ------------------------------------------------------------------------------------------------
# stand-ins for activations, pooling and residual sums
# ------------------------------------------------------------------------------------------------
class PassFunction(torch.autograd.Function):
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
            (c,) = torch.autograd.grad(z, a0, r / stabilize(z.detach(), STABILIZER))
        return a * c, None, None


class PassLayer(nn.Module):
    """Stands in for an activation or an average pooling: applies :class:`PassFunction`."""

    def __init__(self, module, norm):
        super().__init__()
        self.original, self.norm = [module], norm

    def forward(self, a):
        return PassFunction.apply(a, self.original[0], self.norm)


class SumFunction(torch.autograd.Function):
    """a + b; the backward splits relevance in proportion to the summands (R_a = a R / (a + b))."""

    @staticmethod
    def forward(ctx, a, b, inplace):
        den = stabilize(a + b, STABILIZER)
        ctx.shares = (a / den, b / den)
        if inplace:
            ctx.mark_dirty(a)
            return a.add_(b)
        return a + b

    @staticmethod
    def backward(ctx, r):
        return ctx.shares[0] * r, ctx.shares[1] * r, None


class ResidualSums(TorchFunctionMode):
    """Routes ``a + b`` of two activations (both in the graph, same shape) through
    :class:`SumFunction`: residual connections written as ``out + identity`` or ``out += identity``
    in forward code."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (getattr(func, "__name__", "") in ("add", "add_", "__add__", "__iadd__", "__radd__")
                and not kwargs and len(args) == 2 and torch.is_grad_enabled()
                and all(isinstance(t, torch.Tensor) and t.requires_grad for t in args)
                and args[0].shape == args[1].shape):
            return SumFunction.apply(args[0], args[1], func.__name__ in ("add_", "__iadd__"))
        return func(*args, **(kwargs or {}))


# ------------------------------------------------------------------------------------------------
# the model with its stand-ins
# ------------------------------------------------------------------------------------------------
def replacements(model, state):
    """``{id(module): stand-in}`` for ``hooks.swapped``: linear layers (BatchNorm merged into the
    layer just before it, in registration order, checked at run time), activations, average
    pooling, and refusals for modules with parameters LRP has no rule for."""
    names = {id(m): name for name, m in model.named_modules()}
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    batch_norms = nn.modules.batchnorm._BatchNorm
    pairs = [(prev, bn) for prev, bn in zip(leaves, leaves[1:])
             if isinstance(bn, batch_norms) and isinstance(prev, LINEAR) and bn.track_running_stats
             and prev.weight.shape[0] == bn.num_features]
    bn_after = {id(prev): bn for prev, bn in pairs}
    merged = {id(bn): prev for prev, bn in pairs}
    out = {}
    for m in leaves:
        if isinstance(m, LINEAR):
            out[id(m)] = LRPLayer(m, bn_after.get(id(m)), state)
    for m in leaves:
        name = names.get(id(m), type(m).__name__)
        if isinstance(m, batch_norms):
            prev = merged.get(id(m))
            out[id(m)] = (MergedBatchNorm(out[id(prev)], name, names.get(id(prev))) if prev is not None else
                          Refused(f"lrp cannot merge BatchNorm {name!r}: it does not follow a Conv or "
                                  f"Linear layer with running statistics"))
        elif isinstance(m, ACTIVATIONS):
            out[id(m)] = PassLayer(m, norm=False)
        elif isinstance(m, POOLS):
            out[id(m)] = PassLayer(m, norm=True)
        elif not isinstance(m, LINEAR) and any(True for _ in m.parameters(recurse=False)):
            out[id(m)] = Refused(f"lrp has no rule for {name!r} ({type(m).__name__}); it handles "
                                 f"Conv, Linear, BatchNorm after them, activations and pooling")
    return out


@contextmanager
def lrp_model(model, state):
    """The model with its LRP stand-ins while in the block (originals restored on exit)."""
    table = replacements(model, state)
    with swapped(model, lambda m: table.get(id(m))):
        yield


def input_bounds(model, state, x, low, high):
    """The z^B bounds at the first layer's input: images of ``low``, ``high`` (image space) under
    what the model does before that layer (e.g. FlowerCNN.normalize), found by sending constant
    images up to it (the first :class:`LRPLayer` ends that forward); checked to be a per-pixel
    increasing affine map."""
    c, h, w = x.shape[1:]
    probe = torch.tensor([low, high, (low + high) / 2]).to(x).view(3, 1, 1, 1).expand(3, c, h, w)
    state.probing, state.first_done, state.probe = True, False, None
    try:
        with torch.no_grad(), ResidualSums():
            run(model, probe.contiguous())
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


def _layer_rule(rule, **params):
    """``RULES[rule]`` with its arguments from ``params`` (checked: alpha - beta = 1)."""
    check_choice("rule", rule, RULES)
    params = {name: check_float(name, value, low=0.0) for name, value in params.items()}
    if rule == "alpha_beta" and abs(params["alpha"] - params["beta"] - 1) > 1e-9:
        raise ValueError(f"alpha - beta must equal 1 (conservation), got alpha={params['alpha']}, "
                         f"beta={params['beta']}")
    fn, takes = RULES[rule]
    return partial(fn, **{name: params[name] for name in takes})


# ------------------------------------------------------------------------------------------------
# the method
# ------------------------------------------------------------------------------------------------
def lrp(model, x, target, rule="epsilon", epsilon=1e-6, gamma=0.25, alpha=2.0, beta=1.0,
        input_rule="zb", low=0.0, high=1.0, normalise=False):
    """Layer-wise relevance propagation (Bach et al. 2015; rules as in Montavon et al. 2019).

    Relevance starts at the logits as R = logits * dS/dlogits (the target logit itself for a class
    target; +y_target and -y_foil for a contrast) and goes down layer by layer, as a modified
    gradient. Conv and Linear layers use ``rule`` (formulas in :mod:`.lrp_rules`, equal to
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
    rule_fn = _layer_rule(rule, epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta)
    check_choice("input_rule", input_rule, (*INPUT_RULES, None))
    low, high = check_float("low", low), check_float("high", high)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    with session(model, x, target) as (x, tgt):
        state = LRPState(rule_fn)
        with lrp_model(model, state):
            if input_rule == "zb":
                lo, hi = input_bounds(model, state, x, low, high)  # (1, ...) at the first layer's input
                state.input_rule = partial(INPUT_RULES["zb"], low=lo, high=hi)
            elif input_rule == "flat":
                state.input_rule = INPUT_RULES["flat"]
            state.first_done, state.leaf = False, None
            with torch.enable_grad():
                with ResidualSums():
                    logits = model(x)
                r = logits.detach() * score_grad(tgt, logits)  # relevance at the logits (N, K)
                if state.leaf is None or not logits.requires_grad:
                    raise ValueError("lrp found no Conv or Linear layer in the forward of the model")
                (rel,) = torch.autograd.grad(logits, state.leaf, r)
    if rel.numel() != x.numel():
        raise ValueError(f"lrp: the first layer's input {tuple(rel.shape)} does not match the images "
                         f"{tuple(x.shape)} pixel for pixel")
    return finish(rel.reshape(x.shape).sum(1), normalise)
