"""What every explorer shares: the :class:`Explorer` box (controls, main image, numbers, an output
for progress bars), PNG rendering (matplotlib figures; and, fast, pictures composed with numpy:
an image with a heatmap, a mask outlined, a mosaic with captions), the default model and sample.

matplotlib is imported through :func:`xai_lab.viz.pyplot` when the first picture is drawn.
"""
from __future__ import annotations

import html
import io
import time

import ipywidgets as W
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_model, images_of
from ..hooks import frozen
from ..viz import grey, heat_rgba, np_image, pyplot

__all__ = ["Explorer", "png", "heat", "outlined", "shaded", "mosaic", "default_model", "sample", "labels_of", "predict", "image_options",
           "class_options", "dropdown"]


class Explorer(W.VBox):
    """An explorer: ``controls`` (name -> ipywidget) on top, the main ``image`` (PNG), ``info``
    (numbers), and ``work`` (an Output where slow first work shows its progress bar).

    A change of any control calls :meth:`update`, which calls the subclass's ``draw()`` -> ``(png
    bytes, info html)``; results are cached by the subclass, so going back to a value is instant.
    ``seconds`` is the time the last update took (shown at the end of ``info``).
    """

    def __init__(self, name: str, controls: dict, rows=None):
        self.controls, self.name, self.seconds, self.quiet = controls, name, 0.0, False
        self.image = W.Image(format="png")
        self.image.add_class("xai-output")
        self.info, self.work = W.HTML(), W.Output()
        for key, control in controls.items():
            control.add_class(f"xai-control-{key}")
            if hasattr(control, "continuous_update"):
                control.continuous_update = False
            control.observe(self.update, names="value")
        rows = rows if rows is not None else [W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap"))]
        super().__init__([*rows, self.work, self.image, self.info])
        self.add_class("xai-explorer")
        self.add_class(f"xai-{name}")

    def update(self, change=None):
        """Redraw for the current values of the controls (skipped while ``quiet``)."""
        if self.quiet:
            return
        t0 = time.perf_counter()
        with self.work:
            try:
                picture, text = self.draw()
            except Exception as error:  # a student's function (or a choice the method rejects)
                picture, text = None, f"<b style='color:#b00'>{type(error).__name__}</b>: {html.escape(str(error))}"
            self.work.clear_output()
        if picture is not None:
            self.image.value = picture
        self.seconds = time.perf_counter() - t0
        self.info.value = f"{text}<br><small>shown in {1000 * self.seconds:.0f} ms</small>"

    def set_quietly(self, control, **traits):
        """Set traits of a control (e.g. a slider's ``max`` and ``value``) without redrawing."""
        self.quiet = True
        try:
            for name, value in traits.items():
                setattr(control, name, value)
        finally:
            self.quiet = False


def png(fig, dpi: int = 80) -> bytes:
    """The PNG bytes of a matplotlib figure (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return buf.getvalue()


def heat(image, heatmap, diverging: bool = False, alpha: float = 0.85) -> np.ndarray:
    """``heatmap (H, W)`` over a greyscale ``image (3, H, W)`` as ``(H, W, 3)`` in [0, 1], as
    :func:`xai_lab.viz.show` draws it (:func:`xai_lab.viz.heat_rgba`: min-max scaled in "inferno",
    or with ``diverging`` symmetric around 0 in "RdBu_r", red positive; opacity from the value)."""
    rgba = heat_rgba(heatmap, alpha=alpha, diverging=diverging)
    a = rgba[..., 3:]
    return (1 - a) * grey(image) + a * rgba[..., :3]


def outlined(picture: np.ndarray, mask, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``picture (H, W, 3)`` with the border pixels of ``mask (H, W)`` painted in ``colour`` and the
    pixels just outside it in black (a halo: the line reads on a flower of any colour, white too)."""
    m = torch.as_tensor(mask).bool().cpu()
    inner = -F.max_pool2d(-m.float()[None, None], 3, 1, 1)[0, 0] > 0.5  # eroded by one pixel
    outer = F.max_pool2d(m.float()[None, None], 3, 1, 1)[0, 0] > 0.5  # dilated by one pixel
    out = picture.copy()
    out[(outer & ~m).numpy()] = 0.0
    out[(m & ~inner).numpy()] = colour
    return out


def shaded(image, mask, colour) -> np.ndarray:
    """``image`` darkened outside ``mask``, the mask outlined in ``colour`` (as Bau et al. show units)."""
    picture = np_image(image).copy()
    picture[~torch.as_tensor(mask).bool().cpu().numpy()] *= 0.45
    return outlined(picture, mask, colour)


def mosaic(rows, captions=None, scale: int = 3) -> bytes:
    """PNG bytes of pictures ``(H, W, 3)`` in [0, 1] laid out in ``rows`` (lists), each enlarged
    ``scale`` times (nearest neighbour) with its caption above it (``captions``: same layout)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = rows[0][0].shape[:2]
    (th, tw), pad, cap = (h * scale, w * scale), 4, 14 if captions else 0
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (pad + ncols * (tw + pad), pad + len(rows) * (th + cap + pad)), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            x, y = pad + c * (tw + pad), pad + r * (th + cap + pad)
            tile = Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
            canvas.paste(tile.resize((tw, th), Image.NEAREST), (x, y + cap))
            if captions:
                draw.text((x, y), str(captions[r][c]), fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def default_model(model, name: str) -> nn.Module:
    """``model`` checked, or the shipped model ``name``."""
    if model is None:
        from ..models import load

        return load(name)
    return check_model(model)


def sample(data, n: int, variant: str, seed: int = 0, split: str = "test"):
    """``data`` as given (checked: images or a data set with ``.images``), or ``n`` flowers."""
    if data is None:
        from ..data import flowers

        data = flowers(n, variant, seed=seed, split=split)
    images_of(data)
    return data


def labels_of(data):
    """The data set's labels ``(N,)``, or None (bare images)."""
    labels = getattr(data, "labels", None)
    return labels if isinstance(labels, torch.Tensor) else None


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Softmax probabilities ``(N, K)``, the model in eval mode and given back as it came."""
    with frozen(model):
        return torch.cat([model(b).softmax(1) for b in x.split(batch_size)])


def class_options(data, k: int) -> list:
    """``[(label, class index)]`` for a Dropdown: the data's class names when it has ``k`` of them."""
    names = getattr(data, "class_names", None)
    names = names if names is not None and len(names) == k else [f"class {c}" for c in range(k)]
    return [(f"{c}: {name}", c) for c, name in enumerate(names)]


def image_options(data, probs: torch.Tensor) -> list:
    """``[(label, image index)]``: index, true class (when known) and prediction of each image."""
    labels = labels_of(data)
    options = []
    for i, p in enumerate(probs):
        true = f"true {int(labels[i])}, " if labels is not None else ""
        options.append((f"image {i} ({true}predicted {int(p.argmax())})", i))
    return options


def dropdown(options, value=None, description: str = "") -> W.Dropdown:
    """A Dropdown on ``options`` starting at ``value`` (default: the first)."""
    first = options[0][1] if isinstance(options[0], tuple) else options[0]
    return W.Dropdown(options=options, value=first if value is None else value, description=description,
                      layout=W.Layout(width="max-content"))
