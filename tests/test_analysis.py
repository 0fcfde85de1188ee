"""xai_lab.analysis against slow, obvious re-implementations."""
import math

import pytest
import torch

from xai_lab import analysis


@pytest.fixture(scope="module")
def preds():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (300,), generator=g)
    pred = torch.where(torch.rand(300, generator=g) < 0.7, labels, torch.randint(0, 5, (300,), generator=g))
    group = torch.randint(0, 3, (300,), generator=g)
    return pred, labels, group


def test_accuracy(preds):
    pred, labels, _ = preds
    slow = sum(int(p == y) for p, y in zip(pred.tolist(), labels.tolist())) / len(labels)
    assert math.isclose(analysis.accuracy(pred, labels), slow, rel_tol=1e-6)


def test_per_class_and_subgroup_accuracy(preds):
    pred, labels, group = preds
    labels = torch.where(labels == 4, 3, labels)  # class 4 absent
    per = analysis.per_class_accuracy(pred, labels, 6)
    table = analysis.subgroup_accuracy(pred, labels, group, 6, 3)
    for k in range(6):
        idx = [i for i in range(len(labels)) if labels[i] == k]
        slow = sum(int(pred[i] == k) for i in idx) / len(idx) if idx else float("nan")
        assert (math.isnan(slow) and per[k].isnan()) or math.isclose(per[k].item(), slow, rel_tol=1e-6)
        for g in range(3):
            idx = [i for i in range(len(labels)) if labels[i] == k and group[i] == g]
            slow = sum(int(pred[i] == k) for i in idx) / len(idx) if idx else float("nan")
            assert (math.isnan(slow) and table[g, k].isnan()) or math.isclose(table[g, k].item(), slow, rel_tol=1e-6)


def test_largest_gap_ignores_nan_and_ties_to_first():
    t = torch.tensor([[0.9, 1.0, 0.5, 0.2], [0.5, 0.8, float("nan"), 0.3]])
    assert analysis.largest_gap(t) == pytest.approx((0.4, 0)) and analysis.largest_gap(t)[1] == 0
    assert analysis.largest_gap(torch.full((2, 3), 0.5)) == (0.0, 0)


def test_watermark_effect():
    a, d = analysis.watermark_effect(torch.tensor([0, 2, 1, 0, 5]), torch.tensor([0, 1, 1, 0, 2]),
                                     torch.tensor([0, 1, 2, 3, -1]))
    assert (a, d) == (0.5, 1.0)


def test_top_k_images_by_max_with_stable_ties():
    g = torch.Generator().manual_seed(2)
    acts = torch.rand(40, 3, 4, 4, generator=g).round(decimals=1)
    idx = analysis.top_k_images(acts, 1, k=10)
    scores = [acts[i, 1].max().item() for i in range(40)]
    slow = sorted(range(40), key=lambda i: (-scores[i], i))[:10]
    assert idx.tolist() == slow
    mean_idx = analysis.top_k_images(acts, 1, k=5, reduce="mean")
    assert mean_idx.tolist() == sorted(range(40), key=lambda i: (-acts[i, 1].mean().item(), i))[:5]


@pytest.mark.parametrize("call, word", [
    (lambda: analysis.accuracy([1, 2], torch.tensor([1, 2])), "pred"),
    (lambda: analysis.accuracy(torch.tensor([1, 2]), torch.tensor([1])), "labels"),
    (lambda: analysis.top_k_images(torch.rand(3, 2, 2, 2), 5), "unit"),
    (lambda: analysis.top_k_images(torch.rand(3, 2, 2, 2), 0, k=4), "k"),
    (lambda: analysis.top_k_images(torch.rand(3, 2), 0), "activations"),
])
def test_bad_arguments(call, word):
    with pytest.raises((ValueError, TypeError), match=word):
        call()
