"""The explanation explorer (02_explanation): method x image x target class (and foil) x layer."""
from __future__ import annotations

from ..checks import check_int, images_of
from ..explain.contrastive import NOT_CONTRASTIVE
from ..hooks import resolve_layer
from ..viz import np_image
from .base import (Explorer, class_options, default_model, dropdown, heat, image_options, mosaic, outlined, predict,
                   sample)
from .methods import MapCache, check_options, layer_names, parse_methods

__all__ = ["explain_explorer", "ExplainExplorer", "DEFAULT_METHODS"]

DEFAULT_METHODS = ("saliency", "guided_backprop", "integrated_gradients", "smoothgrad", "grad_cam", "grad_cam_pp",
                   "cam", "lrp", "occlusion", "deconvnet", "rise", "lime", "by_interpretation")


def explain_explorer(model=None, data=None, methods=None, options=None, layers=None, n: int = 10):
    """An explorer of explanation methods: pick a method, an image, the class to explain (and a
    foil: "why this class and not that one?") and, for the CAM family, the layer; see the image and,
    beside it, the heatmap over its greyscale copy, the ground-truth part outlined in white, and what the method cost (images
    sent forward and backward through the model, seconds).

    Args:
        model: a classifier (default: the shipped ``"single"`` flower CNN); given back as it came.
        data: a ``Flowers`` set or images ``(N, 3, H, W)`` (default: ``n`` test flowers).
        methods: names of ``explain.METHODS``, your own functions ``f(model, x, target, **kw) ->
            (N, H, W)``, a list of both, or ``{label: name or function}``: pass your ``grad_cam``
            next to ``"grad_cam"`` and compare. A function with a ``layer`` parameter gets the layer.
        options: ``{label: {keyword: value}}`` passed to a method (e.g. ``{"occlusion": {"window": 8}}``).
        layers: the layers offered for the CAM family (default: the modules of ``model.features``).
    Each map is computed once (slow methods such as RISE and LIME show a progress bar) and kept.
    """
    return ExplainExplorer(model, data, methods, options, layers, n)


class ExplainExplorer(Explorer):
    """See :func:`explain_explorer`."""

    def __init__(self, model, data, methods, options, layers, n):
        self.model = default_model(model, "single")
        self.data = sample(data, check_int("n", n), "single")
        self.x = images_of(self.data)
        labelled = getattr(self.data, "labels", None) is not None  # by_interpretation fits on labelled data
        methods = parse_methods(methods, [m for m in DEFAULT_METHODS if labelled or m != "by_interpretation"])
        options = check_options(options, methods)
        for label, (_, name) in methods.items():  # by interpretation fits its relevant units on the data
            if name == "by_interpretation" and not {"data", "relevant"} & set(options.get(label, {})):
                if not labelled:
                    raise ValueError("methods has by_interpretation, which needs labelled data (a Flowers set) "
                                     "or options={'by_interpretation': {'relevant': ...}}")
                options[label] = {**options.get(label, {}), "data": self.data}
        if layers is None:
            layers = layer_names(self.model)
        elif isinstance(layers, (str, list, tuple)) and layers:
            layers = [resolve_layer(self.model, layer)[0] for layer in ([layers] if isinstance(layers, str) else layers)]
        else:
            raise TypeError(f"layers must be a layer name or a non-empty list of names, got {layers!r}")
        self.maps = MapCache(self.model, self.x, methods, options)
        self.probs = predict(self.model, self.x)
        classes = class_options(self.data, self.probs.shape[1])
        self.pictures = {}
        super().__init__("explain", {
            "method": dropdown(list(methods), description="method"),
            "image": dropdown(image_options(self.data, self.probs), description="image"),
            "target": dropdown(classes, int(self.probs[0].argmax()), description="class"),
            "foil": dropdown([("none", -1)] + classes, -1, description="not class"),
            "layer": dropdown(layers, layers[-1], description="layer")})
        self.update()

    def draw(self):
        c = {k: w.value for k, w in self.controls.items()}
        label, i, target = c["method"], c["image"], c["target"]
        self.controls["layer"].disabled = not self.maps.uses_layer(label)
        self.controls["foil"].disabled = not self.maps.contrastive_ok(label)
        foil = c["foil"] if c["foil"] >= 0 and self.maps.contrastive_ok(label) else None
        if foil == target:
            raise ValueError(f"foil must differ from the class explained, got {foil} for both")
        layer = c["layer"] if self.maps.uses_layer(label) else None
        hmap, passes, seconds = self.maps.get(label, i, target, foil, layer)
        gt = getattr(self.data, "gt_masks", None)
        gt = gt[i] if gt is not None else None
        key = (label, i, target, foil, layer)
        if key not in self.pictures:
            plain, why = np_image(self.x[i]), f"class {target}" + (f" not {foil}" if foil is not None else "")
            hot = heat(self.x[i], hmap, diverging=foil is not None)
            panels = [plain, hot] if gt is None else [outlined(plain, gt), outlined(hot, gt)]
            self.pictures[key] = mosaic([panels], [[f"image {i}, predicted {int(self.probs[i].argmax())}",
                                                    f"{label}: {why}"[:34]]])
        mass, note = hmap.abs(), ""
        if gt is not None:
            note = f"; share of |map| on the ground-truth part: {float((mass * gt).sum() / mass.sum().clamp(min=1e-12)):.3f}"
        if c["foil"] >= 0 and foil is None:
            note += f"<br>foil not used: {NOT_CONTRASTIVE.get(self.maps.methods[label][1], '')}"
        text = (f"<b>{label}</b> on image {i}: class {target} (p = {float(self.probs[i, target]):.3f})"
                + (f" vs foil {foil} (p = {float(self.probs[i, foil]):.3f})" if foil is not None else "")
                + (f", layer {layer}" if layer else "")
                + f"<br>cost: {passes.forward} images forward, {passes.backward} backward, {seconds:.3f} s"
                + f"<br>map: min {float(hmap.min()):.4g}, max {float(hmap.max()):.4g}{note}")
        return self.pictures[key], text
