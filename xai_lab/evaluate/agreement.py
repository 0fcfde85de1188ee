"""Metric (dis)agreement (Vandersmissen & Oramas 2024): do the metrics rank the methods alike?

Rank the explanation methods under each metric (:func:`rank_methods`, 1 = best, ties averaged),
then correlate the metrics' rankings pairwise (:func:`metric_agreement`, Kendall tau-b or Spearman).
Both take the scores as ``{metric: {method: score}}`` (e.g. the mean of a metric over a data set per
method), or as a tensor ``(n_methods, n_metrics)`` with the names given by ``methods=`` and
``metrics=``; ``higher_is_better`` says for each metric name whether a higher score is better
(``evaluate.METRICS[name].higher_is_better`` for the library's metrics).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from ..checks import check_choice
from .base import metric

__all__ = ["rank_methods", "metric_agreement", "Agreement"]


def _table(scores, higher_is_better, methods=None, metrics=None):
    """``(methods, metrics, S (n_methods, n_metrics) float64, better (n_metrics,) bool)``, checked."""
    if isinstance(scores, torch.Tensor):
        if scores.dim() != 2:
            raise ValueError(f"scores must be a dict {{metric: {{method: score}}}} or a tensor (n_methods, "
                             f"n_metrics), got shape {tuple(scores.shape)}")
        if metrics is None or len(metrics) != scores.shape[1]:
            raise ValueError(f"metrics must name the {scores.shape[1]} columns of scores, got {metrics!r}")
        methods = list(methods) if methods is not None else [f"method {i}" for i in range(scores.shape[0])]
        if len(methods) != scores.shape[0]:
            raise ValueError(f"methods must name the {scores.shape[0]} rows of scores, got {methods!r}")
        metrics, table = list(metrics), scores.detach().double()
    elif isinstance(scores, dict) and scores and all(isinstance(v, dict) for v in scores.values()):
        metrics = list(scores)
        methods = list(scores[metrics[0]])
        for m in metrics:
            if set(scores[m]) != set(methods):
                raise ValueError(f"scores must hold the same methods for every metric: {metrics[0]!r} has "
                                 f"{sorted(methods)}, {m!r} has {sorted(scores[m])}")
            bad = [k for k, v in scores[m].items() if not isinstance(v, (numbers.Real, torch.Tensor))
                   or isinstance(v, bool) or (isinstance(v, torch.Tensor) and v.numel() != 1)]
            if bad:
                raise TypeError(f"scores[{m!r}] must map methods to numbers, got {scores[m][bad[0]]!r} "
                                f"for {bad[0]!r}")
        table = torch.tensor([[float(scores[m][k]) for m in metrics] for k in methods], dtype=torch.float64)
    else:
        raise TypeError(f"scores must be a non-empty dict {{metric: {{method: score}}}} or a tensor "
                        f"(n_methods, n_metrics), got {type(scores).__name__}")
    if len(methods) < 2:
        raise ValueError(f"scores must rank at least 2 methods, got {methods}")
    if not torch.isfinite(table).all():
        raise ValueError("scores must be finite, got NaN/inf")
    if not isinstance(higher_is_better, dict):
        raise TypeError(f"higher_is_better must be a dict {{metric: bool}}, got {type(higher_is_better).__name__}")
    missing = [m for m in metrics if not isinstance(higher_is_better.get(m), bool)]
    if missing:
        raise ValueError(f"higher_is_better must give a bool for every metric, missing or not bool for {missing}")
    better = torch.tensor([higher_is_better[m] for m in metrics])
    return methods, metrics, table, better


def _ranks(table, better) -> torch.Tensor:
    """Average ranks (1 = best) of the rows of ``table (n_methods, n_metrics)`` in each column."""
    s = torch.where(better, -table, table)                            # lower is better now
    lower = (s[None] < s[:, None]).sum(1)                             # (n_methods, n_metrics) better ones
    equal = (s[None] == s[:, None]).sum(1)                            # itself included
    return lower + (equal + 1) / 2


def rank_methods(scores, higher_is_better: dict, methods=None, metrics=None) -> torch.Tensor:
    """Ranks ``(n_methods, n_metrics)`` float of the methods under each metric: 1 = best, ties get
    the average of the ranks they span (as ``scipy.stats.rankdata(method="average")``).

    Rows follow the methods in the order of the first metric's dict (or ``methods``), columns the
    metrics in the dict's order (or ``metrics``).
    """
    return _ranks(*_table(scores, higher_is_better, methods, metrics)[2:]).float()


def _kendall(r):
    """Kendall tau-b between the columns of ``r``: the cosine of their pairwise sign vectors,
    tau_b = sum_{i<j} s1 s2 / sqrt(n_untied1 * n_untied2) with s = sign(r_i - r_j)."""
    s = torch.sign(r[:, None] - r[None]).flatten(0, 1)                # (n * n, n_metrics)
    return _cosine(s)


def _spearman(r):
    """Spearman's rho between the columns of the ranks ``r``: the Pearson correlation of ranks."""
    return _cosine(r - r.mean(0))


