"""Procedural flowers with ground truth, in the spirit of an8flower (Oramas et al., ICLR 2019).

Every image shows one flower: a stem, 0-2 leaves, 5-8 petals and a centre disc, on a textured
background with 0-2 distractor spots (centre-sized discs in centre colours, away from the head).
The class is the colour of the discriminative part(s):

- ``single``    6 classes: the colour of the centre disc. Petals take any colour of the same
                palette, so "is there red in the image?" does not answer the task: the model has
                to find the centre.
- ``double``    12 classes: the colours of the centre *and* the petals. Each centre colour and
                each petal colour occurs in two classes, so neither part alone suffices.
- ``watermark`` the ``single`` task plus a small glyph in the bottom-right corner. In ``train`` the
                glyph names the class; in ``test`` it is drawn at random (a Clever-Hans trap).
- ``biased``    the ``single`` task with a lighting subgroup (``group``: 0 day, 1 dusk). In
                ``train`` dusk is rare for classes 0-2 and common for 3-5; in ``test`` it is 50/50.

Everything that does not define the class varies: position, scale, rotation, number and colour of
the other parts, background texture and colours, brightness, pixel noise. Every image comes with
its part map, per-pixel concept maps (parts, colours, textures), image-level attributes, and the
mask and box of its discriminative part(s).

Rendering is vectorised over images and pixels (torch, float32, only +,-,*,/, floor and
comparisons per pixel, so results are bit-identical on IEEE machines). Parameters are drawn with
NumPy's PCG64 from ``(seed, variant, split)``, independently of ``size``: the same flowers render at
any resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["flowers", "Flowers", "VARIANTS", "PARTS", "COLOURS", "TEXTURES"]

VARIANTS = ("single", "double", "watermark", "biased")
SPLITS = ("train", "test")

PARTS = ("background", "stem", "leaf", "petal", "centre", "mark", "spot")
# name -> RGB in [0, 1]
_PALETTE = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.98, 0.55, 0.05),
    "yellow": (0.97, 0.88, 0.12),
    "blue": (0.15, 0.30, 0.90),
    "purple": (0.58, 0.20, 0.78),
    "white": (0.96, 0.96, 0.96),
    "pink": (0.98, 0.55, 0.75),
    "green": (0.18, 0.62, 0.20),
    "brown": (0.45, 0.28, 0.12),
    "grey": (0.52, 0.52, 0.52),
    "sky": (0.62, 0.80, 0.95),
    "sand": (0.85, 0.78, 0.58),
    "olive": (0.42, 0.47, 0.24),
    "black": (0.05, 0.05, 0.05),
}
COLOURS = tuple(_PALETTE)
TEXTURES = ("plain", "stripes", "dots", "checker", "blotches")

CLASS_COLOURS = ("red", "orange", "yellow", "blue", "purple", "white")  # centre colours
PETAL_COLOURS = CLASS_COLOURS + ("pink",)  # free petal colours in single-feature variants
BACKGROUND_COLOURS = ("grey", "sky", "sand", "olive", "brown")
GROUPS = ("day", "dusk")
_CHUNK = 256  # images rendered at once

_CI = {name: i for i, name in enumerate(COLOURS)}
_RGB = torch.tensor([_PALETTE[c] for c in COLOURS], dtype=torch.float32)  # (n_colours, 3)

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


def _double_classes():
    """Class k of ``double``: centre colour k % 6, petals shifted by 1 (k < 6) or 3 (k >= 6)."""
    centre = [k % 6 for k in range(12)]
    petal = [(k % 6 + (1 if k < 6 else 3)) % 6 for k in range(12)]
    return centre, petal


@dataclass(eq=False)
class Flowers(Dataset):
    """A rendered set of flowers: a ``Dataset`` of ``(image, label)`` that also exposes whole tensors.

    Shapes: ``images (N, 3, H, W)`` float32 in [0, 1]; ``labels (N,)`` int64; ``parts (N, H, W)``
    int64 indexing ``part_names``; ``gt_masks (N, H, W)`` bool; ``boxes (N, 4)`` float32 as
    ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive (the box of the ground-truth mask);
    ``colour_map`` / ``texture_map`` ``(N, H, W)`` int64 indexing ``COLOURS`` / ``TEXTURES``
    (``-1``: no texture, i.e. not background); ``attributes (N, A)`` float32;
    ``watermark (N,)`` the class the corner glyph names (-1: no glyph); ``group (N,)`` 0 day, 1 dusk.
    """

    images: torch.Tensor
    labels: torch.Tensor
    parts: torch.Tensor
    colour_map: torch.Tensor
    texture_map: torch.Tensor
    gt_masks: torch.Tensor
    boxes: torch.Tensor
    attributes: torch.Tensor
    attribute_names: tuple
    watermark: torch.Tensor
    group: torch.Tensor
    class_names: tuple
    variant: str
    split: str
    seed: int
    part_names: tuple = PARTS
    group_names: tuple = GROUPS
    _concepts: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        return (f"Flowers(n={n}, variant={self.variant!r}, split={self.split!r}, seed={self.seed}, "
                f"size={h}x{w}, classes={len(self.class_names)})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # --- concepts: three label maps, exposed as one stack of binary masks -------------------------
    @property
    def concept_names(self) -> tuple:
        return PARTS + COLOURS + TEXTURES

    @property
    def concept_categories(self) -> tuple:
        return ("part",) * len(PARTS) + ("colour",) * len(COLOURS) + ("texture",) * len(TEXTURES)

    @property
    def concept_maps(self) -> dict:
        """Per-pixel label maps by category: every pixel has one part, one colour, <= 1 texture."""
        return {"part": self.parts, "colour": self.colour_map, "texture": self.texture_map}

    @property
    def concepts(self) -> torch.Tensor:
        """``(N, C, H, W)`` bool, one mask per entry of ``concept_names`` (built once, then cached)."""
        if self._concepts is None:
            masks = []
            for labels, k in ((self.parts, len(PARTS)), (self.colour_map, len(COLOURS)),
                              (self.texture_map, len(TEXTURES))):
                ids = torch.arange(k).view(1, k, 1, 1)
                masks.append(labels.unsqueeze(1) == ids)  # (N, k, H, W)
            self._concepts = torch.cat(masks, dim=1)
        return self._concepts

    def subset(self, index) -> "Flowers":
        """The flowers at ``index`` (slice, index tensor or bool mask), as a new ``Flowers``."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        fields = {name: getattr(self, name) for name in
                  ("images", "labels", "parts", "colour_map", "texture_map", "gt_masks", "boxes",
                   "attributes", "watermark", "group")}
        return Flowers(**{k: v[index] for k, v in fields.items()},
                       attribute_names=self.attribute_names, class_names=self.class_names,
                       variant=self.variant, split=self.split, seed=self.seed)


