"""Capturing what happens inside a model: forward activations and their gradients, by layer name.

Hooks live only inside a ``with`` block and are removed on exit, also when the block raises.
Gradients are captured with ``tensor.register_hook`` on the layer's output (as pytorch-grad-cam
does), which works with in-place operations where module backward hooks do not.

    >>> with capture(model, "features.12") as cap:
    ...     model(x)[:, 3].sum().backward()
    >>> cap.activations["features.12"].shape, cap.gradients["features.12"].shape
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["capture", "Captured", "frozen", "resolve_layer", "resolve_layers"]


@contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients inside the block; every module's train/eval mode and
    every parameter's ``requires_grad`` are restored on exit, also when the block raises."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


def resolve_layer(model: nn.Module, layer) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` for ``layer`` given as a module of ``model`` or its dotted name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            names = [n for n in modules if n][:12]
            raise ValueError(f"layer {layer!r} is not a module of the model; names look like {names}")
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
    raise TypeError(f"layer must be a module of the model or its dotted name, got {type(layer).__name__}")


def resolve_layers(model: nn.Module, layers) -> dict[str, nn.Module]:
    """``{name: module}`` for one layer or a list of layers (modules or dotted names)."""
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"layers must be a layer or a non-empty list of layers, got {layers!r}")
    return dict(resolve_layer(model, layer) for layer in layers)


@dataclass
class Captured:
    """What :func:`capture` recorded: ``activations`` and ``gradients`` by layer name, and how many
    times each layer ran (``calls``; a module reused in one forward keeps its last output)."""
    activations: dict = field(default_factory=dict)
    gradients: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)

    def __getitem__(self, name):
        return self.activations[name]


@contextmanager
def capture(model: nn.Module, layers, detach: bool = True):
    """Record the outputs of ``layers`` (and their gradients, after a backward) while in the block.

    Args:
        model: the model.
        layers: a module of ``model``, a dotted name (``"features.12"``), or a list of them.
        detach: store detached copies of the activations (default). With ``detach=False`` the
            stored activations are the outputs themselves, still in the graph, so a loss can be
            built on them (and a later in-place operation of the model changes them).

    Yields:
        A :class:`Captured` with dicts ``activations`` and ``gradients`` keyed by layer name.
    """
    named = resolve_layers(model, layers)
    cap = Captured()
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}, expected a Tensor")
            # a copy: a later in-place op (ResNet's `out += identity`) must not change what we saw
            cap.activations[name] = output.detach().clone() if detach else output
            cap.calls[name] = cap.calls.get(name, 0) + 1
            if output.requires_grad:
                def store_grad(grad):
                    cap.gradients[name] = grad.detach()
                output.register_hook(store_grad)
        return hook

    try:
        for name, module in named.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield cap
    finally:
        for h in handles:
            h.remove()
