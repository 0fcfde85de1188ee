"""What happens inside a model: one mechanism to tap layers, and the model given back as it came.

Every method of the library looks inside a model through :func:`taps`: a forward hook (or, for a
layer's *input*, a forward pre-hook) on each requested layer, live only inside a ``with`` block and
removed on exit, also when the block raises. A :class:`Tap` keeps what its layer gave, in one of
three modes:

- ``"copy"``: a detached copy (later in-place operations, ResNet's ``out += identity``, cannot
  change it), and, with ``gradients=True``, the gradient that reaches the output in a backward
  (``tensor.register_hook`` on the output, as pytorch-grad-cam does: module backward hooks break
  on in-place operations);
- ``"graph"``: the tensor itself, still in the autograd graph, so a loss can be built on it (the
  forward goes on from a copy, so later in-place operations cannot change it);
- ``"leaf"``: a detached leaf that requires grad (in grad mode); the forward goes on from a copy of
  it, so a backward from the output stops at the layer (Grad-CAM needs nothing below it).

With ``stop=True`` the forward ends as soon as every tap has a value (:class:`StopForward`, caught
by :func:`run`), which saves the rest of the forward. The helpers the methods use are built on it:
:func:`capture` (activations and gradients by name), :func:`forward_to` (activations of some layers,
running only as far as needed), :func:`input_of` (a layer's input), :func:`count_passes` (forward and
backward passes through a model); :func:`edited` replaces a layer's output by a function of it
(units switched off). :func:`frozen` (eval mode, no parameter gradients) and
:func:`swapped` (stand-in modules for a call) give the model back exactly as it was.

    >>> with capture(model, "features.12") as cap:
    ...     model(x)[:, 3].sum().backward()
    >>> cap.activations["features.12"].shape, cap.gradients["features.12"].shape
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_choice, check_model

__all__ = ["taps", "Tap", "run", "StopForward", "capture", "Captured", "forward_to", "input_of",
           "count_passes", "Passes", "frozen", "swapped", "replaced", "StandIn", "edited",
           "resolve_layer", "resolve_layers"]


# ------------------------------------------------------------------------------------------------
# layers by name
# ------------------------------------------------------------------------------------------------
def resolve_layer(model: nn.Module, layer) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` for ``layer`` given as a module of ``model`` or its dotted name."""
    check_model(model)
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


# ------------------------------------------------------------------------------------------------
# the one tap mechanism
# ------------------------------------------------------------------------------------------------
class StopForward(Exception):
    """Raised inside a forward to end it early (by a tap with ``stop=True``); :func:`run` catches it."""


class Tap:
    """What one layer gave while tapped: ``value`` (its output, or its input for ``at="input"``),
    ``gradient`` (``d loss / d value`` after a backward, with ``gradients=True``) and ``calls``.

    A module called several times in one forward keeps its last value (``once=True``: a
    ValueError at the second call instead).
    """

    def __init__(self, name: str, mode: str = "copy", gradients: bool = False, once: bool = False):
        self.name, self.mode, self.gradients, self.once = name, mode, gradients, once
        self.value, self.gradient, self.calls = None, None, 0

    def _store_gradient(self, grad):
        self.gradient = grad.detach()

    def take(self, tensor):
        """Record ``tensor``; returns what the forward should go on with (``None``: unchanged)."""
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"layer {self.name!r} gave {type(tensor).__name__}, expected a Tensor")
        if self.once and self.calls:
            raise ValueError(f"layer {self.name!r} ran more than once in one forward (a reused module): "
                             f"choose a layer that runs once")
        self.calls += 1
        if self.mode == "leaf":
            self.value = tensor.detach().requires_grad_(torch.is_grad_enabled())
            return self.value.clone()
        self.value = tensor.detach().clone() if self.mode == "copy" else tensor
        if self.gradients and tensor.requires_grad:
            tensor.register_hook(self._store_gradient)
        return tensor.clone() if self.mode == "graph" else None

    def require(self) -> torch.Tensor:
        """``value``, or a ValueError naming the layer if it did not run."""
        if self.value is None:
            raise ValueError(f"layer {self.name!r} did not run in the model's forward")
        return self.value


