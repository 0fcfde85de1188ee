"""The dissection explorer (01_interpretation): a layer and a unit, its top images with the
thresholded unit mask, its best concept and IoU (Network Dissection), its best formula (compositional
explanations)."""
from __future__ import annotations

import ipywidgets as W
import torch
from torch import nn

from ..checks import check_fraction, check_int, images_of
from ..hooks import frozen, resolve_layer
from ..viz import np_image
from .base import Explorer, default_model, dropdown, mosaic, sample, shaded
from .methods import layer_names

__all__ = ["dissection_explorer", "DissectionExplorer"]


def dissection_explorer(model=None, data=None, layer=None, layers=None, n: int = 200, top: int = 6,
                        quantile: float = 0.005):
    """An explorer of Network Dissection (Bau et al. 2017) and compositional explanations (Mu &
    Andreas 2020): pick a layer and move the unit slider; see the unit's ``top`` images as they are,
    below them the unit's thresholded mask (yellow outline, P(a > T) = ``quantile``; the rest
    darkened) and, below, the mask of its best concept (cyan); the IoU of that concept, whether the
    unit is a detector, and the best formula over concepts (AND / OR / AND NOT) with its IoU.

    Args:
        model: a CNN (default: the shipped ``"single"`` flower CNN); given back as it came.
        data: a probe set with concept masks, e.g. ``data.flowers(...)`` (default: ``n`` test flowers).
        layer: the layer shown first; ``layers`` the layers offered (default: the ReLUs of
            ``model.features``, else its modules).
    A layer is dissected once (a progress bar the first time); a unit's formula is searched when the
    unit is first shown; both are kept.
    """
    return DissectionExplorer(model, data, layer, layers, n, top, quantile)


class DissectionExplorer(Explorer):
    """See :func:`dissection_explorer`."""

    def __init__(self, model, data, layer, layers, n, top, quantile):
        self.model = default_model(model, "single")
        self.data = sample(data, check_int("n", n), "single", seed=1)
        if not all(hasattr(self.data, a) for a in ("concepts", "concept_names", "concept_categories")):
            raise TypeError(f"data must be a probe set with concept masks (concept_names, concept_categories, "
                            f"concept_maps or concepts), e.g. data.flowers(...), got {type(self.data).__name__}")
        self.top, self.quantile = check_int("top", top), check_fraction("quantile", quantile)
        if layers is None:
            names = layer_names(self.model)
            layers = [n for n in names if isinstance(self.model.get_submodule(n), nn.ReLU)] or names
        elif isinstance(layers, (list, tuple)) and layers:
            layers = [resolve_layer(self.model, m)[0] for m in layers]
        else:
            raise TypeError(f"layers must be a non-empty list of layer names, got {layers!r}")
        layer = layers[-1] if layer is None else resolve_layer(self.model, layer)[0]
        if layer not in layers:
            layers = [*layers, layer]
        self.dissections, self.pictures, self.formulas = {}, {}, {}
        super().__init__("dissection", {
            "layer": dropdown(layers, layer, description="layer"),
            "unit": W.IntSlider(value=0, min=0, max=1, description="unit")})
        self.update()

    def dissection(self, layer):
        """``(Dissection, activations (N, K, h, w))`` of ``layer`` over the probe set, computed once."""
        from ..interpret import dissect
        from ..interpret.probe import activation_batches

        if layer not in self.dissections:
            d = dissect(self.model, self.data, layer, self.quantile, progress=True)
            with frozen(self.model):
                acts = torch.cat([a[layer] for _, a in activation_batches(
                    self.model, images_of(self.data), layer, 64, True, "activations")])
            self.dissections[layer] = d, acts
        return self.dissections[layer]

    def unit_masks(self, layer, unit, index):
        """``(n, H, W)`` bool: the thresholded masks M = [up(A) > T] of ``unit`` on images ``index``
        (from the kept activations, as ``interpret.unit_masks`` computes them)."""
        from ..interpret.concepts import unit_pixels

        d, acts = self.dissection(layer)
        a, size = acts[index][:, [unit]], self.data.concepts.shape[-2:]
        b, _, pix = unit_pixels(a, d.thresholds[[unit]], size)
        masks = torch.zeros(len(a), size[0] * size[1], dtype=torch.bool)
        masks[b, pix] = True
        return masks.view(len(a), *size)

    def formula(self, layer, unit):
        """The best formula of ``unit`` (beam search on its masks over the whole probe set)."""
        from ..interpret import compose

        return compose(self.unit_masks(layer, unit, slice(None)), self.data.concepts, self.data.concept_names)

    def draw(self):
        layer, unit = self.controls["layer"].value, self.controls["unit"].value
        d, acts = self.dissection(layer)
        last = len(d.thresholds) - 1
        if self.controls["unit"].max != last or unit > last:
            unit = min(unit, last)
            self.set_quietly(self.controls["unit"], max=last, value=unit)
        key = (layer, unit)
        if key not in self.pictures:  # its top images by maximum activation: raw, unit mask, best concept's mask
            top = acts[:, unit].flatten(1).amax(1).argsort(descending=True, stable=True)[:self.top]
            images, c = images_of(self.data)[top], int(d.labels[unit])
            masks, concept = self.unit_masks(layer, unit, top), self.data.concepts[top, c]
            self.pictures[key] = mosaic(
                [[np_image(img) for img in images],
                 [shaded(img, m, (1, 1, 0)) for img, m in zip(images, masks)],
                 [shaded(img, m, (0, 1, 1)) for img, m in zip(images, concept)]],
                [[f"image {j}" for j in top.tolist()], [f"unit {unit}"] * len(top),
                 [d.concept_names[c]] * len(top)], scale=2)
        if key not in self.formulas:
            self.formulas[key] = self.formula(layer, unit)
        f, c = self.formulas[key], int(d.labels[unit])
        best = ", ".join(f"{u} ({d.concept_names[int(d.labels[u])]} {float(d.best_iou[u]):.2f})" for u in d.top(5).tolist())
        text = (f"<b>{layer}</b> unit <b>{unit}</b> (threshold T = {float(d.thresholds[unit]):.4g}): best concept "
                f"<b>{d.concept_names[c]}</b> ({d.concept_categories[c]}), IoU {float(d.best_iou[unit]):.3f}, "
                f"{'a detector' if bool(d.detectors[unit]) else 'not a detector'} (IoU > {d.iou_threshold})"
                f"<br>best formula: <b>{f.formula}</b>, IoU {f.iou:.3f}"
                f"<br>layer: {int(d.detectors.sum())} of {last + 1} units are detectors; best units: {best}")
        return self.pictures[key], text
