"""Tests of xai_lab.interpret: each method against a slow, obvious re-implementation or a known
answer, on tiny data; the model comes back as it was; bad inputs raise ValueError / TypeError."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from xai_lab import interpret as I  # noqa: E402
from xai_lab import models  # noqa: E402
from xai_lab.data import flowers  # noqa: E402
from xai_lab.viz import interpret as figures  # noqa: E402

LAYER = "features.14"


# ------------------------------------------------------------------------------------------------
# fixtures and slow references
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return models.load("single")


@pytest.fixture(scope="module")
def probe():
    return flowers(24, "single", seed=5, size=32, split="test")  # last conv maps: 4 x 4


def dense(data):
    """The same probe set without label maps: dissect must fall back to the (N, C, H, W) masks."""
    return SimpleNamespace(images=data.images, concepts=data.concepts, concept_names=data.concept_names,
                           concept_categories=data.concept_categories)


def activations(model, x, layer):
    """Layer output by a plain forward hook that clones (safe from later in-place ops)."""
    out = {}

    def hook(module, inputs, output):  # returns None: the output itself is left alone
        out.setdefault("a", output.detach().clone())

    h = dict(model.named_modules())[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        h.remove()
    return out["a"]


def slow_dissect(a, thresholds, concepts):
    """The definition, unit by unit and concept by concept: (K, C) IoU, intersections, unions."""
    k_units, n_concepts = a.shape[1], concepts.shape[1]
    inter = torch.zeros(k_units, n_concepts, dtype=torch.long)
    union = torch.zeros_like(inter)
    for k in range(k_units):
        up = F.interpolate(a[:, k:k + 1], size=concepts.shape[-2:], mode="bilinear", align_corners=False)
        m = up[:, 0] > thresholds[k]  # (N, H, W)
        for c in range(n_concepts):
            inter[k, c] = (m & concepts[:, c]).sum()
            union[k, c] = (m | concepts[:, c]).sum()
    return inter / union.clamp(min=1), inter, union


def state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()})


def assert_restored(model, before):
    modes, flags, weights = state(model)
    assert modes == before[0] and flags == before[1]
    assert all(torch.equal(weights[k], before[2][k]) for k in weights)
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def random_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3))


# ------------------------------------------------------------------------------------------------
# Network Dissection
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantile", [0.005, 0.1])
def test_thresholds_are_the_quantile(model, probe, quantile):
    t = I.quantile_thresholds(model, probe, LAYER, quantile, batch_size=5, progress=False)
    values = activations(model, probe.images, LAYER).transpose(0, 1).flatten(1)  # (K, N*h*w)
    exact = torch.quantile(values.double(), 1 - quantile, dim=1).float()
    assert torch.equal(t, exact)
    assert torch.allclose(t, torch.quantile(values, 1 - quantile, dim=1), rtol=1e-5, atol=1e-6)
    assert torch.equal(t, I.quantile_thresholds(model, probe.images, LAYER, quantile, 64, False))


@pytest.mark.parametrize("quantile", [0.005, 0.1])
def test_dissect_matches_the_definition(model, probe, quantile):
    res = I.dissect(model, probe, LAYER, quantile=quantile, batch_size=7, progress=False)
    a = activations(model, probe.images, LAYER)
    iou, inter, union = slow_dissect(a, res.thresholds, probe.concepts)
    assert torch.equal(res.intersection, inter) and torch.equal(res.union, union)
    assert torch.allclose(res.iou, iou.float(), rtol=0, atol=1e-7)
    assert res.intersection.sum() > 0
    assert ((res.iou >= 0) & (res.iou <= 1)).all()


def test_dissect_labels_detectors_and_counts(model, probe):
    res = I.dissect(model, probe, LAYER, quantile=0.05, progress=False)
    assert res.iou.shape == (128, len(probe.concept_names))
    assert torch.equal(res.best_iou, res.iou.max(1).values)
    assert torch.equal(res.iou[torch.arange(128), res.labels], res.best_iou)
    assert torch.equal(res.detectors, res.best_iou > 0.04)
    per_cat = res.detectors_per_category()
    assert set(per_cat) == set(probe.concept_categories)
    assert sum(per_cat.values()) == int(res.detectors.sum()) == sum(res.detectors_per_concept().values())
    assert sum(res.detectors_per_category(unique=True).values()) == len(res.detectors_per_concept())
    assert len(res.label_names) == 128 and res.label_categories[0] in per_cat
    top = res.top(5)
    assert (res.best_iou[top[:-1]] >= res.best_iou[top[1:]]).all()
    assert "units are detectors" in res.summary(3)


def test_dissect_batch_size_and_paths_agree(model, probe):
    ref = I.dissect(model, probe, LAYER, quantile=0.05, batch_size=64, progress=False)
    for kwargs in ({"batch_size": 5}, {"batch_size": 7, "thresholds": ref.thresholds}):
        res = I.dissect(model, probe, LAYER, quantile=0.05, progress=False, **kwargs)
        assert torch.equal(res.iou, ref.iou) and torch.equal(res.thresholds, ref.thresholds)
    res = I.dissect(model, dense(probe), model.features[14], quantile=0.05, batch_size=9, progress=False)
    assert torch.equal(res.intersection, ref.intersection) and res.layer == LAYER


def test_dissect_torchvision_resnet(probe):
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None)
    net.train()  # must stay in train mode, with its batch-norm statistics untouched
    data = flowers(8, "single", seed=2, size=32, split="test")
    before = state(net)
    # bn2 of a block: its output is changed in place afterwards (out += identity; relu_)
    res = I.dissect(net, data, "layer2.1.bn2", quantile=0.05, batch_size=3, progress=False)
    assert_restored(net, before)
    a = activations(net, data.images, "layer2.1.bn2")
    net.train()
    iou, inter, _ = slow_dissect(a, res.thresholds, data.concepts)
    assert torch.equal(res.intersection, inter)
    assert torch.allclose(res.iou, iou.float(), rtol=0, atol=1e-7)
    res = I.dissect(net, data, net.layer3, batch_size=8, progress=False)
    assert res.iou.shape == (256, len(data.concept_names)) and res.layer == "layer3"
    assert_restored(net, before)


def test_unit_masks_match_the_definition(model, probe):
    t = I.quantile_thresholds(model, probe, LAYER, 0.05, progress=False)
    masks = I.unit_masks(model, probe, LAYER, [3, 40], t, batch_size=5, progress=False)
    a = activations(model, probe.images, LAYER)
    up = F.interpolate(a[:, [3, 40]], size=(32, 32), mode="bilinear", align_corners=False)
    assert masks.shape == (24, 2, 32, 32) and masks.dtype == torch.bool
    assert torch.equal(masks, up > t[[3, 40]].view(1, 2, 1, 1))


def test_every_function_gives_the_model_back(probe):
    net = random_cnn()
    net.train()
    net[0].weight.requires_grad_(False)
    before = state(net)
    calls = [lambda: I.quantile_thresholds(net, probe, "3", progress=False),
             lambda: I.dissect(net, probe, net[3], progress=False),
             lambda: I.unit_masks(net, probe, "3", [1, 2], progress=False),
             lambda: I.compose_units(net, probe, "5", [0, 4], progress=False),
             lambda: I.relevant_units(net, probe, ["0", "5"], mu=2.0, progress=False),
             lambda: I.maximize(net, 1, steps=3, size=16),
             lambda: I.maximize(net, ("5", 2), steps=3, size=16),
             lambda: I.top_patches(net, probe, [("5", 1)], k=2, progress=False),
             lambda: I.atlas(net, probe, "3", grid=2, n_points=20, progress=False)]
    for call in calls:
        call()
        assert_restored(net, before)


def test_model_comes_back_after_an_error(probe):
    net = random_cnn()
    net.train()
    net[0].weight.requires_grad_(False)
    before = state(net)
    with pytest.raises(ValueError, match="thresholds"):
        I.dissect(net, probe, "3", thresholds=torch.zeros(7), progress=False)
    assert_restored(net, before)
    with pytest.raises(ValueError, match="conv maps"):
        I.dissect(net, probe, "8", progress=False)  # the linear layer: (N, 3)
    assert_restored(net, before)


def test_dissect_bad_inputs(model, probe):
    for kwargs, exc in [({"quantile": 0}, ValueError), ({"quantile": 1.5}, ValueError),
                        ({"iou_threshold": -0.1}, ValueError), ({"batch_size": 0}, ValueError),
                        ({"layer": "features.99"}, ValueError), ({"layer": 3.0}, TypeError)]:
        args = {"layer": LAYER, "progress": False, **kwargs}
        with pytest.raises(exc, match=next(iter(kwargs))):
            I.dissect(model, probe, **args)
    with pytest.raises(TypeError, match="concept_names"):
        I.dissect(model, probe.images, LAYER, progress=False)
    with pytest.raises(TypeError, match="data_or_images"):
        I.quantile_thresholds(model, [1, 2], LAYER)
    with pytest.raises(ValueError, match="units"):
        I.unit_masks(model, probe, LAYER, [128], torch.zeros(128), progress=False)


@pytest.mark.parametrize("call, word", [
    (lambda m, p: I.dissect(m, p, LAYER, quantile="0.1", progress=False), "quantile"),
    (lambda m, p: I.dissect(m, p, LAYER, batch_size=2.0, progress=False), "batch_size"),
    (lambda m, p: I.quantile_thresholds(m, p, LAYER, quantile=None, progress=False), "quantile"),
    (lambda m, p: I.compose_unit(m, p, LAYER, 1.5, progress=False), "unit"),
    (lambda m, p: I.l1_regression(torch.rand(4, 3), torch.rand(4, 2), "1"), "mu"),
    (lambda m, p: I.maximize(m, 1, lr="fast", steps=2), "lr"),
    (lambda m, p: I.maximize(m, 1, steps=2.0), "steps"),
    (lambda m, p: I.atlas(m, p, LAYER, grid=2.5, progress=False), "grid"),
    (lambda m, p: I.top_patches(m, p, [(LAYER, 1)], k="3", progress=False), "k"),
])
def test_a_wrong_type_raises_type_error(model, probe, call, word):
    """One kind of exception per mistake, as in xai_lab.checks: a wrong type is a TypeError."""
    with pytest.raises(TypeError, match=word):
        call(model, probe)


# ------------------------------------------------------------------------------------------------
# Compositional explanations
# ------------------------------------------------------------------------------------------------
OPS = {"AND": lambda a, b: a & b, "OR": lambda a, b: a | b, "AND NOT": lambda a, b: a & ~b}


def exhaustive(masks, concepts, max_length=3):
    """Best IoU over all left-deep formulas of up to ``max_length`` concepts (repeats allowed)."""
    def iou(f):
        return int((f & masks).sum()) / max(1, int((f | masks).sum()))

    level = [concepts[:, c] for c in range(concepts.shape[1])]
    best = max(iou(f) for f in level)
    for _ in range(max_length - 1):
        level = [OPS[op](f, concepts[:, c]) for f in level for c in range(concepts.shape[1]) for op in OPS]
        best = max(best, max(iou(f) for f in level))
    return best


def iou_of(f, masks):
    return int((f & masks).sum()) / max(1, int((f | masks).sum()))


def tiny_case(seed):
    g = torch.Generator().manual_seed(seed)
    concepts = torch.rand(6, 4, 8, 8, generator=g) < torch.tensor([0.5, 0.4, 0.2, 0.3]).view(1, 4, 1, 1)
    noise = torch.rand(6, 8, 8, generator=g) < 0.08
    masks = ((concepts[:, 0] & concepts[:, 1]) | concepts[:, 2]) ^ noise
    return masks, concepts, ["petal", "red", "centre", "leaf"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compose_wide_beam_is_exhaustive(seed):
    masks, concepts, names = tiny_case(seed)
    wide = I.compose(masks, concepts, names, beam=1000, max_length=3)
    assert wide.iou == pytest.approx(exhaustive(masks, concepts), abs=1e-12)
    assert wide.iou == pytest.approx(iou_of(wide.formula.mask(concepts), masks), abs=1e-12)
    narrow = I.compose(masks, concepts, names)  # beam 5, length 3
    single = max(iou_of(concepts[:, c], masks) for c in range(4))
    assert narrow.single_iou == pytest.approx(single, abs=1e-12)
    assert single <= narrow.iou <= wide.iou + 1e-12
    assert len(narrow.beam) == 5 and narrow.beam[0][1] == narrow.iou
    assert all(a[1] >= b[1] for a, b in zip(narrow.beam, narrow.beam[1:]))
    assert narrow.formula.length <= 3
    beam_masks = torch.stack([f.mask(concepts) for f, _ in narrow.beam])  # one formula per mask
    assert all(not torch.equal(beam_masks[i], beam_masks[j]) for i in range(5) for j in range(i))


def test_compose_finds_a_planted_formula_and_prints_it():
    masks, concepts, names = tiny_case(0)
    planted = (concepts[:, 0] & concepts[:, 1]) | concepts[:, 2]
    res = I.compose(planted, concepts, names, beam=5)
    assert res.iou == 1.0
    assert torch.equal(res.formula.mask(concepts), planted)
    f = I.Formula("OR", I.Formula("AND", I.Leaf(0, "petal"), I.Leaf(1, "red")), I.Leaf(2, "centre"))
    assert str(f) == "(petal AND red) OR centre" and f.length == 3
    assert str(I.Formula("AND NOT", I.Leaf(0, "petal"), I.Leaf(1, "red"))) == "petal AND NOT red"
    assert "IoU 1.000" in str(res)


def test_compose_units_on_the_model(model, probe):
    t = I.quantile_thresholds(model, probe, LAYER, 0.05, progress=False)
    masks = I.unit_masks(model, probe, LAYER, [40, 99], t, progress=False)
    by_maps = I.compose_units(model, probe, LAYER, [40, 99], thresholds=t, batch_size=7, progress=False)
    by_masks = I.compose_units(model, dense(probe), LAYER, [40, 99], thresholds=t, progress=False)
    for j, res in enumerate(by_maps):
        ref = I.compose(masks[:, j], probe.concepts, probe.concept_names)
        assert [(str(f), v) for f, v in res.beam] == [(str(f), v) for f, v in ref.beam]
        assert [(str(f), v) for f, v in by_masks[j].beam] == [(str(f), v) for f, v in ref.beam]
        assert res.iou == pytest.approx(iou_of(res.formula.mask(probe.concepts), masks[:, j]), abs=1e-12)
        assert res.iou >= res.single_iou
    one = I.compose_unit(model, probe, LAYER, 99, thresholds=t, progress=False)
    assert str(one.formula) == str(by_maps[1].formula)


def test_compose_bad_inputs():
    masks, concepts, names = tiny_case(0)
    with pytest.raises(ValueError, match="share"):
        I.compose(masks[:, :4], concepts, names)
    with pytest.raises(ValueError, match="names"):
        I.compose(masks, concepts, names[:3])
    with pytest.raises(TypeError, match="masks"):
        I.compose(masks.numpy(), concepts, names)
    with pytest.raises(ValueError, match="beam"):
        I.compose(masks, concepts, names, beam=0)
    with pytest.raises(ValueError, match="operators"):
        I.compose(masks, concepts, names, operators=("XOR",))
    with pytest.raises(ValueError, match="operators"):
        I.compose(masks, concepts, names, operators="AND")


# ------------------------------------------------------------------------------------------------
# Relevant units
# ------------------------------------------------------------------------------------------------
def synthetic(n=300, classes=4, seed=0):
    """Class j lights up features 2j and 2j+1 (of 2 * classes + 4); rows L1-normalised."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = 0.2 * torch.rand(n, 2 * classes + 4, generator=g)
    x[torch.arange(n), 2 * labels] += 1.0 + 0.2 * torch.rand(n, generator=g)
    x[torch.arange(n), 2 * labels + 1] += 0.8 + 0.2 * torch.rand(n, generator=g)
    return x / x.sum(1, keepdim=True), labels


