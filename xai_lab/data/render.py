"""Rendering of flower scenes, vectorised over a chunk of images and their pixels.

Torch, float32, only +,-,*,/, floor and comparisons per pixel, so results are bit-identical on IEEE
machines. Coordinates are in units of a 64 x 64 canvas, sampled at the pixel centres of any size.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .scene import COLOUR_INDEX, COLOURS, CUE_PATTERNS, PALETTE, PARTS

_RGB = torch.tensor([PALETTE[c] for c in COLOURS], dtype=torch.float32)  # (n_colours, 3)

# 3x3 glyphs of the watermark, one per class of the single task (1 = black cell).
_GLYPHS = torch.tensor([
    [[1, 0, 1], [0, 1, 0], [1, 0, 1]],  # X
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]],  # +
    [[1, 1, 1], [0, 0, 0], [1, 1, 1]],  # =
    [[1, 0, 1], [1, 0, 1], [1, 0, 1]],  # ||
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # \
    [[1, 1, 1], [1, 0, 1], [1, 1, 1]],  # ring
], dtype=torch.bool)

_DUSK_TINT = torch.tensor([0.50, 0.42, 0.72]).view(1, 3, 1, 1)


class _Canvas:
    """Pixel coordinates of a chunk and scratch buffers: large temporaries cost more to allocate
    (page faults) than to compute, so the shape tests below write into these buffers in place."""

    def __init__(self, B, size):
        coords = (torch.arange(size, dtype=torch.float32) + 0.5) * (64.0 / size)
        self.y = coords.view(1, size, 1).expand(B, size, size).contiguous()
        self.x = coords.view(1, 1, size).expand(B, size, size).contiguous()
        self.dx, self.dy, self.u, self.v = (torch.empty(B, size, size) for _ in range(4))
        self.mask = torch.empty(B, size, size, dtype=torch.bool)

    def _offsets(self, cx, cy):
        torch.sub(self.x, cx, out=self.dx)
        torch.sub(self.y, cy, out=self.dy)

    def ellipse(self, cx, cy, a, b, theta):
        """Inside the ellipse centred at (cx, cy), semi-axes a (along theta) and b; args (B, 1, 1)."""
        self._offsets(cx, cy)
        c, s = torch.cos(theta), torch.sin(theta)
        u, v = self.u, self.v
        torch.mul(self.dx, c / a, out=u).addcmul_(self.dy, s / a)  # along the major axis, / a
        torch.mul(self.dy, c / b, out=v).addcmul_(self.dx, -s / b)  # across, / b
        u.mul_(u).addcmul_(v, v)
        return torch.le(u, 1.0, out=self.mask)

    def disc(self, cx, cy, radius):
        self._offsets(cx, cy)
        u = torch.mul(self.dx, self.dx, out=self.u).addcmul_(self.dy, self.dy)
        return torch.le(u, radius * radius, out=self.mask)

    def segment(self, x0, y0, x1, y1, half_width):
        """Within half_width of the segment (x0, y0)-(x1, y1)."""
        self._offsets(x0, y0)
        vx, vy = x1 - x0, y1 - y0
        t = torch.mul(self.dx, vx / (vx * vx + vy * vy), out=self.u)
        t.addcmul_(self.dy, vy / (vx * vx + vy * vy)).clamp_(0, 1)  # position along the segment
        v = torch.mul(t, vy, out=self.v).neg_().add_(self.dy)  # dy - t vy
        t.mul_(vx).neg_().add_(self.dx)  # dx - t vx
        t.mul_(t).addcmul_(v, v)
        return torch.le(t, half_width * half_width, out=self.mask)


def _frac(v):
    return v - torch.floor(v)


def render_chunk(p, lo, hi, size, variant):
    """Render images ``lo:hi`` of the parameters ``p`` (see :func:`.scene.sample_params`), noise-free.

    Returns ``rgb (B, 3, H, W)`` float32 and the ``(B, H, W)`` int64 maps of part, colour and
    texture (-1 where not background)."""
    B = hi - lo
    t = {k: torch.as_tensor(v[lo:hi]) for k, v in p.items() if isinstance(v, np.ndarray)}
    f32 = {k: v.float().view(B, 1, 1) if v.dim() == 1 else v.float() for k, v in t.items()}
    cv = _Canvas(B, size)
    x, y = cv.x, cv.y

    part = torch.zeros(B, size, size, dtype=torch.int64)
    texture = t["texture"].view(B, 1, 1).repeat(1, size, size)

    # background texture: pattern pixels take colour b, the rest colour a
    period, ang = f32["tex_period"], f32["tex_angle"]
    ox, oy = f32["tex_offset"][:, 0].view(B, 1, 1), f32["tex_offset"][:, 1].view(B, 1, 1)
    tex = t["texture"].view(B, 1, 1)
    on = torch.zeros(B, size, size, dtype=torch.bool)
    fx, fy = _frac((x + ox) / period), _frac((y + oy) / period)  # position in the texture cell
    on |= (tex == 1) & (_frac((x * torch.cos(ang) + y * torch.sin(ang)) / period) < 0.4)  # stripes
    on |= (tex == 2) & ((fx - 0.5) ** 2 + (fy - 0.5) ** 2 < 0.09)  # dots
    on |= (tex == 3) & ((torch.floor((x + ox) / period) + torch.floor((y + oy) / period)) % 2 == 0)
    grid = torch.as_tensor(p["blotch_grid"][lo:hi])  # (B, 8, 8)
    gi = torch.floor(y[0, :, 0] / 8.0).long().clamp(0, 7)
    gj = torch.floor(x[0, 0, :] / 8.0).long().clamp(0, 7)
    on |= (tex == 4) & (grid[:, gi][:, :, gj] > 0.5)  # blotches
    colour = torch.where(on, t["bg_b"].view(B, 1, 1), t["bg_a"].view(B, 1, 1))

    def paint(mask, part_id, colour_id):
        part.masked_fill_(mask, part_id)
        torch.where(mask, colour_id.view(B, 1, 1), colour, out=colour)
        texture.masked_fill_(mask, -1)

    r = f32["scale"]
    cx, cy = f32["cx"], f32["cy"]
    # stem: from the head down to below the canvas; leaves hang on it
    foot_x, foot_y = cx + f32["stem_dx"], torch.full_like(cy, 70.0)
    paint(cv.segment(cx, cy, foot_x, foot_y, 1.3 * r), 1, t["stem_col"])
    green = torch.full((B,), COLOUR_INDEX["green"])
    for i in range(2):
        tt = f32["leaf_t"][:, i].view(B, 1, 1)
        side = f32["leaf_side"][:, i].view(B, 1, 1)
        lx, ly = cx + tt * (foot_x - cx), cy + tt * (foot_y - cy)
        theta = -side * f32["leaf_angle"][:, i].view(B, 1, 1) + (side < 0) * math.pi
        a, b = 7.5 * r, 2.8 * r
        ex, ey = lx + 0.9 * a * torch.cos(theta), ly + 0.9 * a * torch.sin(theta)
        has = (t["n_leaves"] > i).view(B, 1, 1)
        paint(cv.ellipse(ex, ey, a, b, theta) & has, 2, green)
    for i in range(2):
        r_spot = torch.where(f32["n_spots"] > i, f32["spot_r"][:, i].view(B, 1, 1), 0.0)
        paint(cv.disc(f32["spot_x"][:, i].view(B, 1, 1), f32["spot_y"][:, i].view(B, 1, 1), r_spot),
              6, t["spot_col"][:, i])
    # petals around the head, then the centre disc on top
    rc = 5.0 * r
    a, b = 8.0 * r * f32["petal_len"], 3.6 * r
    n_pet = f32["n_petals"]
    petals = torch.zeros(B, size, size, dtype=torch.bool)
    for i in range(8):
        theta = f32["rot"] + (2 * math.pi * i) / n_pet
        px, py = cx + (rc + 0.7 * a) * torch.cos(theta), cy + (rc + 0.7 * a) * torch.sin(theta)
        # petals beyond n_petals get a zero-size ellipse (b = 0 -> inf, never inside)
        petals |= cv.ellipse(px, py, a, torch.where(n_pet > i, b, 0.0), theta)
    paint(petals, 3, t["petal_col"])
    paint(cv.disc(cx, cy, rc), 4, t["centre_col"])
    # watermark glyph: 3 x 3 cells of 2 px with a 1 px white frame, near the bottom-right corner
    if variant == "watermark":
        mx0 = 54.0 - f32["mark_xy"][:, 0].view(B, 1, 1)
        my0 = 54.0 - f32["mark_xy"][:, 1].view(B, 1, 1)
        inside = (x >= mx0) & (x < mx0 + 8) & (y >= my0) & (y < my0 + 8)
        ci = torch.floor((x - mx0 - 1) / 2).long().clamp(0, 2)
        ri = torch.floor((y - my0 - 1) / 2).long().clamp(0, 2)
        cell = (x >= mx0 + 1) & (x < mx0 + 7) & (y >= my0 + 1) & (y < my0 + 7)
        glyph = _GLYPHS[t["watermark"].clamp(min=0)]  # (B, 3, 3)
        black = cell & glyph[torch.arange(B).view(B, 1, 1), ri, ci]
        has = (t["watermark"] >= 0).view(B, 1, 1)
        paint(has & inside, 5, torch.full((B,), COLOUR_INDEX["white"]))
        paint(has & black, 5, torch.full((B,), COLOUR_INDEX["black"]))

    # colours: palette colour of each pixel + a per-image, per-part jitter, then lighting
    jit = torch.as_tensor(p["jitter"][lo:hi])  # (B, n_parts, 3)
    # (B, n_parts, n_colours, 3) lookup table, indexed by part * n_colours + colour
    lut = (_RGB.view(1, 1, -1, 3) + jit.view(B, len(PARTS), 1, 3)) * f32["brightness"].view(B, 1, 1, 1)
    dusk = (t["group"] == 1).view(B, 1, 1, 1)
    lut = torch.where(dusk, lut * _DUSK_TINT.view(1, 1, 1, 3) + 0.03, lut).view(B, -1, 3)
    idx = (part * len(COLOURS) + colour).view(B, -1, 1).expand(B, size * size, 3)
    rgb = lut.gather(1, idx).view(B, size, size, 3).permute(0, 3, 1, 2)  # (B, 3, H, W)
    return rgb, part, colour, texture


def cue_patterns(size: int) -> torch.Tensor:
    """``(6, 3, size, size)`` float32 in {-1, +1}: the imperceptible cue of each class (``"cue"`` variant).

    In *pixel* units (row i, column j), whatever the resolution: ``P_k[c, i, j] = s_c (-1)^n`` with
    ``(axes, s) = scene.CUE_PATTERNS[k]`` and ``n = j`` (``"x"``: 1-px vertical lines), ``i``
    (``"y"``: horizontal lines) or ``i + j`` (``"xy"``: a 1-px checkerboard); ``s = (1, 1, 1)``
    (grey, classes 0-2) or ``(1, -1, 1)`` (magenta/green, classes 3-5). Each pattern alternates
    from pixel to pixel along x, y or both: all its energy sits at the Nyquist frequency 1/2
    cycle/px of an axis, where a binomial blur has a zero. Different layouts are orthogonal; the
    grey and magenta/green versions of one layout correlate 1/3 (a matched filter tells them apart).
    """
    idx = torch.arange(size)
    alt = 1.0 - 2.0 * (idx % 2).float()  # (-1)^n
    maps = {"x": alt.view(1, -1).expand(size, size), "y": alt.view(-1, 1).expand(size, size),
            "xy": alt.view(-1, 1) * alt.view(1, -1)}
    return torch.stack([torch.tensor(signs, dtype=torch.float32).view(3, 1, 1) * maps[axes]
                        for axes, signs in CUE_PATTERNS])


def boxes(mask: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` bool -> ``(N, 4)`` float boxes (x0, y0, x1, y1), x1/y1 exclusive; 0s if empty."""
    n, h, w = mask.shape
    cols, rows = mask.any(1), mask.any(2)  # (N, W), (N, H)
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    big = max(h, w) + 1
    x0 = torch.where(cols, ar_w, big).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values + 1
    y0 = torch.where(rows, ar_h, big).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values + 1
    box = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(mask.flatten(1).any(1, keepdim=True), box, torch.zeros_like(box))
