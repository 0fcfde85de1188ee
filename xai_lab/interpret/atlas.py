"""What a unit or a layer responds to, shown with patches of the probe images.

- :func:`top_patches`: the top-activating patches of units (Oramas, Wang & Tuytelaars, ICLR 2019,
  "interpretation visualizations"; Zeiler & Fergus 2014 show the same).
- :func:`atlas` -> :class:`Atlas`: a small activation atlas (Carter, Armstrong, Schubert, Johnson &
  Olah, Distill 2019): activation vectors laid out in 2-D, each cell of a grid shown by the average
  of its image patches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import check_int, images_of
from ..hooks import frozen, resolve_layer
from .probe import activation_batches, conv_maps

__all__ = ["top_patches", "atlas", "Atlas"]


def top_patches(model: nn.Module, data_or_images, units, k: int = 8, patch: int | None = None,
                batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-activating patches of units (Oramas et al.'s "interpretation visualizations").

    For each ``(layer, unit)`` of ``units``, the ``k`` images where the unit's maximum is highest,
    cropped around that maximum (``patch`` px; default 3 x the layer's stride).

    Returns:
        patches ``(U, k, 3, patch, patch)`` and image indices ``(U, k)``, strongest first.
    """
    images = images_of(data_or_images, "data_or_images")
    k = check_int("k", k)
    if k > len(images):
        raise ValueError(f"k must be at most the number of images {len(images)}, got {k}")
    if not isinstance(units, (list, tuple)) or not units or not all(
            isinstance(t, tuple) and len(t) == 2 and isinstance(t[1], (int, np.integer)) for t in units):
        raise TypeError(f"units must be a non-empty list of (layer, unit index) tuples, got {units!r}")
    units = [(resolve_layer(model, layer)[0], int(u)) for layer, u in units]
    names = list(dict.fromkeys(n for n, _ in units))
    best = torch.full((0, len(units)), -math.inf)
    idx = pos = torch.zeros(0, len(units), dtype=torch.long)
    with frozen(model):
        for start, acts in activation_batches(model, images, names, batch_size, progress, "top patches"):
            s, p = _unit_max(acts, units)  # (B, U)
            best, order = torch.cat([best, s]).topk(min(k, len(best) + len(s)), dim=0)
            idx = torch.cat([idx, torch.arange(start, start + len(s))[:, None].expand_as(s)]).gather(0, order)
            pos = torch.cat([pos, p]).gather(0, order)
            sizes = {n: tuple(acts[n].shape[-2:]) for n in names}
    h_min = min(h for h, _ in sizes.values())
    patch = _default_patch(h_min, images.shape[-2]) if patch is None else check_int("patch", patch)
    out = []
    for j, (n, _) in enumerate(units):
        cy, cx = _centres(pos[:, j], sizes[n], images.shape[-2:])
        out.append(_crops(images, idx[:, j], cy, cx, patch))
    return torch.stack(out), idx.T


@dataclass
class Atlas:
    """Result of :func:`atlas`: ``image (3, G*p, G*p)`` the tiles, ``layout (n, 2)`` in [0, 1],
    ``cells (n,)`` the cell ``row * G + col`` of each point, ``counts (G, G)``, ``points (n, 3)``
    image index, row and column on the activation map of each sampled activation vector."""
    image: torch.Tensor
    layout: torch.Tensor
    cells: torch.Tensor
    counts: torch.Tensor
    points: torch.Tensor


