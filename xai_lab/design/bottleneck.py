"""Concept bottleneck models (Koh et al. 2020, "Concept Bottleneck Models", ICML): x -> c -> y.

A concept predictor ``g`` maps an image to one output per concept, a label predictor ``f`` maps
the concepts to class logits: ``y_hat = f(s(g(x)))``. The concepts are the flowers' image-level
``attributes (N, A)`` (``attribute_names``), of two kinds (continuous: :data:`CONTINUOUS`):
binary one-hots (centre and petal colour, stem, leaves, spots, background texture, dusk, mark):
``g`` gives a logit, ``s`` is the sigmoid, ``L_cj`` the binary cross-entropy on the logit;
continuous (``petal_count``, ``flower_size``, in [0, 1]): ``g`` gives the value (linear output),
``s`` is the identity, ``L_cj`` the squared error. Attributes constant in a variant (``dusk``,
``has_mark`` in ``double``) are kept: ``g`` learns the constant, and the concept vector stays
aligned with ``attribute_names``.

Modes (:func:`train_bottleneck`): independent (``g`` and ``f`` on the TRUE concepts), sequential
(``f`` on ``g``'s predictions), joint (end to end, :func:`joint_loss`). Intervention (:func:`intervene`)
puts the truth in place of predicted concepts: for a binary one the 5th (false) / 95th (true)
percentile of ``g``'s training logits (buffers ``low`` / ``high``, shipped with the weights).
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.nn import functional as F

from .. import checks, hooks, models
from ..models import FlowerCNN

__all__ = ["ConceptBottleneck", "CONTINUOUS", "MODES", "JOINT_LAMBDA", "concept_loss", "joint_loss", "train_concepts",
           "train_head", "train_bottleneck", "concept_percentiles", "concept_outputs", "intervene",
           "intervention_curve", "concept_accuracy", "build", "skeleton"]

CONTINUOUS = ("petal_count", "flower_size")
MODES = ("independent", "sequential", "joint")
# lambda of the joint loss (Koh et al. try 0.001-1). Measured on double (4000 images, 4 epochs, 3 blocks fixed):
# at 0.1 the bottleneck drifts from the concepts (mean binary concept accuracy 0.89, continuous
# MAE 0.6) and intervening on all concepts lowers the accuracy from 1.00 to 0.82; at 1.0 the
# concepts hold (0.92, MAE 0.2) and intervention does not hurt, for the same task accuracy.
JOINT_LAMBDA = 1.0
# shipped models: g = the plain CNN's first two conv blocks (fixed) + its last two (trained further)
FROZEN_BLOCKS, LR = 2, 1e-2
_G_CACHE: dict = {}  # builder: (variant, n_train, epochs, seed) -> (state, seconds) of g, shared by two modes


class ConceptBottleneck(nn.Module):
    """x -> c -> y (Koh et al. 2020): ``g`` a :class:`~xai_lab.models.FlowerCNN` with one output per
    concept, ``f`` a linear layer (``hidden=0``) or a one-hidden-layer MLP on the activated concepts.

    ``forward(x)`` returns class logits ``(N, K)``; :meth:`concepts_and_logits` the raw concept
    outputs ``(N, A)`` (logits / values) and the class logits. Buffers: ``continuous (A,)`` bool,
    ``low`` / ``high (A,)`` the 5th / 95th percentiles of ``g``'s training outputs (set by
    :func:`concept_percentiles`, used by :func:`intervene`)."""

    def __init__(self, num_classes: int, concept_names, continuous=CONTINUOUS, width=(16, 32, 64, 128), hidden=0):
        super().__init__()
        num_classes, hidden = checks.check_int("num_classes", num_classes, 2), checks.check_int("hidden", hidden, 0)
        names = tuple(concept_names)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"concept_names must be a non-empty sequence of str, got {concept_names!r}")
        self.num_classes, self.concept_names, self.hidden, self.num_concepts = num_classes, names, hidden, len(names)
        a, self.g = len(names), FlowerCNN(len(names), width)
        self.f = nn.Linear(a, num_classes) if hidden == 0 else nn.Sequential(
            nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.register_buffer("continuous", torch.tensor([n in tuple(continuous) for n in names]))
        self.register_buffer("low", torch.full((a,), -4.0))  # placeholders until trained
        self.register_buffer("high", torch.full((a,), 4.0))

    def activate(self, c: torch.Tensor) -> torch.Tensor:
        """What ``f`` sees: ``sigmoid`` of the binary concepts' logits, continuous values as given."""
        return torch.where(self.continuous, c, torch.sigmoid(c))

    def head(self, c: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, K)`` from raw concept outputs ``c (N, A)`` (``f(activate(c))``)."""
        return self.f(self.activate(c))

    def concepts_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(c, y)``: raw concept outputs ``g(x) (N, A)`` and class logits ``(N, K)``."""
        return (c := self.g(x)), self.head(c)

    def forward(self, x):
        return self.concepts_and_logits(x)[1]


