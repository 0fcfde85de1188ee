"""Tests of xai_lab.evaluate.sanity: layer randomisation against Quantus 0.6.0 (weights layer for
layer, and MPRT's scores end to end), rank correlation against scipy, SSIM against scikit-image,
model_randomisation against a slow loop of fresh randomised copies, known answers, bad arguments,
batching. Models: the shipped flower CNN and a tiny random CNN with batch norm; nothing is trained.

Where our definitions and Quantus's differ (each test says which part coincides):

- layers: Quantus randomises every module with a ``reset_parameters`` attribute, the root module
  included; we take the submodules with parameters of their own (so a BatchNorm with
  ``affine=False`` is skipped by us, re-initialised by Quantus; a module with parameters but no
  ``reset_parameters`` raises with us, is skipped by Quantus). On FlowerCNN the two sets coincide.
- seeds: Quantus calls ``torch.manual_seed(seed + 1)`` before each layer's reset and leaves the
  global random state re-seeded; we call ``torch.manual_seed(seed)`` inside ``fork_rng``: our
  ``seed = s + 1`` is their ``seed = s``, and the caller's random state is left alone.
- order: Quantus's "independent" steps go bottom-up, ours follow ``layers`` (default top-down);
  per layer the weights are the same.
- SSIM: Quantus passes the raw maps with ``data_range`` = the range of both maps together; we scale
  each map to [0, 1] by its own min and max (as Adebayo et al.), then ``data_range=1``. The two
  agree on maps that each span [0, 1] already; ours is invariant to a positive affine change of
  one map, theirs is not.
- Spearman: Quantus's ``correlation_spearman`` is scipy's on the flattened maps, ours exactly (ties
  at average ranks, NaN for a constant map); MPRT's default ``abs=True`` is our "spearman_abs", and
  its ``normalise_by_max`` does not change ranks.
"""
from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from xai_lab import data, explain
from xai_lab.evaluate.sanity import (SIMILARITIES, Randomisation, layers_top_down, model_randomisation, randomize,
                                     rank_correlation, ssim)
from model_state import assert_same_state, model_state

# torch on one thread in this module: its tensors are small, and one thread does not wait for a core
# another process holds (a file of these tests: 20 s on two threads, 5.6 s on one, on a busy 2-core machine)
pytestmark = pytest.mark.usefixtures("one_thread")

FLOWER_LAYERS = ["fc", "features.13", "features.12", "features.9", "features.8", "features.5", "features.4",
                 "features.1", "features.0"]  # FlowerCNN: conv 0/4/8/12, each followed by its batch norm


def quantus_modules(*names):
    """Modules of Quantus 0.6.0 without running ``quantus/__init__`` (it imports captum, zennit and
    torchvision: ~7 s here). Its packages stand in ``sys.modules`` as empty modules while the
    named ones load, then every quantus entry is taken out again, so that ``import quantus``
    elsewhere still gets the real package. ``helpers.utils`` loads first: it and
    ``helpers.model.pytorch_model`` import each other, and only that order resolves."""
    assert importlib.metadata.version("quantus") == "0.6.0"
    if getattr(sys.modules.get("quantus"), "__file__", None):  # the real package is already loaded
        return [importlib.import_module(n) for n in names]
    root = Path(importlib.util.find_spec("quantus").origin).parent
    ours = lambda: [k for k in sys.modules if k == "quantus" or k.startswith("quantus.")]  # noqa: E731
    saved = {k: sys.modules.pop(k) for k in ours()}
    try:
        for pkg in ("quantus", "quantus.helpers", "quantus.helpers.model", "quantus.functions",
                    "quantus.metrics", "quantus.metrics.randomisation"):
            stub = sys.modules[pkg] = types.ModuleType(pkg)
            stub.__path__ = [str(root.joinpath(*pkg.split(".")[1:]))]
        importlib.import_module("quantus.helpers.utils")
        return [importlib.import_module(n) for n in names]
    finally:
        for k in ours():
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def quantus():
    model, similarity = quantus_modules("quantus.helpers.model.pytorch_model", "quantus.functions.similarity_func")
    return types.SimpleNamespace(PyTorchModel=model.PyTorchModel, similarity=similarity)


