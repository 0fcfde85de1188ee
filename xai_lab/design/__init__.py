"""Interpretable by design: models that explain themselves (the lecture's fourth part, 04_interpretable_by_design).

One file per idea:

- ``bottleneck.py``: concept bottleneck models (Koh et al. 2020): x -> concepts -> label, trained
  independently, sequentially or jointly; test-time intervention on the concepts.
- ``prototypes.py``: prototype networks (Chen et al. 2019, "This looks like that"): similarity to
  learned prototypes, cluster and separation costs, push onto training patches.
- ``inconsistency.py``: feature inconsistency (Wang et al. 2021): a model that relies on a cue a
  person cannot see, evidence of it, and a remedy.

Public names are imported from their file on first use (each file's ``__all__``), so
``from xai_lab import design`` stays light.
"""
from __future__ import annotations

import importlib

_MODULES = ("bottleneck", "prototypes", "inconsistency")


def _module(name: str):
    return importlib.import_module(f".{name}", __name__)


def __getattr__(name: str):
    for mod in _MODULES:
        try:
            module = _module(mod)
        except ModuleNotFoundError as e:  # a part not written yet
            if e.name != f"{__name__}.{mod}":
                raise
            continue
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    names = set(globals())
    for mod in _MODULES:
        try:
            names |= set(getattr(_module(mod), "__all__", ()))
        except ModuleNotFoundError:
            pass
    return sorted(names)
