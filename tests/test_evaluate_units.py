"""Tests of xai_lab.evaluate.units: ablate_units and semantic_coverage against slow loops (one image,
one step, one unit, one concept at a time), known answers on the shipped flower CNN and on tiny
hand-built models, bad arguments, and batching. Nothing is trained; data are a few flowers.
"""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_state import assert_same_state, model_state
from xai_lab import data, models
from xai_lab.evaluate.units import Coverage, UnitAblation, ablate_units, semantic_coverage

NAN = float("nan")
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------
# data, models and the slow references
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flowers8():
    return data.flowers(8, "single", seed=31, split="test")


def switched_off(model, layer, units):
    """A copy of ``model`` whose ``layer`` outputs 0 on ``units``, by editing weights (no hook): a
    Conv2d/Linear gets zero filters and biases; for the flower CNN's last ReLU ("features.14") the
    batch norm before it gets weight = bias = 0, so the ReLU gets (and gives) 0."""
    net = copy.deepcopy(model)
    if layer == "features.14":
        layer = "features.13"
    module = dict(net.named_modules())[layer]
    with torch.no_grad():
        module.weight[units] = 0
        module.bias[units] = 0
    return net


def slow_ablation(model, layer, images, labels, order, classes):
    """``(accuracy (K+1,), per_class (K+1, C))`` with a Python loop over k and over images."""
    accuracy, per_class = [], []
    for k in range(len(order) + 1):
        net = switched_off(model, layer, [int(u) for u in order[:k]])
        hits = []
        for x, y in zip(images, labels):
            with torch.no_grad():
                hits.append(float(int(net(x[None]).argmax(1)) == int(y)))
        accuracy.append(sum(hits) / len(hits))
        per_class.append([np.mean([h for h, y in zip(hits, labels) if y == c]) if (labels == c).any() else NAN
                          for c in range(classes)])
    return torch.tensor(accuracy), torch.tensor(per_class)


def response(model, layer, images):
    """The output of ``layer`` for ``images``, by a plain forward hook."""
    out = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: out.update(a=o))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return out["a"]


def telling_units(model, layer, images, labels, k):
    """``k`` units whose removal changes predictions, so that curves compared are not constant: at
    the last layer those adding most to the true class's logit (pooled response x fc weight), at
    others those with the largest mean response."""
    a = response(model, layer, images)
    if layer == "features.14":
        score = (a.mean((2, 3)) * model.fc.weight[labels].detach()).mean(0)
    else:
        score = a.transpose(0, 1).flatten(1).mean(1)
    return score.argsort(descending=True)[:k]


