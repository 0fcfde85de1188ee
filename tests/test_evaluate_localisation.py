"""Tests of xai_lab.evaluate.localisation (pointing game, boxes and IoU, relevance mass and rank) and
of the ground-truth checks of evaluate.base (check_masks, check_boxes).

Each metric against a slow re-implementation (Python loops over images and pixels; connected
components from scipy.ndimage.label, distances from brute force or scipy's exact Euclidean distance
transform), against Quantus 0.6.0 where the definitions coincide, and on known answers.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from xai_lab import data, evaluate as V, explain
from xai_lab.evaluate import base

# torch on one thread in this module: its tensors are small, and one thread does not wait for a core
# another process holds (a file of these tests: 20 s on two threads, 5.6 s on one, on a busy 2-core machine)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def flowers():
    return data.flowers(8, "single", seed=7, split="test")


@pytest.fixture(scope="module")
def cam(single_model, flowers):
    """Grad-CAM maps (non-negative; unique maximum and no tie at the K-th value on these 8)."""
    return explain.grad_cam(single_model, flowers.images, flowers.labels)


def random_masks(n, h, w, density, g):
    masks = torch.rand(n, h, w, generator=g) < density
    masks[:, 0, 0] |= ~masks.flatten(1).any(1)  # never empty
    return masks


@pytest.fixture(scope="module")
def small():
    """Small maps with many ties (values 0..4, some negative maps, one all zero) and masks."""
    g = torch.Generator().manual_seed(11)
    maps = torch.randint(0, 5, (8, 7, 9), generator=g).float()
    maps[5] -= 4                                                    # all <= 0, some ties at the max 0
    maps[6] = 0                                                     # no evidence at all
    maps[7] = maps[7] - 2.5                                         # mixed signs
    return maps, random_masks(8, 7, 9, 0.3, g)


@pytest.fixture(scope="module")
def tall():
    """Tall, thin images: the tolerance disc reaches past the image's width."""
    g = torch.Generator().manual_seed(12)
    masks = torch.zeros(4, 30, 3, dtype=torch.bool)
    masks[0, 0, 0] = masks[1, 29, 2] = masks[2, 14, 1] = True
    masks[3, [3, 20], [0, 2]] = True
    return torch.rand(4, 30, 3, generator=g), masks


# ------------------------------------------------------------------------------------------------
# slow references
# ------------------------------------------------------------------------------------------------
def pixels(t):
    h, w = t.shape
    return [(y, x) for y in range(h) for x in range(w)]


def slow_pointing(maps, masks, tolerance):
    """The share of the maxima that lie within ``tolerance`` (Euclidean) of a mask pixel."""
    hits = []
    for a, m in zip(maps, masks):
        top = max(float(a[p]) for p in pixels(a))
        maxima = [p for p in pixels(a) if float(a[p]) == top]
        inside = [q for q in pixels(m) if m[q]]
        near = [p for p in maxima if any(math.hypot(p[0] - q[0], p[1] - q[1]) <= tolerance for q in inside)]
        hits.append(len(near) / len(maxima))
    return torch.tensor(hits)


def slow_rank(maps, masks):
    """Relevance rank accuracy with the K-th place shared: the top K taken value by value; the
    group of values that straddles place K gives its ``room`` places to every ``room``-subset of
    its pixels alike (the first ``room`` of a uniformly random order of the group)."""
    out = []
    for a, m in zip(maps, masks):
        values, inside = a.flatten().tolist(), m.flatten().tolist()
        k, taken, hits = sum(inside), 0, 0.0
        for v in sorted(set(values), reverse=True):
            group = [p for p in range(len(values)) if values[p] == v]
            room = k - taken
            if room <= 0:
                break
            if len(group) <= room:
                hits += sum(inside[p] for p in group)
                taken += len(group)
            else:
                assert math.comb(len(group), room) <= 5000, "keep the enumeration small"
                subsets = list(itertools.combinations(group, room))
                hits += sum(sum(inside[p] for p in s) for s in subsets) / len(subsets)
                taken = k
        out.append(hits / k)
    return torch.tensor(out)


def slow_mass(maps, masks):
    out = []
    for a, m in zip(maps, masks):
        pos = [max(float(a[p]), 0.0) for p in pixels(a)]
        inside = sum(v for v, p in zip(pos, pixels(a)) if m[p])
        out.append(inside / sum(pos) if sum(pos) > 0 else 0.0)
    return torch.tensor(out)


