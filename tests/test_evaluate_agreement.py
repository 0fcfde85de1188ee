"""Tests of xai_lab.evaluate.agreement (rank_methods, metric_agreement, Agreement) and of the metric
marks of evaluate.base (every function of evaluate.METRICS says its direction and category).

Ranks against scipy.stats.rankdata, Kendall tau-b and Spearman against scipy.stats.kendalltau and
spearmanr on the rankings, with ties in the scores and metrics that tie every method.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from xai_lab import evaluate as V
from xai_lab.evaluate import base

METHODS = ["gradient", "grad_cam", "lrp", "occlusion", "lime", "rise", "smoothgrad"]


def random_table(seed, n_methods=7, n_metrics=5):
    """Scores with many ties (integers 0..3), one metric tying every method (constant column)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randint(0, 4, (n_methods, n_metrics), generator=g).double()
    table[:, -1] = 2.0
    return table


def as_dict(table, metrics, methods=METHODS):
    return {m: {k: float(table[i, j]) for i, k in enumerate(methods)} for j, m in enumerate(metrics)}


METRIC_NAMES = ["pointing_game", "deletion", "relevance_mass", "insertion", "ablate_units"]
BETTER = {"pointing_game": True, "deletion": False, "relevance_mass": True, "insertion": True, "ablate_units": False}


def scipy_ranks(table, better):
    """Average ranks, 1 = best: rankdata of the scores, negated where higher is better."""
    columns = [stats.rankdata(-table[:, j] if better[j] else table[:, j], method="average")
               for j in range(table.shape[1])]
    return torch.tensor(np.stack(columns, 1))


# ------------------------------------------------------------------------------------------------
# against scipy
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_methods_equals_scipy_rankdata(seed):
    table = random_table(seed)
    better = [BETTER[m] for m in METRIC_NAMES]
    expected = scipy_ranks(table.numpy(), better).float()
    assert torch.equal(V.rank_methods(as_dict(table, METRIC_NAMES), BETTER), expected)
    assert torch.equal(V.rank_methods(table, BETTER, methods=METHODS, metrics=METRIC_NAMES), expected)
    assert torch.equal(V.rank_methods(table.float(), BETTER, metrics=METRIC_NAMES), expected)


def test_rank_methods_rows_follow_the_first_metrics_order():
    scores = {"a": {"x": 1.0, "y": 3.0, "z": 2.0}, "b": {"z": 0.5, "x": 0.1, "y": 0.9}}
    ranks = V.rank_methods(scores, {"a": True, "b": False})
    assert ranks.tolist() == [[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]]    # rows x, y, z


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("method", ["kendall", "spearman"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_agreement_equals_scipy_on_the_rankings(method, seed):
    table = random_table(seed)
    better = [BETTER[m] for m in METRIC_NAMES]
    ranks = scipy_ranks(table.numpy(), better).numpy()
    peer = stats.kendalltau if method == "kendall" else stats.spearmanr   # kendalltau: tau-b
    agreement = V.metric_agreement(as_dict(table, METRIC_NAMES), BETTER, method=method)
    assert agreement.method == method and agreement.metrics == METRIC_NAMES and agreement.methods == METHODS
    assert torch.equal(agreement.ranks, torch.tensor(ranks).float())
    for i, j in itertools.product(range(5), repeat=2):
        expected = peer(ranks[:, i], ranks[:, j])[0]                  # NaN for the constant column
        if math.isnan(expected):
            assert math.isnan(agreement.matrix[i, j]), (i, j)
        else:
            assert float(agreement.matrix[i, j]) == pytest.approx(expected, abs=1e-6), (i, j)
    assert agreement.matrix[-1].isnan().all() and agreement.matrix[:, -1].isnan().all()


def test_agreement_mean_leaves_out_the_diagonal_and_nan_pairs():
    table = random_table(3)
    agreement = V.metric_agreement(table, BETTER, metrics=METRIC_NAMES)
    m = agreement.matrix.tolist()
    pairs = [m[i][j] for i in range(5) for j in range(5) if i != j and not math.isnan(m[i][j])]
    assert len(pairs) == 4 * 3                                        # 4 metrics with ties, one all tied
    assert agreement.mean() == pytest.approx(sum(pairs) / len(pairs))
    none = V.metric_agreement({"a": {"x": 1, "y": 1}, "b": {"x": 2, "y": 2}}, {"a": True, "b": True})
    assert math.isnan(none.mean())


# ------------------------------------------------------------------------------------------------
# known answers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["kendall", "spearman"])
def test_same_order_agrees_fully_and_reversed_order_disagrees_fully(method):
    base_scores = {k: float(i) for i, k in enumerate(METHODS)}
    scores = {"up": base_scores, "twice": {k: 2 * v + 1 for k, v in base_scores.items()},
              "down": {k: -v for k, v in base_scores.items()}}
    agreement = V.metric_agreement(scores, {"up": True, "twice": True, "down": True}, method=method)
    expected = torch.tensor([[1.0, 1, -1], [1, 1, -1], [-1, -1, 1]])
    torch.testing.assert_close(agreement.matrix, expected)
    assert agreement.mean() == pytest.approx(-1 / 3)
    # a lower-is-better "down" ranks the methods as "up" does
    flipped = V.metric_agreement(scores, {"up": True, "twice": True, "down": False}, method=method)
    torch.testing.assert_close(flipped.matrix, torch.ones(3, 3))
    assert flipped.ranks[:, 0].tolist() == list(range(7, 0, -1))      # the highest score ranks 1


def test_agreement_table_lists_ranks_and_matrix():
    scores = {"pointing_game": {"grad_cam": 0.9, "gradient": 0.4, "lrp": 0.4},
              "deletion": {"grad_cam": 0.2, "gradient": 0.5, "lrp": 0.3}}
    agreement = V.metric_agreement(scores, {"pointing_game": True, "deletion": False})
    text = agreement.table()
    assert str(agreement) == text
    lines = text.splitlines()
    assert lines[0] == "ranks (1 = best)"
    assert lines[2].split() == ["grad_cam", "1.0", "1.0"]
    assert lines[3].split() == ["gradient", "2.5", "3.0"]             # tied with lrp under the first
    tau = float(agreement.matrix[0, 1])                                # 2 concordant, 0 discordant, 1 tie
    assert tau == pytest.approx(stats.kendalltau([1, 2.5, 2.5], [1, 3, 2])[0])
    assert f"kendall agreement between metrics (mean {tau:.2f})" in text
    assert lines[-1].split() == ["deletion", f"{tau:.2f}", "1.00"]


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scores, better, kw, error, match", [
    ({"a": {"x": 1.0}, "b": {"x": 2.0}}, {"a": True, "b": True}, {}, ValueError, "at least 2 methods"),
    (torch.ones(1, 2), {"a": True, "b": True}, {"metrics": ["a", "b"]}, ValueError, "at least 2 methods"),
    ({"a": {"x": 1.0, "y": 2.0}}, {}, {}, ValueError, r"higher_is_better must give a bool for every metric.*\['a'\]"),
    ({"a": {"x": 1.0, "y": 2.0}}, {"a": None}, {}, ValueError, "higher_is_better must give a bool"),
    ({"a": {"x": 1.0, "y": 2.0}}, {"a": 1}, {}, ValueError, "higher_is_better must give a bool"),
    ({"a": {"x": 1.0, "y": 2.0}}, [True], {}, TypeError, "higher_is_better must be a dict"),
    ({"a": {"x": 1.0, "y": 2.0}, "b": {"x": 1.0, "z": 2.0}}, {"a": True, "b": True}, {}, ValueError,
     "scores must hold the same methods for every metric"),
    ({"a": {"x": 1.0, "y": "high"}}, {"a": True}, {}, TypeError, r"scores\['a'\] must map methods to numbers"),
    ({"a": {"x": 1.0, "y": True}}, {"a": True}, {}, TypeError, r"scores\['a'\] must map methods to numbers"),
    ({"a": {"x": 1.0, "y": float("nan")}}, {"a": True}, {}, ValueError, "scores must be finite"),
    ({}, {}, {}, TypeError, "scores must be a non-empty dict"),
    ([[1.0, 2.0]], {"a": True}, {}, TypeError, "scores must be a non-empty dict"),
    (torch.ones(3), {"a": True}, {}, ValueError, r"scores must be a dict .* got shape \(3,\)"),
    (torch.ones(3, 2), {"a": True, "b": True}, {}, ValueError, "metrics must name the 2 columns of scores"),
    (torch.ones(3, 2), {"a": True, "b": True}, {"metrics": ["a", "b"], "methods": ["x", "y"]}, ValueError,
     "methods must name the 3 rows of scores"),
])
def test_bad_scores_and_directions_are_rejected(scores, better, kw, error, match):
    with pytest.raises(error, match=match):
        V.metric_agreement(scores, better, **kw)
    with pytest.raises(error, match=match):
        V.rank_methods(scores, better, **kw)


