"""xai_lab.models: shipped weights (checksums, size), measured quality, training and prediction."""
import json
import shutil

import pytest
import torch

from xai_lab import analysis, data, models

EXPECTED = {"single", "double", "watermark", "biased", "permuted"}


def test_all_models_ship_small_with_checksums():
    manifest = json.loads(models.MANIFEST.read_text())
    assert EXPECTED <= set(manifest) == set(models.available())
    for name, entry in manifest.items():
        path = models.WEIGHTS / entry["file"]
        assert path.stat().st_size <= 2 * 2**20, f"{name}: {path.stat().st_size} bytes > 2 MB"
        assert models._sha256(path) == entry["sha256"]


def test_load_gives_eval_model_with_the_cam_layers(single_model):
    m = single_model
    assert not m.training
    assert isinstance(m.features, torch.nn.Sequential) and isinstance(m.pool, torch.nn.AdaptiveAvgPool2d)
    assert isinstance(m.fc, torch.nn.Linear) and m.fc.out_features == 6
    assert m(torch.rand(2, 3, 64, 64)).shape == (2, 6)
    assert m(torch.rand(1, 3, 96, 96)).shape == (1, 6), "any input size works (global pooling)"


def test_a_corrupted_weight_file_is_refused(tmp_path, monkeypatch):
    for f in models.WEIGHTS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "flowers_single.pt"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(models, "WEIGHTS", tmp_path)
    monkeypatch.setattr(models, "MANIFEST", tmp_path / "manifest.json")
    with pytest.raises(RuntimeError, match="checksum"):
        models.load("single")
    assert not models.load("double").training  # the others still load


@pytest.mark.parametrize("bad, err", [("nonexistent", ValueError), (3, TypeError)])
def test_load_rejects_unknown_names(bad, err):
    with pytest.raises(err, match="name"):
        models.load(bad)


# --- measured quality, on fresh test splits (seeds no model was trained on) -----------------------
@pytest.fixture(scope="module")
def preds():
    out = {}
    for name, variant in [("single", "single"), ("double", "double"), ("watermark", "watermark"),
                          ("biased", "biased"), ("permuted", "single")]:
        test = data.flowers(1500, variant, seed=77, split="test")
        out[name] = (test, models.predict(models.load(name), test.images))
    return out


def test_single_and_double_accuracy(preds):
    for name, floor in (("single", 0.97), ("double", 0.93)):
        test, pred = preds[name]
        assert analysis.accuracy(pred, test.labels) >= floor, name


def test_watermark_model_relies_on_the_mark(preds):
    test, pred = preds["watermark"]
    agree, lies = analysis.watermark_effect(pred, test.labels, test.watermark)
    assert agree - lies >= 0.30, f"accuracy {agree:.2f} with a truthful glyph vs {lies:.2f} with a lying one"
    # and the plain single model does not care about the glyph
    single = models.predict(models.load("single"), test.images)
    a, b = analysis.watermark_effect(single, test.labels, test.watermark)
    assert abs(a - b) < 0.05


def test_biased_model_has_a_subgroup_gap(preds):
    test, pred = preds["biased"]
    table = analysis.subgroup_accuracy(pred, test.labels, test.group, 6)
    gap, k = analysis.largest_gap(table)
    assert gap >= 0.15 and k in (0, 1, 2), f"largest gap {gap:.2f} on class {k}"
    assert table[0].min() > 0.9, "day images are fine"


def test_permuted_model_is_at_chance(preds):
    test, pred = preds["permuted"]
    assert analysis.accuracy(pred, test.labels) < 0.3


# --- training, prediction, the baseline -------------------------------------------------------------
def test_train_is_deterministic_and_restores_eval():
    d = data.flowers(64, "single", seed=9)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        m = models.FlowerCNN(6, width=(4, 4, 4, 4))
        models.train(m, d, epochs=1, batch_size=32, seed=3, progress=False)
        assert not m.training
        weights.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(*weights)


def test_predict_restores_the_mode(single_model, single_test):
    m = single_model.train()
    try:
        pred = models.predict(m, single_test.images[:10], batch_size=3)
        assert m.training and pred.shape == (10,)
    finally:
        m.eval()


def test_colour_histogram_baseline(single_test):
    h = models.ColourHistogram(6, bins=4)
    feats = h.histogram(single_test.images[:5])
    assert feats.shape == (5, 64) and torch.allclose(feats.sum(1), torch.ones(5))
    base = models.colour_histogram_baseline(data.flowers(600, "single", seed=8))
    acc = analysis.accuracy(models.predict(base, single_test.images), single_test.labels)
    assert 1 / 6 < acc < 0.95, f"a real but imperfect baseline, got {acc:.2f}"


@pytest.mark.parametrize("kwargs, word", [(dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size")])
def test_train_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        models.train(models.FlowerCNN(6, (4, 4, 4, 4)), data.flowers(8, "single"), **kwargs)
