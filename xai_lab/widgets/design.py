"""The by-design explorer (04_interpretable_by_design): intervene on the concepts of a concept
bottleneck and watch the prediction change; the most activated prototypes of a prototype network."""
from __future__ import annotations

import copy

import ipywidgets as W
import torch

from ..checks import check_int, images_of
from ..hooks import frozen
from ..viz import np_image, pyplot
from .base import Explorer, default_model, dropdown, image_options, labels_of, png, predict, sample

__all__ = ["design_explorer", "DesignExplorer", "PARTS"]

PARTS = ("concept bottleneck", "prototypes")


def design_explorer(bottleneck=None, prototypes=None, data=None, prototype_data=None, push_data=None,
                    n: int = 10, part: str = "concept bottleneck"):
    """An explorer of models that explain themselves.

    ``part="concept bottleneck"``: pick an image; one checkbox per binary concept, ticked where the
    model's concept predictor says the concept is there. Tick or untick one and the model is
    intervened on (Koh et al. 2020: that concept set to the truth you give, ``design.intervene``):
    the bars show the class probabilities before (grey) and after (colour).
    ``part="prototypes"``: pick an image and how many prototypes ``k``; see "this looks like that"
    (Chen et al. 2019): the most activated prototypes, where they come from and where they match.

    Args:
        bottleneck: a ``design.ConceptBottleneck`` (default: the shipped ``"bottleneck_joint"``);
            ``data`` its images, a Flowers set whose ``attribute_names`` are its concepts
            (default: ``n`` test flowers of the ``double`` variant).
        prototypes: a pushed ``design.PrototypeNet`` (default: the shipped ``"prototypes"``);
            ``prototype_data`` its images (default: ``n`` ``single`` test flowers); ``push_data``
            the images it was pushed on (default, for the shipped model: its training flowers,
            rendered when the prototypes are first shown).
    Both models come back as they were given.
    """
    return DesignExplorer(bottleneck, prototypes, data, prototype_data, push_data, n, part)


