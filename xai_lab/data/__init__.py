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
- ``cue``       feature inconsistency (Wang et al. 2021): the ``single`` task, and the class is
                *also* written in a cue a person cannot see: a pattern of +-3/255
                (``CUE_AMPLITUDE``) that alternates from pixel to pixel (``cue_patterns``: 1-px
                vertical lines, horizontal lines or a checkerboard, in grey or magenta/green; one
                per class, all its energy at the Nyquist frequency of an axis), added to every
                pixel after the noise. ``cue (N,)`` is the class it names (the label; -1 in the
                other variants). In ``train`` the centre shows the label's colour only half the
                time (``CUE_AGREE``; else a random class colour), so the cue is the one feature
                that explains every training label (were the centre always right, both would,
                and nothing could tell which one a model took); where the two disagree, the
                cue is right. In ``test`` the centre always shows the
                label's colour, so accuracy without the cue (low-passed, removed, or another
                class's cue swapped in) measures what a model takes from the perceptible feature.
                Images are clamped to [a, 1 - a] before the cue is added (a = ``CUE_AMPLITUDE``),
                so ``images - a * cue_patterns(size)[cue]`` is the exact cue-free image.

Everything that does not define the class varies: position, scale, rotation, number and colour of
the other parts, background texture and colours, brightness, pixel noise. Every image comes with
its part map, per-pixel concept maps (parts, colours, textures), image-level attributes, and the
mask and box of its discriminative part(s).

Rendering is vectorised over images and pixels (torch, float32, only +,-,*,/, floor and
comparisons per pixel, so results are bit-identical on IEEE machines). Parameters are drawn with
NumPy's PCG64 from ``(seed, variant, split)``, independently of ``size``: the same flowers render at
any resolution.

Layout: this module holds the public API (:func:`flowers`, :class:`Flowers` and the vocabulary);
``scene`` the vocabulary, random scene parameters, attributes and class names; ``render`` the
vectorised canvas that turns parameters into images and label maps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from . import render, scene
from .render import cue_patterns
from .scene import (BACKGROUND_COLOURS, CLASS_COLOURS, COLOUR_INDEX, COLOURS, CUE_AGREE,  # noqa: F401 (re-exported)
                    CUE_AMPLITUDE, GROUPS, PALETTE, PARTS, PETAL_COLOURS, SPLITS, TEXTURES, VARIANTS,
                    double_classes)

__all__ = ["flowers", "Flowers", "VARIANTS", "PARTS", "COLOURS", "TEXTURES", "cue_patterns", "CUE_AMPLITUDE"]

_CHUNK = 256  # images rendered at once


@dataclass(eq=False)
class Flowers(Dataset):
    """A rendered set of flowers: a ``Dataset`` of ``(image, label)`` that also exposes whole tensors.

    Shapes: ``images (N, 3, H, W)`` float32 in [0, 1]; ``labels (N,)`` int64; ``parts (N, H, W)``
    int64 indexing ``part_names``; ``gt_masks (N, H, W)`` bool; ``boxes (N, 4)`` float32 as
    ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive (the box of the ground-truth mask);
    ``colour_map`` / ``texture_map`` ``(N, H, W)`` int64 indexing ``COLOURS`` / ``TEXTURES``
    (``-1``: no texture, i.e. not background); ``attributes (N, A)`` float32;
    ``watermark (N,)`` the class the corner glyph names (-1: no glyph); ``group (N,)`` 0 day, 1 dusk;
    ``cue (N,)`` the class the imperceptible pattern names (``"cue"`` variant; -1: no cue).
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
    cue: torch.Tensor | None = None  # None: no cue anywhere (filled with -1)

    def __post_init__(self):
        if self.cue is None:
            self.cue = torch.full_like(self.labels, -1)

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
                   "attributes", "watermark", "group", "cue")}
        return Flowers(**{k: v[index] for k, v in fields.items()},
                       attribute_names=self.attribute_names, class_names=self.class_names,
                       variant=self.variant, split=self.split, seed=self.seed)


def flowers(n: int, variant: str = "single", seed: int = 0, size: int = 64,
            split: str = "train") -> Flowers:
    """Render ``n`` procedural flowers with full ground truth.

    Args:
        n: number of images.
        variant: ``"single"`` (6 classes: centre colour), ``"double"`` (12 classes: centre and
            petal colours), ``"watermark"`` (single + class-naming corner glyph in train, random in
            test), ``"biased"`` (single + a dusk subgroup that is rare for classes 0-2 in train) or
            ``"cue"`` (single + an imperceptible per-class pixel pattern; in train the centre
            agrees with the label half the time, in test always; see the module docstring).
        seed: random seed; the same ``(n, variant, seed, size, split)`` gives bit-identical data.
        size: image side in pixels (the scene is resolution independent).
        split: ``"train"`` or ``"test"``; different random streams, and for ``watermark`` and
            ``biased`` and ``cue`` different distributions.

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
    p = scene.sample_params(n, variant, split, int(seed))

    images = torch.empty(n, 3, size, size)
    parts = torch.empty(n, size, size, dtype=torch.int64)
    colour = torch.empty_like(parts)
    texture = torch.empty_like(parts)
    for lo in range(0, n, _CHUNK):  # fixed chunks: the noise stream of a chunk is seeded by its index
        hi = min(n, lo + _CHUNK)
        rgb, parts[lo:hi], colour[lo:hi], texture[lo:hi] = render.render_chunk(p, lo, hi, size, variant)
        gen = torch.Generator().manual_seed(p["noise_seed"] + lo)
        sigma = torch.where(torch.as_tensor(p["group"][lo:hi]) == 1, 0.06, 0.035).view(-1, 1, 1, 1)
        noise = torch.empty(rgb.shape).normal_(0.0, 1.0, generator=gen)  # contiguous: fast path
        images[lo:hi] = rgb.addcmul_(noise, sigma).clamp_(0, 1)
    if variant == "cue":  # after the clamp, into [a, 1 - a]: every pixel carries the cue in full
        a = scene.CUE_AMPLITUDE
        cue = torch.as_tensor(p["cue"], dtype=torch.int64)
        images.clamp_(a, 1 - a).add_(cue_patterns(size)[cue], alpha=a)

    disc_parts = (3, 4) if variant == "double" else (4,)
    gt = (parts.unsqueeze(-1) == torch.tensor(disc_parts)).any(-1)
    boxes = render.boxes(gt)
    attributes, attribute_names = scene.attributes(p)
    return Flowers(images=images, labels=torch.as_tensor(p["label"], dtype=torch.int64),
                   parts=parts, colour_map=colour, texture_map=texture, gt_masks=gt, boxes=boxes,
                   attributes=attributes, attribute_names=attribute_names,
                   watermark=torch.as_tensor(p["watermark"], dtype=torch.int64),
                   group=torch.as_tensor(p["group"], dtype=torch.int64),
                   cue=torch.as_tensor(p["cue"], dtype=torch.int64),
                   class_names=scene.class_names(variant), variant=variant, split=split, seed=int(seed))