@contextmanager
def taps(model: nn.Module, layers, mode: str = "copy", at: str = "output", gradients: bool = False,
         once: bool = False, stop: bool = False):
    """A :class:`Tap` on each of ``layers`` while in the block; yields ``{name: Tap}``.

    Args:
        layers: a module of ``model``, a dotted name, or a list of them.
        mode: ``"copy"``, ``"graph"`` or ``"leaf"`` (see the module docstring).
        at: ``"output"`` (default) or ``"input"`` (the first positional input, before the module
            runs, so before an in-place ReLU changes it).
        gradients: also record the gradient reaching each value in a backward.
        once: a module that runs twice in one forward raises a ValueError.
        stop: end the forward (:class:`StopForward`) once every tap has a value; run the model
            with :func:`run`.
    """
    check_choice("mode", mode, ("copy", "graph", "leaf"))
    check_choice("at", at, ("output", "input"))
    named = resolve_layers(model, layers)
    tapped = {name: Tap(name, mode, gradients, once) for name in named}
    handles = []

    def stop_when_done():
        if stop and all(t.calls for t in tapped.values()):
            raise StopForward

    def on_output(tap):
        def hook(module, inputs, output):
            replacement = tap.take(output)
            stop_when_done()
            return replacement
        return hook

    def on_input(tap):
        def hook(module, inputs):
            replacement = tap.take(inputs[0] if inputs else None)
            stop_when_done()
            return None if replacement is None else (replacement, *inputs[1:])
        return hook

    try:
        for name, module in named.items():
            if at == "output":
                handles.append(module.register_forward_hook(on_output(tapped[name])))
            else:
                handles.append(module.register_forward_pre_hook(on_input(tapped[name])))
        yield tapped
    finally:
        for h in handles:
            h.remove()


@contextmanager
def edited(model: nn.Module, layer, function):
    """The output of ``layer`` replaced by ``function(output)`` while in the block (a forward hook,
    removed on exit, also when the block raises). Yields the layer's dotted name.

        >>> with edited(model, "features.14", lambda a: a * keep[:, :, None, None]):
        ...     logits = model(x)  # channels with keep == 0 switched off
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    name, module = resolve_layer(model, layer)
    handle = module.register_forward_hook(lambda _module, _inputs, output: function(output))
    try:
        yield name
    finally:
        handle.remove()


def run(model: nn.Module, *args, **kwargs):
    """``model(*args, **kwargs)``, ended early without error by a tap with ``stop=True``
    (then returns ``None``)."""
    try:
        return model(*args, **kwargs)
    except StopForward:
        return None


# ------------------------------------------------------------------------------------------------
# built on taps
# ------------------------------------------------------------------------------------------------
class Captured:
    """What :func:`capture` recorded: ``activations`` and ``gradients`` by layer name, and how many
    times each layer ran (``calls``; a module reused in one forward keeps its last output)."""

    def __init__(self, tapped: dict):
        self._taps = tapped

    @property
    def activations(self) -> dict:
        return {n: t.value for n, t in self._taps.items() if t.calls}

    @property
    def gradients(self) -> dict:
        return {n: t.gradient for n, t in self._taps.items() if t.gradient is not None}

    @property
    def calls(self) -> dict:
        return {n: t.calls for n, t in self._taps.items() if t.calls}

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
            built on them (the forward goes on from a copy: later in-place operations of the
            model do not change them).

    Yields:
        A :class:`Captured` with dicts ``activations`` and ``gradients`` keyed by layer name.
    """
    with taps(model, layers, mode="copy" if detach else "graph", gradients=True) as tapped:
        yield Captured(tapped)


def forward_to(model: nn.Module, x: torch.Tensor, layers, detach: bool = True) -> dict:
    """Outputs of ``layers`` for ``x`` by name, running the model only as far as they need.

    Stopping right after the last requested layer saves the rest of the forward and keeps the
    tensors safe from later in-place operations. A module that runs several times before the
    others have run keeps its last output.
    """
    with taps(model, layers, mode="copy" if detach else "graph", stop=True) as tapped:
        run(model, x)
    missing = [n for n, t in tapped.items() if not t.calls]
    if missing:
        raise ValueError(f"layers {missing} did not run in the model's forward pass")
    return {n: t.value for n, t in tapped.items()}


