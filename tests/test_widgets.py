"""xai_lab.widgets, headless: every explorer builds with its defaults (small samples here), every
control changes the picture and the numbers, re-selecting a value is served from the cache, a
student's own function is what gets drawn, bad arguments are refused by name, and the shipped
models come back as they were."""
import re
from unittest import mock

import ipywidgets as W
import pytest
import torch

from model_state import assert_same_state, model_state
from xai_lab import data, design, evaluate, explain, interpret, models
from xai_lab.widgets import design_explorer, dissection_explorer, evaluation_explorer, explain_explorer
from xai_lab.widgets.evaluation import perturbed

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn():
    return models.load("single")


@pytest.fixture(scope="module")
def few():
    return data.flowers(4, "single", seed=3, split="test")


def numbers(explorer):
    """The numbers of ``info``, without the time the update took."""
    return re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", explorer.info.value.split("<small>")[0])


def change(explorer, control, value):
    """Set a control as a person would; the picture and the numbers must change."""
    before = explorer.image.value, numbers(explorer)
    explorer.controls[control].value = value
    assert "Error" not in explorer.info.value, explorer.info.value
    assert explorer.image.value != before[0], f"{control}={value!r} left the picture as it was"
    assert numbers(explorer) != before[1], f"{control}={value!r} left the numbers as they were"


def reselect(explorer, control, value, back):
    """Going to ``value`` and back to ``back`` shows the first picture again from the cache: the model
    does not run again (no convolution is called; timing is the benchmark's business, not a test's)."""
    first = explorer.image.value
    explorer.controls[control].value = value
    with mock.patch.object(torch.nn.Conv2d, "forward", autospec=True, side_effect=torch.nn.Conv2d.forward) as conv:
        explorer.controls[control].value = back
    assert explorer.image.value == first
    assert conv.call_count == 0, f"going back to {control}={back!r} ran {conv.call_count} convolutions: not cached"


def check_convention(explorer, name):
    assert isinstance(explorer, W.VBox) and {"xai-explorer", f"xai-{name}"} <= set(explorer._dom_classes)
    assert "xai-output" in explorer.image._dom_classes and explorer.image.value[:4] == b"\x89PNG"
    assert any(isinstance(c, W.Dropdown) for c in explorer.controls.values())
    for key, control in explorer.controls.items():
        assert f"xai-control-{key}" in control._dom_classes
        assert getattr(control, "continuous_update", False) is False


@pytest.mark.parametrize("explorer, name", [(explain_explorer, "explain"), (dissection_explorer, "dissection"),
                                            (evaluation_explorer, "evaluation"), (design_explorer, "design")])
def test_defaults_build_with_no_arguments(explorer, name):
    e = explorer()
    check_convention(e, name)
    assert e.info.value and "Error" not in e.info.value


def test_explain_explorer_controls_cost_and_model(cnn, few):
    before = model_state(cnn)
    e = explain_explorer(cnn, few, methods=["grad_cam", "saliency", "occlusion"], options={"occlusion": {"window": 16}})
    check_convention(e, "explain")
    assert "1 images forward, 1 backward" in e.info.value
    change(e, "method", "occlusion")
    assert re.search(r"cost: (\d+) images forward, 0 backward", e.info.value).group(1) != "1"
    change(e, "method", "saliency")
    change(e, "image", 2)
    change(e, "target", (e.controls["target"].value + 1) % 6)
    change(e, "foil", (e.controls["target"].value + 1) % 6)
    change(e, "method", "grad_cam")
    change(e, "layer", "features.10")
    reselect(e, "layer", "features.14", "features.10")
    hmap = e.maps.get("grad_cam", 2, e.controls["target"].value, e.controls["foil"].value, "features.10")[0]
    ref = explain.contrastive(cnn, few.images[2:3], e.controls["target"].value, e.controls["foil"].value,
                              layer="features.10")[0]
    assert torch.equal(hmap, ref)
    e.controls["foil"].value = e.controls["target"].value  # a foil equal to the class: said, not raised
    assert "foil must differ" in e.info.value
    assert_same_state(cnn, before)


def test_explain_explorer_uses_the_students_functions(cnn, few):
    calls = []

    def square(model, x, target):
        calls.append((model, tuple(x.shape), target))
        m = torch.zeros(1, 64, 64)
        m[:, 10:30, 20:40] = 1.0
        return m

    def my_grad_cam(model, x, target, layer=None):  # a student's copy of the reference
        return explain.grad_cam(model, x, target, layer=layer)

    e = explain_explorer(cnn, few, methods={"mine": square, "reference": "grad_cam", "student": my_grad_cam})
    e.controls["method"].value = "mine"
    assert calls and calls[-1][0] is cnn and calls[-1][1] == (1, 3, 64, 64)
    assert "0 images forward" in e.info.value and "min 0, max 1" in e.info.value
    assert torch.equal(e.maps.get("mine", 0, calls[-1][2])[0], square(cnn, few.images[:1], 0)[0])
    picture = e.image.value
    e.controls["method"].value = "reference"
    assert e.image.value != picture
    e.controls["method"].value = "student"
    assert not e.controls["layer"].disabled  # the student's function takes a layer: offered
    e.controls["layer"].value = "features.6"
    t = e.controls["target"].value
    assert torch.equal(e.maps.get("student", 0, t, None, "features.6")[0],
                       e.maps.get("reference", 0, t, None, "features.6")[0])
    e.controls["method"].value = "mine"
    assert e.controls["layer"].disabled


