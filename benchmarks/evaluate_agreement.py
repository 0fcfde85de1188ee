"""Benchmark rows for ``xai_lab.evaluate.agreement`` (called by ``benchmarks/bench_evaluate.py``).

``metric_agreement`` (Kendall tau-b between the metrics' rankings of the methods) on a table of
``N_METHODS`` methods x ``N_METRICS`` metrics (uniform scores rounded to 0.1, so some methods tie;
seed 0; the direction of each metric drawn too), given as ``{metric: {method: score}}``, vs the loop
one would write with SciPy: ``scipy.stats.rankdata`` of each metric's scores (negated where higher
is better) and ``scipy.stats.kendalltau`` (tau-b) of every pair of metrics. No model runs: no floor,
goal 10x the peer's speed; each call timed over ``NUMBER`` runs.
"""
from __future__ import annotations

import numpy as np
import torch

from xai_lab import evaluate as V

N_METHODS, N_METRICS, NUMBER = 8, 13, 20


def scipy_agreement(scores, higher_is_better):
    from scipy.stats import kendalltau, rankdata
    metrics = list(scores)
    methods = list(scores[metrics[0]])
    ranks = [rankdata([-scores[m][k] if higher_is_better[m] else scores[m][k] for k in methods]) for m in metrics]
    out = np.empty((len(metrics), len(metrics)))
    for i in range(len(metrics)):
        for j in range(len(metrics)):
            out[i, j] = kendalltau(ranks[i], ranks[j]).statistic
    return out


def rows(ctx, repeat):
    best_of, agreement, clock = ctx["best_of"], ctx["agreement"], ctx["clock"]
    g = torch.Generator().manual_seed(0)
    table = torch.rand(N_METHODS, N_METRICS, generator=g).round(decimals=1)
    better = torch.rand(N_METRICS, generator=g) < 0.5
    metrics, methods = [f"metric {j}" for j in range(N_METRICS)], [f"method {i}" for i in range(N_METHODS)]
    scores = {m: {k: float(table[i, j]) for i, k in enumerate(methods)} for j, m in enumerate(metrics)}
    higher = {m: bool(b) for m, b in zip(metrics, better)}
    (ours_t, peer_t), (res, ref) = best_of([lambda: V.metric_agreement(scores, higher),
                                            lambda: scipy_agreement(scores, higher)], repeat, clock, NUMBER)
    return [{"metric": f"metric_agreement (kendall, {N_METHODS} x {N_METRICS})", "ours": ours_t, "floor": None,
             "peer": peer_t, "peer_name": "scipy kendalltau loop", "values": agreement(res.matrix, ref)}]
