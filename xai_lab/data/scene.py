"""The scene of a flower image: its vocabulary (parts, colours, textures, classes) and its random
parameters, drawn with NumPy's PCG64 from ``(seed, variant, split)`` independently of the image size,
plus the image-level attributes and class names those parameters imply."""
from __future__ import annotations

import math

import numpy as np
import torch

VARIANTS = ("single", "double", "watermark", "biased", "cue")  # new variants go last: streams stay put
SPLITS = ("train", "test")

PARTS = ("background", "stem", "leaf", "petal", "centre", "mark", "spot")
# name -> RGB in [0, 1]
PALETTE = {
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
COLOURS = tuple(PALETTE)
TEXTURES = ("plain", "stripes", "dots", "checker", "blotches")

CLASS_COLOURS = ("red", "orange", "yellow", "blue", "purple", "white")  # centre colours
PETAL_COLOURS = CLASS_COLOURS + ("pink",)  # free petal colours in single-feature variants
BACKGROUND_COLOURS = ("grey", "sky", "sand", "olive", "brown")
GROUPS = ("day", "dusk")

# the "cue" variant (feature inconsistency, Wang et al. 2021): a faint grey pattern in pixel units
CUE_AMPLITUDE = 3.0 / 255.0  # +- this on every channel: two grey levels 6/255 apart
CUE_AGREE = 0.5  # train: the centre shows the label's colour with this probability, else a random one
# class k -> (the axes along which it alternates pixel by pixel, its sign per RGB channel: grey or
# magenta/green), see render.cue_patterns
CUE_PATTERNS = (("x", (1, 1, 1)), ("y", (1, 1, 1)), ("xy", (1, 1, 1)),
                ("x", (1, -1, 1)), ("y", (1, -1, 1)), ("xy", (1, -1, 1)))

COLOUR_INDEX = {name: i for i, name in enumerate(COLOURS)}  # colour name -> index in COLOURS
_CI = COLOUR_INDEX


def double_classes():
    """Class k of ``double``: centre colour k % 6, petals shifted by 1 (k < 6) or 3 (k >= 6)."""
    centre = [k % 6 for k in range(12)]
    petal = [(k % 6 + (1 if k < 6 else 3)) % 6 for k in range(12)]
    return centre, petal


def class_names(variant: str) -> tuple:
    """The names of the classes of ``variant``, in label order."""
    if variant == "double":
        centre, petal = double_classes()
        return tuple(f"{CLASS_COLOURS[c]} centre, {CLASS_COLOURS[q]} petals" for c, q in zip(centre, petal))
    return tuple(f"{c} centre" for c in CLASS_COLOURS)


def _rng(seed: int, variant: str, split: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(
        np.random.SeedSequence([seed, VARIANTS.index(variant), SPLITS.index(split), 20190501])))


def sample_params(n, variant, split, seed):
    """All random choices of the scene, drawn independently of the resolution. Returns numpy arrays."""
    rng = _rng(seed, variant, split)
    n_cls = 12 if variant == "double" else 6
    p = {}
    p["label"] = rng.integers(0, n_cls, n)
    if variant == "double":
        centre, petal = double_classes()
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
    p["cue"] = np.full(n, -1)
    if variant == "cue":  # drawn after everything else: the scene stream matches single's layout
        p["cue"] = p["label"].copy()
        if split == "train":
            agree = rng.random(n) < CUE_AGREE
            other = np.array([_CI[c] for c in CLASS_COLOURS])[rng.integers(0, 6, n)]
            p["centre_col"] = np.where(agree, p["centre_col"], other)
    p["noise_seed"] = int(rng.integers(0, 2**31 - 1))
    return p


def attributes(p):
    """Image-level attributes (for concept bottlenecks): one-hots of the part colours, counts, texture.
    Returns ``(N, A)`` float32 and the ``A`` names."""
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