def test_project_l1_is_the_projection():
    g = torch.Generator().manual_seed(0)
    v = 3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    v[:, 0] = 0.01 * v[:, 0]  # a column already inside the ball
    for nonneg in (False, True):
        w = I.project_l1(v, 2.0, nonneg)
        assert (w.abs().sum(0) <= 2.0 + 1e-12).all()
        if nonneg:
            assert (w >= 0).all()
        # projection: no point of the feasible set sampled at random is closer
        for _ in range(200):
            z = torch.randn(7, 5, generator=g, dtype=torch.float64)
            z = z.abs() if nonneg else z
            z = z * (2.0 * torch.rand(1, 5, generator=g, dtype=torch.float64) / z.abs().sum(0))
            assert ((w - v).norm(dim=0) <= (z - v).norm(dim=0) + 1e-12).all()
    assert torch.equal(I.project_l1(v, 2.0)[:, 0], v[:, 0])


def test_l1_regression_finds_the_planted_units_and_is_optimal():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    x, labels = synthetic()
    y = F.one_hot(labels).double()
    mu = 3.0
    w = I.l1_regression(x, y, mu)
    assert w.shape == (12, 4) and (w.abs().sum(0) <= mu + 1e-5).all()
    for j in range(4):
        top2 = set(torch.topk(w[:, j], 2).indices.tolist())
        assert top2 == {2 * j, 2 * j + 1}
    # optimal: a generic solver (SLSQP on w = p - q, p, q >= 0) reaches no lower objective
    xd = x.double().numpy()
    for j in range(4):
        yj = y[:, j].numpy()

        def loss(pq):
            r = xd @ (pq[:12] - pq[12:]) - yj
            return r @ r

        cons = {"type": "ineq", "fun": lambda pq: mu - pq.sum()}
        ref = scipy_optimize.minimize(loss, np.full(24, 0.01), method="SLSQP", constraints=[cons],
                                      bounds=[(0, None)] * 24, options={"maxiter": 500, "ftol": 1e-14})
        ours = float(((x.double() @ w[:, j].double() - y[:, j]) ** 2).sum())
        assert ours <= ref.fun + 1e-6