# ------------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------------
def _rng(seed: int, variant: str, split: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence([seed, VARIANTS.index(variant), SPLITS.index(split), 20190501])))


def _sample_params(n, variant, split, seed):
    """All random choices of the scene, drawn independently of the resolution. Returns numpy arrays."""
    rng = _rng(seed, variant, split)
    n_cls = 12 if variant == "double" else 6
    p = {}
    p["label"] = rng.integers(0, n_cls, n)
    if variant == "double":
        centre, petal = _double_classes()
        p["centre_col"] = np.array([_CI[CLASS_COLOURS[centre[k]]] for k in p["label"]])
        p["petal_col"] = np.array([_CI[CLASS_COLOURS[petal[k]]] for k in p["label"]])
    else:
        p["centre_col"] = np.array([_CI[CLASS_COLOURS[k]] for k in p["label"]])
        p["petal_col"] = np.array([_CI[c] for c in PETAL_COLOURS])[rng.integers(0, len(PETAL_COLOURS), n)]
    # geometry, in units of a 64 x 64 canvas
    p["scale"] = rng.uniform(0.8, 1.2, n)
    p["cx"] = rng.uniform(18, 46, n)
    p["cy"] = rng.uniform(15, 31, n)
    p["rot"] = rng.uniform(0, 2 * math.pi, n)
    p["n_petals"] = rng.integers(5, 9, n)
    p["petal_len"] = rng.uniform(0.85, 1.15, n)
    p["stem_dx"] = rng.uniform(-10, 10, n)  # stem foot offset
    p["stem_col"] = np.where(rng.random(n) < 0.75, _CI["green"], _CI["brown"])
    p["n_leaves"] = rng.integers(0, 3, n)
    p["leaf_t"] = rng.uniform(0.35, 0.8, (n, 2))
    p["leaf_side"] = np.stack([rng.choice([-1.0, 1.0], n), np.zeros(n)], 1)
    p["leaf_side"][:, 1] = -p["leaf_side"][:, 0]
    p["leaf_angle"] = rng.uniform(math.radians(25), math.radians(60), (n, 2))
    # 0-2 distractor spots (berries) of centre size and centre colours, away from the head: the
    # amount of a colour alone does not give the class away, its place in the flower does
    p["n_spots"] = rng.integers(0, 3, n)
    p["spot_col"] = np.array([_CI[c] for c in CLASS_COLOURS])[rng.integers(0, 6, (n, 2))]
    p["spot_r"] = rng.uniform(3.8, 5.5, (n, 2))
    side = np.where(p["cx"] < 32, 1.0, -1.0)[:, None]
    p["spot_x"] = np.clip(p["cx"][:, None] + side * rng.uniform(21, 30, (n, 2)), 5, 59)
    p["spot_y"] = rng.uniform(22, 58, (n, 2))
    # background
    p["texture"] = rng.integers(0, len(TEXTURES), n)
    bg = np.array([_CI[c] for c in BACKGROUND_COLOURS])
    a = rng.integers(0, len(bg), n)
    b = (a + rng.integers(1, len(bg), n)) % len(bg)  # a different second colour
    p["bg_a"], p["bg_b"] = bg[a], bg[b]
    p["tex_period"] = rng.uniform(5, 10, n)
    p["tex_angle"] = rng.uniform(0, math.pi, n)
    p["tex_offset"] = rng.uniform(0, 10, (n, 2))
    p["blotch_grid"] = rng.random((n, 8, 8), dtype=np.float32)
    # photometric
    p["jitter"] = rng.normal(0, 0.04, (n, len(PARTS), 3)).astype(np.float32)  # per part colour jitter
    p["brightness"] = rng.uniform(0.85, 1.1, n)
    # variant fields
    p["watermark"] = np.full(n, -1)
    p["group"] = np.zeros(n, dtype=np.int64)
    if variant == "watermark":
        p["watermark"] = p["label"].copy() if split == "train" else rng.integers(0, 6, n)
        p["mark_xy"] = rng.integers(0, 3, (n, 2))
    if variant == "biased":
        p_dusk = np.where(p["label"] < 3, 0.02, 0.5) if split == "train" else np.full(n, 0.5)
        p["group"] = (rng.random(n) < p_dusk).astype(np.int64)
    p["noise_seed"] = int(rng.integers(0, 2**31 - 1))
    return p


