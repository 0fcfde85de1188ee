"""Prototype networks (Chen et al. 2019, "This looks like that", NeurIPS): the model classifies by
how much parts of the image look like prototypical parts of training images.

:class:`PrototypeNet`: conv features ``f`` (the shipped FlowerCNN's), add-on 1x1 convs ending in a sigmoid
give patches ``z (N, D, h, w)``; ``m`` prototypes ``p_j (D,)`` per class; ``d_j(x) = min_(a,b) ||z[:, a, b] -
p_j||^2``, similarity ``s_j = log((d_j + 1) / (d_j + 1e-4))``, logits ``W s`` (``W (K, P)`` starts at +1 for a
prototype's own class, -0.5 others).

Loss: ``CE + clst * Clst - sep * Sep + l1 * L1`` (distance to the closest prototype of the image's class,
of another class; L1 of the last layer's wrong-class weights; 0.8, 0.08, 1e-4 in the paper). Stages: warm-up
(add-on, prototypes), joint (features too), push (each prototype becomes its nearest own-class training
patch), last layer only.
"""
from __future__ import annotations

import copy
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_choice, check_float, check_images, check_int, check_model, images_of
from ..hooks import frozen

__all__ = ["PrototypeNet", "PrototypeOutput", "Pushed", "patch_distances", "prototype_similarity", "cluster_cost",
           "separation_cost", "last_layer_l1", "prototype_loss", "train_prototypes", "STAGES", "push",
           "receptive_field", "similarity_maps", "prototype_part_overlap", "build", "skeleton"]

STAGES, EPS = ("warmup", "joint", "last"), 1e-4  # training stages besides push; eps of the similarity


class PrototypeOutput(NamedTuple):
    """:meth:`PrototypeNet.inspect`: ``logits (N, K)``, ``distances (N, P, h, w)`` (squared L2, each prototype
    to each patch), ``min_distances (N, P)``, ``similarities (N, P)`` (``log((d + 1) / (d + eps))`` of those)."""
    logits: torch.Tensor
    distances: torch.Tensor
    min_distances: torch.Tensor
    similarities: torch.Tensor


class PrototypeNet(nn.Module):
    """A prototype network (Chen et al. 2019) on the conv features of a FlowerCNN.

    Args:
        backbone: a model with ``features`` (conv stack) and optionally ``normalize`` (e.g.
            ``models.load("single")``); both are copied, the backbone itself is not changed.
        num_classes, per_class: K classes, m prototypes each (P = m K; prototype j is of class ``j // m``).
        depth: D, channels of the add-on layers and of the prototypes.
        seed: seeds the add-on layers and the prototypes (uniform in [0, 1]^D as in the paper).

    Buffers: ``prototype_class (P,)``; after :func:`push`, ``push_image (P,)`` (index of the source
    image in the pushed data), ``push_cell (P, 2)`` (row, column of the patch), ``push_box (P, 4)``
    (receptive field x0, y0, x1, y1 in pixels, exclusive ends); all -1 before a push.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 6, per_class: int = 5, depth: int = 32,
                 seed: int = 0):
        super().__init__()
        check_model(backbone)
        if not isinstance(getattr(backbone, "features", None), nn.Module):
            raise TypeError(f"backbone must have a `features` conv stack, got {type(backbone).__name__}")
        self.num_classes, self.per_class = check_int("num_classes", num_classes, 2), check_int("per_class", per_class)
        self.depth, seed = check_int("depth", depth), check_int("seed", seed, 0)
        convs = [m for m in backbone.features.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("backbone must have a Conv2d in its features, found none")
        self.normalize = copy.deepcopy(getattr(backbone, "normalize", nn.Identity()))
        self.features, p = copy.deepcopy(backbone.features), num_classes * per_class
        with torch.random.fork_rng(devices=[]):  # seeded, and the global generator left alone
            torch.manual_seed(seed)
            self.add_on = nn.Sequential(nn.Conv2d(convs[-1].out_channels, depth, 1), nn.ReLU(),
                                        nn.Conv2d(depth, depth, 1), nn.Sigmoid())
            self.prototypes = nn.Parameter(torch.rand(p, depth))
            self.last = nn.Linear(p, num_classes, bias=False)
        self.register_buffer("prototype_class", torch.arange(p) // per_class)
        with torch.no_grad():
            own = torch.arange(num_classes).view(-1, 1) == self.prototype_class  # (K, P)
            self.last.weight.copy_(torch.where(own, 1.0, -0.5))
        for name, shape in (("push_image", (p,)), ("push_cell", (p, 2)), ("push_box", (p, 4))):
            self.register_buffer(name, torch.full(shape, -1))

    @property
    def num_prototypes(self) -> int:
        return self.prototypes.shape[0]

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``z = add_on(features(x))``: ``(N, D, h, w)``, each position one patch (1x1 prototypes)."""
        return self.add_on(self.features(self.normalize(x)))

    def inspect(self, x: torch.Tensor) -> PrototypeOutput:
        """Logits, distances ``(N, P, h, w)``, min distances and similarities ``(N, P)`` of ``x``."""
        distances = _distances(self.patches(x), self.prototypes)  # the private cores: the model runs while
        min_distances = distances.flatten(2).min(2).values          # the public functions are stubbed for grading
        similarities = _similarity(min_distances, EPS)
        return PrototypeOutput(self.last(similarities), distances, min_distances, similarities)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inspect(x).logits