def test_l1_regression_is_sparse_and_deterministic():
    x, labels = synthetic(seed=1)
    y = F.one_hot(labels)
    w1, w2 = I.l1_regression(x, y, 1.0), I.l1_regression(x, y, 1.0)
    assert torch.equal(w1, w2)
    assert (w1 != 0).sum() < w1.numel() and (w1 != 0).any(0).all()
    wn = I.l1_regression(x, y, 1.0, nonnegative=True)
    assert (wn >= 0).all()
    with pytest.raises(ValueError, match="mu"):
        I.l1_regression(x, y, -1.0)
    with pytest.raises(ValueError, match="x must be"):
        I.l1_regression(x, y[:10], 1.0)


def test_relevant_units_on_the_model(model, probe):
    before = state(model)
    res = I.relevant_units(model, probe, ["features.10", LAYER], mu=5.0, batch_size=10, progress=False)
    assert_restored(model, before)
    assert res.weights.shape == (64 + 128, 6)
    assert res.units[0] == ("features.10", 0) and res.units[64] == (LAYER, 0)
    assert (res.weights.abs().sum(0) <= 5.0 + 1e-4).all()
    for c in range(6):
        rows = res.relevant(c)
        assert len(rows) > 0 and (res.weights[rows, c] != 0).all()
        assert len(res.table(c)) == len(rows) and all(t[2] > 0 for t in res.top(c, 3))
    with pytest.raises(TypeError, match="labels"):
        I.relevant_units(model, probe.images, LAYER, progress=False)
    x, units = I.filter_energies(model, probe, LAYER, progress=False)
    assert x.shape == (24, 128) and torch.allclose(x.sum(1), torch.ones(24))
    a = activations(model, probe.images, LAYER)
    e = a.pow(2).sum((2, 3))
    assert torch.allclose(x, e / e.sum(1, keepdim=True), atol=1e-6)
    assert torch.equal(I.filter_energy(a), x)  # the per-batch step, as explain.by_interpretation uses it
    assert res.scores(torch.rand(24, 192), 0).shape == (24, 192)