def kept(a, threshold):
    """The binarised map: pixels >= threshold * max, every pixel if the max is <= 0."""
    top = float(a.max())
    return [[top <= 0 or float(a[y, x]) >= float(np.float32(threshold) * np.float32(top))
             for x in range(a.shape[1])] for y in range(a.shape[0])]


def slow_mask_iou(maps, masks, threshold):
    out = []
    for a, m in zip(maps, masks):
        keep = kept(a, threshold)
        both = sum(keep[y][x] and bool(m[y, x]) for y, x in pixels(a))
        either = sum(keep[y][x] or bool(m[y, x]) for y, x in pixels(a))
        out.append(both / either)
    return torch.tensor(out)


def scipy_box(a, threshold, component, connectivity):
    """The CAM box from scipy.ndimage.label: the largest component (the first one, in scipy's
    numbering by first pixel, among equal sizes), or all kept pixels."""
    keep = np.array(kept(a, threshold))
    if component == "largest":
        structure = np.ones((3, 3)) if connectivity == 8 else ndimage.generate_binary_structure(2, 1)
        labels, n = ndimage.label(keep, structure)
        keep = labels == 1 + int(np.argmax(np.bincount(labels.ravel(), minlength=n + 1)[1:]))
    ys, xs = np.nonzero(keep)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def slow_box_iou(b, g):
    """IoU of two boxes as sets of pixels."""
    def inside(box):
        x0, y0, x1, y1 = (int(v) for v in box)
        return {(y, x) for y in range(y0, y1) for x in range(x0, x1)}
    p, q = inside(b), inside(g)
    return len(p & q) / len(p | q)


def edt_dilate(masks, tolerance):
    """Pixels within ``tolerance`` of a mask pixel, by scipy's exact Euclidean distance transform."""
    return torch.from_numpy(np.stack([ndimage.distance_transform_edt(~m) <= tolerance for m in masks.numpy()]))


def tie_free(values):
    """``(N, P)`` -> ``P - rank`` in the stable decreasing order: the same order, without ties."""
    order = values.sort(dim=1, descending=True, stable=True).indices
    return (values.shape[1] - order.argsort(1)).float()


# ------------------------------------------------------------------------------------------------
# against the slow references
# ------------------------------------------------------------------------------------------------
TOLERANCES = [0, 0.5, 1, 1.5, 2, math.sqrt(5) - 1e-6, math.sqrt(5), 3, 7, 100, math.inf]


@pytest.mark.parametrize("tolerance", TOLERANCES)
def test_pointing_game_matches_brute_force_distances_and_shares_ties(tolerance, small, tall):
    for maps, masks in (small, tall):
        assert torch.equal(V.pointing_game(maps, masks, tolerance=tolerance), slow_pointing(maps, masks, tolerance))


@pytest.mark.parametrize("tolerance", [1, 2.5, 5, 15])
def test_pointing_game_tolerance_against_scipy_distance_transform(tolerance, flowers, cam):
    near = edt_dilate(flowers.gt_masks, tolerance).flatten(1)
    top = cam.flatten(1).argmax(1)                                   # unique maxima (fixture)
    expected = near[torch.arange(8), top].float()
    assert torch.equal(V.pointing_game(cam, flowers.gt_masks, tolerance=tolerance), expected)


def test_relevance_rank_matches_enumeration_of_tie_orders():
    g = torch.Generator().manual_seed(18)
    maps = torch.randint(0, 6, (12, 4, 5), generator=g).float()    # tie groups of about 3 pixels
    maps[11, :2] = 2                                                # a larger group of ties
    masks = random_masks(12, 4, 5, 0.35, g)
    torch.testing.assert_close(V.relevance_rank(maps, masks), slow_rank(maps, masks))
    flat = torch.full((2, 3, 4), -1.0)                              # 12 tied pixels, K of them in the top K
    masks = torch.zeros(2, 3, 4, dtype=torch.bool)
    masks[0, 0, :3] = masks[1, 1:, 1] = True
    torch.testing.assert_close(V.relevance_rank(flat, masks), slow_rank(flat, masks))
    torch.testing.assert_close(V.relevance_rank(flat, masks), torch.tensor([3 / 12, 2 / 12]))