def input_of(model: nn.Module, layer, x: torch.Tensor) -> torch.Tensor:
    """The input of ``layer`` for ``x`` (before the layer runs), still in the graph; the forward
    stops there."""
    with taps(model, layer, mode="graph", at="input", stop=True) as tapped:
        run(model, x)
    return next(iter(tapped.values())).require()


@dataclass
class Passes:
    """Work done through a model: images sent forward / whose gradient came back, and calls."""
    forward: int = 0
    backward: int = 0
    forward_calls: int = 0
    backward_calls: int = 0

    def __str__(self):
        return (f"{self.forward} images forward in {self.forward_calls} calls, "
                f"{self.backward} images backward in {self.backward_calls} calls")


@contextmanager
def count_passes(model: nn.Module):
    """Count the forward and backward passes through ``model`` while in the block.

    A forward hook on the model counts each call and its images; a backward is counted when the
    gradient reaches the model's output or, for a backward that starts inside the model (from a
    unit), when it reaches the model's input. Partial forward passes that stop inside the model
    are not counted.

        >>> with count_passes(model) as n:
        ...     explain.occlusion(model, x, 3)
        >>> n.forward, n.backward
    """
    check_model(model)
    counts = Passes()
    handles = []

    def count(grad):
        counts.backward += len(grad)
        counts.backward_calls += 1

    def on_forward(module, inputs, output):
        first = output if isinstance(output, torch.Tensor) else inputs[0]
        counts.forward += len(first)
        counts.forward_calls += 1
        pending = [0]  # backward passes of this call counted at the output, not yet at the input

        def at_output(grad):
            pending[0] += 1
            count(grad)

        def at_input(grad):
            if pending[0]:
                pending[0] -= 1
            else:
                count(grad)

        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(at_output)
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if x is not None and x.requires_grad:
            handles.append(x.register_hook(at_input))  # removed on exit: x may be the caller's

    handles.append(model.register_forward_hook(on_forward))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


# ------------------------------------------------------------------------------------------------
# the model given back as it came
# ------------------------------------------------------------------------------------------------
@contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients inside the block; every module's train/eval mode and
    every parameter's ``requires_grad`` are restored on exit, also when the block raises."""
    check_model(model)
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


@contextmanager
def swapped(model: nn.Module, replacement):
    """Put ``replacement(module)`` (when not None) in place of each submodule while in the block.

    One replacement per module object, so a module registered under several names, or called
    several times, stays one module. Yields the stand-ins; the originals are put back on exit,
    also on error.
    """
    done, memo = [], {}
    try:
        for parent in list(model.modules()):
            for key, child in list(parent._modules.items()):
                if child is None:
                    continue
                if id(child) not in memo:
                    memo[id(child)] = replacement(child)
                if memo[id(child)] is not None:
                    parent._modules[key] = memo[id(child)]
                    done.append((parent, key, child))
        yield [m for m in memo.values() if m is not None]
    finally:
        for parent, key, child in reversed(done):
            parent._modules[key] = child


class StandIn(nn.Module):
    """Stands in for a module during :func:`replaced`: computes ``function(input)`` and counts its
    ``calls``."""

    def __init__(self, function):
        super().__init__()
        self.function, self.calls = function, 0

    def forward(self, x):
        self.calls += 1
        return self.function(x)


@contextmanager
def replaced(model: nn.Module, kind, function):
    """Every module of type ``kind`` computes ``function(input)`` instead while in the block
    (a :class:`StandIn` put in its place with :func:`swapped`; a module called several times, or
    an in-place one, is replaced at every call). Yields the stand-ins, each with its ``calls``.

        >>> with replaced(model, nn.ReLU, lambda f: MyReLU.apply(f)):
        ...     model(x).sum().backward()
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    with swapped(model, lambda m: StandIn(function) if isinstance(m, kind) else None) as stand_ins:
        yield stand_ins
