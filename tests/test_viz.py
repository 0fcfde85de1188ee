"""xai_lab.viz: the plots draw, bad shapes are refused, and importing it does not import matplotlib."""
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.contour import ContourSet

from xai_lab import viz


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def panels(fig, label):
    return [a for a in fig.axes if a.get_label() == label]


def contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def test_show_forms(single_test):
    x = single_test.images[:3]
    maps = torch.rand(3, 64, 64)
    assert isinstance(viz.show(x), plt.Figure)
    fig = viz.show(x, maps, titles=["a", "b", "c"])
    assert len([a for a in fig.axes if a.images]) == 6, "each overlay has its raw image beside it"
    fig = viz.show(x, {"saliency": maps, "grad-cam": -maps}, diverging=True)
    assert len(fig.axes) == 9 and fig.axes[1].get_title() == "saliency"
    assert isinstance(viz.show(x[0]), plt.Figure)


def test_every_overlay_has_its_raw_image_beside_it(single_test):
    """The raw image is shown as it is (its colour defines the class); a heatmap lies over a grey copy."""
    x = single_test.images[:5]
    fig = viz.show(x, torch.rand(5, 64, 64), titles=list("abcde"), ncols=3)
    raw, over = panels(fig, "raw"), panels(fig, "overlay")
    assert len(raw) == len(over) == 5
    for k, ax in enumerate(raw):
        assert np.array_equal(ax.images[0].get_array(), viz.np_image(x[k])) and ax.get_title() == "abcde"[k]
        below = over[k]
        assert below.get_subplotspec().colspan == ax.get_subplotspec().colspan  # the overlay is under its image
        assert below.get_subplotspec().rowspan.start == ax.get_subplotspec().rowspan.start + 1
        base, heat = (np.asarray(im.get_array()) for im in below.images)
        assert np.allclose(base[..., 0], base[..., 1]) and np.allclose(base[..., 1], base[..., 2]), "base not grey"
        assert heat.shape == (64, 64, 4)
    fig = viz.show(x[:2], {"a": torch.rand(2, 64, 64), "b": torch.rand(2, 64, 64)})
    assert [a.get_title() for a in panels(fig, "raw")] == ["image", ""] and len(panels(fig, "overlay")) == 4


def test_ground_truth_is_an_outline_not_a_fill(single_test):
    """A 0/1 map (ground truth, concept) is a contour line on the colour image: no tint over the part."""
    x, gt = single_test.images[:3], single_test.gt_masks[:3]
    for fig in (viz.show(x, gt.float()), viz.show(x, {"saliency": torch.rand(3, 64, 64), "ground truth": gt.float()})):
        outlined = [a for a in panels(fig, "overlay") if contours(a)]
        assert len(outlined) == 3
        for k, ax in enumerate(outlined):
            assert len(ax.images) == 1 and np.array_equal(ax.images[0].get_array(), viz.np_image(x[k])), "mask filled"
            (line,) = contours(ax)
            assert list(line.levels) == [0.5] and line.get_path_effects(), "the outline needs its dark halo"
    fig = viz.show(x, torch.rand(3, 64, 64), outlines=gt)
    assert all(len(contours(a)) == 1 for a in panels(fig, "overlay"))
    fig = viz.show_flowers(single_test, n=3)
    for i in range(3):
        ax = fig.axes[9 + i]  # the row "discriminative part"
        assert len(ax.images) == 1 and len(contours(ax)) == 1 and len(ax.patches) == 1


def test_superpixels_are_outlined_beside_the_raw_image(single_test):
    """Superpixels: the raw image, and the colour image with one outline per segment (no colour fill)."""
    from xai_lab import explain

    x = single_test.images[:2]
    seg = explain.superpixels(x, "slic", n_segments=100)
    fig = viz.show_segments(x, seg, titles=["a", "b"])
    raw, over = panels(fig, "raw"), panels(fig, "overlay")
    assert len(raw) == len(over) == 2 and raw[0].get_ylabel() == "a"
    for k, ax in enumerate(over):
        d = len(seg[k].unique())
        assert len(ax.images) == 1 and np.array_equal(ax.images[0].get_array(), viz.np_image(x[k])), "segments filled"
        assert len(contours(ax)) == d and ax.get_title() == f"{d} segments"
    quarters = torch.zeros(1, 4, 4, dtype=torch.long)
    quarters[0, :, 2:] = 1
    assert len(contours(panels(viz.show_segments(x[0, :, :4, :4], quarters), "overlay")[0])) == 2
    with pytest.raises(ValueError, match="segments"):
        viz.show_segments(x, seg[:1])
    with pytest.raises(ValueError, match="integer labels"):
        viz.show_segments(x[:1], torch.rand(1, 64, 64))


def test_heatmap_colours_read_the_same_on_every_flower_colour():
    """A value gives the same colour whatever the flower's colour (the flower is read in the raw panel):
    red and blue flowers under the top value of a map differ by little; zero leaves the grey image."""
    from xai_lab.data import PALETTE

    h = torch.zeros(4, 4)
    h[0, 0] = 1.0
    rgba = viz.heat_rgba(h)
    assert rgba[0, 0, 3] == pytest.approx(0.85) and (rgba.reshape(-1, 4)[1:, 3] == 0).all()
    tops = []
    for name in ("red", "yellow", "blue", "purple", "white"):
        img = torch.tensor(PALETTE[name]).view(3, 1, 1).expand(3, 4, 4)
        g = viz.grey(img)
        tops.append((1 - rgba[..., 3:]) * g + rgba[..., 3:] * rgba[..., :3])
        assert np.allclose(tops[-1][1:, 1:], g[1:, 1:])
    spread = max(np.abs(a[0, 0] - b[0, 0]).max() for a in tops for b in tops)
    assert spread < 0.08, f"the top value looks different on different flowers ({spread:.2f})"
    d = viz.heat_rgba(torch.tensor([[-2.0, 0.0, 2.0]]), diverging=True)
    assert d[0, 0, 2] > d[0, 0, 0] and d[0, 2, 0] > d[0, 2, 2] and d[0, 1, 3] == 0  # blue -, red +, 0 clear
    assert viz.heat_rgba(torch.arange(4.0).view(2, 2), cmap="tab20", alpha=0.5)[..., 3].min() == 0.5


def test_widget_pictures_grey_heat_and_haloed_outline(single_test):
    from xai_lab.widgets.base import heat, outlined

    img = single_test.images[0]
    assert np.allclose(heat(img, torch.zeros(64, 64)), viz.grey(img))
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:6, 2:6] = True
    out = outlined(np.full((8, 8, 3), 0.5), mask)
    assert (out[2, 2:6] == 1).all() and (out[3:5, 3:5] == 0.5).all()  # the border white, the inside kept
    assert (out[1, 1:7] == 0).all() and (out[0] == 0.5).all()  # a black halo one pixel outside


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


def test_unit_figure_shows_the_raw_images_above_the_outlined_masks(single_test, single_model):
    from xai_lab import interpret

    probe = single_test.subset(slice(0, 80))
    diss = interpret.dissect(single_model, probe, "features.14", progress=False)
    fig = interpret.plot_unit(single_model, probe, diss, unit=int(diss.top(1)), k=3)
    raw, over = panels(fig, "raw"), panels(fig, "overlay")
    assert len(raw) == 3 and len(over) == 6 and all(len(a.images) == 1 for a in raw)
    assert all(len(contours(a)) <= 1 and all(c.get_path_effects() for c in contours(a)) for a in over)
    assert sum(len(contours(a)) for a in over) >= 3