@pytest.fixture(scope="module")
def mprt():
    (module,) = quantus_modules("quantus.metrics.randomisation.mprt")
    return module.MPRT


@pytest.fixture(scope="module")
def tiny():
    """A small random CNN for 12 x 12 images, its batch norm's statistics and affine away from the
    values a reset gives."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    bn = net[1]
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(4, generator=g) * 0.3 + (1 if t is bn.weight else 0))
        bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def flowers4():
    return data.flowers(4, "single", seed=12, split="test")


def own_tensors(model, name):
    module = dict(model.named_modules())[name]
    return [*module.parameters(recurse=False), *module.buffers(recurse=False)]


def changed_layers(before, after) -> set:
    """The layers (with parameters) of which every own tensor differs; a layer only partly changed
    fails the test."""
    changed = set()
    for name in layers_top_down(before):
        same = [torch.equal(a, b) for a, b in zip(own_tensors(before, name), own_tensors(after, name))]
        assert all(same) or not any(same), f"{name} partly changed"
        changed |= {name} if not any(same) else set()
    return changed


# ------------------------------------------------------------------------------------------------
# layers_top_down and randomize
# ------------------------------------------------------------------------------------------------
def test_layers_top_down(single_model, tiny):
    assert layers_top_down(single_model) == FLOWER_LAYERS
    assert layers_top_down(tiny) == ["7", "3", "1", "0"]

    class Scaled(nn.Module):  # a parameter of the root itself, a container, parameter-free modules
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3)))
            self.head = nn.Linear(3, 1)

    assert layers_top_down(Scaled()) == ["head", "body.2.0", "body.0"]
    with pytest.raises(TypeError, match="model"):
        layers_top_down("a model")


@pytest.mark.parametrize("layers,mode,expected", [
    ("fc", "cascading", {"fc"}),
    ("features.8", "cascading", {"fc", "features.13", "features.12", "features.9", "features.8"}),
    ("features.0", "cascading", set(FLOWER_LAYERS)),
    (None, "cascading", set(FLOWER_LAYERS)),
    ("features.5", "independent", {"features.5"}),
    (["fc", "features.4"], "independent", {"fc", "features.4"}),
    (None, "independent", set(FLOWER_LAYERS)),
])
def test_randomize_changes_exactly_the_chosen_layers(single_model, layers, mode, expected):
    before, rng = model_state(single_model), torch.get_rng_state()
    out = randomize(single_model, layers, mode, seed=3)
    assert out is not single_model and changed_layers(single_model, out) == expected
    assert_same_state(single_model, before)  # the model itself is not touched ...
    assert torch.equal(torch.get_rng_state(), rng)  # ... nor the global random state


def test_randomize_gives_pytorch_default_initialisation(single_model):
    """A reset layer is the layer PyTorch builds after ``torch.manual_seed(seed)``."""
    out = randomize(single_model, "features.12", seed=7)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        fc = nn.Linear(128, 6)
        torch.manual_seed(7)
        conv = nn.Conv2d(64, 128, 3, padding=1)
    assert torch.equal(out.fc.weight, fc.weight) and torch.equal(out.fc.bias, fc.bias)
    assert torch.equal(out.features[12].weight, conv.weight) and torch.equal(out.features[12].bias, conv.bias)
    bn = out.features[13]
    assert (bn.weight == 1).all() and (bn.bias == 0).all() and (bn.running_mean == 0).all()
    assert (bn.running_var == 1).all() and int(bn.num_batches_tracked) == 0


def test_randomize_seeds_and_modes_of_the_copy(single_model):
    model = copy.deepcopy(single_model).train()
    model.features[0].weight.requires_grad_(False)
    a, b, c = (randomize(model, "features.8", seed=s) for s in (1, 1, 2))
    for name in ["fc", "features.9", "features.8"]:
        assert all(torch.equal(x, y) for x, y in zip(own_tensors(a, name), own_tensors(b, name)))
        # a batch norm's reset draws nothing (weight 1, bias 0); a conv's and a linear's draw weights
        same = [torch.equal(x, y) for x, y in zip(own_tensors(a, name), own_tensors(c, name))]
        assert all(same) if name == "features.9" else not any(same)
    assert [m.training for m in a.modules()] == [True] * len(list(model.modules()))
    assert [p.requires_grad for p in a.parameters()] == [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("order,mode,seed", [("top_down", "cascading", 0), ("independent", "independent", 5)])
def test_randomize_matches_quantus_layer_for_layer(single_model, quantus, order, mode, seed):
    """Quantus's ``MPRT(seed=s)`` steps (``PyTorchModel.get_random_layer_generator``) against our
    ``randomize(model, layer, mode, seed=s + 1)``: every tensor of every step's model."""
    names = []
    with torch.random.fork_rng():  # Quantus re-seeds the global generator
        for name, theirs in quantus.PyTorchModel(single_model).get_random_layer_generator(order=order, seed=seed):
            names.append(name)
            ours = randomize(single_model, name, mode, seed=seed + 1).state_dict()
            theirs = theirs.state_dict()
            assert ours.keys() == theirs.keys()
            assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    assert names == (FLOWER_LAYERS if order == "top_down" else FLOWER_LAYERS[::-1])


