"""The evaluation explorer (03_evaluation): a method and an image, its deletion / insertion / MoRF
curve, and a step slider that shows the perturbed image at step k."""
from __future__ import annotations

import ipywidgets as W
import torch

from ..checks import check_int, images_of
from ..viz import np_image, pyplot
from .base import Explorer, default_model, dropdown, image_options, png, predict, sample
from .methods import MapCache, check_options, parse_methods

__all__ = ["evaluation_explorer", "EvaluationExplorer", "CURVES"]

CURVES = ("deletion", "insertion", "morf")


def evaluation_explorer(model=None, data=None, methods=None, options=None, n: int = 10, step: int = 64,
                        region: int = 8):
    """An explorer of input-ablation curves: pick a method, an image and a curve -- deletion
    (Petsiuk 2018: the most relevant pixels set to grey, ``step`` at a time), insertion (inserted
    into a blurred copy) or MoRF (Samek 2017: ``region x region`` squares, most relevant first) --
    and move the step slider: the left panel shows the image the model sees at step k, the right
    one the probability of the predicted class along the curve, with a marker at k and the AUC.

    ``model``, ``data``, ``methods`` and ``options`` as for :func:`explain_explorer` (default: the
    shipped ``"single"`` CNN, ``n`` test flowers, Grad-CAM, saliency, integrated gradients,
    occlusion, LRP and your own functions next to them). Each map and curve is computed once.
    """
    return EvaluationExplorer(model, data, methods, options, n, step, region)


def perturbed(x, hmap, curve: str, k: int, step: int, region: int):
    """The image ``(3, H, W)`` of step ``k`` of ``curve``, by the rule of ``xai_lab.evaluate``:
    pixels (or regions) in decreasing order of the map, ties to the lower index; deletion and MoRF
    set them to 0.5, insertion takes them from ``x`` into its blurred copy."""
    from ..evaluate import blur

    (h, w), flat = x.shape[-2:], hmap.flatten()
    if curve == "morf":
        sums = hmap.view(h // region, region, w // region, region).sum((1, 3)).flatten()
        cells = (torch.arange(h)[:, None] // region * (w // region) + torch.arange(w)[None, :] // region).flatten()
        flat, limit = sums, k  # rank regions, then give each pixel its region's rank
    else:
        limit = min(k * step, h * w)
    order = flat.argsort(descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    if curve == "morf":
        rank = rank[cells]
    chosen = (rank < limit).view(1, h, w)
    if curve == "insertion":
        return torch.where(chosen, x, blur(x[None])[0])
    return x.masked_fill(chosen, 0.5)


class EvaluationExplorer(Explorer):
    """See :func:`evaluation_explorer`."""

    def __init__(self, model, data, methods, options, n, step, region):
        self.model = default_model(model, "single")
        self.data = sample(data, check_int("n", n), "single")
        self.x, self.step, self.region = images_of(self.data), check_int("step", step), check_int("region", region)
        h, w = self.x.shape[-2:]
        if h % self.region or w % self.region:
            raise ValueError(f"region must divide the images' height and width ({h} x {w}), got {self.region}")
        methods = parse_methods(methods, ("grad_cam", "saliency", "integrated_gradients", "occlusion", "lrp"))
        self.maps = MapCache(self.model, self.x, methods, check_options(options, methods))
        self.probs = predict(self.model, self.x)
        self.curves, self.pictures = {}, {}
        super().__init__("evaluation", {
            "method": dropdown(list(methods), description="method"),
            "image": dropdown(image_options(self.data, self.probs), description="image"),
            "curve": dropdown(list(CURVES), description="curve"),
            "k": W.IntSlider(value=0, min=0, max=1, description="step k")})
        self.update()

    def curve(self, label, i, name):
        """The curve of image ``i`` for the predicted class, its map and the cost of the map."""
        from .. import evaluate

        key = (label, i, name)
        if key not in self.curves:
            target = int(self.probs[i].argmax())
            hmap, _, _ = self.maps.get(label, i, target)
            x = self.x[i:i + 1]
            if name == "morf":
                c = evaluate.morf_curve(self.model, x, target, hmap[None], region=self.region, score="probability")
            else:
                c = getattr(evaluate, name)(self.model, x, target, hmap[None], step=self.step)
            self.curves[key] = (c, hmap)
        return self.curves[key]

    def draw(self):
        label, i, name, k = (self.controls[c].value for c in ("method", "image", "curve", "k"))
        c, hmap = self.curve(label, i, name)
        last = len(c.x) - 1
        if self.controls["k"].max != last or k > last:
            k = min(k, last)
            self.set_quietly(self.controls["k"], max=last, value=k)
        key = (label, i, name, k)
        if key not in self.pictures:
            plt = pyplot()
            fig, (a, b) = plt.subplots(1, 2, figsize=(6.4, 2.8), gridspec_kw={"width_ratios": [1, 1.6]})
            a.imshow(np_image(perturbed(self.x[i], hmap, name, k, self.step, self.region)))
            a.set_title(f"step {k}: {float(c.x[k]):.0%} {'inserted' if name == 'insertion' else 'removed'}", fontsize=8)
            a.set_xticks([]); a.set_yticks([])
            b.plot(c.x.numpy(), c.scores[0].numpy(), lw=1.4)
            b.plot([float(c.x[k])], [float(c.scores[0, k])], "o", color="red")
            b.set_xlabel("fraction of the image " + ("inserted" if name == "insertion" else "removed"), fontsize=8)
            b.set_ylabel(f"p(class {int(self.probs[i].argmax())})", fontsize=8)
            b.set_ylim(-0.02, 1.02)
            b.set_title(f"{name} of {label}: AUC {float(c.auc()[0]):.3f}", fontsize=9)
            b.grid(alpha=0.3)
            fig.tight_layout()
            self.pictures[key] = png(fig)
        better = "higher" if c.higher_is_better else "lower"
        text = (f"<b>{name}</b> of <b>{label}</b> on image {i}, class {int(self.probs[i].argmax())}: "
                f"AUC {float(c.auc()[0]):.4f} ({better} is better)<br>step {k} of {last}: "
                f"p = {float(c.scores[0, k]):.4f} (start {float(c.scores[0, 0]):.4f})")
        return self.pictures[key], text
