"""Figures of the interpretable-by-design models (:mod:`xai_lab.design`): the "this looks like that"
explanation of a prototype network (Chen et al. 2019, Fig. 1 and the local analysis of their code).

matplotlib is imported when a figure is drawn (:func:`xai_lab.viz.pyplot`), not with this module.
"""
from __future__ import annotations

import torch

from ..checks import check_fraction, check_images, check_int, images_of
from ..design.prototypes import PrototypeNet, similarity_maps
from ..hooks import frozen
from . import grey, heat_rgba, np_image, pyplot

__all__ = ["this_looks_like_that"]


def _top_box(heatmap: torch.Tensor, quantile: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (exclusive ends) around the pixels of ``heatmap (H, W)`` at or above its
    ``quantile``: ProtoPNet's high-activation box."""
    ys, xs = (heatmap >= torch.quantile(heatmap.flatten(), quantile)).nonzero(as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _box(ax, box, colour: str) -> None:
    from matplotlib import patheffects
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    rect = Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.5)
    rect.set_path_effects([patheffects.withStroke(linewidth=3, foreground="black")])  # readable on any colour
    ax.add_patch(rect)


def this_looks_like_that(model: PrototypeNet, x: torch.Tensor, data, k: int = 3, label: int | None = None,
                         quantile: float = 0.95, class_names=None, size: float = 2.0):
    """"This looks like that" (Chen et al. 2019): why a pushed :class:`PrototypeNet` classifies ``x``.

    One row per prototype among the ``k`` most activated by ``x`` (largest similarity
    ``log((d + 1) / (d + 1e-4))``, ties to the lower index), four panels each: the prototype (its source training image
    cropped to the box of its own upsampled similarity map at or above ``quantile``, the
    high-activation region), the source image with the patch's receptive field (yellow) and that
    box (cyan), ``x`` as it is with its high-activation box (cyan): where it matched, and the
    prototype's upsampled similarity map over a greyscale ``x`` (:func:`xai_lab.viz.heat_rgba`). Titles give the similarity s_j, the class-connection weight ``W[c, j]`` of the
    predicted class c and the points ``s_j W[c, j]`` it adds to c's logit.

    Args:
        model: a pushed PrototypeNet (:func:`xai_lab.design.push`).
        x: one image ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        data: the images (or Flowers) the model was pushed on (``model.push_image`` indexes them).
        label: the true class, shown in the title if given.
    Returns the matplotlib Figure (``4 k`` axes).
    """
    if not isinstance(model, PrototypeNet):
        raise TypeError(f"model must be a PrototypeNet, got {type(model).__name__}")
    x = check_images(x.unsqueeze(0) if isinstance(x, torch.Tensor) and x.dim() == 3 else x)
    if len(x) != 1:
        raise ValueError(f"x must be one image (3, H, W) or (1, 3, H, W), got shape {tuple(x.shape)}")
    k = check_int("k", k)
    if k > model.num_prototypes:
        raise ValueError(f"k must be <= the number of prototypes ({model.num_prototypes}), got {k}")
    quantile = check_fraction("quantile", quantile, open_low=False)
    if label is not None and check_int("label", label, 0) >= model.num_classes:
        raise ValueError(f"label must be a class index < {model.num_classes}, got {label!r}")
    source = images_of(data)
    if (model.push_image < 0).any():
        raise ValueError("model must be pushed first (design.push(model, train_data)): push_image holds -1")
    if int(model.push_image.max()) >= len(source):
        raise ValueError(f"data must be the images the model was pushed on (at least "
                         f"{int(model.push_image.max()) + 1}), got {len(source)} images")
    with frozen(model), torch.no_grad():
        out = model.inspect(x)
    pred = int(out.logits[0].argmax())
    sims = out.similarities[0]
    top = sims.argsort(descending=True, stable=True)[:k].tolist()
    maps = similarity_maps(model, x)[0]  # (P, H, W)
    own = similarity_maps(model, source[model.push_image[top]])  # each prototype on its source image
    names = class_names or [f"class {c}" for c in range(model.num_classes)]
    plt = pyplot()
    fig, axes = plt.subplots(k, 4, figsize=(4.4 * size, k * size + 0.6), squeeze=False)
    for row, j in enumerate(top):
        img = source[model.push_image[j]]
        x0, y0, x1, y1 = _top_box(own[row, j], quantile)
        axes[row, 0].imshow(np_image(img[:, y0:y1, x0:x1]))
        axes[row, 0].set_title(f"prototype {j} ({names[int(model.prototype_class[j])]})", fontsize=8)
        axes[row, 1].imshow(np_image(img))
        _box(axes[row, 1], model.push_box[j].tolist(), "yellow")
        _box(axes[row, 1], (x0, y0, x1, y1), "cyan")
        axes[row, 1].set_title(f"from training image {int(model.push_image[j])}", fontsize=8)
        box = _top_box(maps[j], quantile)
        axes[row, 2].imshow(np_image(x[0]))
        _box(axes[row, 2], box, "cyan")
        axes[row, 2].set_title("this image", fontsize=8)
        axes[row, 3].imshow(grey(x[0]))
        axes[row, 3].imshow(heat_rgba(maps[j]))
        _box(axes[row, 3], box, "cyan")
        w = float(model.last.weight.detach()[pred, j])
        axes[row, 3].set_title(f"s={float(sims[j]):.2f} x w={w:.2f} = {float(sims[j]) * w:.2f}", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([]); ax.set_yticks([])
    truth = f", true: {names[label]}" if label is not None else ""
    fig.suptitle(f"predicted: {names[pred]} (logit {float(out.logits[0, pred]):.2f}){truth}", fontsize=10)
    fig.tight_layout()
    return fig