def test_relevance_mass_matches_loop(small):
    maps, masks = small
    torch.testing.assert_close(V.relevance_mass(maps, masks), slow_mass(maps, masks))
    assert V.relevance_mass(maps, masks)[5:7].eq(0).all()          # no positive relevance: 0


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 1.0])
def test_mask_iou_matches_loop(threshold, small):
    maps, masks = small
    torch.testing.assert_close(V.mask_iou(maps, masks, threshold=threshold), slow_mask_iou(maps, masks, threshold))


def component_maps():
    """Random maps whose kept pixels form many components, with ties of size, plus hand-made ones:
    a 4- vs 8-connectivity case, a size tie won by the component met first, a serpentine."""
    g = torch.Generator().manual_seed(13)
    maps = [torch.rand(10, 13, generator=g) for _ in range(12)]
    diagonal = torch.zeros(10, 13)
    diagonal[[0, 1, 2, 3], [0, 1, 2, 3]] = 1                         # one component in 8, four in 4
    diagonal[8, 5:8] = 1                                             # three in a row: largest in 4
    tie = torch.zeros(10, 13)
    tie[6:8, 0:2] = 1                                                # 4 pixels, first met at (6, 0)
    tie[0, 9:13] = 1                                                 # 4 pixels, first met at (0, 9): wins
    snake = torch.zeros(10, 13)
    for r in range(0, 10, 2):
        snake[r, 1:12] = 1
        snake[r + 1, 11 if r % 4 == 0 else 1] = 1
    snake[9, 1:11] = 0.5
    maps += [diagonal, tie, snake, -torch.rand(10, 13, generator=g)]
    return torch.stack(maps)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.85])
def test_heatmap_boxes_match_scipy_label(connectivity, threshold):
    maps = component_maps()
    for component in ("largest", "all"):
        got = V.heatmap_boxes(maps, threshold=threshold, component=component, connectivity=connectivity)
        expected = torch.tensor([scipy_box(a, threshold, component, connectivity) for a in maps]).float()
        assert torch.equal(got, expected), (component, (got != expected).any(1).nonzero().flatten().tolist())


def test_heatmap_boxes_hand_made_cases():
    maps = component_maps()[12:]
    assert V.heatmap_boxes(maps[:1], threshold=0.5, connectivity=8).tolist() == [[0, 0, 4, 4]]
    assert V.heatmap_boxes(maps[:1], threshold=0.5, connectivity=4).tolist() == [[5, 8, 8, 9]]
    assert V.heatmap_boxes(maps[1:2], threshold=0.5).tolist() == [[9, 0, 13, 1]]
    assert V.heatmap_boxes(maps[2:3], threshold=0.6, connectivity=4).tolist() == [[1, 0, 12, 10]]
    assert V.heatmap_boxes(maps[3:], threshold=0.5).tolist() == [[0, 0, 13, 10]]  # max < 0: whole image


def test_box_iou_matches_pixel_counting():
    maps = component_maps()
    g = torch.Generator().manual_seed(14)
    corners = torch.stack([torch.randint(0, 7, (16,), generator=g), torch.randint(0, 5, (16,), generator=g)], 1)
    sizes = torch.stack([torch.randint(1, 7, (16,), generator=g), torch.randint(1, 6, (16,), generator=g)], 1)
    boxes = torch.cat([corners, corners + sizes], 1).float()
    for connectivity in (4, 8):
        got = V.box_iou(maps, boxes, threshold=0.6, connectivity=connectivity)
        expected = [slow_box_iou(scipy_box(a, 0.6, "largest", connectivity), b) for a, b in zip(maps, boxes)]
        torch.testing.assert_close(got, torch.tensor(expected))


# ------------------------------------------------------------------------------------------------
# against Quantus 0.6.0
# ------------------------------------------------------------------------------------------------
def quantus_scores(name, maps, flowers):
    import quantus
    peer = getattr(quantus, name)(abs=False, normalise=False, disable_warnings=True)
    out = peer(model=None, x_batch=flowers.images.numpy(), y_batch=flowers.labels.numpy(),
               a_batch=maps[:, None].numpy(), s_batch=flowers.gt_masks[:, None].numpy().astype(np.float32),
               channel_first=True)
    return torch.tensor(np.asarray(out, dtype=np.float64)).float()