def test_layer_choice_where_quantus_differs(quantus):
    """Quantus randomises the modules with a reset_parameters(), we those with parameters of their
    own: a batch norm without affine parameters only Quantus, a module with a parameter but no
    reset only us (and randomize says it cannot reset it)."""
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, affine=False), Gain(), nn.Linear(3, 2))
    with torch.random.fork_rng():
        theirs = [name for name, _ in quantus.PyTorchModel(net).get_random_layer_generator(order="top_down")]
    assert theirs == ["3", "1", "0"] and layers_top_down(net) == ["3", "2", "0"]
    with pytest.raises(TypeError, match="layer '2'"):
        randomize(net)  # every layer
    assert changed_layers(net, randomize(net, "3")) == {"3"}


class Gain(nn.Module):
    """A module with a parameter of its own but no reset_parameters()."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.gain


@pytest.mark.parametrize("model,layers,mode,seed,err,match", [
    ("a model", "fc", "cascading", 0, TypeError, "model"),
    (None, "fc", "bottom_up", 0, ValueError, "mode"),
    (None, "fc", "cascading", -1, ValueError, "seed"),
    (None, "fc", "cascading", 1.5, TypeError, "seed"),
    (None, ["fc", "features.12"], "cascading", 0, TypeError, "layers"),
    (None, "features.2", "cascading", 0, ValueError, "layers"),  # a ReLU: no parameters
    (None, ["features.3"], "independent", 0, ValueError, "layers"),  # a max-pool
    (None, "features.99", "cascading", 0, ValueError, "layer"),
    (None, 12, "independent", 0, TypeError, "layer"),
    (nn.Sequential(nn.Linear(3, 3), Gain()), "1", "independent", 0, TypeError, "layer '1'"),
])
def test_randomize_bad_arguments(single_model, model, layers, mode, seed, err, match):
    with pytest.raises(err, match=match):
        randomize(single_model if model is None else model, layers, mode, seed)


# ------------------------------------------------------------------------------------------------
# rank_correlation and ssim
# ------------------------------------------------------------------------------------------------
def sample_maps():
    """Maps (7, 9, 11) with ties: Grad-CAM-like (ReLU, about half zeros), quantised signed values
    (ties within and, in |.|, between signs), one constant map, smooth maps."""
    g = torch.Generator().manual_seed(4)
    cam = torch.relu(torch.randn(2, 9, 11, generator=g))
    steps = torch.round(torch.randn(2, 9, 11, generator=g) * 1.5) / 2
    constant = torch.full((1, 9, 11), 0.3)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(2, 1, 13, 15, generator=g), 5, stride=1)[:, 0]
    a = torch.cat([cam, steps, constant, smooth])
    b = torch.cat([torch.relu(cam + torch.randn(2, 9, 11, generator=g) * 0.5),
                   torch.round(steps + torch.randn(2, 9, 11, generator=g)) / 2,
                   torch.randn(1, 9, 11, generator=g), smooth + torch.randn(2, 9, 11, generator=g) * 0.1])
    return a, b


def scipy_spearman(a, b):
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConstantInputWarning: NaN for a constant map
        return torch.tensor([spearmanr(x.flatten().numpy(), y.flatten().numpy()).statistic for x, y in zip(a, b)])


@pytest.mark.parametrize("signed", [True, False])
def test_rank_correlation_matches_scipy(signed):
    a, b = sample_maps()
    ours = rank_correlation(a, b, signed=signed)
    ref = scipy_spearman(a, b) if signed else scipy_spearman(a.abs(), b.abs())
    assert ours.shape == (7,) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref.float(), atol=1e-6, rtol=0, equal_nan=True)
    assert ours[4].isnan() and not ours[[0, 1, 2, 3, 5, 6]].isnan().any()
    # with ties the absolute and signed rankings differ
    assert not torch.allclose(rank_correlation(a, b, signed=True)[2:4], rank_correlation(a, b)[2:4])


def test_rank_correlation_known_answers():
    a, _ = sample_maps()
    varied = a[[0, 1, 2, 3, 5, 6]]
    assert torch.allclose(rank_correlation(varied, varied), torch.ones(6))
    assert torch.allclose(rank_correlation(varied, -varied, signed=True), -torch.ones(6))
    assert torch.allclose(rank_correlation(varied, -varied), torch.ones(6))  # |a| = |-a|
    assert torch.allclose(rank_correlation(varied, varied.exp(), signed=True), torch.ones(6))  # ranks only
    assert rank_correlation(a[4:5], varied[:1]).isnan().all() and rank_correlation(varied[:1], a[4:5]).isnan().all()
    assert torch.equal(rank_correlation(a[:, None], a[:, None]).nan_to_num(-2),
                       rank_correlation(a, a).nan_to_num(-2))  # (N, 1, H, W) maps are taken as (N, H, W)


def minmax01(m):
    m = m.double().numpy()
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


@pytest.mark.parametrize("window", [3, 7, 9])
def test_ssim_matches_skimage(window):
    from skimage.metrics import structural_similarity

    a, b = sample_maps()
    ours = ssim(a, b, window=window)
    ref = torch.tensor([structural_similarity(minmax01(x), minmax01(y), win_size=window, data_range=1)
                        for x, y in zip(a, b)])
    assert ours.shape == (7,)
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=0)


def test_ssim_known_answers():
    a, b = sample_maps()
    assert torch.allclose(ssim(a, a), torch.ones(7))
    assert torch.allclose(ssim(a, 3 * a + 2), torch.ones(7))  # each map scaled to [0, 1] first
    assert torch.allclose(ssim(a[4:5], a[4:5] * 2), torch.ones(1))  # constant maps: both become 0
    assert (ssim(a, b) < 1).all() and (ssim(a, b) >= -1).all()


def test_similarities_against_quantus(quantus):
    """Quantus's similarity functions where the definitions coincide, and where SSIM's does not."""
    a, b = sample_maps()
    a, b = a[[0, 1, 2, 3, 5, 6]], b[[0, 1, 2, 3, 5, 6]]
    theirs = quantus.similarity.correlation_spearman(a.flatten(1).numpy(), b.flatten(1).numpy(), batched=True)
    torch.testing.assert_close(rank_correlation(a, b, signed=True), torch.tensor(theirs).float(), atol=1e-6, rtol=0)
    a01, b01 = (torch.tensor(np.stack([minmax01(m) for m in maps])).float() for maps in (a, b))
    theirs = quantus.similarity.ssim(a01.double().numpy(), b01.double().numpy(), batched=True)
    torch.testing.assert_close(ssim(a01, b01), torch.tensor(theirs).float(), atol=1e-5, rtol=0)
    # where they differ: Quantus's data range is that of both maps together, so a map against an
    # affine change of itself is not 1 for it; ours scales each map first
    theirs = quantus.similarity.ssim(a01.double().numpy(), 3 * a01.double().numpy() + 1, batched=True)
    assert torch.allclose(ssim(a01, 3 * a01 + 1), torch.ones(6)) and not np.isclose(theirs, 1).any()


def test_similarity_batching():
    a, b = sample_maps()
    for fn in (rank_correlation, lambda x, y, batch_size=256: rank_correlation(x, y, True, batch_size), ssim):
        runs = [fn(a, b, batch_size=bs).nan_to_num(-2) for bs in (1, 3, 7, 256)]
        assert all(torch.equal(r, runs[0]) for r in runs[1:])


@pytest.mark.parametrize("fn", [rank_correlation, ssim])
@pytest.mark.parametrize("a,b,kw,err,match", [
    ([[[0.0]]], None, {}, TypeError, "a must be a torch.Tensor"),
    (None, "b", {}, TypeError, "b must be a torch.Tensor"),
    (torch.zeros(2, 9, 11, dtype=torch.int64), None, {}, TypeError, "a must be a float"),
    (torch.rand(9, 11), None, {}, ValueError, "a must be non-empty heatmaps"),
    (None, torch.rand(2, 9, 10), {}, ValueError, "b must have"),
    (None, torch.rand(3, 9, 11), {}, ValueError, "b must hold one map"),
    (None, torch.full((2, 9, 11), float("nan")), {}, ValueError, "b must be finite"),
    (None, None, {"batch_size": 0}, ValueError, "batch_size"),
])
def test_similarity_bad_arguments(fn, a, b, kw, err, match):
    a = torch.rand(2, 9, 11) if a is None else a
    b = torch.rand(2, 9, 11) if b is None else b
    with pytest.raises(err, match=match):
        fn(a, b, **kw)


@pytest.mark.parametrize("window,err", [(6, ValueError), (11, ValueError), (1, ValueError), (7.0, TypeError)])
def test_ssim_bad_window(window, err):
    with pytest.raises(err, match="window"):
        ssim(torch.rand(2, 9, 11), torch.rand(2, 9, 11), window=window)  # 11 > 9: too large


# ------------------------------------------------------------------------------------------------
# model_randomisation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_model_randomisation_matches_fresh_copies(single_model, flowers4, mode):
    """Step l against ``explain.saliency`` on a fresh ``randomize(model, layers[l], mode, seed)``;
    the scores against the similarities of the kept maps."""
    x, y = flowers4.images, flowers4.labels
    layers = ["fc", "features.9", "features.4"]  # a cascade that skips layers: 9 resets 13 and 12 too
    before, rng = model_state(single_model), torch.get_rng_state()
    res = model_randomisation(single_model, x, y, explain.saliency, mode=mode, layers=layers, seed=2,
                              keep_maps=True, progress=False)
    assert_same_state(single_model, before)
    assert torch.equal(torch.get_rng_state(), rng)
    assert isinstance(res, Randomisation) and res.layers == tuple(layers) and res.mode == mode
    assert set(res.scores) == set(SIMILARITIES) and all(s.shape == (3, 4) for s in res.scores.values())
    assert res.maps.shape == (3, 4, 64, 64)
    torch.testing.assert_close(res.original, explain.saliency(single_model, x, y))
    for step, layer in enumerate(layers):
        ref = explain.saliency(randomize(single_model, layer, mode, seed=2), x, y)
        torch.testing.assert_close(res.maps[step], ref, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(res.maps[0], res.original)  # the first step already changes the maps
    scores = {"spearman_abs": torch.stack([rank_correlation(res.original, m) for m in res.maps]),
              "spearman": torch.stack([rank_correlation(res.original, m, signed=True) for m in res.maps]),
              "ssim": torch.stack([ssim(res.original.abs(), m.abs()) for m in res.maps])}
    for name, s in scores.items():
        torch.testing.assert_close(res.scores[name], s)
        assert (s < 1).all()


@pytest.mark.parametrize("order,mode", [("top_down", "cascading"), ("independent", "independent")])
def test_model_randomisation_matches_quantus_mprt(tiny, mprt, order, mode):
    """Quantus's MPRT end to end on the tiny CNN (all layers; abs=True, normalised by the max, so
    its Spearman is our "spearman_abs"), with our ``seed = s + 1``."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(5, 3, 12, 12, generator=g), torch.tensor([0, 1, 2, 0, 1])

    def method(model, inputs, targets, **kwargs):
        return explain.saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets).long()).numpy()[:, None]

    with torch.random.fork_rng():
        theirs = mprt(seed=4, layer_order=order, disable_warnings=True)(
            tiny, x.numpy(), y.numpy(), explain_func=method)
    ours = model_randomisation(tiny, x, y, explain.saliency, mode=mode, seed=5, similarity="spearman_abs",
                               progress=False)
    assert set(theirs) == {"original", *ours.layers}
    for step, layer in enumerate(ours.layers):
        torch.testing.assert_close(ours.scores["spearman_abs"][step], torch.tensor(theirs[layer]).float(),
                                   atol=1e-5, rtol=0)


