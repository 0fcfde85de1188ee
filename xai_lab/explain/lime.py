"""LIME for images (Ribeiro, Singh, Guestrin 2016): a weighted linear surrogate on superpixels.

Three pieces, as in the lecture: :func:`superpixels` (the interpretable features),
:func:`weighted_ridge` (the surrogate's fit) and :func:`lime` (sample, perturb, weigh, fit).
"""
from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_float, check_images, check_int
from .base import chunks, finish, session

__all__ = ["contiguous", "superpixels", "weighted_ridge", "lime_samples", "lime"]

# SLIC's default number of superpixels. On 64 px flowers (200 test images, single and double) 75
# gives a median of 52 superpixels (15 to 70): the small centre of a flower gets superpixels of its
# own. 50 gave a median of 30 and as few as 4; 75 to 90 give the same (SLIC's grid step is a whole
# number of pixels); 100 a median of 77.
N_SEGMENTS = 75


def contiguous(segments):
    """Relabel ``(N, H, W)`` integer segments to 0 .. d_n - 1 within each image (vectorised)."""
    n = len(segments)
    flat = segments.flatten(1).long()
    flat = flat - flat.amin(1, keepdim=True)
    span = int(flat.max()) + 1
    offsets = span * torch.arange(n, device=flat.device)
    uniq, inverse = torch.unique(flat + offsets[:, None], return_inverse=True)
    first = torch.searchsorted(uniq, offsets)  # (N,) index of each image's first label
    return (inverse - first[:, None]).view(segments.shape)


def superpixels(x, segments="slic", n_segments=N_SEGMENTS):
    """Superpixels ``(N, H, W)`` long, labels 0 .. d_n - 1 per image, for :func:`lime`.

    ``"slic"``: scikit-image SLIC (compactness 10, one call per image: the only per-image loop of
    this package, a segmentation step outside the method; it returns about ``n_segments``
    superpixels, fewer on small images: a median of 52 for the default 75 on 64 px flowers);
    ``"grid"``: a regular grid of about ``n_segments`` cells; or a given integer tensor
    ``(N, H, W)`` / ``(H, W)`` (relabelled).
    """
    x = check_images(x)
    n, _, h, w = x.shape
    if isinstance(segments, torch.Tensor):
        seg = segments.expand(n, *segments.shape) if segments.dim() == 2 else segments
        if tuple(seg.shape) != (n, h, w) or seg.dtype.is_floating_point:
            raise ValueError(f"segments must be an integer tensor of shape ({n}, {h}, {w}) or ({h}, {w}), "
                             f"got {segments.dtype} {tuple(segments.shape)}")
        return contiguous(seg.to(x.device))
    check_choice("segments", segments, ("slic", "grid"))
    n_segments = check_int("n_segments", n_segments)
    if segments == "grid":
        g = max(1, round(math.sqrt(n_segments)))
        r = torch.arange(h, device=x.device) * g // h
        c = torch.arange(w, device=x.device) * g // w
        return (r[:, None] * g + c[None, :]).expand(n, h, w).clone()
    from skimage.segmentation import slic

    images = x.permute(0, 2, 3, 1).double().cpu().numpy()  # (N, H, W, C)
    seg = [torch.from_numpy(slic(img, n_segments=n_segments, compactness=10, start_label=0,
                                 channel_axis=-1)) for img in images]
    return contiguous(torch.stack(seg).to(x.device))


def weighted_ridge(z, y, weights, alpha):
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


def lime_samples(n, n_samples, d, seed=0):
    """The random part of :func:`lime`, from ``seed`` alone: for each of ``n`` images,
    ``n_samples`` binary vectors over ``d`` superpixels with P(1) = 1/2, the first all ones (the
    image itself); float32 ``(n, n_samples, d)``."""
    gen = torch.Generator().manual_seed(seed)
    z = (torch.rand(check_int("n", n), check_int("n_samples", n_samples), check_int("d", d),
                    generator=gen) < 0.5).float()  # (N, S, d)
    z[:, 0] = 1
    return z


def lime(model, x, target, n_samples=1000, segments="slic", n_segments=N_SEGMENTS, kernel_width=0.25,
         alpha=1.0, hide_color=None, probability=True, batch_size=64, seed=0, progress=False,
         normalise=False):
    """LIME for images (Ribeiro, Singh, Guestrin 2016): a weighted linear surrogate on superpixels.

    ``n_samples`` binary vectors z (P(1) = 1/2; the first is all ones) switch superpixels on or off;
    hidden superpixels take their mean colour (or ``hide_color``). Each sample weighs
    pi = sqrt(exp(-d^2 / w^2)), d the cosine distance of z to all ones, w = ``kernel_width``; a
    ridge regression (``alpha``, with intercept; :func:`weighted_ridge`) of f(z) on z gives one
    coefficient per superpixel, painted on it. ``f`` is the softmax probability of the target
    (``probability``). ``segments``: ``"slic"`` (about ``n_segments``), ``"grid"`` or a tensor, see
    :func:`superpixels`. Unlike the ``lime`` package every superpixel is kept (no feature
    selection). N x n_samples images go forward in batches of ``batch_size``; no backward.
    """
    n_samples = check_int("n_samples", n_samples)
    kernel_width = check_float("kernel_width", kernel_width, low=0.0, open_low=True)
    alpha = check_float("alpha", alpha, low=0.0)
    batch_size = check_int("batch_size", batch_size)
    with session(model, x, target) as (x, tgt):
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
            fill = torch.full_like(x, check_float("hide_color", hide_color))
        z = lime_samples(n, n_samples, d, seed).to(x) * valid[:, None]  # (N, S, d)
        cos = z.sum(2) / (z.sum(2).sqrt() * valid.sum(1, keepdim=True).sqrt()).clamp(min=1e-12)  # (N, S)
        weights = torch.exp(-((1 - cos) ** 2) / kernel_width ** 2).sqrt()
        y = torch.empty(n * n_samples, device=x.device)
        with torch.no_grad():
            for k in chunks(n * n_samples, batch_size, progress, "lime"):
                k = k.to(x.device)
                i, j = k // n_samples, k % n_samples  # image, sample
                hide = z[i, j].gather(1, seg[i]).view(len(k), 1, h, w) == 0  # (B, 1, H, W)
                out = model(torch.where(hide, fill[i], x[i]))
                y[k] = tgt(out.softmax(1) if probability else out, rows=i)
        coef = weighted_ridge(z, y.view(n, n_samples), weights, alpha).to(x)  # (N, d)
    return finish(coef.gather(1, seg).view(n, h, w), normalise)