def test_pointing_game_equals_quantus_where_the_maximum_is_unique(flowers, cam):
    # Quantus counts a hit if *any* tied maximum is in the mask; ours shares ties. Equal here,
    # where each map has a single maximum; two tied maxima, one in and one out, show the difference
    # (Quantus refuses constant maps).
    f = cam.flatten(1)
    assert (f == f.amax(1, keepdim=True)).sum(1).eq(1).all()
    assert torch.equal(V.pointing_game(cam, flowers.gt_masks), quantus_scores("PointingGame", cam, flowers))
    two = cam / cam.flatten(1).amax(1)[:, None, None] / 2
    masks = flowers.gt_masks.flatten(1)
    two.flatten(1)[torch.arange(8), masks.float().argmax(1)] = 1     # a mask pixel
    two.flatten(1)[torch.arange(8), (~masks).float().argmax(1)] = 1  # a pixel outside the mask
    assert quantus_scores("PointingGame", two, flowers).eq(1).all()
    assert V.pointing_game(two, flowers.gt_masks).eq(0.5).all()


def test_relevance_mass_equals_quantus_on_non_negative_maps(flowers, cam):
    # Quantus sums signed relevance, CLEVR-XAI (and we) only the positive part: equal when a >= 0.
    noise = torch.rand(cam.shape, generator=torch.Generator().manual_seed(15))
    for maps in (cam, noise):
        torch.testing.assert_close(V.relevance_mass(maps, flowers.gt_masks),
                                   quantus_scores("RelevanceMassAccuracy", maps, flowers))


def test_relevance_rank_equals_quantus_on_tie_free_maps(flowers, cam):
    # Quantus breaks ties at the K-th value by an unstable np.argsort; we share them. Its input is
    # re-encoded without ties (same order), and without ties at the K-th value the map's order is
    # all that counts, so the re-encoded map and the map itself score the same.
    encoded = tie_free(cam.flatten(1)).view_as(cam)
    ours = V.relevance_rank(encoded, flowers.gt_masks)
    torch.testing.assert_close(ours, quantus_scores("RelevanceRankAccuracy", encoded, flowers))
    assert torch.equal(ours, V.relevance_rank(cam, flowers.gt_masks))


# ------------------------------------------------------------------------------------------------
# known answers
# ------------------------------------------------------------------------------------------------
def test_the_ground_truth_as_map_scores_perfectly(flowers):
    masks = flowers.gt_masks
    for as_map in (masks.float(), masks.float() * 3.5):
        assert V.relevance_mass(as_map, masks).eq(1).all()
        assert V.relevance_rank(as_map, masks).eq(1).all()
        assert V.pointing_game(as_map, masks).eq(1).all()
        for threshold in (1e-3, 0.2, 1.0):
            assert V.mask_iou(as_map, masks, threshold=threshold).eq(1).all()
        assert V.box_iou(as_map, flowers.boxes, component="all").eq(1).all()
    # the masks are single 8-connected components, so the largest one's box is the mask's box too
    assert all(ndimage.label(m, np.ones((3, 3)))[1] == 1 for m in masks.numpy())
    assert V.box_iou(masks.float(), flowers.boxes).eq(1).all()
    assert torch.equal(V.heatmap_boxes(masks.float()), flowers.boxes)


def test_a_flat_map_scores_chance(flowers):
    masks = flowers.gt_masks
    area = masks.float().mean((1, 2))
    flat = torch.full(masks.shape, 0.7)
    torch.testing.assert_close(V.pointing_game(flat, masks), area)  # every pixel a tied maximum
    torch.testing.assert_close(V.relevance_rank(flat, masks), area)  # K places shared by all pixels
    torch.testing.assert_close(V.relevance_mass(flat, masks), area)
    torch.testing.assert_close(V.mask_iou(flat, masks), area)      # every pixel kept
    zero = torch.zeros(masks.shape)
    assert V.relevance_mass(zero, masks).eq(0).all()
    torch.testing.assert_close(V.mask_iou(zero, masks), area)
    assert V.heatmap_boxes(zero).eq(torch.tensor([0.0, 0, 64, 64])).all()