def _check_outputs(concept_outputs, concepts, continuous):
    if not isinstance(concept_outputs, torch.Tensor) or not isinstance(concepts, torch.Tensor):
        raise TypeError(f"concept_outputs and concepts must be torch.Tensors (N, A), got "
                        f"{type(concept_outputs).__name__}, {type(concepts).__name__}")
    if concept_outputs.dim() != 2 or concepts.shape != concept_outputs.shape:
        raise ValueError(f"concept_outputs and concepts must both have shape (N, A), got "
                         f"{tuple(concept_outputs.shape)} and {tuple(concepts.shape)}")
    a = concept_outputs.shape[1]
    continuous = torch.as_tensor(continuous, dtype=torch.bool, device=concepts.device)
    if continuous.shape != (a,):
        raise ValueError(f"continuous must be a bool mask of shape ({a},), got shape {tuple(continuous.shape)}")
    return continuous


def concept_loss(concept_outputs: torch.Tensor, concepts: torch.Tensor, continuous) -> torch.Tensor:
    """``sum_j L_cj`` (Koh et al. 2020), a scalar: for each concept ``j``, averaged over the batch,
    the binary cross-entropy of the logit ``concept_outputs[:, j]`` with the truth ``concepts[:, j]``
    in {0, 1}, or the squared error ``(concept_outputs[:, j] - concepts[:, j])**2`` where
    ``continuous[j]`` (bool mask ``(A,)``) is True. The loss of ``g`` in the independent and
    sequential modes."""
    continuous = _check_outputs(concept_outputs, concepts, continuous)
    concepts = concepts.to(concept_outputs.dtype)
    bce = F.binary_cross_entropy_with_logits(concept_outputs, concepts, reduction="none")
    mse = (concept_outputs - concepts) ** 2
    return torch.where(continuous, mse, bce).mean(0).sum()  # mean over N, sum over the A concepts