def test_a_students_model_and_a_failing_function_leave_the_model_as_it_came(few):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 6)).train()  # training mode, no `features`
    before = model_state(net)

    def broken(model, x, target):
        model.eval()
        raise RuntimeError("my method is not finished")

    e = explain_explorer(net, few.images, methods={"grad_cam": "grad_cam", "mine": broken})
    assert list(e.controls["layer"].options) == ["0", "1"] and "layer 1" in e.info.value
    change(e, "layer", "0")
    e.controls["method"].value = "mine"
    assert "RuntimeError" in e.info.value and "not finished" in e.info.value
    v = evaluation_explorer(net, few.images, methods="grad_cam")  # the CAM family's layer: the last conv/ReLU
    change(v, "k", 4)
    assert_same_state(net, before)


def test_bad_arguments_are_named(cnn, few):
    with pytest.raises(TypeError, match="model"):
        explain_explorer(model="single")
    with pytest.raises(ValueError, match="methods"):
        explain_explorer(cnn, few, methods=["grad_cam", "gradcam"])
    with pytest.raises(TypeError, match="methods"):
        explain_explorer(cnn, few, methods=3)
    with pytest.raises(ValueError, match="n must"):
        explain_explorer(cnn, n=0)
    with pytest.raises(ValueError, match="layer"):
        explain_explorer(cnn, few, methods="grad_cam", layers=["features.99"])
    with pytest.raises(ValueError, match="options"):
        evaluation_explorer(cnn, few, methods="saliency", options={"lrp": {}})
    with pytest.raises(ValueError, match="region"):
        evaluation_explorer(cnn, few, region=7)
    with pytest.raises(TypeError, match="data"):
        dissection_explorer(cnn, torch.rand(2, 3, 64, 64))
    with pytest.raises(TypeError, match="data"):
        explain_explorer(cnn, [1, 2])
    with pytest.raises(ValueError, match="part"):
        design_explorer(part="both")
    with pytest.raises(TypeError, match="bottleneck"):
        design_explorer(bottleneck=cnn)
    with pytest.raises(ValueError, match="push_data"):
        design_explorer(prototypes=models.load("prototypes"))
    with pytest.raises(ValueError, match="data"):
        design_explorer(data=few.images)  # bare images: no concepts to intervene on


def test_evaluation_explorer_step_slider_shows_what_the_curve_measured(cnn, few):
    before = model_state(cnn)
    e = evaluation_explorer(cnn, few, methods=["grad_cam", "saliency"])
    check_convention(e, "evaluation")
    assert e.controls["k"].max == 64
    change(e, "k", 5)
    change(e, "curve", "insertion")
    change(e, "curve", "morf")
    change(e, "method", "saliency")
    change(e, "image", 1)
    reselect(e, "k", 9, 5)
    for name in ("deletion", "insertion", "morf"):
        curve, hmap = e.curve("saliency", 1, name)
        target = int(e.probs[1].argmax())
        for k in (0, 3, 17):
            shown = perturbed(few.images[1], hmap, name, k, 64, 8)
            with torch.no_grad():
                p = cnn(shown[None]).softmax(1)[0, target]
            assert torch.allclose(p, curve.scores[0, k], atol=1e-5), (name, k)
    assert isinstance(curve, evaluate.Curve)
    assert_same_state(cnn, before)


def test_dissection_explorer_layer_unit_concept_formula(cnn):
    before = model_state(cnn)
    probe = data.flowers(48, "single", seed=1, split="test")
    e = dissection_explorer(cnn, probe)
    check_convention(e, "dissection")
    assert e.controls["layer"].value == "features.14" and e.controls["unit"].max == 127
    change(e, "unit", 7)
    change(e, "layer", "features.6")
    assert e.controls["unit"].max == 31
    change(e, "unit", 3)
    reselect(e, "layer", "features.14", "features.6")
    d, _ = e.dissection("features.6")
    ref = interpret.compose_unit(cnn, probe, "features.6", 3, d.thresholds, progress=False)
    assert str(ref.formula) in e.info.value and f"{ref.iou:.3f}" in e.info.value
    assert d.concept_names[int(d.labels[3])] in e.info.value
    assert_same_state(cnn, before)


def test_design_explorer_intervention_and_prototypes():
    cbm = models.load("bottleneck_joint")
    states = model_state(cbm), model_state(models.load("prototypes"))
    few = data.flowers(3, "double", seed=0, split="test")
    e = design_explorer(cbm, None, few, data.flowers(3, "single", seed=0, split="test"))  # shipped prototypes
    check_convention(e, "design")
    box = e.controls["concept_centre_red"]
    predicted = box.value
    change(e, "concept_centre_red", not predicted)
    j = cbm.concept_names.index("centre_red")
    truth = e.c_pred[:1].clone()
    truth[0, e.binary] = torch.tensor([float(b.value) for b in e.boxes])
    ref = design.intervene(cbm, few.images[:1], truth, concepts=[j]).softmax(1)[0]
    assert f"{float(ref.max()):.3f}" in e.info.value
    change(e, "image", 1)
    assert [b.value for b in e.boxes] == [bool(e.c_pred[1, j] > 0) for j in e.binary]  # reset to the prediction
    change(e, "part", "prototypes")
    change(e, "k", 5)
    change(e, "image", 2)
    reselect(e, "k", 4, 5)
    view, source = e.source()  # each prototype is the patch it was pushed onto: distance 0 there
    with torch.no_grad():
        d = view.inspect(source[view.push_image]).min_distances
    assert torch.allclose(d.diagonal(), torch.zeros(len(d)), atol=1e-4)
    change(e, "part", "concept bottleneck")
    assert e.controls["image"].value == 1
    assert_same_state(cbm, states[0])
    assert_same_state(e.proto, states[1])
