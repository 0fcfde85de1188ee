"""A probe set streamed through a model: the activations of some layers, batch by batch.

Shared by every method of :mod:`xai_lab.interpret` that looks at a whole probe set (dissection,
unit masks, filter energies, top patches, atlas): nothing holds all activation maps at once.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_int, device_of
from ..hooks import forward_to

__all__ = ["activation_batches", "conv_maps"]


def activation_batches(model: nn.Module, images: torch.Tensor, layers, batch_size: int,
                       progress: bool, desc: str):
    """Yield ``(start, {layer name: activations (B, K, ...)})`` over ``images``, without gradients.

    Each batch runs on the model's device only as far as ``layers`` need
    (:func:`xai_lab.hooks.forward_to`); the activations come back as float32 on the CPU.
    """
    batch_size = check_int("batch_size", batch_size)
    device = device_of(model)
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, leave=False):
        with torch.no_grad():
            acts = forward_to(model, images[start:start + batch_size].to(device), layers)
        yield start, {k: v.float().cpu() for k, v in acts.items()}


def conv_maps(a: torch.Tensor, name: str) -> torch.Tensor:
    """``a`` if it is a batch of conv maps ``(N, K, h, w)``; a ValueError naming layer ``name`` else."""
    if a.dim() != 4:
        raise ValueError(f"layer {name!r} gives activations of shape {tuple(a.shape)}; "
                         f"expected conv maps (N, K, h, w)")
    return a
