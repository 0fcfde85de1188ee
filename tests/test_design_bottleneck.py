"""Concept bottleneck models (xai_lab.design.bottleneck): losses against slow loops, intervention,
percentiles, determinism, models given back as given, named errors, shipped weights."""
import copy
import json
import math

import numpy as np
import pytest
import torch

from xai_lab import data, models
from xai_lab.design import bottleneck as cbm

SHIPPED = ("bottleneck_independent", "bottleneck_sequential", "bottleneck_joint")


@pytest.fixture(scope="module")
def tiny_data():
    return data.flowers(48, "double", seed=3, size=32)


def tiny_model(d, seed=0):
    torch.manual_seed(seed)
    return cbm.ConceptBottleneck(d.num_classes, d.attribute_names, width=(4, 4, 8, 8))


@pytest.fixture(scope="module")
def double_test():
    return data.flowers(300, "double", seed=1, split="test")


@pytest.fixture(scope="module")
def shipped(one_thread):
    return {name: models.load(name) for name in SHIPPED}


def _snapshot(model):
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


# --- losses -------------------------------------------------------------------------------------
def test_joint_loss_matches_a_slow_loop(rng):
    n, a, k, lam = 5, 6, 4, 0.3
    logits, out = torch.randn(n, k, generator=rng), torch.randn(n, a, generator=rng)
    labels = torch.randint(0, k, (n,), generator=rng)
    truth = (torch.rand(n, a, generator=rng) > 0.5).float()
    truth[:, 4] = torch.rand(n, generator=rng)  # a continuous concept
    continuous = torch.tensor([False, False, False, False, True, False])
    l_y = sum(-math.log(math.exp(logits[i, labels[i]]) / sum(math.exp(v) for v in logits[i].tolist()))
              for i in range(n)) / n
    l_c = 0.0
    for j in range(a):
        per = []
        for i in range(n):
            z, t = out[i, j].item(), truth[i, j].item()
            if continuous[j]:
                per.append((z - t) ** 2)
            else:
                p = 1 / (1 + math.exp(-z))
                per.append(-(t * math.log(p) + (1 - t) * math.log(1 - p)))
        l_c += sum(per) / n
    got = cbm.joint_loss(logits, out, labels, truth, continuous, lam)
    assert got.item() == pytest.approx(l_y + lam * l_c, rel=1e-5)
    assert cbm.concept_loss(out, truth, continuous).item() == pytest.approx(l_c, rel=1e-5)
    assert cbm.joint_loss(logits, out, labels, truth, continuous, 0.0).item() == pytest.approx(l_y, rel=1e-5)


def test_joint_loss_has_gradients_for_both_parts(rng):
    logits = torch.randn(3, 4, generator=rng, requires_grad=True)
    out = torch.randn(3, 2, generator=rng, requires_grad=True)
    cbm.joint_loss(logits, out, torch.tensor([0, 1, 2]), torch.ones(3, 2), [False, True]).backward()
    assert logits.grad.abs().sum() > 0 and out.grad.abs().sum() > 0


# --- percentiles, intervention, concept accuracy ------------------------------------------------
def test_percentiles_are_those_of_g_on_the_images(tiny_data, one_thread):
    model = tiny_model(tiny_data)
    low, high = cbm.concept_percentiles(model, tiny_data.images)
    with torch.no_grad():
        out = model.eval().g(tiny_data.images).numpy()
    for j in range(out.shape[1]):  # one concept at a time, numpy's linear interpolation
        assert low[j].item() == pytest.approx(float(np.percentile(out[:, j], 5)), abs=1e-5)
        assert high[j].item() == pytest.approx(float(np.percentile(out[:, j], 95)), abs=1e-5)
    assert torch.equal(model.low, low) and torch.equal(model.high, high)
    assert "low" in model.state_dict() and "high" in model.state_dict()  # ship with the weights


def test_intervene_replaces_the_chosen_concepts_only(tiny_data, one_thread):
    model = tiny_model(tiny_data)
    cbm.concept_percentiles(model, tiny_data.images)
    model.eval()  # g's batch norm on running statistics, as intervene uses it
    x, c = tiny_data.images[:6], tiny_data.attributes[:6]
    chosen = [0, 3, 16]  # two binary concepts and petal_count (continuous)
    got = cbm.intervene(model, x, c, concepts=chosen)
    with torch.no_grad():
        slow = model.g(x).clone()
        for i in range(len(x)):
            for j in chosen:
                if model.continuous[j]:
                    slow[i, j] = c[i, j]
                else:
                    slow[i, j] = model.high[j] if c[i, j] == 1 else model.low[j]
        want = model.f(torch.stack([torch.cat([torch.sigmoid(r[:16]), r[16:18], torch.sigmoid(r[18:])])
                                    for r in slow]))
    assert model.concept_names[16:18] == ("petal_count", "flower_size")
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(cbm.intervene(model, x, c, k=0), model(x), atol=1e-6)


