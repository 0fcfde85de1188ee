"""xai_lab.grading: reference comparison, record mode, and the guard against the library's own code."""
import sys
import types
import warnings

import pytest
import torch

from xai_lab import analysis, grading


# --- compare -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (0.75, 0.75), (torch.tensor(0.75), 0.75), (3, 3), ("interpretation", "interpretation"),
    (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")])),
    ((0.5, 2), (0.5, 2)), ({"a": torch.tensor([1, 2])}, {"a": torch.tensor([1, 2])}),
    ([torch.tensor([3, 1])], [torch.tensor([3, 1])]),
])
def test_compare_accepts_matches(value, expected):
    assert grading.compare(value, expected) == []


@pytest.mark.parametrize("value, expected, words", [
    (0.5, 0.75, "off by 0.25"),
    (torch.zeros(3), torch.zeros(4), "expected shape (4,)"),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), "1 of 2 values differ; largest difference 0.5 at index (1,)"),
    (torch.tensor([0.8, 0.8, 0.8]), torch.tensor([0.8, 0.5, float("nan")]),
     "2 of 3 values differ; 1 of them a nan on one side only (first at index (2,)); largest other difference 0.3 at index (1,)"),
    (torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 1.0]), "1 of 2 values differ; 1 of them a nan on one side only (first at index (0,))"),
    (torch.tensor([2, 0]), torch.tensor([2, 1]), "1 of 2 entries differ"),
    ("explanation", "interpretation", "not the expected answer"),
    ((0.5,), (0.5, 2), "length 2"),
    ({"a": 1}, {"b": 1}, "keys"),
    ("x", 1.0, "expected a number"),
    (torch.tensor([0.5]), torch.tensor([1]), "integer"),
])
def test_compare_explains_differences(value, expected, words):
    problems = grading.compare(value, expected)
    assert problems and words in problems[0]


def test_record_then_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XAI_LAB_REFERENCES", str(tmp_path))
    monkeypatch.setenv(grading.RECORD_ENV, "1")
    grading.check("demo", "ex1", torch.tensor([1.0, 2.0]))
    grading.check("demo", "ex2", (0.5, 3))
    monkeypatch.delenv(grading.RECORD_ENV)
    grading.check("demo", "ex1", torch.tensor([1.0, 2.0 + 1e-7]))
    grading.check("demo", "ex2", (0.5, 3))
    with pytest.raises(AssertionError, match="differs from the reference"):
        grading.check("demo", "ex1", torch.tensor([1.0, 2.1]))
    with pytest.raises(KeyError, match="ex3"):
        grading.check("demo", "ex3", 1)
    with pytest.raises(FileNotFoundError, match="make references"):
        grading.check("nothing", "ex1", 1)


# --- forbid --------------------------------------------------------------------------------------------
PRED, LABELS = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
alias = analysis.accuracy


def honest(pred, labels):
    return (pred == labels).float().mean().item()


def via_alias(pred, labels):
    return alias(pred, labels)


def via_import(pred, labels):
    from xai_lab.analysis import accuracy as acc
    return acc(pred, labels)


def via_copy(pred, labels, _copy=types.FunctionType(analysis.accuracy.__code__, analysis.accuracy.__globals__)):
    return _copy(pred, labels)


def via_swallowed_error(pred, labels):
    try:
        return analysis.accuracy(pred, labels)
    except Exception:
        return honest(pred, labels)


def via_module_attribute(pred, labels):
    return sys.modules["xai_lab.analysis"].__dict__["accuracy"](pred, labels)


def test_forbid_lets_honest_code_through():
    with grading.forbid("00_foundations.accuracy"):
        assert honest(PRED, LABELS) == pytest.approx(2 / 3)


