"""One kit of argument checks for every public function of ``xai_lab``.

The same mistake gives the same exception everywhere (shared/API.md): a value of the wrong *type*
raises ``TypeError``, a value of the right type but out of range or of the wrong shape raises
``ValueError``; the message names the argument, says what was expected and shows what was given:
``"k must be an int >= 1, got 0"``. Each check returns the value in the form the caller goes on
with (``int``, ``float``, a detached tensor), so a function checks and converts in one line.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

__all__ = ["check_int", "check_float", "check_fraction", "check_choice", "check_pair", "check_model",
           "check_images", "check_baseline", "check_index", "check_units", "images_of", "device_of"]


def check_int(name: str, value, low: int = 1) -> int:
    """An int ``>= low`` (numpy and torch integers too; ``bool`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def check_float(name: str, value, low: float = -math.inf, high: float = math.inf,
                open_low: bool = False, open_high: bool = False) -> float:
    """A real number in the interval given by ``low``/``high`` (open at either end on request)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    above = low < value if open_low else low <= value
    below = value < high if open_high else value <= high
    if not (above and below) or math.isnan(value):
        bounds = [f"{'>' if open_low else '>='} {low}"] if low > -math.inf else []
        bounds += [f"{'<' if open_high else '<='} {high}"] if high < math.inf else []
        raise ValueError(f"{name} must be a number {' and '.join(bounds)}, got {value!r}")
    return value


def check_fraction(name: str, value, open_low: bool = True, open_high: bool = True) -> float:
    """A number in (0, 1) (by default), [0, 1] with ``open_low=open_high=False``, and so on."""
    return check_float(name, value, 0.0, 1.0, open_low=open_low, open_high=open_high)


def check_choice(name: str, value, options):
    """One of ``options`` (a sequence, or a dict's keys)."""
    try:
        ok = value in options
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def check_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as a pair."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_int(name, v) for v in pair)


def check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_images(x, name: str = "x") -> torch.Tensor:
    """A non-empty float batch ``(N, C, H, W)``, returned detached."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images (N, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty batch of images (N, 3, H, W), "
                         f"got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    return x.detach()


def images_of(data, name: str = "data") -> torch.Tensor:
    """The images ``(N, C, H, W)`` of a data set with ``.images``, or the tensor itself."""
    x = data if isinstance(data, torch.Tensor) else getattr(data, "images", None)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be images (N, 3, H, W) or a data set with .images, "
                        f"got {type(data).__name__}")
    if x.dim() != 4 or not x.is_floating_point() or len(x) == 0:
        raise ValueError(f"{name} must hold non-empty float images (N, C, H, W), "
                         f"got shape {tuple(x.shape)} {x.dtype}")
    return x


def check_baseline(name: str, value, x: torch.Tensor):
    """A float, or a tensor broadcast to ``x``'s shape."""
    if isinstance(value, torch.Tensor):
        try:
            return torch.broadcast_to(value.detach().to(x), x.shape)
        except RuntimeError:
            raise ValueError(f"{name} must broadcast to x's shape {tuple(x.shape)}, "
                             f"got shape {tuple(value.shape)}") from None
    return check_float(name, value)


def check_index(value, n: int, name: str, callable_ok: bool = False):
    """An int class or a LongTensor ``(n,)`` of classes (range checked against K at scoring)."""
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got dtype {value.dtype}")
        if value.dim() == 0:
            value = int(value)
        elif tuple(value.shape) != (n,):
            raise ValueError(f"{name} must be an int or a LongTensor of shape ({n},) (one class per "
                             f"image), got shape {tuple(value.shape)}")
        else:
            return value.long()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        extra = " or a callable logits -> scores" if callable_ok else ""
        raise TypeError(f"{name} must be an int class index, a LongTensor ({n},){extra}, "
                        f"got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a class index >= 0, got {value!r}")
    return int(value)


def check_units(units, k: int, name: str = "units") -> torch.Tensor:
    """Unit indices in ``[0, k)`` as a flat LongTensor (an int, a list or a tensor)."""
    units = torch.as_tensor(units).flatten()
    if units.dtype.is_floating_point or units.dtype == torch.bool or len(units) == 0:
        raise TypeError(f"{name} must be int unit indices, got {units!r}")
    if units.min() < 0 or units.max() >= k:
        raise ValueError(f"{name} must be in [0, {k}), got {units.tolist()}")
    return units.long()


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
