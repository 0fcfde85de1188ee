"""Explanation methods for the explorers: the ``methods`` argument (names of
:data:`xai_lab.explain.METHODS`, a student's own functions, or both) and one map computed with its
cost (passes through the model, seconds), cached per (method, image, target, foil, layer)."""
from __future__ import annotations

import inspect
import time

import torch
from torch import nn

from ..explain import METHODS, count_passes
from ..explain.base import Contrast
from ..explain.contrastive import NOT_CONTRASTIVE, contrastive
from ..hooks import frozen

__all__ = ["CAM_FAMILY", "parse_methods", "check_options", "takes", "layer_names", "MapCache"]

CAM_FAMILY = ("cam", "grad_cam", "grad_cam_pp")


def parse_methods(methods, default) -> dict:
    """``{label: (function, reference name or None)}`` from ``methods``: None (``default``), a name
    of ``explain.METHODS``, a function ``f(model, x, target, **kw) -> (N, H, W)``, a list of
    those, or a dict ``{label: name or function}``."""
    if methods is None:
        methods = list(default)
    if isinstance(methods, str) or callable(methods):
        methods = [methods]
    if isinstance(methods, (list, tuple)):
        methods = {(m if isinstance(m, str) else getattr(m, "__name__", f"method {i}")): m
                   for i, m in enumerate(methods)}
    if not isinstance(methods, dict):
        raise TypeError(f"methods must be a method name, a function, a list of them or a dict "
                        f"{{label: name or function}}, got {type(methods).__name__}")
    if not methods:
        raise ValueError("methods must name at least one method, got an empty collection")
    out = {}
    for label, m in methods.items():
        if isinstance(m, str):
            if m not in METHODS:
                raise ValueError(f"methods must hold names of explain.METHODS {sorted(METHODS)} or functions, "
                                 f"got {m!r}")
            out[str(label)] = (METHODS[m], m)
        elif callable(m):
            out[str(label)] = (m, next((k for k, f in METHODS.items() if f is m), None))
        else:
            raise TypeError(f"methods[{label!r}] must be a method name or a function "
                            f"f(model, x, target, **kw) -> (N, H, W), got {type(m).__name__}")
    return out


def check_options(options, methods: dict) -> dict:
    """``options`` ``{method label: {keyword: value}}`` checked against ``methods``, as a new dict."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict {{method label: {{keyword: value}}}}, got {type(options).__name__}")
    options = dict(options or {})
    unknown = set(options) - set(methods)
    if unknown:
        raise ValueError(f"options has entries for methods not in methods: {sorted(unknown)}")
    return options


def takes(fn, parameter: str, any_keyword: bool = True) -> bool:
    """Whether ``fn`` accepts the keyword ``parameter`` (or, with ``any_keyword``, any keyword)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return parameter in params or any_keyword and any(p.kind is p.VAR_KEYWORD for p in params.values())


def layer_names(model: nn.Module) -> list:
    """Layers to offer: the modules of ``model.features`` without children (Flower CNNs, VGG), else
    every Conv2d and ReLU of the model; the last one is the default layer of the CAM family."""
    features = getattr(model, "features", None)
    root, prefix = (features, "features.") if isinstance(features, nn.Module) else (model, "")
    names = [prefix + n for n, m in root.named_modules() if n and not list(m.children())]
    if not isinstance(features, nn.Module):
        names = [n for n in names if isinstance(model.get_submodule(n), (nn.Conv2d, nn.ReLU))]
    if not names:
        raise ValueError(f"model must have conv layers to explain at (a `features` stack or Conv2d "
                         f"modules), found none in a {type(model).__name__}")
    return names


class MapCache:
    """Maps of one model over images ``x``, computed on demand and kept: ``get(label, i, target,
    foil, layer) -> (map (H, W), Passes, seconds)``."""

    def __init__(self, model, x, methods: dict, options: dict):
        self.model, self.x, self.methods, self.options, self.store = model, x, methods, options, {}

    def uses_layer(self, label: str) -> bool:
        fn, name = self.methods[label]
        return name in CAM_FAMILY if name is not None else takes(fn, "layer")

    def contrastive_ok(self, label: str) -> bool:
        return self.methods[label][1] not in NOT_CONTRASTIVE

    def get(self, label, i, target, foil=None, layer=None):
        """The map of method ``label`` on image ``i`` (``layer``: for the CAM family; default the
        last of :func:`layer_names`), its passes and seconds; computed the first time only."""
        if self.uses_layer(label) and layer is None:
            layer = layer_names(self.model)[-1]
        layer = layer if self.uses_layer(label) else None
        key = (label, i, target, foil, layer)
        if key not in self.store:
            self.store[key] = self.compute(label, i, target, foil, layer)
        return self.store[key]

    def compute(self, label, i, target, foil, layer):
        fn, name = self.methods[label]
        kw = dict(self.options.get(label, {}))
        if layer is not None:
            kw["layer"] = layer
        if takes(fn, "progress", any_keyword=False):
            kw.setdefault("progress", True)
        x = self.x[i:i + 1]
        with frozen(self.model), count_passes(self.model) as passes:  # the model back as it came
            t0 = time.perf_counter()
            if foil is None:
                maps = fn(self.model, x, target, **kw)
            elif name is not None:
                maps = contrastive(self.model, x, target, foil, method=name, **kw)
            else:  # a student's function gets the difference y_target - y_foil as a callable target
                maps = fn(self.model, x, Contrast(target, foil), **kw)
            seconds = time.perf_counter() - t0
        maps = torch.as_tensor(maps).detach().float().cpu()
        if maps.dim() == 3 and len(maps) == 1:
            maps = maps[0]
        if tuple(maps.shape) != tuple(x.shape[-2:]):
            raise ValueError(f"method {label!r} must return a map (1, H, W) = (1, {x.shape[-2]}, {x.shape[-1]}) "
                             f"for one image, got shape {tuple(maps.shape)}")
        return maps, passes, seconds