# ------------------------------------------------------------------------------------------------
# rendering (vectorised over a chunk of images)
# ------------------------------------------------------------------------------------------------
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


def _render_chunk(p, lo, hi, size, variant):
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
    green = torch.full((B,), _CI["green"])
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
        paint(has & inside, 5, torch.full((B,), _CI["white"]))
        paint(has & black, 5, torch.full((B,), _CI["black"]))

    # colours: palette colour of each pixel + a per-image, per-part jitter, then lighting
    jit = torch.as_tensor(p["jitter"][lo:hi])  # (B, n_parts, 3)
    # (B, n_parts, n_colours, 3) lookup table, indexed by part * n_colours + colour
    lut = (_RGB.view(1, 1, -1, 3) + jit.view(B, len(PARTS), 1, 3)) * f32["brightness"].view(B, 1, 1, 1)
    dusk = (t["group"] == 1).view(B, 1, 1, 1)
    lut = torch.where(dusk, lut * _DUSK_TINT.view(1, 1, 1, 3) + 0.03, lut).view(B, -1, 3)
    idx = (part * len(COLOURS) + colour).view(B, -1, 1).expand(B, size * size, 3)
    rgb = lut.gather(1, idx).view(B, size, size, 3).permute(0, 3, 1, 2)  # (B, 3, H, W)
    return rgb, part, colour, texture


