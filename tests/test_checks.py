"""xai_lab.checks: the same mistake gives the same exception and message shape in every module."""
import numpy as np
import pytest
import torch

from xai_lab import checks, explain, interpret, models


@pytest.mark.parametrize("value, exc, words", [
    (0, ValueError, "k must be an int >= 1, got 0"),
    (2.5, TypeError, "k must be an int, got float 2.5"),
    (True, TypeError, "k must be an int, got bool True"),
    ("3", TypeError, "k must be an int, got str '3'"),
])
def test_check_int(value, exc, words):
    with pytest.raises(exc) as e:
        checks.check_int("k", value)
    assert str(e.value) == words


def test_numpy_and_torch_integers_are_ints():
    assert checks.check_int("k", np.int64(3)) == 3 and checks.check_int("k", 4) == 4


@pytest.mark.parametrize("kwargs, value, exc", [
    ({}, float("nan"), ValueError), ({"low": 0.0}, -1.0, ValueError), ({}, "x", TypeError),
    ({"low": 0.0, "open_low": True}, 0.0, ValueError), ({"high": 1.0, "open_high": True}, 1.0, ValueError),
])
def test_check_float(kwargs, value, exc):
    with pytest.raises(exc, match="p must be a number"):
        checks.check_float("p", value, **kwargs)


def test_fraction_bounds():
    assert checks.check_fraction("q", 0.5) == 0.5
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match=r"q must be a number > 0.0 and < 1.0"):
            checks.check_fraction("q", bad)
    assert checks.check_fraction("q", 0, open_low=False) == 0.0


def test_the_same_mistake_raises_the_same_error_in_explain_and_interpret(single_model, single_test):
    x = single_test.images[:2]
    with pytest.raises(TypeError, match=r"batch_size must be an int, got float 2.5"):
        explain.occlusion(single_model, x, 0, batch_size=2.5)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got float 2.5"):
        interpret.quantile_thresholds(single_model, x, "features.14", batch_size=2.5, progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        explain.occlusion(single_model, x, 0, batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        interpret.quantile_thresholds(single_model, x, "features.14", batch_size=0, progress=False)


def test_images_and_models():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        checks.check_images([1, 2])
    with pytest.raises(ValueError, match=r"got shape \(3, 4\)"):
        checks.check_images(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        checks.check_model("resnet")
    with pytest.raises(TypeError, match="data must be images"):
        checks.images_of(object())
    assert checks.device_of(models.load("single")).type == "cpu"


def test_units_and_index():
    assert checks.check_units([3, 1], 4).tolist() == [3, 1]
    with pytest.raises(ValueError, match=r"units must be in \[0, 4\)"):
        checks.check_units([4], 4)
    with pytest.raises(TypeError, match="units must be int unit indices"):
        checks.check_units([0.5], 4)
    with pytest.raises(ValueError, match=r"target must be an int or a LongTensor of shape \(3,\)"):
        checks.check_index(torch.tensor([1, 2]), 3, "target")