def joint_loss(class_logits: torch.Tensor, concept_outputs: torch.Tensor, labels: torch.Tensor,
               concepts: torch.Tensor, continuous, lam: float = JOINT_LAMBDA) -> torch.Tensor:
    """The joint objective of Koh et al. (2020): ``L_y + lam * sum_j L_cj`` (a scalar).

    ``L_y`` is the cross-entropy of ``class_logits (N, K)`` with ``labels (N,)``, averaged over the
    batch; ``sum_j L_cj`` is :func:`concept_loss` of ``concept_outputs (N, A)`` (logits of binary
    concepts, values of continuous ones) against the true ``concepts (N, A)``, ``continuous`` the
    bool mask ``(A,)`` of the continuous concepts. ``lam = 0`` trains the label only.
    """
    lam = checks.check_float("lam", lam, low=0.0)
    _check_outputs(concept_outputs, concepts, continuous)
    n, shapes = concept_outputs.shape[0], [tuple(getattr(t, "shape", ())) for t in (class_logits, labels)]
    if not isinstance(class_logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(f"class_logits and labels must be torch.Tensors, got {type(class_logits).__name__}, "
                        f"{type(labels).__name__}")
    if len(shapes[0]) != 2 or shapes[0][0] != n or shapes[1] != (n,):
        raise ValueError(f"class_logits must have shape ({n}, K) and labels ({n},), got {shapes[0]}, {shapes[1]}")
    return F.cross_entropy(class_logits, labels) + lam * concept_loss(concept_outputs, concepts, continuous)


def _check_bottleneck(model) -> ConceptBottleneck:
    if isinstance(model, ConceptBottleneck):
        return model
    raise TypeError(f"model must be a ConceptBottleneck, got {type(model).__name__}")


def _check_data(model: ConceptBottleneck, data, name: str = "data"):
    """Images, labels and concepts of a ``Flowers`` whose attributes are the model's concepts."""
    x = checks.images_of(data, name)
    att, names = getattr(data, "attributes", None), tuple(getattr(data, "attribute_names", ()))
    if not isinstance(att, torch.Tensor) or not hasattr(data, "labels"):
        raise TypeError(f"{name} must be a Flowers data set (images, labels, attributes), got {type(data).__name__}")
    if names != model.concept_names:
        raise ValueError(f"{name}.attribute_names must be the model's concept_names {model.concept_names}, got {names}")
    if data.labels.max() >= model.num_classes:
        raise ValueError(f"{name} has labels up to {int(data.labels.max())}, the model has "
                         f"{model.num_classes} classes (variant {getattr(data, 'variant', '?')!r}?)")
    return x, data.labels, att.float()


@torch.no_grad()
def concept_outputs(model: ConceptBottleneck, images, batch_size: int = 512) -> torch.Tensor:
    """Raw concept outputs ``g(x) (N, A)`` (logits / values), in eval mode, batched; model restored."""
    model, x = _check_bottleneck(model), checks.images_of(images, "images")
    batch_size = checks.check_int("batch_size", batch_size)
    with hooks.frozen(model):
        return torch.cat([model.g(b) for b in x.split(batch_size)])


@torch.no_grad()
def concept_percentiles(model: ConceptBottleneck, images, q=(5.0, 95.0), outputs=None):
    """Store in ``model.low`` / ``model.high`` the ``q`` percentiles (default 5th / 95th, linear
    interpolation) of ``g``'s outputs over ``images`` (the training set; or the given ``outputs``
    ``(N, A)``), per concept; returns them. Koh et al. intervene on a binary concept's logit with
    these (false -> low, true -> high)."""
    outputs = concept_outputs(model, images) if outputs is None else outputs
    lo = checks.check_float("q[0]", q[0], 0.0, 100.0)
    hi = checks.check_float("q[1]", q[1], lo, 100.0)
    qs = torch.quantile(outputs, torch.tensor([lo / 100, hi / 100]), dim=0)
    model.low.copy_(qs[0])
    model.high.copy_(qs[1])
    return model.low.clone(), model.high.clone()


def _train_g(model, data, lam, epochs, lr, batch_size, seed, progress, frozen_blocks):
    """``g`` (``lam`` None: on ``sum_j L_cj``) or ``g`` and ``f`` (on the joint loss), the first
    ``frozen_blocks`` conv blocks of ``g`` fixed (their outputs computed once); then percentiles."""
    x, y, c = _check_data(_check_bottleneck(model), data)
    epochs, batch_size = checks.check_int("epochs", epochs), checks.check_int("batch_size", batch_size)
    lr, seed = checks.check_float("lr", lr, 0.0, open_low=True), checks.check_int("seed", seed, low=0)
    if checks.check_int("frozen_blocks", frozen_blocks, low=0) > 3:
        raise ValueError(f"frozen_blocks must be an int in [0, 3] (g's last conv block trains), got {frozen_blocks}")
    g, start = model.g, 4 * frozen_blocks  # blocks 0-2 are 4 modules each (conv, bn, relu, pool)
    suffix, trainable = g.features[start:], [g.features[start:], g.fc] + ([model.f] if lam is not None else [])
    with hooks.frozen(model):  # eval, no gradients (the fixed prefix keeps its batch-norm statistics)...
        with torch.no_grad():
            h = torch.cat([g.features[:start](g.normalize(b)) for b in x.split(512)]) if start else None
        for m in trainable:  # ... but for the parts that train; all restored on exit, also on error
            m.train().requires_grad_(True)

        def g_from(idx):  # g on the images idx, from the frozen prefix's outputs
            return g.fc(g.pool(suffix(h[idx] if start else g.normalize(x[idx]))).flatten(1))

        def step_loss(idx):
            out = g_from(idx)
            return (concept_loss(out, c[idx], model.continuous) if lam is None
                    else joint_loss(model.head(out), out, y[idx], c[idx], model.continuous, lam))

        models.fit([p for m in trainable for p in m.parameters()], len(x), step_loss, epochs, lr, batch_size, seed,
             progress, "concepts g" if lam is None else f"joint g+f (lam={lam})")
        model.eval()
        with torch.no_grad():  # g's training outputs, for the percentiles
            out = torch.cat([g_from(idx) for idx in torch.arange(len(x)).split(512)])
    concept_percentiles(model, None, outputs=out)
    return model


def train_concepts(model: ConceptBottleneck, data, epochs: int = 6, lr: float = 3e-3, batch_size: int = 64,
                   seed: int = 0, progress: bool = True, frozen_blocks: int = 0) -> ConceptBottleneck:
    """Train ``g`` alone on the true concepts (:func:`concept_loss`; AdamW, one-cycle, seeded
    mini-batches), its first ``frozen_blocks`` (0-3) conv blocks fixed; then store its training
    percentiles (:func:`concept_percentiles`). ``f`` untouched; modes and flags restored."""
    return _train_g(model, data, None, epochs, lr, batch_size, seed, progress, frozen_blocks)


def train_head(model: ConceptBottleneck, data, source: str = "true", steps: int = 500,
               lr: float = 0.05) -> ConceptBottleneck:
    """Train ``f`` alone on the cross-entropy, full batch (AdamW with a one-cycle schedule, ``steps``
    steps: deterministic), from its current weights, with ``g`` fixed.

    ``source="true"``: ``f`` on the true concepts (independent mode; binary 0/1, continuous values);
    ``source="predicted"``: ``f`` on ``activate(g(x))`` (sequential mode). Model restored."""
    x, y, c = _check_data(_check_bottleneck(model), data)
    checks.check_choice("source", source, ("true", "predicted"))
    steps, lr = checks.check_int("steps", steps), checks.check_float("lr", lr, 0.0, open_low=True)
    inputs = c if source == "true" else model.activate(concept_outputs(model, x))
    with hooks.frozen(model):  # modes and flags restored on exit
        model.f.train().requires_grad_(True)
        models.fit(model.f.parameters(), len(x), lambda idx: F.cross_entropy(model.f(inputs[idx]), y[idx]), steps, lr,
             len(x), 0, False, "head f")
    return model


def train_bottleneck(model: ConceptBottleneck, data, mode: str, lam: float = JOINT_LAMBDA, epochs: int = 6,
                     lr: float = 3e-3, batch_size: int = 64, seed: int = 0, progress: bool = True,
                     head_steps: int = 500, frozen_blocks: int = 0) -> ConceptBottleneck:
    """Train a :class:`ConceptBottleneck` on a ``Flowers`` set in one of Koh et al.'s modes.

    ``"independent"``: :func:`train_concepts` then :func:`train_head` on the true concepts;
    ``"sequential"``: :func:`train_concepts` then :func:`train_head` on ``g``'s predictions;
    ``"joint"``: ``g`` and ``f`` end to end on :func:`joint_loss` with ``lam`` (used by this mode
    only), then the training percentiles. Deterministic for a seed; modes and flags restored.
    """
    model, mode = _check_bottleneck(model), checks.check_choice("mode", mode, MODES)
    lam = checks.check_float("lam", lam, low=0.0)
    if mode == "joint":
        return _train_g(model, data, lam, epochs, lr, batch_size, seed, progress, frozen_blocks)
    train_concepts(model, data, epochs, lr, batch_size, seed, progress, frozen_blocks)
    return train_head(model, data, "true" if mode == "independent" else "predicted", head_steps)


def _replaced(model: ConceptBottleneck, c_pred: torch.Tensor, c_true: torch.Tensor, mask: torch.Tensor):
    """Concept outputs with the entries of ``mask`` set to the truth (percentile logits / values)."""
    true_out = torch.where(model.continuous, c_true, torch.where(c_true > 0.5, model.high, model.low))
    return torch.where(mask, true_out, c_pred)


def _order(order, a: int, seed: int) -> torch.Tensor:
    if order is None or isinstance(order, str):
        checks.check_choice("order", order, (None, "random"))
        return torch.randperm(a, generator=torch.Generator().manual_seed(seed))
    order = checks.check_units(order, a, "order")
    if len(set(order.tolist())) != len(order):
        raise ValueError(f"order must not repeat a concept, got {order.tolist()}")
    return order


@torch.no_grad()
def intervene(model: ConceptBottleneck, x: torch.Tensor, c_true: torch.Tensor, concepts=None, k: int | None = None,
              order=None, seed: int = 0) -> torch.Tensor:
    """Class logits ``(N, K)`` after test-time intervention (Koh et al. 2020, Sec. 5): the predicted
    concepts ``g(x)`` at ``concepts`` (indices) -- or the first ``k`` of ``order`` (indices, or
    ``None``/``"random"``: a permutation seeded by ``seed``) -- are replaced by the truth ``c_true
    (N, A)``: a binary concept's logit by ``model.high`` (true) or ``model.low`` (false), a continuous
    concept by its value; then ``f`` runs again. Give exactly one of ``concepts`` and ``k``."""
    model, x = _check_bottleneck(model), checks.check_images(x)
    a = model.num_concepts
    if not isinstance(c_true, torch.Tensor) or tuple(c_true.shape) != (len(x), a):
        raise ValueError(f"c_true must be a tensor of shape ({len(x)}, {a}), got {getattr(c_true, 'shape', c_true)!r}")
    if (concepts is None) == (k is None):
        raise ValueError(f"give exactly one of concepts and k, got concepts={concepts!r}, k={k!r}")
    if k is not None and checks.check_int("k", k, low=0) > a:
        raise ValueError(f"k must be <= the number of concepts {a}, got {k}")
    chosen = (checks.check_units(concepts, a, "concepts") if k is None
              else _order(order, a, checks.check_int("seed", seed, low=0))[:k])
    with hooks.frozen(model):
        return model.head(_replaced(model, model.g(x), c_true.float(), torch.isin(torch.arange(a), chosen)))


@torch.no_grad()
def intervention_curve(model: ConceptBottleneck, data, order=None, steps=None, seed: int = 0,
                       batch_size: int = 512) -> dict:
    """Accuracy after intervening on the first ``k`` concepts of ``order``, for each ``k`` in ``steps``
    (default ``0..A``). ``g`` runs once over the data (batched); each ``k`` is one batched pass of
    ``f``. Returns ``{"k": LongTensor, "accuracy": tensor, "order": [indices], "names": [...]}``."""
    x, y, c = _check_data(_check_bottleneck(model), data)
    order = _order(order, model.num_concepts, checks.check_int("seed", seed, low=0))
    steps = torch.arange(len(order) + 1) if steps is None else checks.check_units(steps, len(order) + 1, "steps")
    c_pred, acc, every = concept_outputs(model, x, batch_size), [], torch.arange(model.num_concepts)
    with hooks.frozen(model):
        for k in steps.tolist():
            logits = model.head(_replaced(model, c_pred, c, torch.isin(every, order[:k])))
            acc.append((logits.argmax(1) == y).float().mean())
    return {"k": steps, "accuracy": torch.stack(acc), "order": order.tolist(),
            "names": [model.concept_names[i] for i in order.tolist()]}


@torch.no_grad()
def concept_accuracy(model: ConceptBottleneck, data, batch_size: int = 512) -> dict:
    """Per concept: accuracy of ``g`` (logit > 0 vs truth) for binary concepts, mean absolute error
    for continuous ones. Returns ``{"accuracy": {name: acc}, "error": {name: mae}, "mean_accuracy",
    "worst": (name, acc)}`` (mean and worst over the binary concepts)."""
    x, _, c = _check_data(_check_bottleneck(model), data)
    out = concept_outputs(model, x, batch_size)
    acc, err = ((out > 0).float() == c).float().mean(0), (out - c).abs().mean(0)
    names, cont = model.concept_names, model.continuous.tolist()
    accuracy = {n: acc[j].item() for j, n in enumerate(names) if not cont[j]}
    worst = min(accuracy.items(), key=lambda kv: kv[1])
    return {"accuracy": accuracy, "error": {n: err[j].item() for j, n in enumerate(names) if cont[j]},
            "mean_accuracy": sum(accuracy.values()) / len(accuracy), "worst": worst}


def skeleton(entry: dict) -> ConceptBottleneck:
    """The untrained :class:`ConceptBottleneck` a manifest ``entry`` describes (for ``models.load``)."""
    return ConceptBottleneck(entry["num_classes"], entry["concept_names"], entry["continuous"],
                             tuple(entry["width"]), entry.get("hidden", 0))


def build(name: str, spec, progress: bool = True) -> tuple[ConceptBottleneck, dict]:
    """Train the shipped bottleneck ``name`` (``bottleneck_<mode>``) from its ``models.SPECS`` entry:
    ``g``'s conv stack starts from the plain CNN ``models.load(spec.variant)``, its first
    :data:`FROZEN_BLOCKS` blocks fixed. Independent and sequential share one ``g`` (cached per process)."""
    from ..data import flowers

    mode = checks.check_choice("mode", name.rpartition("_")[2], MODES)
    data = flowers(spec.n_train, spec.variant, seed=spec.seed, split="train")
    torch.manual_seed(spec.seed)
    model = ConceptBottleneck(data.num_classes, data.attribute_names)
    cnn = models.load(spec.variant)  # warm start: g's conv stack from the plain CNN
    model.g.features.load_state_dict(cnn.features.state_dict())
    t0, key = time.time(), (spec.variant, spec.n_train, spec.epochs, spec.seed)
    if mode == "joint":
        train_bottleneck(model, data, "joint", JOINT_LAMBDA, spec.epochs, lr=LR, seed=spec.seed,
                         progress=progress, frozen_blocks=FROZEN_BLOCKS)
        seconds = time.time() - t0
    else:
        if key not in _G_CACHE:
            train_concepts(model, data, spec.epochs, LR, seed=spec.seed, progress=progress,
                           frozen_blocks=FROZEN_BLOCKS)
            _G_CACHE[key] = (copy.deepcopy(model.state_dict()), time.time() - t0)
        state, g_seconds = _G_CACHE[key]
        model.load_state_dict(state)  # f back to its seeded initialisation too
        t0 = time.time() - g_seconds  # g's training counts in both modes
        train_head(model, data, "true" if mode == "independent" else "predicted")
        seconds = time.time() - t0
    test = flowers(2000, spec.variant, seed=1, split="test")  # the manifest's held-out accuracy
    names = list(data.attribute_names)
    return model.eval(), {
        "skeleton": "xai_lab.design.bottleneck:skeleton", "variant": spec.variant, "num_classes": data.num_classes,
        "concept_names": names, "continuous": [n for n in names if n in CONTINUOUS], "width": list(model.g.width),
        "hidden": model.hidden, "mode": mode, "lam": JOINT_LAMBDA if mode == "joint" else None, "lr": LR,
        "frozen_blocks": FROZEN_BLOCKS, "n_train": spec.n_train, "epochs": spec.epochs, "seed": spec.seed,
        "note": spec.note, "train_seconds": round(seconds, 1), "test_accuracy": round(models.evaluate(model, test), 4)}