def test_random_maps_point_at_the_mask_by_chance():
    """Hits of random maps: independent Bernoulli(p_i), p_i the share of the image the mask covers
    (the maximum is a uniformly random pixel; by symmetry even with shared ties). For the sum S of
    n hits, Bernstein: P(|S - sum p_i| >= t) <= 2 exp(-t^2 / (2 (V + t / 3))), V = sum p_i (1 - p_i);
    the t making this 1e-6 is t = L/3 + sqrt(L^2/9 + 2 L V), L = ln(2e6). Seeded, so never flaky,
    yet a real bound. 16 px flowers (masks ~2 % of the image, as at 64 px), each with 800 maps."""
    masks = data.flowers(32, "single", seed=19, size=16, split="test").gt_masks.repeat(800, 1, 1)
    p = masks.float().mean((1, 2))
    maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(16))
    hits = float(V.pointing_game(maps, masks, batch_size=len(masks)).sum())
    expected, var = float(p.sum()), float((p * (1 - p)).sum())
    log = math.log(2e6)
    bound = log / 3 + math.sqrt(log ** 2 / 9 + 2 * log * var)
    assert abs(hits - expected) <= bound
    assert bound < 0.3 * expected                                  # the bound says something


def test_scores_lie_in_zero_one(flowers):
    g = torch.Generator().manual_seed(17)
    maps = torch.randn(flowers.gt_masks.shape, generator=g)        # signed
    for fn in (V.pointing_game, V.mask_iou, V.relevance_mass, V.relevance_rank):
        s = fn(maps, flowers.gt_masks)
        assert s.shape == (8,) and s.dtype == torch.float32 and ((s >= 0) & (s <= 1)).all()
    s = V.box_iou(maps, flowers.boxes, component="all")
    assert ((s >= 0) & (s <= 1)).all()
    s = V.box_iou(maps.abs() * flowers.gt_masks, flowers.boxes)
    assert ((s >= 0) & (s <= 1)).all()


def test_zero_one_numbers_work_as_masks(flowers, cam):
    masks = flowers.gt_masks
    for fn in (V.pointing_game, V.mask_iou, V.relevance_mass, V.relevance_rank):
        assert torch.equal(fn(cam, masks.float()), fn(cam, masks))
        assert torch.equal(fn(cam[:, None], masks.long()[:, None]), fn(cam, masks))


# ------------------------------------------------------------------------------------------------
# batching
# ------------------------------------------------------------------------------------------------
def test_results_do_not_depend_on_the_batch_size(flowers, cam, small):
    calls = [(V.pointing_game, {}), (V.pointing_game, {"tolerance": 3}), (V.mask_iou, {}),
             (V.relevance_mass, {}), (V.relevance_rank, {})]
    for maps, masks in ((cam, flowers.gt_masks), small):
        for fn, kw in calls:
            default = fn(maps, masks, **kw)
            assert all(torch.equal(fn(maps, masks, batch_size=bs, **kw), default) for bs in (1, 5))
    maps = component_maps()
    for connectivity in (4, 8):
        default = V.heatmap_boxes(maps, 0.6, connectivity=connectivity)
        assert all(torch.equal(V.heatmap_boxes(maps, 0.6, connectivity=connectivity, batch_size=bs), default)
                   for bs in (1, 5))
    default = V.box_iou(cam, flowers.boxes)
    assert all(torch.equal(V.box_iou(cam, flowers.boxes, batch_size=bs), default) for bs in (1, 5))


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------
def emptied(masks):
    masks = masks.clone()
    masks[2] = False
    return masks


BAD_MASKS = [
    (lambda m: m[:, :-1], ValueError, r"masks must have the maps' shape \(8, 7, 9\), got \(8, 6, 9\)"),
    (lambda m: m[:-1], ValueError, "masks must have the maps' shape"),
    (emptied, ValueError, r"masks must mark at least one pixel per image; empty at images \[2\]"),
    (lambda m: m.long() * 2, ValueError, "masks must be bool or hold only 0 and 1"),
    (lambda m: m.float() - 0.5, ValueError, "masks must be bool or hold only 0 and 1"),
    (lambda m: m.numpy(), TypeError, "masks must be a torch.Tensor"),
]
MASK_METRICS = [V.pointing_game, V.mask_iou, V.relevance_mass, V.relevance_rank]