# ------------------------------------------------------------------------------------------------
# Activation maximisation, atlas, patches
# ------------------------------------------------------------------------------------------------
def test_maximize_improves_the_objective(model):
    model.fc.weight.requires_grad_(False)  # a frozen head: flags must come back as they were
    before = state(model)
    try:
        img, hist = I.maximize(model, 2)  # the defaults: 100 steps at 64 px
        assert_restored(model, before)
        assert img.shape == (1, 3, 64, 64) and img.min() >= 0 and img.max() <= 1 and hist.shape == (100,)
        with torch.no_grad():
            start = model(torch.full((1, 3, 64, 64), 0.5))[0, 2]
            end = model(img)[0, 2]
        assert hist[-5:].mean() > hist[:5].mean() + 10 and end > start + 10
        assert torch.equal(I.maximize(model, 2, steps=5)[0], I.maximize(model, 2, steps=5)[0])  # seeded
        # a unit of a ReLU layer that is off at the start still gets a gradient (read before the ReLU)
        img_u, hist_u = I.maximize(model, (LAYER, 40), steps=60, size=48)
        assert img_u.shape == (1, 3, 48, 48) and hist_u[-5:].mean() > hist_u[:5].mean() + 0.5
        assert_restored(model, before)
    finally:
        model.fc.weight.requires_grad_(True)