def test_curve_is_the_per_k_intervention(tiny_data, one_thread):
    model = tiny_model(tiny_data)
    cbm.concept_percentiles(model, tiny_data.images)
    curve = cbm.intervention_curve(model, tiny_data, seed=4)
    a = model.num_concepts
    assert curve["k"].tolist() == list(range(a + 1)) and sorted(curve["order"]) == list(range(a))
    for k in (0, 5, a):
        pred = cbm.intervene(model, tiny_data.images, tiny_data.attributes, k=k, order=curve["order"]).argmax(1)
        assert curve["accuracy"][k].item() == pytest.approx((pred == tiny_data.labels).float().mean().item())
    assert curve["order"] == cbm.intervention_curve(model, tiny_data, seed=4, steps=[0, 1])["order"]


def test_all_concepts_true_reaches_f_on_true_concepts(shipped, double_test):
    model = shipped["bottleneck_independent"]
    c, y = double_test.attributes, double_test.labels
    with torch.no_grad():
        on_true = (model.f(c).argmax(1) == y).float().mean().item()
    curve = cbm.intervention_curve(model, double_test, order=list(range(model.num_concepts)))
    assert curve["accuracy"][-1].item() == pytest.approx(on_true, abs=0.01)  # 5th/95th percentile logits
    exact = copy.deepcopy(model)
    exact.low.fill_(-1e4)
    exact.high.fill_(1e4)  # sigmoid gives exactly 0 / 1: f on the true concepts
    pred = cbm.intervene(exact, double_test.images, c, k=model.num_concepts).argmax(1)
    assert (pred == y).float().mean().item() == on_true


def test_all_concepts_true_with_saturated_percentiles_is_f_on_the_truth(tiny_data, one_thread):
    model = tiny_model(tiny_data).eval()
    model.low.fill_(-1e4)
    model.high.fill_(1e4)  # sigmoid: exactly 0 / 1
    got = cbm.intervene(model, tiny_data.images, tiny_data.attributes, k=model.num_concepts, seed=5)
    with torch.no_grad():
        assert torch.equal(got, model.f(tiny_data.attributes))


def test_concept_accuracy_matches_a_loop(tiny_data, one_thread):
    model = tiny_model(tiny_data)
    got = cbm.concept_accuracy(model, tiny_data)
    with torch.no_grad():
        out = model.eval().g(tiny_data.images)
    for j, name in enumerate(model.concept_names):
        col, truth = out[:, j].tolist(), tiny_data.attributes[:, j].tolist()
        if name in cbm.CONTINUOUS:
            assert got["error"][name] == pytest.approx(sum(abs(a - b) for a, b in zip(col, truth)) / len(col), rel=1e-5)
        else:
            assert got["accuracy"][name] == pytest.approx(sum((a > 0) == (b == 1) for a, b in zip(col, truth)) / len(col))
    assert got["worst"][1] == min(got["accuracy"].values())


# --- training: determinism, models given back -------------------------------------------------
@pytest.mark.parametrize("mode", cbm.MODES)
def test_training_is_deterministic_with_a_seed(tiny_data, one_thread, mode):
    states = []
    for seed in (0, 0, 1):
        model = tiny_model(tiny_data)
        cbm.train_bottleneck(model, tiny_data, mode, epochs=1, batch_size=16, seed=seed, progress=False,
                             head_steps=5)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])  # the seed matters
    assert not torch.equal(states[0]["low"], torch.full_like(states[0]["low"], -4.0))  # percentiles stored


def test_training_trains_the_right_parts(tiny_data, one_thread):
    model = tiny_model(tiny_data)
    before = copy.deepcopy(model.state_dict())
    cbm.train_concepts(model, tiny_data, epochs=1, batch_size=16, progress=False, frozen_blocks=2)
    after = copy.deepcopy(model.state_dict())
    assert torch.equal(before["f.weight"], after["f.weight"])  # f untouched by train_concepts
    assert torch.equal(before["g.features.4.weight"], after["g.features.4.weight"])  # frozen block
    assert torch.equal(before["g.features.5.running_mean"], after["g.features.5.running_mean"])
    assert not torch.equal(before["g.features.8.weight"], after["g.features.8.weight"])
    g_state = copy.deepcopy(model.g.state_dict())
    cbm.train_head(model, tiny_data, "predicted", steps=3)
    assert all(torch.equal(v, model.g.state_dict()[k]) for k, v in g_state.items())
    assert not torch.equal(after["f.weight"], model.f.weight)


