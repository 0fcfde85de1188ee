"""xai_lab.data: the procedural flowers and their ground truth."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from xai_lab import data
from xai_lab.data import COLOURS, PARTS, TEXTURES, flowers


@pytest.fixture(scope="module")
def sets():
    return {v: flowers(300, v, seed=4, split=s) for v in data.VARIANTS for s in ("train",)} | {
        "watermark_test": flowers(1200, "watermark", seed=4, split="test"),
        "biased_test": flowers(1200, "biased", seed=4, split="test"),
        "biased_train": flowers(1200, "biased", seed=4, split="train"),
    }


def test_shapes_and_types(sets):
    d = sets["single"]
    n = len(d)
    assert d.images.shape == (n, 3, 64, 64) and d.images.dtype == torch.float32
    assert 0 <= d.images.min() and d.images.max() <= 1
    assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
    assert d.parts.shape == d.gt_masks.shape == d.colour_map.shape == d.texture_map.shape == (n, 64, 64)
    assert d.gt_masks.dtype == torch.bool and d.boxes.shape == (n, 4)
    assert d.attributes.shape == (n, len(d.attribute_names)) and len(d.attribute_names) >= 10
    assert d.watermark.shape == d.group.shape == (n,)
    assert d.num_classes == 6 and len(sets["double"].class_names) == 12
    image, label = d[3]
    assert torch.equal(image, d.images[3]) and label == d.labels[3]
    xb, yb = next(iter(DataLoader(d, batch_size=8)))
    assert xb.shape == (8, 3, 64, 64) and yb.shape == (8,)


def test_concepts_cover_three_categories_and_15_concepts(sets):
    d = sets["single"]
    assert len(d.concept_names) >= 15
    assert {"part", "colour", "texture"} <= set(d.concept_categories)
    c = d.concepts
    assert c.shape == (len(d), len(d.concept_names), 64, 64) and c.dtype == torch.bool
    cats = np.array(d.concept_categories)
    parts, colours, textures = (c[:, torch.as_tensor(cats == k)] for k in ("part", "colour", "texture"))
    assert (parts.sum(1) == 1).all(), "every pixel has exactly one part"
    assert (colours.sum(1) == 1).all(), "every pixel has exactly one colour"
    background = d.parts == PARTS.index("background")
    assert torch.equal(textures.sum(1) == 1, background), "textures label exactly the background"
    # every concept occurs somewhere in a few hundred images, except the watermark part
    present = c.flatten(2).any(2).any(0)
    missing = [n for n, p in zip(d.concept_names, present) if not p]
    assert set(missing) <= {"mark", "black"}, missing


def test_ground_truth_is_the_discriminative_part(sets):
    for v, parts in (("single", ["centre"]), ("double", ["centre", "petal"])):
        d = sets[v]
        expected = torch.zeros_like(d.gt_masks)
        for p in parts:
            expected |= d.parts == PARTS.index(p)
        assert torch.equal(d.gt_masks, expected)
        assert d.gt_masks.flatten(1).any(1).all(), "every flower shows its discriminative part"
    d = sets["single"]
    # the centre's colour is the class colour
    centre_colour = torch.where(d.gt_masks, d.colour_map, -1)
    for i in range(0, len(d), 37):
        colours = centre_colour[i][centre_colour[i] >= 0].unique()
        assert colours.tolist() == [COLOURS.index(data.CLASS_COLOURS[int(d.labels[i])])]


def test_boxes_are_tight_around_the_mask(sets):
    d = sets["double"]
    for i in range(0, len(d), 23):
        ys, xs = torch.nonzero(d.gt_masks[i], as_tuple=True)
        assert d.boxes[i].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_double_needs_both_parts():
    centre, petal = data.double_classes()
    assert len(set(zip(centre, petal))) == 12, "12 distinct (centre, petal) pairs"
    for colours in (centre, petal):
        counts = np.bincount(colours, minlength=6)
        assert (counts == 2).all(), "each colour of one part occurs in two classes"


def test_same_arguments_give_bit_identical_data():
    a = flowers(40, "double", seed=3, split="test")
    b = flowers(40, "double", seed=3, split="test")
    for name in ("images", "labels", "parts", "colour_map", "texture_map", "gt_masks", "boxes", "attributes"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.images, flowers(40, "double", seed=4, split="test").images)
    assert not torch.equal(a.labels, flowers(40, "double", seed=3, split="train").labels)


def test_known_output_on_this_platform():
    """A regression guard on the generator: fixed statistics of a fixed set."""
    d = flowers(16, "single", seed=0)
    assert d.labels.tolist() == GOLDEN["labels"]
    assert torch.bincount(d.parts.flatten(), minlength=len(PARTS)).tolist() == GOLDEN["part_counts"]
    assert abs(d.images.double().sum().item() - GOLDEN["image_sum"]) < 1e-2


def test_scene_does_not_depend_on_resolution():
    small, large = flowers(20, "single", seed=5, size=32), flowers(20, "single", seed=5, size=128)
    assert torch.equal(small.labels, large.labels)
    # the same discriminative part, at 4x the resolution: boxes scale by 4 (up to a pixel)
    assert ((large.boxes / 4 - small.boxes).abs() <= 1.0).all()


def test_watermark_names_the_class_in_train_only(sets):
    train, test = sets["watermark"], sets["watermark_test"]
    assert torch.equal(train.watermark, train.labels)
    agree = (test.watermark == test.labels).float().mean().item()
    assert 0.10 < agree < 0.25, f"test glyphs are random: about 1/6 agree, got {agree:.2f}"
    mark = train.parts == PARTS.index("mark")
    assert mark.flatten(1).any(1).all() and not sets["single"].parts.eq(PARTS.index("mark")).any()
    assert (sets["single"].watermark == -1).all()


def test_biased_split_under_represents_dusk_for_classes_0_to_2(sets):
    train, test = sets["biased_train"], sets["biased_test"]
    dusk_rate = lambda d, cls: d.group[torch.isin(d.labels, torch.tensor(cls))].float().mean().item()
    assert dusk_rate(train, [0, 1, 2]) < 0.06 and 0.4 < dusk_rate(train, [3, 4, 5]) < 0.6
    assert 0.4 < dusk_rate(test, [0, 1, 2]) < 0.6 and 0.4 < dusk_rate(test, [3, 4, 5]) < 0.6
    # dusk images are darker
    dark = test.images[test.group == 1].mean()
    day = test.images[test.group == 0].mean()
    assert dark < 0.8 * day


def test_subset_keeps_everything(sets):
    d = sets["single"]
    s = d.subset(d.labels == 2)
    assert (s.labels == 2).all() and len(s) == int((d.labels == 2).sum())
    assert torch.equal(s.gt_masks, d.gt_masks[d.labels == 2])
    assert s.concepts.shape[0] == len(s)


@pytest.mark.parametrize("kwargs, word", [
    (dict(n=0), "n"), (dict(n=5, variant="triple"), "variant"), (dict(n=5, split="val"), "split"),
    (dict(n=5, size=8), "size"), (dict(n=5, seed=-1), "seed"), (dict(n=2.5), "n"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        flowers(**kwargs)


GOLDEN = {  # flowers(16, "single", seed=0) as generated when the data set was fixed
    "labels": [5, 0, 3, 0, 1, 2, 0, 5, 2, 5, 5, 2, 3, 4, 4, 4],
    "part_counts": [52967, 1074, 606, 8487, 1244, 0, 1158],
    "image_sum": 108778.0169,
}
