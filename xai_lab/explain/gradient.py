"""The gradient family: the score's gradient at the input, plain or through modified ReLUs.

With R the signal from above and f the forward input of a ReLU, the backward through it is:
gradient R_l = 1[f > 0] R (:func:`saliency`, Simonyan 2013), deconvnet R_l = max(R, 0)
(:func:`deconvnet`, Zeiler & Fergus 2014), guided backprop R_l = 1[f > 0] 1[R > 0] R
(:func:`guided_backprop`, Springenberg 2015). :func:`integrated_gradients` (Sundararajan 2017)
integrates the gradient along a path from a baseline; :func:`smoothgrad` (Smilkov 2017) averages
any method over noisy copies.

ReLU rules. For the duration of a deconvnet or guided-backprop call every ``nn.ReLU`` module is
replaced (``hooks.replaced``) by a stand-in that applies :class:`ReLUFunction` out of place, and the originals are put back afterwards. So an in-place ReLU (``nn.ReLU(inplace=True)``)
and a ReLU module called several times in one forward (torchvision's ResNet blocks do both) get
the rule at every call. Functional calls in forward code (``torch.relu``, ``F.relu``) cannot be
seen: they keep the plain gradient. A model in which no ReLU module runs raises a ValueError.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_baseline, check_choice, check_float, check_images, check_int, check_model
from ..hooks import replaced
from .base import REDUCE, Target, chunks, finish, input_gradients, scatter_rows, session

__all__ = ["ReLUFunction", "relu_rule", "rule_gradients", "saliency", "deconvnet",
           "guided_backprop", "quadrature", "integrated_gradients", "smoothgrad"]


# ------------------------------------------------------------------------------------------------
# ReLU rules
# ------------------------------------------------------------------------------------------------
class ReLUFunction(torch.autograd.Function):
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


@contextmanager
def relu_rule(model, rule, method):
    """Every ``nn.ReLU`` module of ``model`` applies ``rule`` in the backward while in the block
    (``hooks.replaced`` by :class:`ReLUFunction` with ``rule``); a ValueError at the end if none ran."""
    with replaced(model, nn.ReLU, lambda f: ReLUFunction.apply(f, rule)) as relus:
        yield
    if not any(r.calls for r in relus):
        raise ValueError(f"{method} needs nn.ReLU modules, and none ran in the forward of this "
                         f"{type(model).__name__}: functional relu calls (torch.relu, F.relu) cannot be "
                         f"modified")


def rule_gradients(model, x, tgt, rule, method):
    """Input gradients with every ``nn.ReLU`` module applying ``rule`` in the backward."""
    with relu_rule(model, rule, method):
        return input_gradients(model, x, tgt)


# ------------------------------------------------------------------------------------------------
# the methods
# ------------------------------------------------------------------------------------------------
def saliency(model, x, target, reduce="abs_max", normalise=False):
    """Saliency map (Simonyan, Vedaldi, Zisserman 2013): M = max_c |dS_target / dx_c|.

    One forward and one backward. ``reduce`` turns the ``(N, C, H, W)`` gradient into a map:
    ``"abs_max"`` (the paper), ``"sum"``, ``"abs_sum"``, ``"l2"`` over channels.
    """
    check_choice("reduce", reduce, REDUCE)
    with session(model, x, target) as (x, tgt):
        g = input_gradients(model, x, tgt)
    return finish(REDUCE[reduce](g), normalise)


def deconvnet(model, x, target, reduce="abs_max", normalise=False):
    """Deconvnet (Zeiler & Fergus 2014): the backward through each ReLU is R_l = max(R, 0).

    The map ignores the forward ReLU masks (max-pool switches are kept). Needs ``nn.ReLU``
    modules (see the module docstring); ``reduce`` as in :func:`saliency`.
    """
    check_choice("reduce", reduce, REDUCE)
    with session(model, x, target) as (x, tgt):
        g = rule_gradients(model, x, tgt, "deconvnet", "deconvnet")
    return finish(REDUCE[reduce](g), normalise)


def guided_backprop(model, x, target, reduce="abs_max", normalise=False):
    """Guided backpropagation (Springenberg et al. 2015): R_l = 1[f > 0] 1[R > 0] R at each ReLU.

    Needs ``nn.ReLU`` modules (see the module docstring); ``reduce`` as in :func:`saliency`.
    """
    check_choice("reduce", reduce, REDUCE)
    with session(model, x, target) as (x, tgt):
        g = rule_gradients(model, x, tgt, "guided", "guided_backprop")
    return finish(REDUCE[reduce](g), normalise)


def quadrature(steps, method):
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
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size)
    check_choice("method", method, ("riemann_middle", "gausslegendre"))
    check_choice("reduce", reduce, REDUCE)
    with session(model, x, target) as (x, tgt):
        base = check_baseline("baseline", baseline, x)
        base = torch.full_like(x, base) if isinstance(base, float) else base
        alphas, weights = (t.to(x) for t in quadrature(steps, method))
        n = len(x)
        total = torch.zeros(n, x[0].numel(), dtype=x.dtype, device=x.device)
        for k in chunks(n * steps, batch_size, progress, "integrated gradients"):
            k = k.to(x.device)
            i, j = k % n, k // n  # image, step
            g = input_gradients(model, torch.lerp(base[i], x[i], alphas[j].view(-1, 1, 1, 1)), tgt, rows=i)
            total += scatter_rows(i, n, weights[j]) @ g.flatten(1)  # (N, C*H*W)
        attributions = (x - base) * total.view_as(x)  # (N, C, H, W)
    return finish(REDUCE[reduce](attributions), normalise)


def smoothgrad(model, x, target, method="saliency", n=50, sigma=0.15, batch_size=32, seed=0,
               progress=False, normalise=False, **kwargs):
    """SmoothGrad (Smilkov et al. 2017): M(x) = 1/n sum_i M_method(x + eps_i).

    eps_i ~ N(0, (sigma (max x - min x))^2) per image (``sigma`` 0.15 = 15 % noise level, the
    paper's 10-20 %). ``method`` is any explanation function or its name in ``METHODS`` (default
    saliency); ``kwargs`` go to it. The maps of the noisy copies are averaged. Noisy copies go to
    ``method`` in batches of about ``batch_size`` images; the noise of copy i depends only on
    ``(seed, i)``.
    """
    from . import METHODS  # the registry of the package, complete once it is imported

    fn = METHODS[check_choice("method", method, METHODS)] if isinstance(method, str) else method
    if not callable(fn):
        raise TypeError(f"method must be an explanation function or one of {list(METHODS)}, got {method!r}")
    n = check_int("n", n)
    sigma = check_float("sigma", sigma, low=0.0)
    batch_size = check_int("batch_size", batch_size)
    check_model(model)
    x = check_images(x)
    tgt = Target(target, len(x))
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
    return finish(total / n, normalise)
