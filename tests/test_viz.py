"""xai_lab.viz: the plots draw, bad shapes are refused, and importing it does not import matplotlib."""
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from xai_lab import viz


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_show_forms(single_test):
    x = single_test.images[:3]
    maps = torch.rand(3, 64, 64)
    assert isinstance(viz.show(x), plt.Figure)
    fig = viz.show(x, maps, titles=["a", "b", "c"])
    assert len([a for a in fig.axes if a.images]) == 3
    fig = viz.show(x, {"saliency": maps, "grad-cam": -maps}, diverging=True)
    assert len(fig.axes) == 9 and fig.axes[1].get_title() == "saliency"
    assert isinstance(viz.show(x[0]), plt.Figure)


def test_show_flowers_bars_table(single_test):
    assert len(viz.show_flowers(single_test, n=4).axes) == 16
    assert isinstance(viz.bars({"a": torch.rand(6), "b": torch.rand(6)}, single_test.class_names), plt.Figure)
    assert isinstance(viz.table(torch.rand(2, 6), ["day", "dusk"], single_test.class_names), plt.Figure)


@pytest.mark.parametrize("call, word", [
    (lambda x: viz.show(x, torch.rand(2, 64, 64)), "heatmaps"),
    (lambda x: viz.show(x, {"m": torch.rand(2, 64, 64)}), "heatmaps"),
    (lambda x: viz.show(x.numpy()), "images"),
    (lambda x: viz.bars({"a": torch.rand(5)}, list("abcdef")), "values"),
    (lambda x: viz.table(torch.rand(3, 6), ["a"], list("abcdef")), "values"),
])
def test_bad_shapes_raise(single_test, call, word):
    with pytest.raises((ValueError, TypeError), match=word):
        call(single_test.images[:3])


def test_np_image_is_hwc_numpy_in_unit_range():
    img = torch.linspace(-1, 2, 3 * 4 * 5).view(3, 4, 5)
    out = viz.np_image(img)
    assert isinstance(out, np.ndarray) and out.shape == (4, 5, 3) and out.dtype == np.float32
    assert out.min() == 0 and out.max() == 1
    assert np.array_equal(out, img.clamp(0, 1).permute(1, 2, 0).numpy())


def test_importing_interpret_and_viz_does_not_import_matplotlib():
    code = ("import sys, xai_lab.interpret, xai_lab.viz, xai_lab.viz.interpret; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluation_curves_and_matrix():
    fig = viz.curves({"lrp": torch.linspace(1, 0, 5), "random": torch.ones(5)}, x=torch.linspace(0, 1, 5),
                     xlabel="fraction deleted", title="deletion")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["lrp", "random"]
    assert np.allclose(ax.lines[0].get_ydata(), np.linspace(1, 0, 5)) and ax.lines[1].get_linestyle() == "--"
    fig = viz.curves({"saliency": torch.rand(3)}, xticks=["fc", "features.13", "features.12"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["fc", "features.13", "features.12"]
    values = torch.tensor([[1.0, float("nan")], [0.25, 0.5]])
    fig = viz.matrix(values, rows=["a", "b"], cols=["x", "y"], fmt="{:.2f}")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["-", "0.25", "0.50", "1.00"]
    for call, word in [(lambda: viz.curves({}), "values"), (lambda: viz.curves({"a": torch.rand(3), "b": torch.rand(4)}), "same length"),
                       (lambda: viz.curves({"a": torch.rand(3)}, x=torch.rand(4)), "x must"),
                       (lambda: viz.matrix(values, rows=["a"], cols=["x", "y"]), "labels")]:
        with pytest.raises(ValueError, match=word):
            call()