def atlas(model: nn.Module, data_or_images, layer, grid: int = 8, n_points: int = 2048,
          patch: int | None = None, seed: int = 0, batch_size: int = 64,
          progress: bool = True) -> Atlas:
    """A small activation atlas (Carter, Armstrong, Schubert, Johnson & Olah, Distill 2019).

    ``n_points`` activation vectors a(x, u, v) (one per image position, sampled with ``seed``)
    are laid out in 2-D by PCA (the paper uses UMAP; PCA keeps it deterministic and dependency
    free), the layout is cut into ``grid x grid`` cells, and each cell shows the average of the
    image patches (``patch`` px around the position) of its points. Empty cells are white.
    """
    images = images_of(data_or_images, "data_or_images")
    grid, n_points = check_int("grid", grid), check_int("n_points", n_points)
    name, _ = resolve_layer(model, layer)
    vecs, points, map_size = [], [], None
    gen = torch.Generator().manual_seed(seed)
    with frozen(model):
        for start, acts in activation_batches(model, images, name, batch_size, progress, "atlas"):
            a = conv_maps(acts[name], name)
            if map_size is None:
                map_size = tuple(a.shape[-2:])
                total = len(images) * map_size[0] * map_size[1]
                chosen = torch.randperm(total, generator=gen)[:n_points].sort().values
            per = map_size[0] * map_size[1]
            mine = chosen[(chosen >= start * per) & (chosen < (start + len(a)) * per)] - start * per
            vecs.append(a.flatten(2)[mine // per, :, mine % per])  # (n_b, K)
            rows, cols = (mine % per) // map_size[1], mine % map_size[1]
            points.append(torch.stack([mine // per + start, rows, cols], 1))  # (n_b, 3)
    vecs, points = torch.cat(vecs), torch.cat(points)
    layout = _pca_2d(vecs)
    layout = (layout - layout.min(0).values) / (layout.max(0).values - layout.min(0).values).clamp_min(1e-12)
    rc = (layout.flip(1) * grid).long().clamp(max=grid - 1)  # (n, 2): row from y, col from x
    cells = rc[:, 0] * grid + rc[:, 1]
    patch = _default_patch(map_size[0], images.shape[-2]) if patch is None else check_int("patch", patch)
    cy, cx = _centres(points[:, 1] * map_size[1] + points[:, 2], map_size, images.shape[-2:])
    crops = _crops(images, points[:, 0], cy, cx, patch)  # (n, 3, p, p)
    sums = torch.zeros(grid * grid, 3, patch, patch).index_add_(0, cells, crops)
    counts = torch.bincount(cells, minlength=grid * grid)
    tiles = torch.where(counts.view(-1, 1, 1, 1) > 0, sums / counts.clamp(min=1).view(-1, 1, 1, 1), 1.0)
    side = grid * patch
    image = tiles.view(grid, grid, 3, patch, patch).permute(2, 0, 3, 1, 4).reshape(3, side, side)
    return Atlas(image, layout, cells, counts.view(grid, grid), points)


# ------------------------------------------------------------------------------------------------
# patches and positions
# ------------------------------------------------------------------------------------------------
def _unit_max(acts: dict, units: list) -> tuple:
    """``(B, U)`` maxima of the units' maps and their flat positions."""
    for n, u in units:
        if not 0 <= u < conv_maps(acts[n], n).shape[1]:
            raise ValueError(f"unit {u} of {n!r} must be in [0, {acts[n].shape[1]})")
    vals, pos = zip(*(acts[n][:, u].flatten(1).max(1) for n, u in units))
    return torch.stack(vals, 1), torch.stack(pos, 1)


def _crops(images: torch.Tensor, idx, cy, cx, patch: int) -> torch.Tensor:
    """``(n, 3, patch, patch)`` crops centred at pixels (cy, cx) of ``images[idx]``; outside the
    image the border pixels repeat."""
    h, w = images.shape[-2:]
    off = torch.arange(patch) - patch // 2
    ys = (cy[:, None] + off).clamp(0, h - 1)  # (n, p)
    xs = (cx[:, None] + off).clamp(0, w - 1)
    out = images[idx[:, None, None], :, ys[:, :, None], xs[:, None, :]]  # (n, p, p, 3)
    return out.permute(0, 3, 1, 2)


def _centres(pos: torch.Tensor, map_size, image_size) -> tuple:
    """Pixel centres of flat positions ``pos`` on an (h, w) map, for images of ``image_size``."""
    (h, w), (H, W) = map_size, image_size
    cy = ((pos // w).float() + 0.5) * H / h
    cx = ((pos % w).float() + 0.5) * W / w
    return cy.long(), cx.long()


def _default_patch(map_h: int, image_h: int) -> int:
    """3 x the layer's stride, at most the image."""
    return min(image_h, 3 * max(1, image_h // map_h))


def _pca_2d(v: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` projection on the two first principal axes, signs fixed (largest loading > 0)."""
    v = v.double() - v.double().mean(0)
    _, _, vh = torch.linalg.svd(v, full_matrices=False)
    axes = vh[:2]  # (2, K)
    sign = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return (v @ (axes * sign).T).float()
