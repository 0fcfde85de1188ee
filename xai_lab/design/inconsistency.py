"""Feature inconsistency: a model that reads what a person cannot see (lecture slide "Some Issues -
Feature Inconsistency"; Wang, Wu, Huang & Xing 2020/21, "High-frequency component helps explain the
generalization of convolutional neural networks", CVPR).

Wang et al. split an image into its low-frequency part (what a person sees) and its high-frequency
part (HFC, imperceptible), x = x_l + x_h, and show that a CNN's prediction on x_h alone can match
the label while a person sees noise: the model may use features a person does not perceive, and an
explanation that points at the perceptible object can then mislead.

The flowers make it measurable. In ``data.flowers(n, "cue")`` the class is also written in a grey
pattern of +-3/255 that alternates from pixel to pixel (``data.cue_patterns``: all its energy at
the Nyquist frequency of one axis), and in the training split the centre shows the label's colour
only half the time, so the cue is the one feature that explains every training label. Here:

- :func:`low_pass`: a binomial blur (frequency response cos^(2r)(pi f) per axis, zero at the Nyquist
  frequency 1/2): it removes the cue exactly and keeps what a person sees (part colours, shapes);
- :func:`swap_cue`: replace the cue an image carries by another class's (or by none, exactly);
- :func:`reliance` -> :class:`Reliance`: the evidence. Accuracy on held-out images with the cue,
  low-passed, with the cue removed, with another class's cue swapped in (and how often the
  prediction follows the swapped cue), and the relevance mass of an explanation on the
  discriminative part (``data.gt_masks``; Arras et al. 2022);
- the remedy, :func:`scramble_cue` and :func:`train_remedy`: train with every image's cue
  replaced by a random class's cue, so it says nothing about the label and the model has to use
  the perceptible centre; :func:`build` trains the shipped ``"cue_remedy"`` model with it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .. import models
from ..checks import check_choice, check_float, check_images, check_int, check_model
from ..data import CUE_AMPLITUDE, Flowers, cue_patterns, flowers
from ..explain.base import separable
from ..hooks import frozen

__all__ = ["low_pass", "binomial_kernel", "swap_cue", "other_cues", "scramble_cue", "Reliance",
           "reliance", "train_remedy", "REMEDIES", "build", "skeleton"]

REMEDIES = ("scramble", "low_pass")


def binomial_kernel(radius: int = 1) -> torch.Tensor:
    """The 1-D binomial kernel of order ``2 radius``: ``b_k = C(2r, k) / 4^r``, k = 0..2r (float64).

    Its frequency response is ``sum_k b_k exp(-2 pi i f (k - r)) = cos(pi f)^(2r)``: 1 at f = 0,
    0 at the Nyquist frequency f = 1/2 (cycles per pixel); close to a Gaussian of sigma sqrt(r/2) px.
    """
    r = check_int("radius", radius)
    b = torch.tensor([1.0], dtype=torch.float64)
    for _ in range(2 * r):
        b = torch.cat([b, b.new_zeros(1)]) + torch.cat([b.new_zeros(1), b])  # Pascal's triangle
    return b / 4.0 ** r


def low_pass(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Low-pass filter the images ``x (N, C, H, W)``: a separable binomial blur (:func:`binomial_kernel`).

    y[i, j] = sum_{k, l} b_k b_l x[i + k - r, j + l - r], indices outside the image mirrored about the
    border pixel (``x[-1] = x[1]``, "reflect"). Per axis the frequency response is cos^(2r)(pi f), so
    every component at the Nyquist frequency of either axis (the ``"cue"`` variant's pattern) is
    removed exactly, also at the border (the mirror keeps an alternating pattern alternating), while
    a colour region keeps its colour and a linear ramp stays as it was away from the border.
    Needs ``radius < min(H, W)``. Returns a new tensor; ``x`` is not modified.
    """
    x = check_images(x)
    r = check_int("radius", radius)
    if r >= min(x.shape[-2:]):
        raise ValueError(f"radius must be < the image side {min(x.shape[-2:])}, got {r}")
    return separable(x, binomial_kernel(r), "reflect")