def flowers(n: int, variant: str = "single", seed: int = 0, size: int = 64,
            split: str = "train") -> Flowers:
    """Render ``n`` procedural flowers with full ground truth.

    Args:
        n: number of images.
        variant: ``"single"`` (6 classes: centre colour), ``"double"`` (12 classes: centre and
            petal colours), ``"watermark"`` (single + class-naming corner glyph in train, random in
            test) or ``"biased"`` (single + a dusk subgroup that is rare for classes 0-2 in train).
        seed: random seed; the same ``(n, variant, seed, size, split)`` gives bit-identical data.
        size: image side in pixels (the scene is resolution independent).
        split: ``"train"`` or ``"test"``; different random streams, and for ``watermark`` and
            ``biased`` different distributions.

    Returns:
        A :class:`Flowers` data set.

    Example:
        >>> data = flowers(8, "single", seed=0)
        >>> data.images.shape, data.labels.shape, data.concepts.shape[1] >= 15
        (torch.Size([8, 3, 64, 64]), torch.Size([8]), True)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    n, size = int(n), int(size)
    p = _sample_params(n, variant, split, int(seed))

    images = torch.empty(n, 3, size, size)
    parts = torch.empty(n, size, size, dtype=torch.int64)
    colour = torch.empty_like(parts)
    texture = torch.empty_like(parts)
    for lo in range(0, n, _CHUNK):  # fixed chunks: the noise stream of a chunk is seeded by its index
        hi = min(n, lo + _CHUNK)
        rgb, parts[lo:hi], colour[lo:hi], texture[lo:hi] = _render_chunk(p, lo, hi, size, variant)
        gen = torch.Generator().manual_seed(p["noise_seed"] + lo)
        sigma = torch.where(torch.as_tensor(p["group"][lo:hi]) == 1, 0.06, 0.035).view(-1, 1, 1, 1)
        noise = torch.empty(rgb.shape).normal_(0.0, 1.0, generator=gen)  # contiguous: fast path
        images[lo:hi] = rgb.addcmul_(noise, sigma).clamp_(0, 1)

    disc_parts = (3, 4) if variant == "double" else (4,)
    gt = (parts.unsqueeze(-1) == torch.tensor(disc_parts)).any(-1)
    boxes = _boxes(gt)
    attributes, attribute_names = _attributes(p)
    if variant == "double":
        centre, petal = _double_classes()
        class_names = tuple(f"{CLASS_COLOURS[c]} centre, {CLASS_COLOURS[q]} petals"
                            for c, q in zip(centre, petal))
    else:
        class_names = tuple(f"{c} centre" for c in CLASS_COLOURS)
    return Flowers(images=images, labels=torch.as_tensor(p["label"], dtype=torch.int64),
                   parts=parts, colour_map=colour, texture_map=texture, gt_masks=gt, boxes=boxes,
                   attributes=attributes, attribute_names=attribute_names,
                   watermark=torch.as_tensor(p["watermark"], dtype=torch.int64),
                   group=torch.as_tensor(p["group"], dtype=torch.int64),
                   class_names=class_names, variant=variant, split=split, seed=int(seed))


def _boxes(mask: torch.Tensor) -> torch.Tensor:
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


def _attributes(p):
    """Image-level attributes (for concept bottlenecks): one-hots of the part colours, counts, texture."""
    n = len(p["label"])
    cols, names = [], []
    for c in CLASS_COLOURS:
        cols.append(p["centre_col"] == _CI[c]); names.append(f"centre_{c}")
    for c in PETAL_COLOURS:
        cols.append(p["petal_col"] == _CI[c]); names.append(f"petals_{c}")
    cols.append(p["stem_col"] == _CI["brown"]); names.append("stem_brown")
    cols.append(p["n_leaves"] > 0); names.append("has_leaves")
    cols.append(p["n_spots"] > 0); names.append("has_spots")
    cols.append((p["n_petals"] - 5) / 3.0); names.append("petal_count")
    cols.append((p["scale"] - 0.8) / 0.4); names.append("flower_size")
    for i, tex in enumerate(TEXTURES):
        cols.append(p["texture"] == i); names.append(f"background_{tex}")
    cols.append(p["group"] == 1); names.append("dusk")
    cols.append(p["watermark"] >= 0); names.append("has_mark")
    att = torch.as_tensor(np.stack([np.asarray(c, dtype=np.float32) for c in cols], 1))
    assert att.shape == (n, len(names))
    return att, tuple(names)