@pytest.mark.parametrize("fn", MASK_METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad, error, match", BAD_MASKS)
def test_bad_masks_are_rejected(fn, bad, error, match, small):
    maps, masks = small
    with pytest.raises(error, match=match):
        fn(maps, bad(masks))


def nan_maps(maps):
    maps = maps.clone()
    maps[3, 1, 1] = float("nan")
    return maps


@pytest.mark.parametrize("fn", MASK_METRICS + [V.box_iou, V.heatmap_boxes], ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad, error, match", [
    (nan_maps, ValueError, "maps must be finite, got 1 NaN/inf"),
    (lambda m: m[0], ValueError, "maps must be non-empty heatmaps"),
    (lambda m: m.long(), TypeError, "maps must be a float tensor"),
])
def test_bad_maps_are_rejected(fn, bad, error, match, small):
    maps, masks = small
    truth = {V.box_iou: (torch.tensor([[0.0, 0, 2, 2]]).repeat(8, 1),), V.heatmap_boxes: ()}.get(fn, (masks,))
    with pytest.raises(error, match=match):
        fn(bad(maps), *truth)


@pytest.mark.parametrize("box, error, match", [
    ([0, 0, 10, 7], ValueError, r"boxes must be non-empty \(x0, y0, x1, y1\) boxes inside the 7x9 image"),
    ([0, 0, 9, 8], ValueError, "inside the 7x9 image"),
    ([-1, 0, 3, 3], ValueError, r"got \[-1.0, 0.0, 3.0, 3.0\] at image 4"),
    ([3, 0, 3, 3], ValueError, "boxes must be non-empty"),
    ([float("nan"), 0, 3, 3], ValueError, "boxes must be non-empty"),
])
def test_boxes_outside_the_image_or_empty_are_rejected(box, error, match, small):
    maps, _ = small
    boxes = torch.tensor([[0.0, 0, 9, 7]]).repeat(8, 1)
    boxes[4] = torch.tensor(box, dtype=torch.float32)
    with pytest.raises(error, match=match):
        V.box_iou(maps, boxes)


def test_bad_arguments_are_rejected(small):
    maps, masks = small
    boxes = torch.tensor([[0.0, 0, 9, 7]]).repeat(8, 1)
    with pytest.raises(ValueError, match=r"boxes must have shape \(8, 4\)"):
        V.box_iou(maps, boxes[:, :3])
    with pytest.raises(ValueError, match=r"boxes must have shape \(8, 4\)"):
        V.box_iou(maps, boxes[:7])
    with pytest.raises(TypeError, match="boxes must be a torch.Tensor"):
        V.box_iou(maps, boxes.tolist())
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        V.pointing_game(maps, masks, tolerance=-1)
    with pytest.raises(TypeError, match="tolerance must be a number"):
        V.pointing_game(maps, masks, tolerance="3")
    with pytest.raises(ValueError, match="threshold must be a number"):
        V.mask_iou(maps, masks, threshold=1.5)
    with pytest.raises(ValueError, match="threshold must be a number"):
        V.heatmap_boxes(maps, threshold=-0.1)
    with pytest.raises(ValueError, match="component must be one of"):
        V.box_iou(maps, boxes, component="biggest")
    with pytest.raises(ValueError, match="connectivity must be one of"):
        V.heatmap_boxes(maps, connectivity=6)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        V.relevance_rank(maps, masks, batch_size=0)


def test_check_masks_and_check_boxes():
    like = torch.zeros(2, 3, 4)
    masks = torch.zeros(2, 1, 3, 4)
    masks[:, 0, 1, 2] = 1
    out = base.check_masks(masks, like)
    assert out.dtype == torch.bool and out.shape == (2, 3, 4) and out.sum() == 2
    assert not base.check_masks(torch.zeros(2, 3, 4), like, allow_empty=True).any()
    with pytest.raises(ValueError, match=r"seg must mark at least one pixel per image; empty at images \[0, 1\]"):
        base.check_masks(torch.zeros(2, 3, 4), like, name="seg")
    b = base.check_boxes(torch.tensor([[0, 0, 4, 3], [1, 2, 2, 3]]), 2, (3, 4))
    assert b.dtype == torch.float32 and b.tolist() == [[0, 0, 4, 3], [1, 2, 2, 3]]
    with pytest.raises(ValueError, match="inside the 3x4 image"):
        base.check_boxes(torch.tensor([[0, 0, 4, 4], [1, 2, 2, 3]]), 2, (3, 4))
