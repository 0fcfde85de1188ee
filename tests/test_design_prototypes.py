"""Tests of xai_lab.design.prototypes (Chen et al. 2019) and its figure: distances, similarity, the
cluster / separation / L1 costs and the loss against slow loops and known answers; push leaves every
prototype equal to a training patch of its own class; determinism; models given back as they came;
named errors; the shipped "prototypes" model; the "this looks like that" figure. Training here is a
few optimizer steps on a few flowers; the shipped weights stand for the long run."""
from __future__ import annotations

import inspect
import json
import math

import pytest
import torch
import torch.nn.functional as F

from model_state import assert_same_state, model_state
from xai_lab import data, models
from xai_lab.design import prototypes as P
from xai_lab.viz import this_looks_like_that

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def few():
    return data.flowers(36, "single", seed=5, split="train")


@pytest.fixture(scope="module")
def pushed(single_model, few):
    """A PrototypeNet (2 prototypes per class) on the shipped features, pushed on 36 flowers in
    batches of 16, with the prototypes it had before the push and what push returned."""
    net = P.PrototypeNet(single_model, 6, per_class=2, depth=8, seed=3)
    before = net.prototypes.detach().clone()
    return net, before, P.push(net, few, batch_size=16, progress=False)


def slow_distances(z, prototypes):
    n, _, h, w = z.shape
    out = torch.empty(n, len(prototypes), h, w)
    for i in range(n):
        for j in range(len(prototypes)):
            for a in range(h):
                for b in range(w):
                    out[i, j, a, b] = ((z[i, :, a, b] - prototypes[j]) ** 2).sum()
    return out


def slow_costs(d, labels, classes):
    clst, sep = 0.0, 0.0
    for i in range(len(d)):
        clst += min(float(d[i, j]) for j in range(d.shape[1]) if classes[j] == labels[i])
        sep += min(float(d[i, j]) for j in range(d.shape[1]) if classes[j] != labels[i])
    return clst / len(d), sep / len(d)


# ------------------------------------------------------------------------------------------------
# the pieces against slow loops and known answers
# ------------------------------------------------------------------------------------------------
def test_distances_match_a_loop_over_patches(single_model, few):
    g = torch.Generator().manual_seed(0)
    z, p = torch.rand(2, 5, 3, 4, generator=g), torch.rand(7, 5, generator=g)
    assert torch.allclose(P.patch_distances(z, p), slow_distances(z, p), atol=1e-5)
    net = P.PrototypeNet(single_model, 6, per_class=1, depth=4).eval()
    with torch.no_grad():
        out, z = net.inspect(few.images[:2]), net.patches(few.images[:2])
    slow = slow_distances(z, net.prototypes.detach())
    assert out.distances.shape == (2, 6, 8, 8)
    assert torch.allclose(out.distances, slow, atol=1e-5)
    assert torch.allclose(out.min_distances, slow.flatten(2).min(2).values, atol=1e-5)
    assert torch.allclose(out.similarities, torch.log((out.min_distances + 1) / (out.min_distances + 1e-4)))
    assert torch.allclose(out.logits, out.similarities @ net.last.weight.T)
    assert torch.equal(net(few.images[:2]), out.logits)


def test_similarity_known_answers():
    d = torch.tensor([0.0, 1.0, 1e6])
    s = P.prototype_similarity(d)
    assert s[0].item() == pytest.approx(math.log(1e4), rel=1e-6)
    assert s[1].item() == pytest.approx(math.log(2 / 1.0001), rel=1e-6)
    assert 0 < s[2].item() < 1e-5
    assert P.prototype_similarity(torch.tensor([0.0]), eps=0.5).item() == pytest.approx(math.log(2))
    assert (P.prototype_similarity(torch.linspace(0, 10, 50)).diff() < 0).all()


def test_cluster_and_separation_costs_match_loops():
    g = torch.Generator().manual_seed(1)
    d = torch.rand(9, 12, generator=g) * 5
    labels, classes = torch.randint(0, 3, (9,), generator=g), torch.arange(12) // 4
    clst, sep = slow_costs(d, labels, classes)
    assert P.cluster_cost(d, labels, classes).item() == pytest.approx(clst, rel=1e-6)
    assert P.separation_cost(d, labels, classes).item() == pytest.approx(sep, rel=1e-6)
    # known answer: one image of class 1, prototypes of classes 0, 1, 1, 2
    d1, cls = torch.tensor([[4.0, 3.0, 2.0, 1.0]]), torch.tensor([0, 1, 1, 2])
    assert P.cluster_cost(d1, torch.tensor([1]), cls).item() == 2.0
    assert P.separation_cost(d1, torch.tensor([1]), cls).item() == 1.0