def test_model_randomisation_batching(single_model):
    flowers = data.flowers(8, "single", seed=13, split="test", size=32)
    x, y = flowers.images, flowers.labels
    runs = [model_randomisation(single_model, x, y, explain.saliency, layers=["fc", "features.8"], keep_maps=True,
                                progress=False, **({} if b is None else {"batch_size": b}))
            for b in (1, 7, None)]  # None: the default
    for r in runs[1:]:  # equal to float precision: convolutions of other batch sizes round differently
        torch.testing.assert_close(r.maps, runs[0].maps, rtol=1e-5, atol=1e-7)
        for name in SIMILARITIES:
            torch.testing.assert_close(r.scores[name], runs[0].scores[name], atol=1e-5, rtol=0)


def test_model_randomisation_gives_the_model_back(single_model, flowers4):
    """Explained in eval mode; modes, requires_grad and weights as given afterwards, also when the
    method raises."""
    model = copy.deepcopy(single_model).train()  # training mode and a frozen layer, to be restored
    model.features[0].weight.requires_grad_(False)
    before = model_state(model)
    calls = []

    def method(m, x, target, fail=False):
        calls.append((m, m.training))
        if fail and len(calls) == 2:  # on the first randomised model
            raise RuntimeError("method failed")
        return explain.saliency(m, x, target)

    model_randomisation(model, flowers4.images[:2], 0, method, layers=["fc", "features.12"], progress=False)
    assert_same_state(model, before)
    assert calls[0][0] is model and all(m is not model for m, _ in calls[1:]) and len(calls) == 3
    assert not any(training for _, training in calls)
    calls.clear()
    with pytest.raises(RuntimeError, match="method failed"):
        model_randomisation(model, flowers4.images[:2], 0, method, layers="fc", progress=False, fail=True)
    assert_same_state(model, before)