def _cosine(v):
    norm = v.norm(dim=0)
    return (v.T @ v) / (norm[:, None] * norm[None])                   # NaN for a constant column


@dataclass
class Agreement:
    """Rankings of ``methods`` under ``metrics`` and how much they agree.

    ``ranks (n_methods, n_metrics)`` (1 = best), ``matrix (n_metrics, n_metrics)`` the rank
    correlation (``method``: ``"kendall"`` tau-b or ``"spearman"``) between every two metrics' rankings:
    1 = same order, -1 = reversed, NaN where a metric ties all methods.
    """
    methods: list
    metrics: list
    ranks: torch.Tensor
    matrix: torch.Tensor
    method: str

    def mean(self) -> float:
        """The mean correlation over the pairs of different metrics (NaN pairs left out)."""
        off = self.matrix[~torch.eye(len(self.metrics), dtype=torch.bool)]
        return float(off.nanmean()) if len(off) else float("nan")

    def table(self) -> str:
        """The ranks and the agreement matrix as plain text."""
        w = max(8, *(len(m) for m in self.metrics))
        mw = max(6, *(len(m) for m in self.methods))
        head = " " * mw + "".join(f"{m:>{w + 1}}" for m in self.metrics)
        lines = ["ranks (1 = best)", head]
        lines += [f"{k:<{mw}}" + "".join(f"{float(r):>{w + 1}.1f}" for r in row) for k, row in zip(self.methods, self.ranks)]
        lines += ["", f"{self.method} agreement between metrics (mean {self.mean():.2f})",
                  " " * w + "".join(f"{m:>{w + 1}}" for m in self.metrics)]
        lines += [f"{m:<{w}}" + "".join(f"{float(c):>{w + 1}.2f}" for c in row) for m, row in zip(self.metrics, self.matrix)]
        return "\n".join(lines)

    __str__ = table


@metric(higher_is_better=True, category="agreement")
def metric_agreement(scores, higher_is_better: dict, method: str = "kendall", methods=None,
                     metrics=None) -> Agreement:
    """How consistently the metrics rank the explanation methods (Vandersmissen & Oramas 2024).

    Rank the methods under each metric (:func:`rank_methods`), then for every two metrics the rank
    correlation of their rankings: Kendall's tau-b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)) over
    the pairs of methods (concordant, discordant, all, tied in each), or Spearman's rho = the
    Pearson correlation of the ranks. Higher means the metrics agree more. Returns an
    :class:`Agreement` (``print`` it for a table).
    """
    check_choice("method", method, ("kendall", "spearman"))
    methods, metrics, table, better = _table(scores, higher_is_better, methods, metrics)
    ranks = _ranks(table, better)
    matrix = (_kendall if method == "kendall" else _spearman)(ranks)
    return Agreement(methods, metrics, ranks.float(), matrix.float(), method)
