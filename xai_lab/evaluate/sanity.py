"""Sanity checks for saliency maps (Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, NeurIPS 2018).

A method whose maps explain the *model* must change when the model's parameters are destroyed.
Model parameter randomisation (:func:`model_randomisation`): re-initialise the layers from the
logits down, cumulatively (``"cascading"``), or one layer at a time (``"independent"``), on a copy
(:func:`randomize`), and compare each map with the map of the trained model. Data randomisation
needs no code beyond the similarities: compare a method's maps on ``models.load("single")`` with
those on ``models.load("permuted")`` (the same network trained on permuted labels).

Similarities, per image (``(N,)``): :func:`rank_correlation` (Spearman, of absolute or of signed
maps) and :func:`ssim` (structural similarity of the maps scaled to [0, 1]). Both measure how much
the maps *stay the same*: for the check, a method is sound when they drop as layers are
randomised (gradient and Grad-CAM in the paper), suspect when they stay high (guided backprop).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_images, check_int, check_model, device_of
from ..explain.base import Target, chunks
from ..hooks import frozen, resolve_layer, resolve_layers
from .base import check_maps, metric

__all__ = ["layers_top_down", "randomize", "rank_correlation", "ssim", "model_randomisation",
           "Randomisation", "SIMILARITIES"]

MODES = ("cascading", "independent")
SIMILARITIES = ("spearman_abs", "spearman", "ssim")


def layers_top_down(model: nn.Module) -> list[str]:
    """Dotted names of the submodules with parameters of their own (Conv2d, Linear, BatchNorm ...),
    from the logits down: the reverse of their registration order (``model.named_modules()``).

    For a network whose forward follows its registration order (FlowerCNN, VGG, ResNet) the first
    name is the output layer (``"fc"``); for another, give the layers to :func:`randomize` yourself.
    """
    check_model(model)
    return [name for name, m in model.named_modules()
            if name and next(m.parameters(recurse=False), None) is not None][::-1]


def _reset(module: nn.Module, name: str, seed: int):
    """``module.reset_parameters()`` (PyTorch's default initialisation; BatchNorm: weight 1, bias 0,
    running statistics reset) after ``torch.manual_seed(seed)``, inside ``fork_rng``: the caller's
    random state is left as it was."""
    reset = getattr(module, "reset_parameters", None)
    if not callable(reset):
        raise TypeError(f"layer {name!r} ({type(module).__name__}) has no reset_parameters() to "
                        f"re-initialise it with")
    device = device_of(module)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.manual_seed(seed)
        reset()


def _chosen(model, layers, mode) -> list[str]:
    """The names :func:`randomize` re-initialises, in top-down order."""
    order = layers_top_down(model)
    if layers is None:
        return order
    if mode == "cascading" and not isinstance(layers, (str, nn.Module)):
        raise TypeError(f"layers must be one layer (the lowest to re-initialise) for mode "
                        f"'cascading', got {type(layers).__name__} {layers!r}")
    names = list(resolve_layers(model, layers))
    bad = [n for n in names if n not in order]
    if bad:
        raise ValueError(f"layers must have parameters of their own (one of {order}), got {bad}")
    if mode == "cascading":
        return order[:order.index(names[0]) + 1]
    return [n for n in order if n in names]


def randomize(model: nn.Module, layers=None, mode: str = "cascading", seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with some layers re-initialised; ``model`` itself is not touched.

    ``mode="cascading"``: ``layers`` is one layer; it and every layer above it (towards the
    logits, :func:`layers_top_down`) are re-initialised. ``"independent"``: only the given
    layer(s). ``layers=None``: every layer (a fully random network).

    Each layer is re-initialised by its own ``reset_parameters()`` after ``torch.manual_seed(seed)``
    (inside ``torch.random.fork_rng``, so the global random state is unchanged). This is what
    Quantus 0.6.0 does (``PyTorchModel.get_random_layer_generator``: ``torch.manual_seed(seed + 1)``
    then ``reset_parameters()``, for every module that has one), so our ``seed = s + 1`` gives the
    weights of Quantus's ``MPRT(seed=s)`` layer for layer; unlike Quantus the caller's global
    random state is left alone. The copy keeps the modes and ``requires_grad`` of ``model``.
    """
    check_model(model)
    check_choice("mode", mode, MODES)
    seed = check_int("seed", seed, low=0)
    names = _chosen(model, layers, mode)
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for name in names:
        _reset(modules[name], name, seed)
    return out