def test_last_layer_l1_and_its_initialisation(single_model):
    g = torch.Generator().manual_seed(2)
    w, classes = torch.randn(3, 6, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])
    slow = sum(abs(float(w[k, j])) for k in range(3) for j in range(6) if classes[j] != k)
    assert P.last_layer_l1(w, classes).item() == pytest.approx(slow, rel=1e-6)
    net = P.PrototypeNet(single_model, 6, per_class=3, depth=4)
    for k in range(6):
        for j in range(18):
            assert net.last.weight[k, j].item() == (1.0 if j // 3 == k else -0.5)
    assert net.prototype_class.tolist() == [j // 3 for j in range(18)]
    assert P.last_layer_l1(net.last.weight, net.prototype_class).item() == pytest.approx(0.5 * 5 * 18)


def test_loss_is_the_papers_sum_with_its_coefficients():
    defaults = inspect.signature(P.prototype_loss).parameters
    assert (defaults["clst"].default, defaults["sep"].default, defaults["l1"].default) == (0.8, 0.08, 1e-4)
    g = torch.Generator().manual_seed(3)
    logits, d, w = torch.randn(5, 3, generator=g), torch.rand(5, 6, generator=g), torch.randn(3, 6, generator=g)
    labels, classes = torch.tensor([0, 1, 2, 2, 1]), torch.arange(6) // 2
    ce = F.cross_entropy(logits, labels).item()
    clst, sep = slow_costs(d, labels, classes)
    l1 = P.last_layer_l1(w, classes).item()
    for a, b, c in ((0.8, 0.08, 1e-4), (2.0, 0.5, 0.1), (0.0, 0.0, 0.0)):
        got = P.prototype_loss(logits, labels, d, classes, w, clst=a, sep=b, l1=c).item()
        assert got == pytest.approx(ce + a * clst - b * sep + c * l1, rel=1e-5)


# ------------------------------------------------------------------------------------------------
# push
# ------------------------------------------------------------------------------------------------
def test_push_makes_each_prototype_a_training_patch_of_its_class(pushed, few, single_model):
    net, before, result = pushed
    with torch.no_grad():
        z = torch.cat([net.patches(b) for b in few.images.split(16)])  # as push batched them
    for j in range(net.num_prototypes):
        i, (r, c) = int(net.push_image[j]), net.push_cell[j].tolist()
        assert torch.equal(net.prototypes[j], z[i, :, r, c])  # exactly that patch
        assert int(few.labels[i]) == int(net.prototype_class[j])  # of an image of its own class
        own = few.labels == net.prototype_class[j]
        nearest = ((z[own] - before[j].view(1, -1, 1, 1)) ** 2).sum(1).min()  # the slow argmin
        assert result.distance[j].item() == pytest.approx(nearest.item(), rel=1e-4, abs=1e-5)
        x0, y0, x1, y1 = net.push_box[j].tolist()  # receptive field of 38 px, 8 px apart, centred at 8 c + 4
        assert (x0, y0, x1, y1) == (max(0, 8 * c - 15), max(0, 8 * r - 15), min(64, 8 * c + 23), min(64, 8 * r + 23))
    assert torch.equal(result.image, net.push_image) and torch.equal(result.box, net.push_box)
    assert P.receptive_field(single_model) == (8.0, 38.0, 4.0)


def test_push_is_independent_of_the_batch_size(pushed, single_model, few):
    net = P.PrototypeNet(single_model, 6, per_class=2, depth=8, seed=3)
    P.push(net, few, batch_size=36, progress=False)
    assert torch.equal(net.push_image, pushed[0].push_image) and torch.equal(net.push_cell, pushed[0].push_cell)
    assert torch.allclose(net.prototypes, pushed[0].prototypes, atol=1e-6)


def test_part_overlap_against_the_part_maps(pushed, few):
    net = pushed[0]
    overlap = P.prototype_part_overlap(net, few, "centre")
    centre = few.parts == data.PARTS.index("centre")
    for j in range(net.num_prototypes):
        i, (r, c) = int(net.push_image[j]), net.push_cell[j].tolist()
        assert overlap["cell"][j].item() == pytest.approx(centre[i, 8 * r:8 * r + 8, 8 * c:8 * c + 8].float().mean().item())
        x0, y0, x1, y1 = net.push_box[j].tolist()
        assert bool(overlap["box"][j]) == bool(centre[i, y0:y1, x0:x1].any())
        assert 0 <= overlap["top"][j] <= 1


# ------------------------------------------------------------------------------------------------
# training, determinism, the model given back
# ------------------------------------------------------------------------------------------------
def test_training_is_deterministic_and_moves_only_its_stage(single_model, few):
    def run(seed):
        net = P.PrototypeNet(single_model, 6, per_class=1, depth=4, seed=seed)
        start = {k: v.clone() for k, v in net.state_dict().items()}
        P.train_prototypes(net, few.subset(slice(0, 16)), "warmup", 1, batch_size=8, progress=False)
        return start, net.state_dict()

    (start, a), (_, b), (start1, _) = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(start["prototypes"], start1["prototypes"])
    assert not torch.equal(a["prototypes"], start["prototypes"])  # warm-up trains prototypes and add-on ...
    assert all(torch.equal(a[k], start[k]) for k in a if k.startswith(("features", "last")))  # ... only


def test_models_come_back_as_given(single_model, few):
    net = P.PrototypeNet(single_model, 6, per_class=1, depth=4).train()
    net.add_on.requires_grad_(False)
    modes, flags = [m.training for m in net.modules()], [p.requires_grad for p in net.parameters()]
    for stage in P.STAGES:
        P.train_prototypes(net, few.subset(slice(0, 8)), stage, 1, batch_size=8, progress=False)
        assert [m.training for m in net.modules()] == modes and [p.requires_grad for p in net.parameters()] == flags
    bad = few.subset(slice(0, 8))
    bad.images = bad.images[:, :2]  # two channels: the forward fails inside the training loop
    with pytest.raises(RuntimeError):
        P.train_prototypes(net, bad, "joint", 1, batch_size=8, progress=False)
    assert [m.training for m in net.modules()] == modes and [p.requires_grad for p in net.parameters()] == flags
    before = model_state(net)
    P.similarity_maps(net, few.images[:2])
    assert_same_state(net, before)
    before = model_state(single_model)
    P.PrototypeNet(single_model)
    assert_same_state(single_model, before)


def test_errors_are_named(single_model, few, pushed):
    net = pushed[0]
    cases = [
        (TypeError, "backbone", lambda: P.PrototypeNet(torch.nn.Linear(2, 2))),
        (ValueError, "per_class", lambda: P.PrototypeNet(single_model, per_class=0)),
        (ValueError, "stage", lambda: P.train_prototypes(net, few, "warm")),
        (ValueError, "epochs", lambda: P.train_prototypes(net, few, "joint", 0)),
        (TypeError, "model", lambda: P.push(single_model, few)),
        (TypeError, "data", lambda: P.push(net, few.images)),
        (TypeError, "labels", lambda: P.cluster_cost(torch.rand(2, 4), torch.rand(2), torch.arange(4))),
        (ValueError, "min_distances", lambda: P.separation_cost(torch.rand(3, 4), torch.arange(2), torch.arange(4))),
        (ValueError, "labels", lambda: P.cluster_cost(torch.rand(1, 2), torch.tensor([5]), torch.tensor([0, 1]))),
        (ValueError, "eps", lambda: P.prototype_similarity(torch.rand(3), eps=0)),
        (ValueError, "sep", lambda: P.prototype_loss(torch.rand(1, 2), torch.tensor([0]), torch.rand(1, 2),
                                                     torch.tensor([0, 1]), torch.rand(2, 2), sep=-1)),
        (ValueError, "prototypes", lambda: P.patch_distances(torch.rand(1, 3, 2, 2), torch.rand(4, 5))),
        (ValueError, "part", lambda: P.prototype_part_overlap(net, few, "petals")),
        (ValueError, "pushed first", lambda: P.prototype_part_overlap(P.PrototypeNet(single_model), few)),
        (ValueError, "k", lambda: this_looks_like_that(net, few.images[0], few, k=0)),
        (ValueError, "pushed on", lambda: this_looks_like_that(net, few.images[0], few.images[:2])),
    ]
    for error, name, call in cases:
        with pytest.raises(error, match=name):
            call()


# ------------------------------------------------------------------------------------------------
# the shipped model and the figure
# ------------------------------------------------------------------------------------------------
def test_shipped_model_loads_pushed_and_reaches_its_accuracy(single_test):
    entry = json.loads(models.MANIFEST.read_text())["prototypes"]
    net = models.load("prototypes")
    assert isinstance(net, P.PrototypeNet) and not net.training
    assert (net.push_image >= 0).all() and (net.push_image < entry["n_train"]).all()
    assert models.evaluate(net, single_test) >= entry["accuracy"]["last"] - 0.04
    assert entry["train_seconds"] <= 360


def test_figure_draws(pushed, few, single_test):
    import matplotlib.pyplot as plt

    net = pushed[0]
    before = model_state(net)
    fig = this_looks_like_that(net, single_test.images[0], few, k=3, label=int(single_test.labels[0]),
                               class_names=single_test.class_names)
    assert len(fig.axes) == 12 and "predicted" in fig._suptitle.get_text()
    assert all("s=" in fig.axes[4 * r + 3].get_title() for r in range(3))
    assert all(len(fig.axes[4 * r + 2].images) == 1 for r in range(3))  # x as it is, beside its similarity map
    assert_same_state(net, before)
    plt.close(fig)