# ------------------------------------------------------------------------------------------------
# ablate_units
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,size,k", [("features.14", 32, 16), ("features.8", 64, 6)])
def test_ablate_units_matches_slow_loop(single_model, layer, size, k):
    flowers = data.flowers(8, "single", seed=31, split="test", size=size)  # 32 px: cheaper, less sure
    x, y = flowers.images, flowers.labels
    order = telling_units(single_model, layer, x, y, k)
    before = model_state(single_model)
    res = ablate_units(single_model, flowers, layer, order)
    acc, per_class = slow_ablation(single_model, layer, x, y, order, 6)
    assert isinstance(res, UnitAblation) and res.layer == layer and torch.equal(res.units, order)
    assert res.accuracy.shape == (k + 1,) and res.per_class.shape == (k + 1, 6)
    torch.testing.assert_close(res.accuracy, acc.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(res.per_class, per_class.float(), atol=1e-6, rtol=0, equal_nan=True)
    assert len(set(acc.tolist())) > 1, "the units chosen should change some predictions"
    assert_same_state(single_model, before)


def test_ablate_units_on_a_linear_layer_and_a_pair():
    """A random MLP, ablated at a Linear layer ("1": (N, units) outputs, not conv maps); its 12
    features come as (N, 12, 1, 1) images, as ablate_units wants images."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 4)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 12, generator=g)
    y = torch.randint(0, 4, (20,), generator=g)
    order = torch.tensor([7, 2, 9, 0, 4, 1, 3, 5, 6, 8])  # all ten units
    res = ablate_units(net, (x[:, :, None, None], y), "1", order)
    acc, per_class = slow_ablation(net, "1", x[:, :, None, None], y, order, 4)
    torch.testing.assert_close(res.accuracy, acc.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(res.per_class, per_class.float(), atol=1e-6, rtol=0, equal_nan=True)
    # all units off: the hidden layer is 0, the logits are the last layer's bias for every input
    constant = int(net[-1].bias.argmax())
    assert math.isclose(float(res.accuracy[-1]), float((y == constant).double().mean()), abs_tol=1e-6)


def test_ablate_units_known_answers(single_model):
    """k = 0 is the model's accuracy; all 128 units of the last conv layer off leave the logits at
    fc.bias, a constant prediction; a class without images has NaN. At 16 x 16 px (the CNN is
    convolutional up to its global pool) to keep the 129 steps cheap."""
    pool = data.flowers(40, "single", seed=4, split="test", size=16)
    constant = int(single_model.fc.bias.argmax())
    absent = (constant + 1) % 6
    keep = (pool.labels != absent).nonzero().flatten()[:12]
    flowers = pool.subset(keep)
    y = flowers.labels
    assert (y == constant).any() and not (y == absent).any()
    order = torch.randperm(128, generator=torch.Generator().manual_seed(1))
    res = ablate_units(single_model, flowers, "features.14", order)
    assert math.isclose(float(res.accuracy[0]), models.evaluate(single_model, flowers), abs_tol=1e-6)
    assert math.isclose(float(res.accuracy[-1]), float((y == constant).double().mean()), abs_tol=1e-6)
    pred = models.predict(single_model, flowers.images)
    assert res.per_class[:, absent].isnan().all()
    for c in range(6):
        if not (y == c).any():
            assert res.per_class[:, c].isnan().all()
        else:
            assert math.isclose(float(res.per_class[0, c]), float((pred[y == c] == c).double().mean()), abs_tol=1e-6)
            assert float(res.per_class[-1, c]) == float(c == constant)
    curve = res.curve()
    assert torch.equal(curve.x, torch.arange(129) / 128) and torch.equal(curve.scores, res.accuracy)
    assert curve.higher_is_better is False and torch.equal(res.curve(constant).scores, res.per_class[:, constant])


def test_ablate_units_batching_and_order_forms(single_model, flowers8):
    order = [3, 64, 17]
    runs = [ablate_units(single_model, flowers8, "features.14", order, batch_size=b) for b in (1, 7, 256)]
    runs.append(ablate_units(single_model, (flowers8.images, flowers8.labels), single_model.features[14],
                             torch.tensor(order, dtype=torch.int32), batch_size=7))
    for r in runs[1:]:
        assert torch.equal(r.accuracy, runs[0].accuracy)
        assert torch.equal(r.per_class.nan_to_num(-1), runs[0].per_class.nan_to_num(-1))
        assert r.layer == "features.14" and r.units.tolist() == order


@pytest.mark.parametrize("change,err,match", [
    ({"model": "not a model"}, TypeError, "model"),
    ({"data": (torch.rand(2, 3, 64, 64),)}, ValueError, "data"),
    ({"data": SimpleNamespace(images=None, labels=torch.tensor([0]))}, TypeError, "data's images"),
    ({"labels": torch.tensor([0.0, 1.0])}, TypeError, "labels"),
    ({"labels": torch.tensor([0, 1, 2])}, ValueError, "labels"),
    ({"labels": torch.tensor([0, -1])}, ValueError, "labels"),
    ({"labels": torch.tensor([0, 6])}, ValueError, "labels"),
    ({"layer": "features.99"}, ValueError, "layer"),
    ({"layer": 3.0}, TypeError, "layer"),
    ({"order": [4, 9, 4]}, ValueError, "order"),
    ({"order": [0, 128]}, ValueError, "order"),
    ({"order": [-1]}, ValueError, "order"),
    ({"order": [0.5, 1.0]}, TypeError, "order"),
    ({"order": []}, TypeError, "order"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
])
def test_ablate_units_bad_arguments(single_model, flowers8, change, err, match):
    args = {"model": single_model, "data": None, "labels": flowers8.labels[:2], "layer": "features.14",
            "order": [1, 2], "batch_size": 4, **change}
    if args["data"] is None:
        args["data"] = (flowers8.images[:2], args["labels"])
    with pytest.raises(err, match=match):
        ablate_units(args["model"], args["data"], args["layer"], args["order"], batch_size=args["batch_size"])


def test_ablate_units_layer_without_unit_axis():
    class Total(nn.Module):
        def forward(self, x):
            return x.sum(1)

    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2), Total())
    with pytest.raises(ValueError, match="layer '2' must give"):
        ablate_units(net, (torch.rand(2, 3, 1, 1), torch.tensor([0, 1])), "2", [0])


@pytest.mark.parametrize("c,err", [(2, ValueError), (-1, ValueError), (0.5, TypeError)])
def test_unit_ablation_curve_bad_class(c, err):
    res = ablate_units(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), (torch.rand(2, 3, 1, 1), torch.tensor([0, 1])),
                       "1", [1])  # a model with 2 classes
    with pytest.raises(err, match="c must be"):
        res.curve(c)


# ------------------------------------------------------------------------------------------------
# semantic_coverage
# ------------------------------------------------------------------------------------------------
def slow_coverage(model, flowers, layer, units, quantile):
    """Per image and per unit: responses upsampled one by one, peaks, aggregated map, numpy's
    quantile, and per concept the sums of intersections, unions and sizes."""
    module = dict(model.named_modules())[layer]
    masks, names = flowers.concepts.bool(), flowers.concept_names
    per_image = []
    for x in flowers.images:
        out = {}
        handle = module.register_forward_hook(lambda m, i, o: out.update(a=o[0]))
        with torch.no_grad():
            model(x[None])
        handle.remove()
        per_image.append([F.interpolate(out["a"][u][None, None], size=masks.shape[-2:], mode="bilinear",
                                        align_corners=False)[0, 0].clamp(min=0) for u in units])
    peaks = [max(float(maps[j].max()) for maps in per_image) for j in range(len(units))]
    r = [sum(maps[j] / peaks[j] for j in range(len(units))) / len(units) for maps in per_image]
    threshold = float(np.quantile(torch.stack(r).double().numpy(), 1 - quantile))  # linear interpolation
    inter, union, size, selected = [0] * len(names), [0] * len(names), [0] * len(names), 0
    for i, ri in enumerate(r):
        m = ri > threshold
        selected += int(m.sum())
        for c in range(len(names)):
            inter[c] += int((m & masks[i, c]).sum())
            union[c] += int((m | masks[i, c]).sum())
            size[c] += int(masks[i, c].sum())
    iou = [inter[c] / union[c] if size[c] else NAN for c in range(len(names))]
    coverage = [inter[c] / size[c] if size[c] else NAN for c in range(len(names))]
    return torch.tensor(iou), torch.tensor(coverage), threshold, selected / masks[:, 0].numel()


@pytest.mark.parametrize("layer,units,quantile", [("features.14", [3, 40, 77, 100], 0.05),
                                                  ("features.10", [1, 20], 0.2)])
def test_semantic_coverage_matches_slow_loop(single_model, flowers8, layer, units, quantile):
    before = model_state(single_model)
    res = semantic_coverage(single_model, flowers8, layer, units, quantile=quantile)
    iou, coverage, threshold, area = slow_coverage(single_model, flowers8, layer, units, quantile)
    # T lies between the sorted values at ranks floor and ceil of (1 - q)(P - 1): ceil(q (P - 1))
    # of the P pixels are above it (ties aside), `quantile` of them to within one
    assert abs(area - quantile) <= 1 / (len(flowers8.images) * 64 * 64)
    assert isinstance(res, Coverage) and res.concepts == flowers8.concept_names
    assert math.isclose(res.threshold, threshold, rel_tol=1e-5)
    assert math.isclose(res.area, area, abs_tol=1e-6)
    torch.testing.assert_close(res.iou, iou.float(), atol=1e-6, rtol=0, equal_nan=True)
    torch.testing.assert_close(res.coverage, coverage.float(), atol=1e-6, rtol=0, equal_nan=True)
    assert_same_state(single_model, before)


def test_semantic_coverage_ranges_area_and_absent_concepts(single_model, flowers8):
    present = flowers8.concepts.flatten(2).any(2).any(0)  # (C,)
    assert not present.all(), "the test needs a concept absent from these flowers"
    for q in (0.02, 0.05, 0.2):
        res = semantic_coverage(single_model, flowers8, "features.14", [3, 40, 77, 100], quantile=q)
        for v in (res.iou, res.coverage):
            assert v[present].ge(0).all() and v[present].le(1).all()
            assert v[~present].isnan().all()
        assert (res.iou[present] <= res.coverage[present] + 1e-7).all()  # |M n L| / |M u L| <= |M n L| / |L|
        # the threshold selects `quantile` of the pixels, to within one (test above)
        assert abs(res.area - q) <= 1 / (len(flowers8.images) * 64 * 64), (q, res.area)
        top = res.top(3)
        assert [t[1] for t in top] == sorted(res.iou[present].tolist(), reverse=True)[:3]


def squares():
    """Two 8 x 8 images and a 1 x 1 conv with known responses: unit 0 = channel 0, graded 0.5..1
    on the top-left 4 x 4 square A of image 0; unit 1 = 10 * channel 1 - channel 2 (channel 2 is 1
    everywhere), -1 (clamped to 0) except on the bottom-right square B of image 1, where it is
    10..14. Concepts: A, A or B, the left half of both images, a concept that is absent."""
    x = torch.zeros(2, 3, 8, 8)
    x[0, 0, :4, :4] = torch.linspace(0.5, 1.0, 16).view(4, 4)
    x[1, 1, 4:, 4:] = torch.linspace(1.1, 1.5, 16).view(4, 4)
    x[:, 2] = 1
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 10, -1]]).view(2, 3, 1, 1))
        conv.bias.zero_()
    a, b = torch.zeros(2, 8, 8, dtype=torch.bool), torch.zeros(2, 8, 8, dtype=torch.bool)
    a[0, :4, :4], b[1, 4:, 4:] = True, True
    left = torch.zeros(2, 8, 8, dtype=torch.bool)
    left[:, :, :4] = True
    concepts = torch.stack([a, a | b, left, torch.zeros_like(a)], 1)
    return nn.Sequential(conv).eval(), SimpleNamespace(images=x, concepts=concepts,
                                                       concept_names=("A", "A or B", "left", "absent"))


def test_semantic_coverage_known_responses():
    net, flowers = squares()
    # both units: R = unit / its peak / 2 on A (0.25..0.5) and on B (10/28..0.5), 0 elsewhere; 32 of
    # the 128 positions respond. quantile 0.25: position 0.75 * 127 = 95.25 of the sorted R lies
    # between the last of the 96 zeros and the smallest response 0.25, so T = 0.25 * 0.25 and
    # M = A u B exactly.
    res = semantic_coverage(net, flowers, "0", [0, 1], quantile=0.25)
    assert math.isclose(res.threshold, 0.0625, rel_tol=1e-6) and res.area == 32 / 128
    # A: 16 / (16 + 32 - 16); A or B: 32 / 32; left: A of 64 pixels, union 64 + 32 - 16 = 80
    torch.testing.assert_close(res.iou, torch.tensor([0.5, 1.0, 16 / 80, NAN]), equal_nan=True)
    torch.testing.assert_close(res.coverage, torch.tensor([1.0, 1.0, 0.25, NAN]), equal_nan=True)
    # each unit is scaled by its own peak: unit 1 a thousand times stronger changes nothing
    with torch.no_grad():
        net[0].weight[1] *= 1000
    again = semantic_coverage(net, flowers, "0", [0, 1], quantile=0.25)
    torch.testing.assert_close(again.iou, res.iou, equal_nan=True)
    # unit 1 alone responds on 16 positions, fewer than 25 %: T = 0 and M = B
    alone = semantic_coverage(net, flowers, "0", [1], quantile=0.25)
    assert alone.threshold == 0 and alone.area == 16 / 128
    torch.testing.assert_close(alone.iou, torch.tensor([0.0, 0.5, 0.0, NAN]), equal_nan=True)
    torch.testing.assert_close(alone.coverage, torch.tensor([0.0, 0.5, 0.0, NAN]), equal_nan=True)
    assert [t[0] for t in res.top(4)] == ["A or B", "A", "left", "absent"]


def test_semantic_coverage_batching(single_model, flowers8):
    runs = [semantic_coverage(single_model, flowers8, "features.14", [5, 6, 90], batch_size=b)
            for b in (1, 7, 256)]
    pixels = len(flowers8.images) * 64 * 64
    for r in runs[1:]:
        # to float precision: convolutions of other batch sizes round differently, and bilinear
        # upsampling makes many pixels nearly equal, so a pixel or two may cross the threshold
        assert math.isclose(r.threshold, runs[0].threshold, rel_tol=1e-5)
        assert abs(r.area - runs[0].area) * pixels <= 2
        torch.testing.assert_close(r.iou, runs[0].iou, atol=2e-3, rtol=0, equal_nan=True)
        torch.testing.assert_close(r.coverage, runs[0].coverage, atol=2e-3, rtol=0, equal_nan=True)


@pytest.mark.parametrize("change,err,match", [
    ({"model": "not a model"}, TypeError, "model"),
    ({"concepts": None}, TypeError, "concepts"),
    ({"concepts": slice(0, 1)}, ValueError, "concepts"),
    ({"concept_names": ("a",)}, ValueError, "concepts"),
    ({"quantile": 0}, ValueError, "quantile"),
    ({"quantile": 1.5}, ValueError, "quantile"),
    ({"quantile": "5%"}, TypeError, "quantile"),
    ({"units": [128]}, ValueError, "units"),
    ({"units": [0.5]}, TypeError, "units"),
    ({"layer": "fc"}, ValueError, "layer 'fc' must give conv maps"),
    ({"layer": "features.99"}, ValueError, "layer"),
    ({"batch_size": 0}, ValueError, "batch_size"),
])
def test_semantic_coverage_bad_arguments(single_model, flowers8, change, err, match):
    args = {"model": single_model, "concepts": slice(0, 2), "concept_names": flowers8.concept_names,
            "layer": "features.14", "units": [1], "quantile": 0.05, "batch_size": 4, **change}
    concepts = args.pop("concepts")
    d = SimpleNamespace(images=flowers8.images[:2], concept_names=args.pop("concept_names"),
                        **({} if concepts is None else {"concepts": flowers8.concepts[concepts]}))
    with pytest.raises(err, match=match):
        semantic_coverage(args.pop("model"), d, args.pop("layer"), args.pop("units"), **args)