def test_unknown_correlation_is_rejected():
    with pytest.raises(ValueError, match=r"method must be one of \['kendall', 'spearman'\], got 'pearson'"):
        V.metric_agreement({"a": {"x": 1.0, "y": 2.0}}, {"a": True}, method="pearson")


# ------------------------------------------------------------------------------------------------
# base: every metric says its direction and part
# ------------------------------------------------------------------------------------------------
def test_every_metric_says_its_direction_and_category():
    metrics = V.METRICS
    assert {"morf_curve", "aopc", "deletion", "insertion", "pointing_game", "box_iou", "mask_iou",
            "relevance_mass", "relevance_rank"} <= set(metrics)
    for name, fn in metrics.items():
        assert fn.higher_is_better in (True, False, None), name
        assert fn.category in V.CATEGORIES, name
    parts = {n: metrics[n].category for n in ("morf_curve", "aopc", "deletion", "insertion")}
    assert set(parts.values()) == {"ablation"}
    local = ("pointing_game", "box_iou", "mask_iou", "relevance_mass", "relevance_rank")
    assert all(metrics[n].category == "localisation" and metrics[n].higher_is_better is True for n in local)
    assert (V.deletion.higher_is_better, V.insertion.higher_is_better) == (False, True)
    assert V.morf_curve.higher_is_better is None and V.aopc.higher_is_better is None  # depends on order
    assert V.metric_agreement.category == "agreement" and V.metric_agreement.higher_is_better is True
    # the marks are what metric_agreement needs: every metric with a fixed direction can be ranked
    fixed = {n: fn.higher_is_better for n, fn in metrics.items() if fn.higher_is_better is not None}
    scores = {n: {"a": 1.0, "b": 2.0} for n in fixed}
    ranks = V.rank_methods(scores, fixed)
    assert ranks[1].tolist() == [1.0 if fixed[n] else 2.0 for n in fixed]
    with pytest.raises(ValueError, match=r"higher_is_better must give a bool.*'aopc'"):
        V.rank_methods({"aopc": {"a": 1.0, "b": 2.0}}, {"aopc": V.aopc.higher_is_better})


def test_metric_marks_a_function_and_checks_the_category():
    @base.metric(higher_is_better=False, category="sanity")
    def distance(a, b):
        return a - b

    assert distance.higher_is_better is False and distance.category == "sanity" and distance(3, 1) == 2
    with pytest.raises(ValueError, match="category must be one of"):
        base.metric(True, "faithfulness")