@pytest.mark.parametrize("cheat", [via_alias, via_import, via_copy, via_swallowed_error, via_module_attribute])
def test_forbid_catches_every_route_to_the_library(cheat):
    before = sys.gettrace()
    with pytest.raises(grading.ForbiddenCall, match="analysis.accuracy"):
        with grading.forbid("00_foundations.accuracy"):
            cheat(PRED, LABELS)
    assert sys.gettrace() is before, "the previous trace function is restored"
    assert analysis.accuracy(PRED, LABELS) == pytest.approx(2 / 3), "the library works again after the block"


def test_forbid_catches_helpers_and_context_managers(single_model):
    from xai_lab import hooks

    def cheat(model, layer, images):
        with hooks.capture(model, layer) as cap, torch.no_grad():
            model(images)
        return cap[layer]

    with pytest.raises(grading.ForbiddenCall):
        with grading.forbid("00_foundations.capture_activations"):
            cheat(single_model, "features.14", torch.rand(1, 3, 64, 64))


def test_forbid_covers_the_properties_of_a_forbidden_class():
    from xai_lab import interpret

    iou = torch.tensor([[0.1, 0.0], [0.0, 0.01]])
    d = interpret.Dissection(iou, iou, iou, torch.zeros(2), ("a", "b"), ("part", "colour"), "layer")
    with pytest.raises(grading.ForbiddenCall, match="Dissection"):
        with grading.forbid("01_interpretation.label_units"):
            d.detectors  # a property: its getter is forbidden with the class


def test_every_registered_exercise_resolves_to_public_names():
    for exercise, targets in grading.REFERENCE_IMPLEMENTATIONS.items():
        for t in targets:
            assert not any(part.startswith("_") for part in t.split(".")), f"{exercise}: {t} is private"
            assert grading.implementation(grading.resolve(t)), (exercise, t)


def _executed_code(fn, *args, **kwargs) -> set:
    """Code objects of xai_lab that run during ``fn(*args, **kwargs)``."""
    seen = set()

    def profile(frame, event, arg):
        if event == "call" and "xai_lab" in frame.f_code.co_filename:
            seen.add(frame.f_code)

    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize("name, call", [
    ("explain.occlusion", lambda m, d: dict(x=d.images[:1], target=d.labels[:1], window=16, stride=16)),
    ("explain.rise", lambda m, d: dict(x=d.images[:1], target=d.labels[:1], n_masks=8)),
    ("explain.lime", lambda m, d: dict(x=d.images[:1], target=d.labels[:1], n_samples=16, segments="grid")),
    ("explain.lrp", lambda m, d: dict(x=d.images[:1], target=d.labels[:1])),
    ("explain.grad_cam", lambda m, d: dict(x=d.images[:1], target=d.labels[:1])),
    ("explain.guided_backprop", lambda m, d: dict(x=d.images[:1], target=d.labels[:1])),
    ("interpret.dissect", lambda m, d: dict(data=d, layer="features.14", progress=False)),
    ("interpret.maximize", lambda m, d: dict(target=1, steps=2)),
])
def test_forbidding_a_method_covers_every_helper_of_its_module_that_runs(single_model, single_test, name, call):
    """The guard is computed from the code: whatever helper of the method's own module runs when the
    method runs (renamed or added later), forbidding the method forbids it too."""
    fn = grading.resolve(name)
    ran = _executed_code(fn, single_model, **call(single_model, single_test.subset(slice(0, 40))))
    own_file, api = fn.__code__.co_filename, set(grading.resolve(name.split(".")[0]).__all__)
    missed = {c.co_name for c in ran if c.co_filename == own_file} - \
        {c.co_name for c in grading.implementation(fn)} - api
    assert not missed, f"{name}: helpers of its module that run but are not forbidden: {missed}"


def test_warnings_go_to_stdout_not_stderr(capfd):
    with grading.forbid():
        warnings.warn("a harmless warning", UserWarning)
        torch.tensor(torch.tensor([1.0]))  # PyTorch's own UserWarning about copy construction
    out, err = capfd.readouterr()
    assert "a harmless warning" in out and err == ""