def _check_net(model) -> PrototypeNet:
    if not isinstance(model, PrototypeNet):
        raise TypeError(f"model must be a PrototypeNet, got {type(model).__name__}")
    return model


def _tensor(name: str, value, dim: int, floating: bool) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype.is_floating_point != floating or value.dtype == torch.bool:
        raise TypeError(f"{name} must be a {'float' if floating else 'integer'} torch.Tensor, got "
                        f"{type(value).__name__} {getattr(value, 'dtype', '')}")
    if value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dims, got shape {tuple(value.shape)}")
    return value


def patch_distances(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance of every prototype to every patch, ``(N, P, h, w)``.

    ``d[n, j, a, b] = ||z[n, :, a, b] - p_j||^2 = ||z||^2 - 2 z.p_j + ||p_j||^2`` (the paper's
    "L2 convolution": one 1x1 convolution with the prototypes as filters), clamped at 0 against
    rounding. ``z``: patches ``(N, D, h, w)``; ``prototypes``: ``(P, D)``.
    """
    _tensor("z", z, 4, True), _tensor("prototypes", prototypes, 2, True)
    if prototypes.shape[1] != z.shape[1]:
        raise ValueError(f"prototypes must have depth {z.shape[1]} (z's channels), got shape "
                         f"{tuple(prototypes.shape)}")
    return _distances(z, prototypes)


def _distances(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    zp = F.conv2d(z, prototypes[:, :, None, None])  # (N, P, h, w); ||z||^2 (N, 1, h, w), ||p||^2 (1, P, 1, 1)
    return F.relu((z ** 2).sum(1, keepdim=True) - 2 * zp + (prototypes ** 2).sum(1).view(1, -1, 1, 1))


def prototype_similarity(d: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``log((d + 1) / (d + eps))`` (Chen et al. 2019): large when the distance ``d >= 0`` is small
    (``log(1 / eps)`` at ``d = 0``), decreasing towards 0 as ``d`` grows."""
    if not isinstance(d, torch.Tensor) or not d.dtype.is_floating_point:
        raise TypeError(f"d must be a float torch.Tensor of distances, got {type(d).__name__}")
    return _similarity(d, check_float("eps", eps, 0.0, open_low=True))


def _similarity(d: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.log((d + 1) / (d + eps))


def _closest(min_distances, labels, prototype_classes, own: bool) -> torch.Tensor:
    """``mean_i min_{j: (class(p_j) == y_i) == own} d_ij``."""
    _tensor("min_distances", min_distances, 2, True), _tensor("labels", labels, 1, False)
    _tensor("prototype_classes", prototype_classes, 1, False)
    if len(labels) != len(min_distances) or len(prototype_classes) != min_distances.shape[1]:
        raise ValueError(f"min_distances must have shape (len(labels), len(prototype_classes)) = "
                         f"({len(labels)}, {len(prototype_classes)}), got {tuple(min_distances.shape)}")
    mask = (labels.view(-1, 1).to(prototype_classes.device) == prototype_classes.view(1, -1)) == own  # (N, P)
    empty = ~mask.any(1)
    if empty.any():
        raise ValueError(f"labels: image {int(empty.nonzero()[0])} (class {int(labels[empty][0])}) has no "
                         f"prototype of {'its own' if own else 'another'} class")
    return torch.where(mask, min_distances, torch.inf).min(1).values.mean()


def cluster_cost(min_distances: torch.Tensor, labels: torch.Tensor, prototype_classes: torch.Tensor) -> torch.Tensor:
    """Clst (Chen et al. 2019, eq. in sec. 2.1): ``mean_i min_{j: class(p_j) = y_i} d_ij``, the
    distance of each image to the closest prototype of its own class, averaged over the batch.

    ``min_distances (N, P)``: min squared distances; ``labels (N,)``; ``prototype_classes (P,)``.
    """
    return _closest(min_distances, labels, prototype_classes, own=True)


def separation_cost(min_distances: torch.Tensor, labels: torch.Tensor, prototype_classes: torch.Tensor) -> torch.Tensor:
    """Sep (Chen et al. 2019): ``mean_i min_{j: class(p_j) != y_i} d_ij``, the distance of each image
    to the closest prototype of another class (the loss *subtracts* it: pushes them apart)."""
    return _closest(min_distances, labels, prototype_classes, own=False)


def last_layer_l1(weight: torch.Tensor, prototype_classes: torch.Tensor) -> torch.Tensor:
    """``sum_{k, j: class(p_j) != k} |W[k, j]|``: the L1 norm of the wrong-class connections of the
    last layer ``weight (K, P)`` (the paper's ``||W^(m)||_1`` with mask ``1 - identity``)."""
    _tensor("weight", weight, 2, True), _tensor("prototype_classes", prototype_classes, 1, False)
    if weight.shape[1] != len(prototype_classes):
        raise ValueError(f"weight must have shape (K, {len(prototype_classes)}), got {tuple(weight.shape)}")
    wrong = torch.arange(weight.shape[0], device=weight.device).view(-1, 1) != prototype_classes.view(1, -1)
    return (weight * wrong).abs().sum()


def prototype_loss(logits: torch.Tensor, labels: torch.Tensor, min_distances: torch.Tensor,
                   prototype_classes: torch.Tensor, weight: torch.Tensor, clst: float = 0.8,
                   sep: float = 0.08, l1: float = 1e-4) -> torch.Tensor:
    """The ProtoPNet loss ``CE(logits, labels) + clst * Clst - sep * Sep + l1 * L1`` (Chen et al.
    2019: clst 0.8, sep 0.08, l1 1e-4); ``weight (K, P)``: the last layer. Coefficients >= 0
    (``sep`` enters with a minus sign)."""
    _tensor("logits", logits, 2, True)
    clst, sep, l1 = (check_float(n, v, 0.0) for n, v in (("clst", clst), ("sep", sep), ("l1", l1)))
    cluster, separation = (_closest(min_distances, labels, prototype_classes, own) for own in (True, False))
    if logits.shape != (len(labels), weight.shape[0]):
        raise ValueError(f"logits must have shape (len(labels), K) = ({len(labels)}, {weight.shape[0]}), "
                         f"got {tuple(logits.shape)}")
    return (F.cross_entropy(logits, labels) + clst * cluster - sep * separation
            + l1 * last_layer_l1(weight, prototype_classes))


def _labelled(data, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = images_of(data), getattr(data, "labels", None)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (len(x),):
        raise TypeError(f"data must be a labelled data set (a Flowers: .images, .labels), got {type(data).__name__}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"data.labels must be in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    return x, y


def train_prototypes(model: PrototypeNet, data, stage: str, epochs: int = 1, lr: float | None = None,
                     batch_size: int = 64, clst: float = 0.8, sep: float = 0.08, l1: float = 1e-4,
                     seed: int = 0, progress: bool = True) -> PrototypeNet:
    """One training stage of Chen et al. 2019 with Adam on :func:`prototype_loss`:

    - ``"warmup"``: add-on layers and prototypes (lr 3e-3); features frozen in eval mode, last layer fixed.
    - ``"joint"``: features too (at lr / 30, train mode), add-on and prototypes at lr (3e-3).
    - ``"last"``: the last layer only (lr 1e-3), on the similarities of the frozen model in eval
      mode (computed once); Clst and Sep are constant then, the loss is CE + l1 * L1.
    The stage's weights change in place; every module's mode and every parameter's ``requires_grad``
    come back as given (also on error). Batches are drawn with ``seed``.
    """
    _check_net(model), check_choice("stage", stage, STAGES)
    epochs, batch_size = check_int("epochs", epochs), check_int("batch_size", batch_size)
    seed = check_int("seed", seed, 0)
    lr = check_float("lr", {"last": 1e-3}.get(stage, 3e-3) if lr is None else lr, 0.0, open_low=True)
    x, y = _labelled(data, model.num_classes)
    clst, sep, l1 = (check_float(n, v, 0.0) for n, v in (("clst", clst), ("sep", sep), ("l1", l1)))
    with frozen(model):  # gives back every module's mode and every requires_grad, also on error
        return _train(model, x, y, stage, epochs, lr, batch_size, (clst, sep, l1), seed, progress)


def _train(model, x, y, stage, epochs, lr, batch_size, coefs, seed, progress):
    clst, sep, l1 = coefs  # inside hooks.frozen: no parameter requires grad yet
    parts = {"warmup": [model.add_on, model.prototypes], "last": [model.last],
             "joint": [model.features, model.add_on, model.prototypes]}[stage]
    params = [{"params": [q] if isinstance(q, nn.Parameter) else list(q.parameters()),
               "lr": lr / 30 if q is model.features else lr} for q in parts]
    for p in (p for g in params for p in g["params"]):
        p.requires_grad_(True)
    opt = torch.optim.Adam(params)
    model.train(stage == "joint")  # warm-up: frozen features in eval mode (the add-on has no batch norm)
    if stage == "last":  # everything else frozen: the similarities once
        x = torch.cat([model.inspect(b).similarities.detach() for b in x.split(256)])
    gen, steps = torch.Generator().manual_seed(seed), max(1, len(x) // batch_size)
    bar = tqdm(total=epochs * steps, disable=not progress, desc=f"prototypes: {stage}", unit="batch")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            if stage == "last":  # Clst and Sep constant: CE + l1 * L1
                loss = F.cross_entropy(model.last(x[idx]), y[idx])
                loss = loss + l1 * last_layer_l1(model.last.weight, model.prototype_class)
            else:
                out = model.inspect(x[idx])
                loss = prototype_loss(out.logits, y[idx], out.min_distances, model.prototype_class, model.last.weight,
                                      clst, sep, l1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model


class Pushed(NamedTuple):
    """What :func:`push` did, per prototype ``(P,)``: ``distance`` (its min squared distance before
    the push, to the patch it became), ``image`` (index in the data), ``cell (P, 2)`` (row, column
    of the patch in the ``h x w`` grid) and ``box (P, 4)`` (receptive field x0, y0, x1, y1)."""
    distance: torch.Tensor
    image: torch.Tensor
    cell: torch.Tensor
    box: torch.Tensor


def receptive_field(model: nn.Module) -> tuple[float, float, float]:
    """``(jump, size, start)`` of one unit of ``model.features``' output in input pixels: units
    ``jump`` px apart, each seeing ``size`` px centred at ``start + jump * index`` (pixel k spans
    [k, k + 1)). Walks the Conv2d and pooling layers (square kernels); 1x1 add-ons change nothing."""
    jump, size, start = 1.0, 1.0, 0.5
    for m in check_model(model).features.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):  # (AvgPool2d has no dilation: 1)
            k, s, p, d = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding, getattr(m, "dilation", 1)))
            size, start, jump = size + (k - 1) * d * jump, start + ((k - 1) * d / 2 - p) * jump, jump * s
    return jump, size, start


def push(model: PrototypeNet, data, batch_size: int = 256, progress: bool = True) -> Pushed:
    """Push (Chen et al. 2019, sec. 2.2): replace each prototype ``p_j`` by its nearest patch
    ``argmin_{z in patches of images of class(p_j)} ||z - p_j||^2`` over ``data`` (the training
    set), and remember where it came from (buffers ``push_image``, ``push_cell``, ``push_box``).

    Runs in eval mode without gradients, ``batch_size`` images at a time (a running minimum per
    prototype; ties go to the first image, then the first patch in row-major order). The
    prototypes change in place; modes and ``requires_grad`` come back as given.
    """
    batch_size, (x, y) = check_int("batch_size", batch_size), _labelled(data, _check_net(model).num_classes)
    p, vectors = model.num_prototypes, model.prototypes.detach().clone()
    best, image, cell = torch.full((p,), torch.inf), torch.full((p,), -1), torch.full((p, 2), -1)
    with frozen(model):
        for start in tqdm(range(0, len(x), batch_size), disable=not progress, desc="push", unit="batch"):
            z = model.patches(x[start:start + batch_size])  # (B, D, h, w)
            d = patch_distances(z, model.prototypes)  # (B, P, h, w)
            own = y[start:start + batch_size].view(-1, 1) == model.prototype_class.view(1, -1)
            d = torch.where(own[:, :, None, None], d, torch.inf).transpose(0, 1).flatten(1)  # (P, B h w)
            (low, arg), (h, w) = d.min(1), z.shape[2:]
            b, r, c = arg // (h * w), (arg % (h * w)) // w, arg % w
            for j in (low < best).nonzero().flatten().tolist():
                best[j], image[j], cell[j] = low[j], start + b[j], torch.stack([r[j], c[j]])
                vectors[j] = z[b[j], :, r[j], c[j]]
        if (image < 0).any():
            raise ValueError(f"data has no image of the class of prototypes {(image < 0).nonzero().flatten().tolist()}")
        jump, size, first = receptive_field(model)
        centre = first + jump * cell.flip(-1).float()  # (P, 2): x, y of each patch's receptive field
        box = torch.cat([(centre - size / 2).floor().clamp(min=0),
                         torch.minimum((centre + size / 2).ceil(), torch.tensor(x.shape[:1:-1]))], 1).long()
        with torch.no_grad():
            for target, value in ((model.prototypes, vectors), (model.push_image, image), (model.push_cell, cell),
                                  (model.push_box, box)):
                target.copy_(value)
    return Pushed(best, image, cell, model.push_box.clone())


def similarity_maps(model: PrototypeNet, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Per-patch similarities ``log((d + 1) / (d + eps))`` upsampled bilinearly to the image size:
    ``(N, P, H, W)``, where each prototype matches on each image (eval mode, no gradients)."""
    x, batch_size = check_images(x), check_int("batch_size", batch_size)
    with frozen(_check_net(model)), torch.no_grad():
        return torch.cat([F.interpolate(_similarity(model.inspect(b).distances, EPS), size=x.shape[2:],
                                        mode="bilinear", align_corners=False) for b in x.split(batch_size)])


def prototype_part_overlap(model: PrototypeNet, data, part: str = "centre", quantile: float = 0.95) -> dict:
    """Where the pushed prototypes come from, against the part map of their source images.

    ``(P,)`` tensors: ``"box"`` (the receptive field box holds a pixel of ``part``), ``"cell"`` (fraction
    of the patch's own cell, its ``jump x jump`` pixels of the upsampled grid, that is ``part``), ``"top"``
    (fraction of the source image's upsampled similarity map at or above its ``quantile``, ProtoPNet's
    high-activation region, that is ``part``). ``data``: the Flowers the model was pushed on.
    """
    from ..data import PARTS

    _check_net(model), check_choice("part", part, PARTS)
    quantile = check_float("quantile", quantile, 0.0, 1.0, open_high=True)
    if (model.push_image < 0).any():
        raise ValueError("model must be pushed first (push(model, data)): push_image holds -1")
    x, parts = images_of(data), getattr(data, "parts", None)
    if not isinstance(parts, torch.Tensor) or int(model.push_image.max()) >= len(x):
        raise ValueError(f"data must be the Flowers the model was pushed on (with parts and at least "
                         f"{int(model.push_image.max()) + 1} images), got {type(data).__name__} of {len(x)}")
    on = parts[model.push_image] == PARTS.index(part)  # (P, H, W)
    j, jump = torch.arange(model.num_prototypes), int(receptive_field(model)[0])
    maps = similarity_maps(model, x[model.push_image])[j, j]  # (P, H, W): each on its source image
    box, cell, top = [], [], []
    for k, ((x0, y0, x1, y1), (r, c)) in enumerate(zip(model.push_box.tolist(), (model.push_cell * jump).tolist())):
        box.append(bool(on[k, y0:y1, x0:x1].any()))
        cell.append(on[k, r:r + jump, c:c + jump].float().mean())
        top.append(on[k][maps[k] >= torch.quantile(maps[k].flatten(), quantile)].float().mean())
    return {"box": torch.tensor(box), "cell": torch.stack(cell), "top": torch.stack(top)}


def skeleton(entry: dict) -> PrototypeNet:
    """The untrained :class:`PrototypeNet` of a manifest entry, for ``models.load``."""
    from ..models import FlowerCNN

    return PrototypeNet(FlowerCNN(entry["num_classes"], tuple(entry["width"])), entry["num_classes"],
                        entry["per_class"], entry["depth"])


def build(name: str, spec, progress: bool = True) -> tuple[PrototypeNet, dict]:
    """Train the shipped prototype network: on ``models.load(spec.variant)``'s features, warm-up
    (2 epochs), joint (``spec.epochs``), push, last layer (20 epochs on cached similarities), on
    ``spec.n_train`` training flowers; test accuracy measured after each stage (2000 held-out
    flowers, seed 1) with the plain CNN's, and where the prototypes landed (on the centre)."""
    from .. import models
    from ..data import flowers

    train = flowers(spec.n_train, spec.variant, seed=spec.seed, split="train")
    test = flowers(2000, spec.variant, seed=1, split="test")
    cnn, stages, seconds = models.load(spec.variant), {"warmup": 2, "joint": spec.epochs, "last": 20}, 0.0
    model, accuracy = PrototypeNet(cnn, train.num_classes, 5, 32, spec.seed), {"plain_cnn": models.evaluate(cnn, test)}
    for stage in ("warmup", "joint", "push", "last"):
        t0 = time.time()
        _ = (push(model, train, progress=progress) if stage == "push" else
             train_prototypes(model, train, stage, stages[stage], seed=spec.seed, progress=progress))
        seconds += time.time() - t0
        accuracy[stage] = models.evaluate(model.eval(), test)
    overlap = prototype_part_overlap(model, train, "centre")
    entry = {"skeleton": "xai_lab.design.prototypes:skeleton", "variant": spec.variant,
             "num_classes": train.num_classes, "width": list(cnn.width), "per_class": 5, "depth": 32,
             "n_train": spec.n_train, "epochs": spec.epochs, "stages": stages, "seed": spec.seed,
             "note": spec.note, "train_seconds": round(seconds, 1),
             "test": {"n": 2000, "seed": 1}, "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
             "centre": {k: round(float(v.float().mean()), 3) for k, v in overlap.items()}}
    return model.eval(), entry
