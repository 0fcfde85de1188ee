"""Tests of xai_lab.evaluate.ablation (MoRF/LeRF, AOPC, deletion, insertion, blur) and of the parts
of evaluate.base they rest on (Curve, check_maps, pairs).

Each curve against a slow re-implementation (Python loops over images, steps, regions and pixels,
one forward per perturbed image), against Quantus 0.6.0 where the definitions coincide, and on
models whose curves are known in closed form. Nothing is trained.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch import nn

from model_state import assert_same_state, model_state
from xai_lab import data, evaluate as V, explain
from xai_lab.evaluate import base

# torch on one thread in this module: its tensors are small, and one thread does not wait for a core
# another process holds (a file of these tests: 20 s on two threads, 5.6 s on one, on a busy 2-core machine)
pytestmark = pytest.mark.usefixtures("one_thread")

REGION = 16  # 4 x 4 regions of a 64 px flower
STEP = 600   # 4096 pixels: 6 steps of 600 and a partial one of 496


# ------------------------------------------------------------------------------------------------
# models whose curves are known, and small data
# ------------------------------------------------------------------------------------------------
class PixelLinear(nn.Module):
    """Logits linear in the pixels. Each row is reduced on its own, so the logits of an image do
    not depend on the batch it is in (the flower CNN's do, by ~1e-6: its convolution kernels are
    chosen by batch size)."""

    def __init__(self, size=(3, 16, 16), k=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(k, *size, generator=g))

    def forward(self, x):
        return (x[:, None] * self.weight).flatten(2).sum(2)


class OneRegion(nn.Module):
    """Class 0's logit is the mean of rows/cols 4:8 (region 5 of a 4 x 4 grid of 16 px images)."""

    def forward(self, x):
        return torch.stack([x[:, :, 4:8, 4:8].mean((1, 2, 3)), torch.zeros(len(x))], 1)


class Constant(nn.Module):
    """The same logits for every input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


class Recorder(nn.Module):
    """``model``, recording the size of each batch it is run on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


@pytest.fixture(scope="module")
def flowers():
    d = data.flowers(4, "single", seed=5, split="test")
    return d.images, d.labels


@pytest.fixture(scope="module")
def cam(single_model, flowers):
    """Grad-CAM maps: 14 % of their pixels are tied at 0 (one region of the fourth image all 0)."""
    return explain.grad_cam(single_model, *flowers)


@pytest.fixture(scope="module")
def small():
    """Four random 16 px images, maps with many ties (values 0..2) and targets, for PixelLinear."""
    g = torch.Generator().manual_seed(1)
    return (torch.rand(4, 3, 16, 16, generator=g), torch.randint(0, 3, (4, 16, 16), generator=g).float(),
            torch.tensor([0, 1, 2, 1]))


def block_maps(n, rows, cols, region, seed):
    """Maps constant on each ``region`` square, values 0/1: most region sums are tied."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 2, (n, rows, cols), generator=g).float()
    return blocks.repeat_interleave(region, 1).repeat_interleave(region, 2)


# ------------------------------------------------------------------------------------------------
# slow references: each perturbed image built region by region, pixel by pixel
# ------------------------------------------------------------------------------------------------
def scores_of(model, images, targets, score):
    """The target's score of each perturbed image (built one by one; one forward for them all)."""
    with torch.no_grad():
        logits = model(torch.stack([torch.as_tensor(a) for a in images]))
    out = logits.softmax(1) if score == "probability" else logits
    return out[torch.arange(len(out)), torch.as_tensor(targets)]


