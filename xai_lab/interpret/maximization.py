"""Activation maximisation (Simonyan, Vedaldi & Zisserman 2013; Olah, Mordvintsev & Schubert,
"Feature visualization", Distill 2017).

I* = argmax_I S(I) - lambda R(I) for a class's pre-softmax score or a unit's mean activation S,
by gradient ascent on the image (:func:`maximize`), with the regularisers of lucid and Yosinski et
al. 2015 (L2, total variation, jitter, blur) below it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_float, check_int, device_of
from ..hooks import forward_to, frozen, input_of, resolve_layer

__all__ = ["maximize"]


def maximize(model: nn.Module, target, size: int = 64, steps: int = 100, lr: float = 0.05,
             l2: float = 1.0, tv: float = 1.0, jitter: int = 4, blur: float = 0.5,
             blur_every: int = 4, noise: float = 0.5, seed: int = 0,
             progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation maximisation (Simonyan et al. 2013; Olah et al., Distill 2017).

    I* = argmax_I S(I) - l2 mean((I - 0.5)^2) - tv TV(I), with S a class's pre-softmax score
    (``target`` an int) or the mean activation of a unit's map (``target = (layer, unit)``; for a
    ReLU layer, of its input, so that a unit that is off at the start still gets a gradient).
    The image is I = sigmoid(p), always in [0, 1]; 0.5 is the data mean, the "zero" of the
    model's normalised input. p starts as Gaussian noise of std ``noise`` drawn with ``seed``;
    Adam on p. Regularisers: L2 towards 0.5, anisotropic total variation
    TV = mean|dI/dx| + mean|dI/dy|, a random shift of up to ``jitter`` px before each step
    (lucid), and a Gaussian blur of p with sigma ``blur`` every ``blur_every`` steps (Yosinski
    et al. 2015); 0 turns one off.

    Returns:
        The image ``(1, 3, size, size)`` in [0, 1] and the objective S at every step ``(steps,)``.
    """
    size, steps = check_int("size", size, 8), check_int("steps", steps)
    jitter = check_int("jitter", jitter, 0)
    if jitter >= size:
        raise ValueError(f"jitter must be smaller than size={size}, got {jitter}")
    lr = check_float("lr", lr, 0, open_low=True)
    l2, tv, blur, noise = (check_float(name, v, 0) for name, v in
                           (("l2", l2), ("tv", tv), ("blur", blur), ("noise", noise)))
    blur_every = check_int("blur_every", blur_every)
    objective = _objective(model, target)
    gen = torch.Generator().manual_seed(seed)
    p = (noise * torch.randn(1, 3, size, size, generator=gen)).to(device_of(model)).requires_grad_()
    opt = torch.optim.Adam([p], lr=lr)
    history = []
    with frozen(model):
        for i in tqdm(range(steps), desc="maximize", disable=not progress, leave=False):
            img = torch.sigmoid(p)
            score = objective(_jitter(img, jitter, gen))
            loss = -score + l2 * (img - 0.5).pow(2).mean() + tv * _total_variation(img)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if blur > 0 and (i + 1) % blur_every == 0:
                with torch.no_grad():
                    p.copy_(_gaussian_blur(p, blur))
            history.append(score.detach())
    return torch.sigmoid(p).detach().cpu(), torch.stack(history).cpu()


def _objective(model: nn.Module, target):
    """``x (1, 3, H, W) -> scalar``: a class logit (int) or the mean of a unit's map ((layer, unit)).
    A unit of a ReLU layer is read before the ReLU (as lucid's ``*_pre_relu`` objectives), so a
    start where the unit is off still has a gradient."""
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        def logit(x):
            out = model(x)
            if not 0 <= target < out.shape[1]:
                raise ValueError(f"target must be a class in [0, {out.shape[1]}), got {target}")
            return out[0, target]
        return logit
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], (int, np.integer)):
        name, module = resolve_layer(model, target[0])
        unit = int(target[1])

        def channel(x):
            a = input_of(model, module, x) if isinstance(module, nn.ReLU) else \
                forward_to(model, x, name, detach=False)[name]
            if a.dim() != 4 or not 0 <= unit < a.shape[1]:
                raise ValueError(f"target unit must be in [0, {a.shape[1]}) of conv maps of {name!r}, "
                                 f"got {unit}")
            return a[0, unit].mean()
        return channel
    raise TypeError(f"target must be a class index (int) or a (layer, unit) tuple, got {target!r}")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x (N, C, H, W)`` with std ``sigma`` px (reflect padding)."""
    r = max(1, math.ceil(2 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # along W
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # along H


def _jitter(x: torch.Tensor, j: int, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to ``j`` px in each direction (reflect padding, then a random crop), as lucid's
    ``jitter``."""
    if j == 0:
        return x
    h, w = x.shape[-2:]
    dy, dx = torch.randint(0, 2 * j + 1, (2,), generator=gen).tolist()
    return F.pad(x, (j, j, j, j), mode="reflect")[..., dy:dy + h, dx:dx + w]


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation mean|dI/dy| + mean|dI/dx| of ``x (N, C, H, W)``."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