def test_randomisation_mean_leaves_out_nan():
    scores = {"spearman": torch.tensor([[0.5, float("nan"), 0.7], [0.1, 0.2, 0.3]])}
    res = Randomisation(("fc", "conv"), scores, torch.zeros(3, 2, 2), None, "cascading")
    torch.testing.assert_close(res.mean()["spearman"], torch.tensor([0.6, 0.2]))
    assert "layers=['fc', 'conv']" in repr(res) and "0.6" in repr(res)


@pytest.mark.parametrize("change,err,match", [
    ({"model": "a model"}, TypeError, "model"),
    ({"x": [[0.0]]}, TypeError, "x"),
    ({"mode": "bottom_up"}, ValueError, "mode"),
    ({"method": "saliency"}, TypeError, "method"),
    ({"similarity": "pearson"}, ValueError, "similarity"),
    ({"similarity": ["ssim", "pearson"]}, ValueError, "similarity"),
    ({"similarity": []}, ValueError, "similarity"),
    ({"similarity": 3}, TypeError, "similarity"),
    ({"layers": ["features.12", "fc"]}, ValueError, "top-down order"),
    ({"layers": ["fc", "features.2"]}, ValueError, "layers"),
    ({"layers": "features.99"}, ValueError, "layer"),
    ({"seed": -1}, ValueError, "seed"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"method": lambda m, x, t: torch.zeros(len(x), 8, 8)}, ValueError, "maps"),
])
def test_model_randomisation_bad_arguments(single_model, flowers4, change, err, match):
    args = {"model": single_model, "x": flowers4.images[:2], "target": 0, "method": explain.saliency,
            "mode": "cascading", "layers": ["fc"], "similarity": SIMILARITIES, "seed": 0, "batch_size": 4, **change}
    model, x, target, method = (args.pop(k) for k in ("model", "x", "target", "method"))
    with pytest.raises(err, match=match):
        model_randomisation(model, x, target, method, progress=False, **args)