def slow_region_curve(model, x, target, maps, region, steps, order, baseline, score="logit"):
    """Samek et al. 2017 as written: sum each region, sort them (ties: lower region index first),
    set the first k regions to the baseline, score; k = 0..steps."""
    n, _, h, w = x.shape
    squares = [(r, c) for r in range(h // region) for c in range(w // region)]  # row-major
    images = []
    for i in range(n):
        sums = [float(maps[i, r * region:(r + 1) * region, c * region:(c + 1) * region].double().sum())
                for r, c in squares]
        sign = -1 if order == "morf" else 1
        ranked = sorted(range(len(squares)), key=lambda j: (sign * sums[j], j))
        image = x[i].clone()
        images.append(image.clone())
        for j in ranked[:steps]:
            r, c = squares[j]
            image[:, r * region:(r + 1) * region, c * region:(c + 1) * region] = baseline
            images.append(image.clone())
    return scores_of(model, images, torch.as_tensor(target).expand(n).repeat_interleave(steps + 1),
                     score).view(n, steps + 1)


def slow_pixel_curve(model, start, changed, target, maps, step, score="probability"):
    """Petsiuk et al. 2018 as written: sort the pixels by decreasing saliency (ties: lower index
    first), take ``step`` more of them from ``changed`` each iteration, score."""
    n, _, h, w = start.shape
    images = []
    for i in range(n):
        a = maps[i].flatten().tolist()
        order = sorted(range(h * w), key=lambda p: (-a[p], p))
        image = start[i].numpy().copy()
        source = np.broadcast_to(np.asarray(changed[i] if torch.is_tensor(changed) else changed), image.shape)
        images.append(image.copy())
        for s in range(0, h * w, step):
            for p in order[s:s + step]:
                image[:, p // w, p % w] = source[:, p // w, p % w]
            images.append(image.copy())
    steps = len(images) // n
    return scores_of(model, images, torch.as_tensor(target).expand(n).repeat_interleave(steps), score).view(n, steps)


def slow_blur(x, kernel, sigma):
    """Every output pixel as the sum of the 2-D kernel times the input, coordinates clamped."""
    r = kernel // 2
    g = [np.exp(-t * t / (2 * sigma * sigma)) for t in range(-r, r + 1)]
    g = [v / sum(g) for v in g]
    n, c, h, w = x.shape
    a, out = x.double().numpy(), np.zeros(x.shape)
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for z in range(w):
                    out[i, ch, y, z] = sum(g[dy + r] * g[dz + r] * a[i, ch, min(max(y + dy, 0), h - 1),
                                                                      min(max(z + dz, 0), w - 1)]
                                           for dy in range(-r, r + 1) for dz in range(-r, r + 1))
    return torch.from_numpy(out)


def tie_free(values):
    """``(N, P)`` -> ``P - rank`` in the stable decreasing order: the same order, without ties."""
    order = values.sort(dim=1, descending=True, stable=True).indices
    return (values.shape[1] - order.argsort(1)).float()


def values(result):
    """The scores of a Curve, or the tensor itself (aopc)."""
    return result.scores if isinstance(result, V.Curve) else result


def in_unit_interval(t):
    return bool(((t >= 0) & (t <= 1)).all())


def close(a, b):
    """Equal up to the flower CNN's batch-size noise (its kernels differ by batch size, ~1e-6)."""
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# against the slow references
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_morf_curve_matches_slow_loop_on_flower_cnn(order, single_model, flowers, cam):
    x, y = flowers
    curve = V.morf_curve(single_model, x, y, cam, region=REGION, order=order)
    close(curve.scores, slow_region_curve(single_model, x, y, cam, REGION, 16, order, 0.5))
    assert torch.equal(curve.x, torch.arange(17) / 16)
    assert curve.name == order and curve.higher_is_better is (order == "lerf")


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_morf_curve_ties_go_to_the_lower_region_in_both_orders(order, small):
    x, _, y = small
    model, maps = PixelLinear(), block_maps(4, 4, 4, 4, seed=2)  # 16 regions of sums 0 or 16
    colour = torch.tensor([0.1, 0.6, 0.9]).view(3, 1, 1)        # a per-channel baseline tensor
    curve = V.morf_curve(model, x, y, maps, region=4, steps=11, order=order, baseline=colour,
                         score="probability")
    close(curve.scores, slow_region_curve(model, x, y, maps, 4, 11, order, colour, "probability"))
    assert torch.equal(curve.x, torch.arange(12) / 16)


def test_deletion_matches_slow_loop_on_flower_cnn(single_model, flowers, cam):
    x, y = flowers
    curve = V.deletion(single_model, x, y, cam, step=STEP)
    close(curve.scores, slow_pixel_curve(single_model, x, 0.5, y, cam, STEP))
    assert torch.equal(curve.x, torch.tensor([0, 600, 1200, 1800, 2400, 3000, 3600, 4096]) / 4096)
    assert in_unit_interval(curve.scores) and in_unit_interval(curve.auc())     # probabilities, x in [0, 1]


def test_deletion_and_insertion_match_slow_loop_with_ties(small):
    x, maps, y = small
    model = PixelLinear()
    close(V.deletion(model, x, y, maps, step=40, baseline=0.2, score="logit").scores,
          slow_pixel_curve(model, x, 0.2, y, maps, 40, "logit"))
    blurred = V.blur(x, 5, 2.0)
    close(V.insertion(model, x, y, maps, step=40, blur_kernel=5, blur_sigma=2.0).scores,
          slow_pixel_curve(model, blurred, x, y, maps, 40))


def test_insertion_matches_slow_loop_and_runs_from_blurred_to_original(single_model, flowers, cam):
    x, y = flowers
    curve = V.insertion(single_model, x, y, cam, step=STEP)
    close(curve.scores, slow_pixel_curve(single_model, V.blur(x), x, y, cam, STEP))
    with torch.no_grad():
        first = single_model(V.blur(x, 11, 5.0)).softmax(1)[torch.arange(4), y]
        last = single_model(x).softmax(1)[torch.arange(4), y]
    close(curve.scores[:, 0], first)
    close(curve.scores[:, -1], last)
    assert curve.name == "insertion" and curve.higher_is_better is True
    assert in_unit_interval(curve.scores) and in_unit_interval(curve.auc())


# ------------------------------------------------------------------------------------------------
# against Quantus 0.6.0
# ------------------------------------------------------------------------------------------------
# Where the definitions coincide. Quantus orders with np.argsort (not stable), so ties (Grad-CAM's
# zeros) could be ordered otherwise: it is given the map re-encoded without ties in our order.
# It normalises and may take |a| by default: normalise=False, abs=False. RegionPerturbation pads an
# image that the patches do not divide (we refuse it), has no step 0 and returns f(x) - f(x^(k)),
# k = 1..L: our curve.drop()[:, 1:]; so the mean of its curve is our AOPC times (L + 1) / L (AOPC
# averages over the L + 1 steps, k = 0 included). PixelFlipping orders and flips *features*
# (channel values, step must divide C*H*W) and returns f(x^(k)), k = 1..S: it is shown each image
# as one channel (N, 1, 3H, W), a wrapper puts the channels back, and its map puts the three values
# of a pixel next to each other in our order. Its AUC (return_auc_per_sample) is np.trapz with
# dx = 1 over k = 1..S, ours the trapezoid over the fraction perturbed, k = 0..S, in [0, 1].
class AsOneChannel(nn.Module):
    def __init__(self, model, shape):
        super().__init__()
        self.model, self.shape = model, tuple(shape)
        self.training = model.training

    def forward(self, z):
        return self.model(z.reshape(len(z), *self.shape))


def test_morf_curve_equals_quantus_region_perturbation(single_model, flowers, cam):
    import quantus
    x, y = flowers
    sums = cam.view(4, 4, REGION, 4, REGION).sum((2, 4)).flatten(1)
    encoded = tie_free(sums).view(4, 4, 1, 4, 1).expand(4, 4, REGION, 4, REGION).reshape(4, 1, 64, 64)
    peer = quantus.RegionPerturbation(patch_size=REGION, order="morf", regions_evaluation=16, perturb_baseline=0.5,
                                      normalise=False, abs=False, disable_warnings=True)
    theirs = peer(single_model, x.numpy(), y.numpy(), encoded.numpy(), channel_first=True, softmax=False,
                  batch_size=4)
    curve = V.morf_curve(single_model, x, y, cam, region=REGION)
    close(curve.drop()[:, 1:], np.asarray(theirs))
    close(curve.aopc() * 17 / 16, np.asarray(theirs).mean(1))


def test_deletion_equals_quantus_pixel_flipping(single_model, flowers, cam):
    import quantus
    x, y = flowers
    step = 256
    rank = tie_free(cam.flatten(1))                                             # (N, HW), HW = best
    encoded = (3 * rank[:, None] - torch.arange(3).view(1, 3, 1)).reshape(4, 1, 3 * 64, 64)
    peer = quantus.PixelFlipping(features_in_step=3 * step, perturb_baseline=0.5, normalise=False, abs=False,
                                 disable_warnings=True)
    theirs = peer(AsOneChannel(single_model, (3, 64, 64)), x.reshape(4, 1, 3 * 64, 64).numpy(), y.numpy(),
                  encoded.numpy(), channel_first=True, softmax=True, batch_size=4)
    close(V.deletion(single_model, x, y, cam, step=step).scores[:, 1:], np.asarray(theirs))


# ------------------------------------------------------------------------------------------------
# known answers
# ------------------------------------------------------------------------------------------------
def test_morf_and_lerf_on_a_model_that_looks_at_one_region():
    g = torch.Generator().manual_seed(3)
    x = 0.5 + 0.5 * torch.rand(3, 3, 16, 16, generator=g)             # region 5's mean m > 0.5
    maps = torch.rand(3, 16, 16, generator=g)
    maps[:, 4:8, 4:8] += 1                                               # region 5 is the most relevant
    m = x[:, :, 4:8, 4:8].mean((1, 2, 3))
    b = torch.full((3,), 0.5)                                            # the logit once it is grey
    morf = V.morf_curve(OneRegion(), x, 0, maps, region=4, order="morf")
    lerf = V.morf_curve(OneRegion(), x, 0, maps, region=4, order="lerf")
    torch.testing.assert_close(morf.scores, torch.cat([m[:, None], b[:, None].expand(3, 16)], 1))
    torch.testing.assert_close(lerf.scores, torch.cat([m[:, None].expand(3, 16), b[:, None]], 1))
    # AOPC = 1/17 sum_k (m - s_k): 16 drops of m - b for MoRF, one for LeRF
    torch.testing.assert_close(V.aopc(OneRegion(), x, 0, maps, region=4, order="morf"), 16 / 17 * (m - b))
    torch.testing.assert_close(V.aopc(OneRegion(), x, 0, maps, region=4, order="lerf"), 1 / 17 * (m - b))
    # trapezoid AUC over k/16: MoRF (m + b)/32 + 15/16 b, LeRF 15/16 m + (m + b)/32
    torch.testing.assert_close(morf.auc(), (m + b) / 32 + 15 / 16 * b)
    torch.testing.assert_close(lerf.auc(), 15 / 16 * m + (m + b) / 32)
    assert (morf.auc() < lerf.auc()).all()


def test_aopc_is_the_mean_drop_of_the_curve(single_model, flowers, cam):
    x, y = flowers
    curve = V.morf_curve(single_model, x, y, cam, region=REGION, steps=9)
    s = curve.scores.tolist()
    by_hand = torch.tensor([sum(row[0] - v for v in row) / len(row) for row in s])
    torch.testing.assert_close(V.aopc(single_model, x, y, cam, region=REGION, steps=9), curve.aopc())
    torch.testing.assert_close(curve.aopc(), by_hand)
    torch.testing.assert_close(curve.aopc(), curve.drop().mean(1))


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_a_constant_model_gives_a_flat_curve_of_area_the_constant(metric, small):
    x, maps, y = small
    logits = [0.3, -1.2, 2.0]
    p = torch.tensor(logits).softmax(0)[y]                              # the target's probability
    curve = getattr(V, metric)(Constant(logits), x, y, maps, step=100)  # 256 px: 100, 200, 256
    assert torch.equal(curve.x, torch.tensor([0, 100, 200, 256]) / 256)
    assert torch.equal(curve.scores, p[:, None].expand(4, 4))
    torch.testing.assert_close(curve.auc(), p)
    assert torch.equal(curve.drop(), torch.zeros(4, 4))


def test_curve_auc_drop_aopc_by_hand():
    x = torch.tensor([0.0, 0.1, 0.35, 0.5, 0.9, 1.0])                   # uneven steps
    a, b = torch.tensor([[2.0], [-1.0]]), torch.tensor([[-3.0], [0.5]])
    line = V.Curve(x, a + b * x, higher_is_better=False)
    torch.testing.assert_close(line.auc(), (a + b / 2)[:, 0])            # the trapezoid is exact on a line
    torch.testing.assert_close(line.drop(), -b * x)
    torch.testing.assert_close(line.aopc(), (-b * x).mean(1))
    one = V.Curve(x, 1 - x, higher_is_better=True)                      # one curve over a data set
    assert one.auc().shape == () and float(one.auc()) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scores"):
        V.Curve(x, torch.zeros(2, 5), higher_is_better=True)
    with pytest.raises(ValueError, match="scores"):
        V.Curve(x[None], torch.zeros(1, 6), higher_is_better=True)


def test_blur_against_loops_and_scipy():
    x = torch.rand(2, 3, 6, 9, generator=torch.Generator().manual_seed(4))
    out = V.blur(x, 5, 1.5)
    torch.testing.assert_close(out.double(), slow_blur(x, 5, 1.5), rtol=0, atol=1e-6)
    # the same sampled Gaussian, replicate ("nearest") borders, in scipy
    peer = scipy.ndimage.gaussian_filter(x.double().numpy(), sigma=(0, 0, 1.5, 1.5), radius=(0, 0, 2, 2),
                                         mode="nearest")
    torch.testing.assert_close(out.double(), torch.from_numpy(peer), rtol=0, atol=1e-6)
    tiny = torch.rand(1, 3, 3, 4, generator=torch.Generator().manual_seed(5))  # kernel wider than the image
    torch.testing.assert_close(V.blur(tiny, 11, 5.0).double(), slow_blur(tiny, 11, 5.0), rtol=0, atol=1e-6)


def test_blur_keeps_constants_and_the_mass_of_an_image_away_from_the_border():
    flat = torch.full((2, 3, 12, 12), 0.37)
    torch.testing.assert_close(V.blur(flat, 7, 3.0), flat)
    spot = torch.zeros(1, 3, 20, 20)
    spot[0, :, 9:11, 8:12] = torch.rand(3, 2, 4, generator=torch.Generator().manual_seed(6))
    # the kernel sums to 1 and no mass reaches the border (8 px from it, radius 5): mass is kept
    torch.testing.assert_close(V.blur(spot, 11, 5.0).sum((2, 3)), spot.sum((2, 3)))
    impulse = torch.zeros(1, 1, 11, 11)
    impulse[0, 0, 5, 5] = 1
    kernel = V.blur(impulse, 11, 5.0)[0, 0]                              # the 2-D kernel itself
    t = torch.arange(-5.0, 6.0)
    g = torch.exp(-t ** 2 / 50) / torch.exp(-t ** 2 / 50).sum()
    torch.testing.assert_close(kernel, g[:, None] * g[None])
    assert float(kernel.sum()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# batching, model given back
# ------------------------------------------------------------------------------------------------
CALLS = {"morf_curve": {"region": 4}, "aopc": {"region": 4, "order": "lerf"}, "deletion": {"step": 40},
         "insertion": {"step": 40}}


@pytest.mark.parametrize("name", list(CALLS))
def test_results_do_not_depend_on_the_batch_size(name, small):
    x, maps, y = small
    fn, kw = getattr(V, name), CALLS[name]
    model = PixelLinear()
    default = fn(model, x, y, maps, **kw)
    for bs in (1, 4, 5):  # 4: a batch of one image's first 4 steps, not the 4 images
        assert torch.equal(values(fn(model, x, y, maps, batch_size=bs, **kw)), values(default))


def test_batches_run_over_images_and_steps_together(flowers, cam):
    x, y = flowers
    model = Recorder(PixelLinear((3, 64, 64), k=6))
    V.morf_curve(model, x, y, cam, region=REGION, batch_size=5)         # 4 images x 17 steps = 68
    assert model.sizes == [5] * 13 + [3]
    model.sizes.clear()
    V.deletion(model, x, y, cam, step=STEP)                              # 4 x 8 = 32, one batch
    assert model.sizes == [32]


@pytest.mark.parametrize("name", list(CALLS))
def test_model_is_given_back_as_it_came_also_on_error(name, single_model, flowers, cam):
    x, y = flowers[0][:2], flowers[1][:2]
    maps = cam[:2]
    kw = {"region": 32} if name in ("morf_curve", "aopc") else {"step": 2048}
    model = copy.deepcopy(single_model).train()          # training mode: batch norm would update
    model.features[4].eval()
    model.features[0].requires_grad_(False)
    before = model_state(model)
    fn = getattr(V, name)
    got = fn(model, x, y, maps, **kw)
    assert_same_state(model, before)
    expected = fn(single_model, x, y, maps, **kw)         # the model ran in eval mode
    close(values(got), values(expected))
    with pytest.raises(ValueError, match="target"):
        fn(model, x, 6, maps, **kw)                     # 6 classes: raised by the first batch's scores
    assert_same_state(model, before)
    with pytest.raises(ValueError, match="batch_size"):
        fn(model, x, y, maps, batch_size=0, **kw)
    assert_same_state(model, before)


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
def nan_maps(maps):
    maps = maps.clone()
    maps[1, 2, 3] = float("nan")
    return maps


BAD_MAPS = [
    (lambda m: m[:, :, :-1], ValueError, "maps must have the images' size"),
    (lambda m: m[:-1], ValueError, "maps must hold one map per image"),
    (lambda m: m[0], ValueError, "maps must be non-empty heatmaps"),
    (lambda m: m.long(), TypeError, "maps must be a float tensor"),
    (lambda m: m.numpy(), TypeError, "maps must be a torch.Tensor"),
    (nan_maps, ValueError, "maps must be finite"),
]


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("bad, error, match", BAD_MAPS)
def test_bad_maps_are_rejected(name, bad, error, match, small):
    x, maps, y = small
    with pytest.raises(error, match=match):
        getattr(V, name)(PixelLinear(), x, y, bad(maps), **CALLS[name])


@pytest.mark.parametrize("name, kw, error, match", [
    ("morf_curve", {"region": 5}, ValueError, "region must divide"),
    ("morf_curve", {"region": 4, "steps": 17}, ValueError, "steps must be at most the number of regions"),
    ("morf_curve", {"region": 4, "steps": 0}, ValueError, "steps must be an int >= 1"),
    ("aopc", {"region": 4, "order": "random"}, ValueError, "order must be one of"),
    ("morf_curve", {"region": 4.0}, TypeError, "region must be an int"),
    ("morf_curve", {"score": "softmax"}, ValueError, "score must be one of"),
    ("deletion", {"score": "prob"}, ValueError, "score must be one of"),
    ("deletion", {"step": 0}, ValueError, "step must be an int >= 1"),
    ("deletion", {"baseline": torch.zeros(2, 1, 1)}, ValueError, "baseline must broadcast"),
    ("insertion", {"blur_kernel": 4}, ValueError, "kernel must be an odd int"),
    ("insertion", {"blur_sigma": 0.0}, ValueError, "sigma must be a number > 0"),
    ("insertion", {"batch_size": 2.5}, TypeError, "batch_size must be an int"),
])
def test_bad_arguments_are_rejected(name, kw, error, match, small):
    x, maps, y = small
    with pytest.raises(error, match=match):
        getattr(V, name)(PixelLinear(), x, y, maps, **kw)


def test_bad_model_images_and_targets_are_rejected(small):
    x, maps, y = small
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        V.deletion(lambda z: z, x, y, maps)
    with pytest.raises(ValueError, match="x must be a non-empty batch of images"):
        V.deletion(PixelLinear(), x[0], y, maps)
    with pytest.raises(ValueError, match="target must be an int or a LongTensor of shape"):
        V.morf_curve(PixelLinear(), x, y[:3], maps, region=4)
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        V.insertion(PixelLinear(), x, y.float(), maps)
    with pytest.raises(ValueError, match="kernel must be an odd int"):
        V.blur(x, 6)
    with pytest.raises(TypeError, match="kernel must be an int"):
        V.blur(x, 5.0)


# ------------------------------------------------------------------------------------------------
# base: check_maps and pairs
# ------------------------------------------------------------------------------------------------
def test_check_maps_squeezes_one_channel_and_returns_detached_float32():
    maps = torch.rand(3, 1, 5, 7, dtype=torch.float64, requires_grad=True)
    out = base.check_maps(maps, n=3, size=(5, 7))
    assert out.shape == (3, 5, 7) and out.dtype == torch.float32 and not out.requires_grad
    with pytest.raises(ValueError, match="maps must be non-empty"):
        base.check_maps(torch.rand(3, 2, 5, 7))
    with pytest.raises(ValueError, match="heat must be finite"):
        base.check_maps(torch.tensor([[[float("inf")]]]), name="heat")


def test_pairs_cover_every_image_step_pair_in_batches():
    got = list(base.pairs(3, 4, 5, False, "test"))
    assert [len(i) for i, _ in got] == [5, 5, 2]
    i, k = torch.cat([i for i, _ in got]), torch.cat([k for _, k in got])
    assert list(zip(i.tolist(), k.tolist())) == [(a, b) for a in range(3) for b in range(4)]  # image-major
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        list(base.pairs(3, 4, 0, False, "test"))
