"""Small CNNs for the flowers, their shipped weights, and the code that trains them.

``load(name)`` returns a trained model in eval mode; the weights ship inside the package
(``xai_lab/weights``) and their SHA-256 is checked against ``weights/manifest.json`` at every load.
``xai-lab weights`` (``make weights``, or ``python -m xai_lab.models``) retrains all of them deterministically.

The flower CNN exposes ``features`` (conv stack), ``pool`` (global average pool) and ``fc`` (linear
head), so CAM-style methods and dissection find their layers without guessing. It normalises inside
(``normalize``), so raw images in [0, 1] go in.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["FlowerCNN", "ColourHistogram", "colour_histogram_baseline", "load", "available", "train",
           "evaluate", "predict", "forward_time", "SPECS"]

WEIGHTS = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS / "manifest.json"


class Normalize(nn.Module):
    """Per-channel standardisation inside the model: raw images in [0, 1] go in."""

    def __init__(self, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _block(c_in, c_out, pool):
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


class FlowerCNN(nn.Module):
    """Four 3x3 conv blocks (conv, batch norm, ReLU; max-pool after the first three), GAP, linear.

    Indices in ``features`` (64 x 64 input): conv ``0`` / ``4`` / ``8`` / ``12`` at 64 / 32 / 16 / 8
    px; ReLU ``2`` / ``6`` / ``10`` / ``14``. The last conv block (``features.12``-``14``) gives
    ``width[-1]`` maps of 8 x 8, the layer CAM, Grad-CAM and dissection use.
    """

    def __init__(self, num_classes: int = 6, width=(16, 32, 64, 128)):
        super().__init__()
        self.num_classes, self.width = num_classes, tuple(width)
        self.normalize = Normalize()
        c = (3,) + self.width
        self.features = nn.Sequential(*[m for i in range(4) for m in _block(c[i], c[i + 1], i < 3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.width[-1], num_classes)

    def forward(self, x):
        f = self.features(self.normalize(x))  # (N, C, H/8, W/8)
        return self.fc(self.pool(f).flatten(1))  # (N, K)


class ColourHistogram(nn.Module):
    """A hand-crafted baseline (the lecture's "Fisher vectors" row): a joint RGB colour histogram of
    the whole image (``bins**3`` features, log-scaled) and a small MLP on top. It knows which colours
    are present and how much of each, but not where they are."""

    def __init__(self, num_classes: int = 6, bins: int = 4, hidden: int = 128):
        super().__init__()
        self.bins, self.num_classes = bins, num_classes
        self.mlp = nn.Sequential(nn.Linear(bins ** 3, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def histogram(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, bins**3)``: the fraction of pixels in each colour bin."""
        n, b = x.shape[0], self.bins
        q = (x.clamp(0, 1) * b).long().clamp(max=b - 1)  # (N, 3, H, W) bin per channel
        idx = (q[:, 0] * b + q[:, 1]) * b + q[:, 2]  # (N, H, W) joint bin
        flat = (idx.flatten(1) + torch.arange(n).view(n, 1) * b ** 3).flatten()
        counts = torch.bincount(flat, minlength=n * b ** 3).view(n, b ** 3).float()
        return counts / idx[0].numel()

    def forward(self, x):
        return self.mlp(torch.log(self.histogram(x) + 1e-3))  # (N, K)


def colour_histogram_baseline(data, bins: int = 4, steps: int = 400, lr: float = 1e-2,
                              seed: int = 0) -> ColourHistogram:
    """Fit a :class:`ColourHistogram` on a ``Flowers`` set: full-batch Adam, seeded (a few seconds)."""
    torch.manual_seed(seed)
    model = ColourHistogram(data.num_classes, bins)
    feats = torch.log(model.histogram(data.images) + 1e-3)  # computed once
    opt = torch.optim.Adam(model.mlp.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model.mlp(feats), data.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@dataclass(frozen=True)
class Spec:
    """How a shipped model is made: the data it sees and how long it trains."""
    variant: str
    permute_labels: bool = False
    n_train: int = 8000
    epochs: int = 8
    seed: int = 0
    note: str = ""
    # "module:function" for a model that is not a plain FlowerCNN: function(name, spec, progress)
    # trains it and returns (model, manifest entry); the entry names its "skeleton", a
    # "module:function" that builds the untrained module from the entry, for load()
    builder: str = ""


def _call(path: str, *args):
    """``module:function`` called with ``args`` (builders and skeletons of the design models)."""
    import importlib

    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)(*args)


SPECS = {
    "single": Spec("single", note="6 classes: centre colour"),
    "double": Spec("double", n_train=12000, epochs=10, note="12 classes: centre and petal colours"),
    "watermark": Spec("watermark", note="trained where a corner glyph names the class"),
    "biased": Spec("biased", note="trained where dusk is rare for classes 0-2"),
    "permuted": Spec("single", permute_labels=True, note="trained on permuted labels (sanity checks)"),
    "bottleneck_independent": Spec("double", n_train=8000, epochs=10, builder="xai_lab.design.bottleneck:build",
                                   note="concept bottleneck x -> 25 attributes -> class, f on the true concepts"),
    "bottleneck_sequential": Spec("double", n_train=8000, epochs=10, builder="xai_lab.design.bottleneck:build",
                                  note="concept bottleneck, f on g's predicted concepts (g shared with independent)"),
    "bottleneck_joint": Spec("double", n_train=8000, epochs=10, builder="xai_lab.design.bottleneck:build",
                             note="concept bottleneck trained end to end on L_y + 1.0 * sum_j L_cj"),
    "prototypes": Spec("single", n_train=4000, epochs=6, builder="xai_lab.design.prototypes:build",
                       note="ProtoPNet on the single features: 5 prototypes per class, pushed"),
    "cue": Spec("cue", n_train=8000, epochs=8, note="trained where an imperceptible pixel pattern names the class"),
    "cue_remedy": Spec("cue", n_train=8000, epochs=16, builder="xai_lab.design.inconsistency:build",
                       note="trained on the cue data with every cue scrambled (feature-inconsistency remedy)"),
}


def available() -> list[str]:
    """Names of the shipped models."""
    return sorted(json.loads(MANIFEST.read_text())) if MANIFEST.exists() else []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(name: str) -> nn.Module:
    """A shipped model in eval mode, its weights checked against the manifest's SHA-256."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    if name not in manifest:
        raise ValueError(f"name must be one of {sorted(manifest)}, got {name!r}")
    entry = manifest[name]
    path = WEIGHTS / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"weights of {name!r} missing at {path}; run `make weights`")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise RuntimeError(f"checksum mismatch for {path}: {digest} != {entry['sha256']} "
                           f"(file corrupted or changed; run `make weights` to rebuild)")
    skeleton = entry.get("skeleton")
    model = _call(skeleton, entry) if skeleton else FlowerCNN(entry["num_classes"], tuple(entry["width"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes ``(N,)`` of images ``x (N, 3, H, W)``, in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def forward_time(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> float:
    """Seconds of one forward pass over images ``x`` in batches of ``batch_size``, without
    gradients, in eval mode (mode restored): the floor a method that runs the model is measured
    against."""
    was_training = model.training
    model.eval()
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch in x.split(batch_size):
                model(batch)
        return time.perf_counter() - t0
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, data, batch_size: int = 512) -> float:
    """Accuracy of ``model`` on a ``Flowers`` data set, in [0, 1]."""
    return (predict(model, data.images, batch_size) == data.labels).float().mean().item()


def train(model: nn.Module, dataset, epochs: int = 8, lr: float = 3e-3, batch_size: int = 64,
          seed: int = 0, progress: bool = True, labels: torch.Tensor | None = None) -> nn.Module:
    """Train ``model`` on ``dataset`` (a ``Flowers``) with AdamW and a one-cycle schedule.

    Deterministic for a given seed on a given machine. ``labels`` overrides ``dataset.labels``
    (e.g. permuted labels). Returns the model in eval mode.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    x = dataset.images
    y = dataset.labels if labels is None else labels
    model.train()
    fit(model.parameters(), len(x), lambda idx: nn.functional.cross_entropy(model(x[idx]), y[idx]),
        epochs, lr, batch_size, seed, progress)
    return model.eval()


def fit(params, n: int, step_loss, epochs: int, lr: float, batch_size: int, seed: int = 0,
        progress: bool = True, desc: str = "training") -> None:
    """The training loop of the shipped models: AdamW (weight decay 1e-4) with a one-cycle schedule
    over ``epochs`` passes of seeded shuffled mini-batches of ``n`` items; ``step_loss(idx)`` gives
    the loss of the items ``idx``. Deterministic for a seed on a given machine."""
    gen, per_epoch = torch.Generator().manual_seed(seed), max(1, n // batch_size)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch)
    bar = tqdm(total=epochs * per_epoch, disable=not progress, desc=desc, unit="batch")
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            loss = step_loss(order[i * batch_size:(i + 1) * batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()


def build(name: str, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train the shipped model ``name`` from its ``SPECS`` entry; returns it with its manifest entry."""
    from .data import flowers

    spec = SPECS[name]
    if spec.builder:
        return _call(spec.builder, name, spec, progress)
    data = flowers(spec.n_train, spec.variant, seed=spec.seed, split="train")
    labels = None
    if spec.permute_labels:
        labels = data.labels[torch.randperm(len(data), generator=torch.Generator().manual_seed(spec.seed))]
    torch.manual_seed(spec.seed)
    model = FlowerCNN(data.num_classes)
    t0 = time.time()
    train(model, data, epochs=spec.epochs, seed=spec.seed, progress=progress, labels=labels)
    entry = {"variant": spec.variant, "num_classes": data.num_classes, "width": list(model.width),
             "n_train": spec.n_train, "epochs": spec.epochs, "seed": spec.seed,
             "permute_labels": spec.permute_labels, "note": spec.note,
             "train_seconds": round(time.time() - t0, 1)}
    return model, entry


def save(name: str, model: nn.Module, entry: dict) -> None:
    """Write the weights of ``name`` and update its manifest entry (file name and SHA-256)."""
    WEIGHTS.mkdir(exist_ok=True)
    path = WEIGHTS / f"flowers_{name}.pt"
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    manifest[name] = {**entry, "file": path.name, "sha256": _sha256(path)}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="Retrain the shipped flower models.")
    parser.add_argument("names", nargs="*", default=list(SPECS), help=f"any of {list(SPECS)}")
    args = parser.parse_args(argv)
    # One thread: the same weights on every machine, whatever its core count (reductions in the
    # backward pass are summed in a thread-dependent order otherwise).
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in args.names:
        if name not in SPECS:
            parser.error(f"unknown model {name!r}; choose from {list(SPECS)}")
        print(f"== {name}: {SPECS[name].note}")
        model, entry = build(name)
        save(name, model, entry)
        print(f"   saved {WEIGHTS / f'flowers_{name}.pt'} in {entry['train_seconds']} s")


if __name__ == "__main__":
    main()