def test_maximize_bad_inputs(model):
    with pytest.raises(TypeError, match="target"):
        I.maximize(model, "red", steps=2)
    with pytest.raises(ValueError, match="target"):
        I.maximize(model, 6, steps=2)
    with pytest.raises(ValueError, match="target unit"):
        I.maximize(model, ("features.12", 500), steps=2)
    with pytest.raises(ValueError, match="jitter"):
        I.maximize(model, 1, size=16, jitter=16, steps=2)
    with pytest.raises(ValueError, match="lr"):
        I.maximize(model, 1, lr=0, steps=2)
    before = state(model)
    with pytest.raises(ValueError):
        I.maximize(model, 6, steps=2)
    assert_restored(model, before)


def test_top_patches_and_atlas(model, probe):
    patches, idx = I.top_patches(model, probe, [(LAYER, 3), ("features.10", 7)], k=5, progress=False)
    assert patches.shape == (2, 5, 3, 24, 24) and idx.shape == (2, 5)
    a = activations(model, probe.images, LAYER)[:, 3].flatten(1).max(1).values
    assert torch.equal(idx[0], torch.sort(-a, stable=True).indices[:5])
    res = I.atlas(model, probe, LAYER, grid=4, n_points=200, batch_size=7, progress=False)
    assert res.image.shape == (3, 4 * 24, 4 * 24) and res.layout.shape == (200, 2)
    assert int(res.counts.sum()) == 200 and res.image.min() >= 0 and res.image.max() <= 1
    assert (res.layout >= 0).all() and (res.layout <= 1).all()
    again = I.atlas(model, probe, LAYER, grid=4, n_points=200, batch_size=24, progress=False)
    assert torch.equal(res.points, again.points) and torch.allclose(res.image, again.image)
    with pytest.raises(ValueError, match="grid"):
        I.atlas(model, probe, LAYER, grid=0)
    with pytest.raises(ValueError, match="unit 128"):
        I.top_patches(model, probe, [(LAYER, 128)], progress=False)
    with pytest.raises(TypeError, match="units"):
        I.top_patches(model, probe, [LAYER, 3], progress=False)


def test_plots_return_figures(model, probe):
    res = I.dissect(model, probe, LAYER, quantile=0.05, progress=False)
    comp = I.compose_unit(model, probe, LAYER, int(res.top(1)[0]), thresholds=res.thresholds, progress=False)
    with pytest.raises(TypeError, match="unit"):
        I.compose_unit(model, probe, LAYER, 1.5, thresholds=res.thresholds, progress=False)
    rel = I.relevant_units(model, probe, LAYER, mu=5.0, progress=False)
    c = next(c for c in range(6) if rel.top(c))
    figs = [figures.plot_detectors(res), figures.plot_unit(model, probe, res, int(res.top(1)[0]), k=4),
            figures.plot_formulas({"unit": comp}),
            figures.plot_relevant_units(model, probe, rel, c, n_units=2, k=3),
            figures.plot_atlas(I.atlas(model, probe, LAYER, grid=3, n_points=50, progress=False))]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    plt.close("all")
    for name in figures.__all__:  # re-exported lazily by xai_lab.interpret
        assert getattr(I, name) is getattr(figures, name) and name in I.__all__ and name in dir(I)
    with pytest.raises(AttributeError, match="plot_nothing"):
        I.plot_nothing
