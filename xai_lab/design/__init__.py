"""Interpretable by design: models that explain themselves (the lecture's fourth part, 04_interpretable_by_design).

One file per idea:

- ``bottleneck.py``: concept bottleneck models (Koh et al. 2020): x -> concepts -> label, trained
  independently, sequentially or jointly; test-time intervention on the concepts.
- ``prototypes.py``: prototype networks (Chen et al. 2019, "This looks like that"): similarity to
  learned prototypes, cluster and separation costs, push onto training patches.
- ``inconsistency.py``: feature inconsistency (Wang et al. 2021): a model that relies on a cue a
  person cannot see, evidence of it, and a remedy.

Public names are imported from their file on first use, so
``from xai_lab import design`` stays light.
"""
from __future__ import annotations

import importlib

# every public name and its file (tests/test_layout.py checks it against each file's __all__;
# ``build`` and ``skeleton`` exist in every file: models.SPECS names them by file)
_WHERE = {
    "ConceptBottleneck": "bottleneck", "CONTINUOUS": "bottleneck", "MODES": "bottleneck",
    "JOINT_LAMBDA": "bottleneck", "concept_loss": "bottleneck", "joint_loss": "bottleneck",
    "train_concepts": "bottleneck", "train_head": "bottleneck", "train_bottleneck": "bottleneck",
    "concept_percentiles": "bottleneck", "concept_outputs": "bottleneck", "intervene": "bottleneck",
    "intervention_curve": "bottleneck", "concept_accuracy": "bottleneck",
    "PrototypeNet": "prototypes", "PrototypeOutput": "prototypes", "Pushed": "prototypes",
    "patch_distances": "prototypes", "prototype_similarity": "prototypes", "cluster_cost": "prototypes",
    "separation_cost": "prototypes", "last_layer_l1": "prototypes", "prototype_loss": "prototypes",
    "train_prototypes": "prototypes", "STAGES": "prototypes", "push": "prototypes", "receptive_field": "prototypes",
    "similarity_maps": "prototypes", "prototype_part_overlap": "prototypes",
    "low_pass": "inconsistency", "binomial_kernel": "inconsistency", "swap_cue": "inconsistency",
    "other_cues": "inconsistency", "scramble_cue": "inconsistency", "Reliance": "inconsistency",
    "reliance": "inconsistency", "train_remedy": "inconsistency", "REMEDIES": "inconsistency",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