class DesignExplorer(Explorer):
    """See :func:`design_explorer`."""

    def __init__(self, bottleneck, prototypes, data, prototype_data, push_data, n, part):
        from ..design import ConceptBottleneck, PrototypeNet, concept_outputs

        n = check_int("n", n)
        if part not in PARTS:
            raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")
        if prototypes is not None and push_data is None:
            raise ValueError("push_data is required with your own prototypes model: the images it was pushed on")
        self.cbm, self.proto = default_model(bottleneck, "bottleneck_joint"), default_model(prototypes, "prototypes")
        for name, model, kind in (("bottleneck", self.cbm, ConceptBottleneck), ("prototypes", self.proto, PrototypeNet)):
            if not isinstance(model, kind):
                raise TypeError(f"{name} must be a design.{kind.__name__}, got {type(model).__name__}")
        self.data = sample(data, n, "double")
        if tuple(getattr(self.data, "attribute_names", ())) != self.cbm.concept_names:
            raise ValueError(f"data must be a Flowers set whose attribute_names are the bottleneck's concepts "
                             f"{self.cbm.concept_names[:3]}..., got {getattr(self.data, 'attribute_names', None)}")
        self.pdata, self.push = sample(prototype_data, n, "single"), push_data
        self.x, self.px = images_of(self.data), images_of(self.pdata, "prototype_data")
        self.c_pred = concept_outputs(self.cbm, self.x)  # (N, A) raw concept outputs g(x)
        self.probs, self.pprobs = predict(self.cbm, self.x), predict(self.proto, self.px)
        self.binary = [j for j, c in enumerate(self.cbm.continuous.tolist()) if not c]
        self.options = {PARTS[0]: image_options(self.data, self.probs), PARTS[1]: image_options(self.pdata, self.pprobs)}
        self.chosen, self.shown, self.view, self.pictures = {PARTS[0]: 0, PARTS[1]: 0}, None, None, {}
        boxes = {f"concept_{self.cbm.concept_names[j]}": W.Checkbox(description=self.cbm.concept_names[j], indent=False)
                 for j in self.binary}
        self.grid = W.GridBox(list(boxes.values()), layout=W.Layout(grid_template_columns="repeat(4, 200px)"))
        top = {"part": W.ToggleButtons(options=list(PARTS), value=part),
               "image": dropdown(self.options[part], description="image"),
               "k": W.IntSlider(value=3, min=1, max=min(6, self.proto.num_prototypes), description="prototypes")}
        self.boxes = list(boxes.values())
        super().__init__("design", {**top, **boxes}, rows=[W.HBox(list(top.values())), self.grid])
        self.update()

    def draw(self):
        part, i = self.controls["part"].value, self.controls["image"].value
        if self.controls["image"].options != tuple(self.options[part]):  # the part changed: its images
            i = self.chosen[part]
            self.set_quietly(self.controls["image"], options=self.options[part], value=i)
        self.chosen[part] = i
        self.grid.layout.display = None if part == PARTS[0] else "none"
        self.controls["k"].layout.display = None if part == PARTS[1] else "none"
        return self.intervention(i) if part == PARTS[0] else self.prototypes(i, self.controls["k"].value)

    def intervention(self, i):
        """Concepts of image ``i`` as ticked, the bottleneck's class probabilities before and after."""
        predicted = (self.c_pred[i] > 0).tolist()
        if self.shown != i:  # a new image: the boxes show what the model predicts for it
            for box, j in zip(self.boxes, self.binary):
                self.set_quietly(box, value=predicted[j])
            self.shown = i
        ticked = dict(zip(self.binary, (b.value for b in self.boxes)))
        flipped = [j for j in self.binary if ticked[j] != predicted[j]]
        key = ("bottleneck", i, tuple(flipped))
        if key not in self.pictures:
            self.pictures[key] = self.draw_intervention(i, ticked, flipped)
        return self.pictures[key]

    def draw_intervention(self, i, ticked, flipped):
        """``(PNG, info)``: image ``i`` and its class probabilities with the concepts ``flipped`` set
        to their ``ticked`` value (``design.intervene``: true -> ``model.high``, false -> ``model.low``)."""
        from ..design import intervene

        after = self.probs[i]
        if flipped:
            truth = self.c_pred[i:i + 1].clone()
            truth[0, self.binary] = torch.tensor([float(ticked[j]) for j in self.binary])
            after = intervene(self.cbm, self.x[i:i + 1], truth, concepts=flipped).softmax(1)[0]
        before, names, plt = self.probs[i], self.data.class_names, pyplot()
        fig, (a, b) = plt.subplots(1, 2, figsize=(6.6, 2.9), gridspec_kw={"width_ratios": [1, 2.2]})
        a.imshow(np_image(self.x[i])); a.set_xticks([]); a.set_yticks([])
        a.set_title(f"image {i}", fontsize=8)
        k = torch.arange(len(before)).numpy()
        b.barh(k + 0.2, before.numpy(), 0.4, color="0.7", label="predicted")
        b.barh(k - 0.2, after.numpy(), 0.4, color="tab:orange", label="after intervention")
        b.set_yticks(k, [str(c) for c in names], fontsize=6); b.invert_yaxis(); b.set_xlim(0, 1)
        b.legend(fontsize=7, loc="lower right")
        b.set_title(f"{names[int(before.argmax())]} -> {names[int(after.argmax())]}", fontsize=9)
        fig.tight_layout()
        labels = labels_of(self.data)
        changes = ", ".join(f"{self.cbm.concept_names[j]} := {ticked[j]}" for j in flipped) or "none"
        text = (f"image {i}" + (f" (true: {names[int(labels[i])]})" if labels is not None else "")
                + f": predicted <b>{names[int(before.argmax())]}</b> (p = {float(before.max()):.3f}); after "
                f"intervention <b>{names[int(after.argmax())]}</b> (p = {float(after.max()):.3f})<br>"
                f"intervened on {len(flipped)} concepts: {changes}")
        return png(fig), text

    def source(self):
        """A copy of the prototype network whose ``push_image`` indexes the few source images kept."""
        if self.view is None:
            if self.push is None:
                from ..data import flowers
                from ..models import SPECS

                spec = SPECS["prototypes"]
                self.work.append_stdout(f"rendering the {spec.n_train} training flowers the prototypes come from...\n")
                self.push = flowers(spec.n_train, spec.variant, seed=spec.seed, split="train")
            used, pushed = self.proto.push_image.unique(), images_of(self.push, "push_data")
            if (used < 0).any() or int(used.max()) >= len(pushed):
                raise ValueError(f"push_data must be the images the prototypes were pushed on (at least "
                                 f"{int(used.max()) + 1}; the model must be pushed), got {len(pushed)}")
            self.view = copy.deepcopy(self.proto)
            self.view.push_image.copy_(torch.searchsorted(used, self.proto.push_image))
            self.push = pushed[used].clone()  # only the source images stay
        return self.view, self.push

    def prototypes(self, i, k):
        """"This looks like that" for image ``i``: its ``k`` most activated prototypes."""
        if ("prototypes", i, k) not in self.pictures:
            self.pictures["prototypes", i, k] = self.draw_prototypes(i, k)
        return self.pictures["prototypes", i, k]

    def draw_prototypes(self, i, k):
        """``(PNG, info)``: ``viz.this_looks_like_that`` for image ``i`` and its ``k`` top prototypes."""
        from ..viz import this_looks_like_that

        view, source = self.source()
        labels, names = labels_of(self.pdata), getattr(self.pdata, "class_names", None)
        with frozen(self.proto), torch.no_grad():
            sims = self.proto.inspect(self.px[i:i + 1]).similarities[0]
        top = sims.argsort(descending=True, stable=True)[:k].tolist()  # the rows of the figure
        fig = this_looks_like_that(view, self.px[i], source, k, None if labels is None else int(labels[i]),
                                   class_names=names, size=1.6)
        for ax, j in zip(fig.axes[1::3], top):  # the view counts the kept images: name the training image
            ax.set_title(f"from training image {int(self.proto.push_image[j])}", fontsize=8)
        pred = int(self.pprobs[i].argmax())
        listed = ", ".join(f"{j} (class {int(self.proto.prototype_class[j])}, s = {float(sims[j]):.2f})" for j in top)
        text = (f"image {i}: predicted class {pred} (p = {float(self.pprobs[i, pred]):.3f})<br>"
                f"most activated prototypes: {listed}")
        return png(fig, dpi=72), text