def test_models_come_back_as_given(tiny_data, one_thread, monkeypatch):
    model = tiny_model(tiny_data)
    model.train()
    model.g.features[0].eval()
    model.f.weight.requires_grad_(False)
    snap = _snapshot(model)
    cbm.train_bottleneck(model, tiny_data, "joint", epochs=1, batch_size=16, progress=False)
    cbm.train_bottleneck(model, tiny_data, "sequential", epochs=1, batch_size=16, progress=False, head_steps=2)
    cbm.intervention_curve(model, tiny_data, steps=[0, 3])
    cbm.intervene(model, tiny_data.images[:4], tiny_data.attributes[:4], k=2)
    cbm.concept_accuracy(model, tiny_data)
    assert _snapshot(model) == snap

    def boom(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(cbm, "concept_loss", boom)
    with pytest.raises(RuntimeError, match="boom"):
        cbm.train_concepts(model, tiny_data, epochs=1, batch_size=16, progress=False)
    assert _snapshot(model) == snap


# --- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, err, word", [
    (lambda m, d: cbm.train_bottleneck(m, d, "fancy"), ValueError, "mode"),
    (lambda m, d: cbm.train_bottleneck(m, d, "joint", lam=-1.0), ValueError, "lam"),
    (lambda m, d: cbm.train_bottleneck(m, d, "joint", epochs=0), ValueError, "epochs"),
    (lambda m, d: cbm.train_concepts(m, d, frozen_blocks=4), ValueError, "frozen_blocks"),
    (lambda m, d: cbm.train_head(m, d, source="guess"), ValueError, "source"),
    (lambda m, d: cbm.train_concepts(models.FlowerCNN(), d), TypeError, "model"),
    (lambda m, d: cbm.train_concepts(m, d.images), TypeError, "data"),
    (lambda m, d: cbm.intervene(m, d.images, d.attributes, k=m.num_concepts + 1), ValueError, "k"),
    (lambda m, d: cbm.intervene(m, d.images, d.attributes), ValueError, "exactly one"),
    (lambda m, d: cbm.intervene(m, d.images, d.attributes, concepts=[0], k=1), ValueError, "exactly one"),
    (lambda m, d: cbm.intervene(m, d.images, d.attributes[:3], k=1), ValueError, "c_true"),
    (lambda m, d: cbm.intervene(m, d.images, d.attributes, concepts=[99]), ValueError, "concepts"),
    (lambda m, d: cbm.intervention_curve(m, d, order=[0, 0]), ValueError, "order"),
    (lambda m, d: cbm.intervention_curve(m, d, order="best"), ValueError, "order"),
    (lambda m, d: cbm.concept_percentiles(m, d.images, q=(95, 5)), ValueError, "q"),
    (lambda m, d: cbm.joint_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2).long(), torch.zeros(2, 5),
                                 [False] * 4), ValueError, "concepts"),
    (lambda m, d: cbm.joint_loss([0.0], torch.zeros(2, 4), torch.zeros(2).long(), torch.zeros(2, 4),
                                 [False] * 4), TypeError, "class_logits"),
    (lambda m, d: cbm.concept_loss(torch.zeros(2, 4), torch.zeros(2, 4), [False] * 3), ValueError, "continuous"),
    (lambda m, d: cbm.ConceptBottleneck(12, ()), ValueError, "concept_names"),
])
def test_errors_name_the_argument(tiny_data, call, err, word):
    model = tiny_model(tiny_data)
    with pytest.raises(err, match=word):
        call(model, tiny_data)


def test_data_must_carry_the_model_concepts(tiny_data):
    model = cbm.ConceptBottleneck(12, tiny_data.attribute_names[:-1], width=(4, 4, 8, 8))
    with pytest.raises(ValueError, match="attribute_names"):
        cbm.concept_accuracy(model, tiny_data)


# --- shipped weights ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bottlenecks_load_and_reach_their_accuracy(shipped, double_test, name):
    model = shipped[name]
    entry = json.loads(models.MANIFEST.read_text())[name]
    assert isinstance(model, cbm.ConceptBottleneck) and not model.training
    assert entry["mode"] == name.rpartition("_")[2] and entry["skeleton"] == "xai_lab.design.bottleneck:skeleton"
    assert entry["train_seconds"] <= 360
    assert (model.low < model.high).sum() >= model.num_concepts - 3  # 3 attributes are constant in double
    acc = models.evaluate(model, double_test)
    assert acc >= entry["test_accuracy"] - 0.04, (acc, entry["test_accuracy"])
    assert cbm.concept_accuracy(model, double_test)["mean_accuracy"] > 0.8