def _classes(name: str, value, n: int, k: int, none_ok: bool = True) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype.is_floating_point or value.dtype == torch.bool:
        raise TypeError(f"{name} must be a LongTensor of cue classes, got {type(value).__name__} "
                        f"{getattr(value, 'dtype', '')}")
    low = -1 if none_ok else 0
    if tuple(value.shape) != (n,) or (n and (value.min() < low or value.max() >= k)):
        raise ValueError(f"{name} must be a LongTensor ({n},) of cue classes in [{low}, {k}), got "
                         f"shape {tuple(value.shape)} values {value.unique().tolist()[:8]}")
    return value.long()


def swap_cue(x: torch.Tensor, cue: torch.Tensor, to: torch.Tensor,
             amplitude: float = CUE_AMPLITUDE) -> torch.Tensor:
    """Images ``x`` with the cue of class ``cue[i]`` replaced by that of class ``to[i]``.

    x' = x + a (P_to - P_cue), with P = ``data.cue_patterns(size)`` and P_{-1} = 0 (no cue): ``to = -1``
    removes the cue, ``cue = -1`` adds one. Exact for ``"cue"`` images, which carry the cue on top
    of a clamp into [a, 1 - a]; the result stays in [0, 1] then.
    """
    x = check_images(x)
    a = check_float("amplitude", amplitude, 0.0, 0.5)
    k = len(cue_patterns(2))
    cue, to = _classes("cue", cue, len(x), k), _classes("to", to, len(x), k)
    h, w = x.shape[-2:]
    p = torch.cat([cue_patterns(max(h, w))[..., :h, :w], torch.zeros(1, 3, h, w)]).to(x)  # [-1]: no cue
    return x + a * (p[to] - p[cue])