def _sorted(v: torch.Tensor):
    """``v (B, P)`` sorted along dim 1, and where each value came from. On the CPU, for float32, one
    NumPy sort of int64 keys (the value's order-preserving bits, then its position) instead of
    ``torch.sort``: about 2x faster here (benchmarks/evaluate_sanity.py)."""
    if v.device.type != "cpu" or v.dtype != torch.float32 or v.shape[1] >= 2 ** 31:
        return v.sort(dim=1)
    bits = (v.detach() + 0.0).numpy().view(np.int32).astype(np.int64)  # + 0.0 makes -0.0 into 0.0
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # negative floats: larger bits, smaller value
    idx = torch.from_numpy(np.sort((bits << 32) | np.arange(v.shape[1]), axis=1) & 0xFFFFFFFF)
    return v.gather(1, idx), idx


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..P along dim 1 of ``v (B, P)``, ties sharing their average rank (float64)."""
    s, idx = _sorted(v)
    p = v.shape[1]
    pos = torch.arange(p, device=v.device).expand_as(s)
    first = torch.ones_like(s, dtype=torch.bool)  # a new value starts here
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    last = torch.ones_like(first)  # a value ends here
    last[:, :-1] = first[:, 1:]
    start = torch.where(first, pos, 0).cummax(1).values  # (B, P) first position of each tie group
    end = torch.where(last, pos, p - 1).flip(1).cummin(1).values.flip(1)  # its last position
    return torch.empty_like(v, dtype=torch.float64).scatter_(1, idx, (start + end).double() / 2 + 1)


@metric(higher_is_better=True, category="sanity")
def rank_correlation(a: torch.Tensor, b: torch.Tensor, signed: bool = False, batch_size: int = 256,
                     progress: bool = False) -> torch.Tensor:
    """Spearman rank correlation per image of the maps ``a`` and ``b`` ``(N, H, W)``: ``(N,)``.

    rho = cov(R(a), R(b)) / (sigma_R(a) sigma_R(b)), R the ranks of the H*W values, ties given their
    average rank (as ``scipy.stats.spearmanr``); of |a| and |b| unless ``signed`` (Adebayo et al.
    report both). 1 for identical maps; a map against its negative gives -1 signed, 1 absolute.
    NaN where a map is constant (no ranking), as scipy. Batched: ``batch_size`` images at once.
    """
    a = check_maps(a, name="a")
    b = check_maps(b, len(a), a.shape[-2:], name="b")
    batch_size = check_int("batch_size", batch_size)
    out = torch.empty(len(a))
    for k in chunks(len(a), batch_size, progress, "rank correlation"):
        ra, rb = (_ranks(m[k].flatten(1) if signed else m[k].flatten(1).abs()) for m in (a, b))  # (B, P)
        ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
        out[k] = ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))).float()
    return out


def _unit_range(m: torch.Tensor) -> torch.Tensor:
    """Each map of ``m (B, H, W)`` scaled to [0, 1] by its min and max (a constant map: zeros)."""
    lo = m.flatten(1).amin(1)[:, None, None]
    span = m.flatten(1).amax(1)[:, None, None] - lo
    return (m - lo) / span.clamp(min=torch.finfo(m.dtype).tiny)


@metric(higher_is_better=True, category="sanity")
def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, batch_size: int = 256,
         progress: bool = False) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004) of the maps ``a``, ``b`` ``(N, H, W)``: ``(N,)``.

    Each map is first scaled to [0, 1] by its own min and max (as Adebayo et al. scale the maps they
    compare; a constant map becomes 0), so the data range is 1. With local means mu, variances
    sigma^2 and covariance sigma_ab over ``window x window`` uniform windows (sample covariance,
    divided by w^2 - 1):
    SSIM = mean over windows of (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2
    + sigma_b^2 + C2)), C1 = 0.01^2, C2 = 0.03^2, windows entirely inside the map. This equals
    ``skimage.metrics.structural_similarity(a01, b01, win_size=window, data_range=1)`` with its
    defaults ``gaussian_weights=False, use_sample_covariance=True`` on the scaled maps.
    """
    a = check_maps(a, name="a")
    b = check_maps(b, len(a), a.shape[-2:], name="b")
    window = check_int("window", window, low=3)
    if window % 2 == 0 or window > min(a.shape[-2:]):
        raise ValueError(f"window must be an odd int <= the maps' size {tuple(a.shape[-2:])}, got {window}")
    batch_size = check_int("batch_size", batch_size)
    c1, c2, norm = 0.01 ** 2, 0.03 ** 2, window ** 2 / (window ** 2 - 1)
    out = torch.empty(len(a))
    for k in chunks(len(a), batch_size, progress, "ssim"):
        x, y = _unit_range(a[k].double()), _unit_range(b[k].double())
        z = torch.stack([x, y, x * x, y * y, x * y], 1)  # (B, 5, H, W)
        local = z.unfold(-1, window, 1).sum(-1).unfold(-2, window, 1).sum(-1) / window ** 2  # window means
        mx, my, mxx, myy, mxy = local.unbind(1)
        vx, vy, vxy = norm * (mxx - mx * mx), norm * (myy - my * my), norm * (mxy - mx * my)
        s = (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out[k] = s.mean((1, 2)).float()
    return out


def _similarities(a, b, names, batch_size):
    funcs = {"spearman_abs": lambda: rank_correlation(a, b, False, batch_size),
             "spearman": lambda: rank_correlation(a, b, True, batch_size),
             "ssim": lambda: ssim(a.abs(), b.abs(), batch_size=batch_size)}
    return {name: funcs[name]() for name in names}


@dataclass
class Randomisation:
    """Result of :func:`model_randomisation`: ``layers`` the randomised layers in order, ``scores``
    ``{similarity: (L, N)}`` (row l: each image's map after step l against its original map),
    ``original (N, H, W)`` the maps of the trained model, ``maps (L, N, H, W)`` the maps after each
    step (only with ``keep_maps=True``, else None), ``mode``."""
    layers: tuple
    scores: dict
    original: torch.Tensor
    maps: torch.Tensor | None
    mode: str

    def mean(self) -> dict:
        """``{similarity: (L,)}`` the mean over images (NaN scores of constant maps left out)."""
        return {name: s.nanmean(1) for name, s in self.scores.items()}

    def __repr__(self) -> str:
        means = {n: [round(v, 3) for v in m.tolist()] for n, m in self.mean().items()}
        return f"Randomisation(mode={self.mode!r}, layers={list(self.layers)}, mean={means})"


def _maps_of(model, method, x, tgt, batch_size, progress, desc, kwargs):
    """``method``'s maps of ``x`` in batches, checked: ``(N, H, W)``."""
    parts = []
    for k in chunks(len(x), batch_size, progress, desc):
        parts.append(check_maps(method(model, x[k], tgt.select(k), **kwargs), len(k), x.shape[-2:],
                                name="the maps method returned"))
    return torch.cat(parts)


@metric(higher_is_better=False, category="sanity")
def model_randomisation(model: nn.Module, x: torch.Tensor, target, method, mode: str = "cascading",
                        layers=None, seed: int = 0, similarity=SIMILARITIES, keep_maps: bool = False,
                        batch_size: int = 64, progress: bool = True, **method_kwargs) -> Randomisation:
    """Model parameter randomisation test (Adebayo et al. 2018, Sec. 3.1): ``method``'s maps of ``x``
    on the trained model, then after each step of the randomisation, and their similarity.

    Steps: one per layer of ``layers`` (default :func:`layers_top_down`, logits first). Step l uses
    the model ``randomize(model, layers[l], mode, seed)``: ``"cascading"``, layer l and every layer
    above it re-initialised (``layers`` must then be in top-down order; one copy is randomised
    further at each step); ``"independent"``, layer l alone (reset, explained, put back).

    ``method(model, x, target, **method_kwargs) -> (N, H, W)``, e.g. ``explain.saliency``, is called
    on ``batch_size`` images at a time (it computes its own gradients). ``similarity``: any of
    ``"spearman_abs"`` (:func:`rank_correlation` of |maps|), ``"spearman"`` (signed) and ``"ssim"``
    (:func:`ssim` of |maps|, as Adebayo et al. compare absolute maps). Lower is better for the
    method: its maps should move away from the originals as the model is destroyed.
    ``model`` comes back as it was given.
    """
    check_model(model)
    x = check_images(x)
    check_choice("mode", mode, MODES)
    if not callable(method):
        raise TypeError(f"method must be a callable method(model, x, target, **kw) -> (N, H, W), "
                        f"got {type(method).__name__}")
    seed, batch_size = check_int("seed", seed, low=0), check_int("batch_size", batch_size)
    if not isinstance(similarity, (str, list, tuple)):
        raise TypeError(f"similarity must be one of {list(SIMILARITIES)} or a list of them, got {similarity!r}")
    if not similarity:
        raise ValueError(f"similarity must name at least one of {list(SIMILARITIES)}, got {similarity!r}")
    similarity = (similarity,) if isinstance(similarity, str) else tuple(similarity)
    for s in similarity:
        check_choice("similarity", s, SIMILARITIES)
    order = layers_top_down(model)
    names = order if layers is None else list(resolve_layers(model, layers))
    for name in names:
        _chosen(model, name, "independent")  # a layer with parameters, or a ValueError naming it
    if mode == "cascading" and [order.index(n) for n in names] != sorted(order.index(n) for n in names):
        raise ValueError(f"layers must be in top-down order (as layers_top_down) for a cascade, got {names}")
    tgt = Target(target, len(x))
    scores = {s: torch.empty(len(names), len(x)) for s in similarity}
    kept = []
    with frozen(model):
        original = _maps_of(model, method, x, tgt, batch_size, progress, "original", method_kwargs)
        work = copy.deepcopy(model)  # eval mode, frozen parameters: the copy is ours
        modules, done = dict(work.named_modules()), set()
        for step, name in enumerate(names):
            todo = order[:order.index(name) + 1] if mode == "cascading" else [name]
            saved = {n: copy.deepcopy(modules[n].state_dict()) for n in todo if mode == "independent"}
            for n in todo:
                if n not in done:
                    _reset(modules[n], n, seed)
                    done.update([n] if mode == "cascading" else [])
            maps = _maps_of(work, method, x, tgt, batch_size, progress, name, method_kwargs)
            for n, state in saved.items():
                modules[n].load_state_dict(state)
            for s, value in _similarities(original, maps, similarity, batch_size).items():
                scores[s][step] = value
            kept += [maps] if keep_maps else []
    return Randomisation(tuple(names), scores, original, torch.stack(kept) if keep_maps else None, mode)