def other_cues(cue: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """For each cue class ``cue[i]`` a different class, uniform over the other K - 1 (seeded)."""
    k = len(cue_patterns(2))
    cue = _classes("cue", cue, len(cue) if isinstance(cue, torch.Tensor) else 0, k, none_ok=False)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    return (cue + 1 + torch.randint(0, k - 1, cue.shape, generator=gen)) % k


def _check_cue_data(data) -> Flowers:
    if not isinstance(data, Flowers):
        raise TypeError(f"data must be a Flowers data set (xai_lab.data.flowers), got {type(data).__name__}")
    if (data.cue < 0).any():
        raise ValueError(f"data must carry the cue in every image (variant 'cue'), got variant "
                         f"{data.variant!r} with {int((data.cue < 0).sum())} of {len(data)} images without")
    return data


def scramble_cue(data: Flowers, seed: int = 0) -> Flowers:
    """The remedy's training set: a copy of ``data`` where each image carries the cue of a class
    drawn uniformly at random (seeded), independently of its label; ``cue`` says which.

    With the cue independent of the label it carries no information (I(cue; y) = 0), so a model
    fit to it has to use what is left: the centre colour, the feature a person sees.
    """
    data = _check_cue_data(data)
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
    new = torch.randint(0, len(cue_patterns(2)), (len(data),), generator=gen)
    out = data.subset(slice(None))
    out.images = swap_cue(data.images, data.cue, new)
    out.cue = new
    return out


def train_remedy(model, data: Flowers, how: str = "scramble", epochs: int = 8, lr: float = 3e-3,
                 batch_size: int = 64, seed: int = 0, progress: bool = True):
    """Train ``model`` on ``data`` (``"cue"`` variant) so it cannot use the cue; returns it in eval mode.

    ``how="scramble"`` (default): on :func:`scramble_cue` (each image's cue replaced by a random
    class's, drawn once with ``seed``); ``"low_pass"``: on :func:`low_pass` images (no cue at all, but
    a blur the test images do not have). Then ``models.train`` (AdamW, one-cycle, seeded). Training
    changes the model: that is its purpose.
    """
    check_model(model)
    check_choice("how", how, REMEDIES)
    data = _check_cue_data(data)
    if how == "scramble":
        data = scramble_cue(data, seed)
    else:
        data = data.subset(slice(None))
        data.images, data.cue = low_pass(data.images), torch.full_like(data.cue, -1)
    return models.train(model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=progress)


@dataclass(frozen=True)
class Reliance:
    """Evidence that a model uses the imperceptible cue, on ``n`` held-out ``"cue"`` images.

    Accuracies in [0, 1] against the labels: ``accuracy`` (clean: the cue names the label),
    ``accuracy_low_pass`` (:func:`low_pass` applied), ``accuracy_removed`` (the cue subtracted, nothing
    else changed), ``accuracy_swapped`` (another class's cue, :func:`other_cues`); ``follows_cue``:
    the share of swapped images predicted as the swapped-in class (about 0 for an accurate model
    that ignores the cue: it keeps predicting the label, never the swapped-in class). ``relevance_mass``: mean share of the positive relevance of ``method``'s map
    (clean images, target the label) on ``data.gt_masks`` (the centre). A model that reads the
    cue: high ``accuracy``, a collapse without it, ``follows_cue`` near 1, low ``relevance_mass``.
    """
    accuracy: float
    accuracy_low_pass: float
    accuracy_removed: float
    accuracy_swapped: float
    follows_cue: float
    relevance_mass: float
    method: str
    n: int

    @property
    def drop(self) -> float:
        """Accuracy lost to the low-pass filter: ``accuracy - accuracy_low_pass``."""
        return self.accuracy - self.accuracy_low_pass


def reliance(model, data: Flowers, method: str = "grad_cam", radius: int = 1, seed: int = 0,
             batch_size: int = 100, progress: bool = False) -> Reliance:
    """Measure how much ``model`` relies on the cue of ``data`` (a ``"cue"`` test split): a :class:`Reliance`.

    Predictions on four versions of every image (clean, ``low_pass(x, radius)``, cue removed, cue
    swapped for ``other_cues(data.cue, seed)``), and ``xai_lab.explain.METHODS[method]`` maps of the
    label on the clean images, scored by ``xai_lab.evaluate.relevance_mass`` against ``data.gt_masks``:
    mass = sum_{p in M} max(a_p, 0) / sum_p max(a_p, 0), averaged over images. In batches of
    ``batch_size``; the model comes back as given (mode, ``requires_grad``), also on error.
    """
    from ..evaluate import relevance_mass
    from ..explain import METHODS

    check_model(model)
    data = _check_cue_data(data)
    explain = METHODS[check_choice("method", method, METHODS)]
    radius, batch_size = check_int("radius", radius), check_int("batch_size", batch_size)
    other = other_cues(data.cue, seed)
    none = torch.full_like(data.cue, -1)
    hits = torch.zeros(5)  # clean, low-pass, removed, swapped, follows
    mass = torch.zeros(())
    with frozen(model):
        for lo in tqdm(range(0, len(data), batch_size), disable=not progress, desc="reliance"):
            i = slice(lo, lo + batch_size)
            x, y, cue = data.images[i], data.labels[i], data.cue[i]
            with torch.no_grad():
                pred = [model(v).argmax(1) for v in (x, low_pass(x, radius), swap_cue(x, cue, none[i]),
                                                     swap_cue(x, cue, other[i]))]
            hits += torch.stack([(p == y).sum() for p in pred] + [(pred[3] == other[i]).sum()]).float()
            mass += relevance_mass(explain(model, x, y), data.gt_masks[i]).sum()
    acc = (hits / len(data)).tolist()
    return Reliance(*acc, relevance_mass=float(mass) / len(data), method=method, n=len(data))


def skeleton(entry: dict):
    """The untrained ``FlowerCNN`` of a manifest entry (``models.load`` fills in the weights)."""
    return models.FlowerCNN(entry["num_classes"], tuple(entry["width"]))


def build(name: str, spec, progress: bool = True):
    """Train the shipped remedy model ``name`` from its ``models.SPECS`` entry: a ``FlowerCNN`` on
    ``flowers(spec.n_train, spec.variant, seed=spec.seed)`` with :func:`train_remedy` (scrambled
    cue). Returns ``(model, manifest entry)``."""
    data = flowers(spec.n_train, spec.variant, seed=spec.seed, split="train")
    torch.manual_seed(spec.seed)
    model = models.FlowerCNN(data.num_classes)
    t0 = time.time()
    train_remedy(model, data, "scramble", epochs=spec.epochs, seed=spec.seed, progress=progress)
    entry = {"skeleton": "xai_lab.design.inconsistency:skeleton", "variant": spec.variant,
             "num_classes": data.num_classes, "width": list(model.width), "n_train": spec.n_train,
             "epochs": spec.epochs, "seed": spec.seed, "permute_labels": False, "remedy": "scramble",
             "note": spec.note, "train_seconds": round(time.time() - t0, 1)}
    return model, entry
