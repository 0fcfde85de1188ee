"""Localisation against the ground truth: does the map point at the part that defines the class?

- :func:`pointing_game` (Zhang et al. 2016): is the map's maximum inside the mask (or within
  ``tolerance`` pixels of it)?
- :func:`heatmap_boxes` and :func:`box_iou` (Zhou et al. 2016, the CAM protocol): the box of the
  map thresholded at 20 % of its maximum, against the ground-truth box.
- :func:`mask_iou`: IoU of the thresholded map with the ground-truth mask.
- :func:`relevance_mass` and :func:`relevance_rank` (Arras, Osman & Samek 2022, CLEVR-XAI).

Maps are ``(N, H, W)`` float, masks ``(N, H, W)`` bool with at least one pixel each; every metric
returns ``(N,)`` float32 and works on batches of at most ``batch_size`` whole images.

Rules shared by all (documented once here):

- *Ties are shared, never broken by scan order.* Where the pointing game's maximum or the rank
  accuracy's K-th value is reached by several pixels, each tied pixel counts with the probability
  that a uniformly random order of the tied pixels would pick it. A constant map therefore scores
  the mask's area fraction (chance), not 0 or 1 depending on where the mask lies.
- *A map with no positive value* carries no evidence: binarised, it keeps every pixel (its box is
  the whole image), and its relevance mass is 0.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..checks import check_choice, check_float, check_fraction
from ..data.render import boxes as mask_boxes
from .base import check_boxes, check_maps, check_masks, metric, pairs

__all__ = ["pointing_game", "heatmap_boxes", "box_iou", "mask_iou", "relevance_mass", "relevance_rank"]


def _images(n, batch_size, progress, desc):
    """Index tensors of at most ``batch_size`` images (``base.pairs`` with one step per image)."""
    for i, _ in pairs(n, 1, batch_size, progress, desc):
        yield i


def _maps_masks(maps, masks):
    maps = check_maps(maps)
    return maps, check_masks(masks, maps)


def _dilate(masks, radius: float) -> torch.Tensor:
    """``masks (B, H, W)`` dilated by a disc: pixel p is kept iff a mask pixel q has |p - q| <= radius.

    Exact Euclidean distance in two separable passes: ``dx`` the distance from each pixel to the
    nearest mask pixel of its own row (infinite in a row without one), then the minimum of
    ``dx(y', x)^2 + (y - y')^2`` over the ``2k + 1`` rows ``y'`` within ``k = min(floor(radius),
    H - 1)`` (a loop over row offsets, not over images). Any ``radius >= 0`` works, ``inf`` too.
    """
    if radius < 1:
        return masks
    b, h, w = masks.shape
    k = h - 1 if radius >= h else int(radius)
    col = torch.arange(w)
    left = torch.where(masks, col, -w).cummax(2).values                # nearest mask column <= x
    right = torch.where(masks, col, 2 * w).flip(2).cummin(2).values.flip(2)  # nearest column >= x
    dx2 = (torch.minimum(col - left, right - col) ** 2).double()       # (B, H, W), exact squares
    dx2 = dx2.masked_fill(~masks.any(2, keepdim=True), float("inf"))   # rows without a mask pixel
    dx2 = F.pad(dx2, (0, 0, k, k), value=float("inf"))                 # (B, H + 2k, W)
    d2 = dx2[:, k:k + h].clone()
    for dy in range(1, k + 1):                                         # rows y - dy and y + dy
        torch.minimum(d2, torch.minimum(dx2[:, k - dy:k - dy + h], dx2[:, k + dy:k + dy + h]) + dy * dy, out=d2)
    return d2 <= radius * radius


def _binarise(maps, threshold: float) -> torch.Tensor:
    """Pixels ``>= threshold * max`` of their map; every pixel of a map whose max is <= 0."""
    top = maps.flatten(1).amax(1)[:, None, None]                       # (B, 1, 1)
    return (maps >= threshold * top) | (top <= 0)


@metric(higher_is_better=True, category="localisation")
def pointing_game(maps, masks, tolerance: float = 0, batch_size: int = 256, progress: bool = False):
    """Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop").

    hit_i = 1 if argmax_p a_i(p) lies in the mask dilated by a disc of radius ``tolerance`` pixels
    (Euclidean; the paper uses 15 px at 224 px), else 0. The mean of the hits is the accuracy.
    Ties of the maximum are shared (module docstring): hit_i = |argmax ∩ mask| / |argmax|.
    Quantus 0.6.0 ``PointingGame`` counts a hit if *any* tied maximum is in the mask; with a unique
    maximum (the usual case) both agree.
    """
    maps, masks = _maps_masks(maps, masks)
    tolerance = check_float("tolerance", tolerance, low=0)
    hits = torch.empty(len(maps))
    for i in _images(len(maps), batch_size, progress, "pointing game"):
        a, gt = maps[i].flatten(1), _dilate(masks[i], tolerance).flatten(1)   # (B, HW)
        top = a == a.amax(1, keepdim=True)                                      # the maxima
        hits[i] = (top & gt).sum(1) / top.sum(1)
    return hits


def _largest_component(keep, connectivity: int) -> torch.Tensor:
    """The largest 4- or 8-connected component of each ``keep (B, H, W)`` map, all maps at once.

    One ``scipy.ndimage.label`` call on the stack, with a 3 x 3 x 3 structure whose outer planes
    are empty (maps are not connected to each other); labels are numbered in scan order, so a tie
    of size goes to the component whose first pixel comes first (``argmax`` takes the first).
    """
    b = keep.shape[0]
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    lab, n = ndimage.label(keep.cpu().numpy(), structure)             # (B, H, W), 0 = background
    lab = torch.from_numpy(lab).view(b, -1).long()
    size = torch.zeros(b, n + 1).scatter_add_(1, lab, torch.ones(lab.shape))
    size[:, 0] = -1                                                  # never the background
    return (lab == size.argmax(1, keepdim=True)).view_as(keep).to(keep.device)


def heatmap_boxes(maps, threshold: float = 0.2, component: str = "largest", connectivity: int = 8,
                  batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Boxes ``(N, 4)`` float32 ``(x0, y0, x1, y1)``, x1/y1 exclusive, from maps (Zhou et al. 2016).

    CAM protocol: keep the pixels ``>= threshold * max`` of the map, then take the bounding box of
    the largest ``connectivity``-connected component (``component="largest"``; 8 by default, as
    CAM's contour finding) or of all kept pixels (``"all"``). A map with no positive value keeps
    every pixel: its box is the whole image.
    """
    maps = check_maps(maps)
    threshold = check_fraction("threshold", threshold, open_low=False, open_high=False)
    check_choice("component", component, ("largest", "all"))
    check_choice("connectivity", connectivity, (4, 8))
    out = torch.empty(len(maps), 4)
    for i in _images(len(maps), batch_size, progress, "heatmap boxes"):
        keep = _binarise(maps[i], threshold)
        out[i] = mask_boxes(_largest_component(keep, connectivity) if component == "largest" else keep)
    return out


@metric(higher_is_better=True, category="localisation")
def box_iou(maps, boxes, threshold: float = 0.2, component: str = "largest", connectivity: int = 8,
            batch_size: int = 256, progress: bool = False):
    """IoU of the box of the thresholded map with the ground-truth box (Zhou et al. 2016, CAM).

    IoU(B, G) = |B ∩ G| / |B ∪ G| for boxes ``(x0, y0, x1, y1)``, B from :func:`heatmap_boxes`
    (``threshold``, ``component``, ``connectivity`` as there), G from ``boxes (N, 4)`` (the data's
    ``boxes``). CAM counts a localisation correct at IoU >= 0.5.
    """
    maps = check_maps(maps)
    gt = check_boxes(boxes, len(maps), maps.shape[-2:])
    pred = heatmap_boxes(maps, threshold, component, connectivity, batch_size, progress)
    lo, hi = torch.maximum(pred[:, :2], gt[:, :2]), torch.minimum(pred[:, 2:], gt[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(1)

    def area(b):
        return (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area(pred) + area(gt) - inter)


@metric(higher_is_better=True, category="localisation")
def mask_iou(maps, masks, threshold: float = 0.2, batch_size: int = 256, progress: bool = False):
    """IoU of the binarised map with the ground-truth mask (the lecture's ground-truth coverage).

    B = {p : a(p) >= threshold * max a} (every pixel if max a <= 0); IoU = |B ∩ M| / |B ∪ M|.
    """
    maps, masks = _maps_masks(maps, masks)
    threshold = check_fraction("threshold", threshold, open_low=False, open_high=False)
    iou = torch.empty(len(maps))
    for i in _images(len(maps), batch_size, progress, "mask IoU"):
        keep, gt = _binarise(maps[i], threshold).flatten(1), masks[i].flatten(1)
        iou[i] = (keep & gt).sum(1) / (keep | gt).sum(1)
    return iou


@metric(higher_is_better=True, category="localisation")
def relevance_mass(maps, masks, batch_size: int = 256, progress: bool = False):
    """Relevance mass accuracy (Arras, Osman & Samek 2022, CLEVR-XAI, eq. 2).

    mass = sum_{p in M} max(a(p), 0) / sum_p max(a(p), 0): the share of the positive relevance that
    falls in the mask; negative relevance does not count (as in CLEVR-XAI). A map with no positive
    value scores 0. Quantus 0.6.0 ``RelevanceMassAccuracy`` sums signed values (equal on
    non-negative maps; NaN there for an all-zero map).
    """
    maps, masks = _maps_masks(maps, masks)
    mass = torch.empty(len(maps))
    for i in _images(len(maps), batch_size, progress, "relevance mass"):
        pos = maps[i].clamp(min=0).flatten(1)                           # (B, HW)
        total = pos.sum(1)
        inside = (pos * masks[i].flatten(1)).sum(1)
        mass[i] = torch.where(total > 0, inside / total, 0.0)         # 0/0 is not selected
    return mass


@metric(higher_is_better=True, category="localisation")
def relevance_rank(maps, masks, batch_size: int = 256, progress: bool = False):
    """Relevance rank accuracy (Arras, Osman & Samek 2022, CLEVR-XAI, eq. 3).

    With K = |M| and P_top the K pixels of highest relevance, rank = |P_top ∩ M| / K. Pixels tied
    with the K-th value v_K share the places left (module docstring):
    rank = (|{a > v_K} ∩ M| + (K - |{a > v_K}|) |{a = v_K} ∩ M| / |{a = v_K}|) / K.
    Quantus 0.6.0 ``RelevanceRankAccuracy`` breaks such ties by an unstable ``np.argsort``; without
    ties at v_K both agree.
    """
    maps, masks = _maps_masks(maps, masks)
    rank = torch.empty(len(maps))
    for i in _images(len(maps), batch_size, progress, "relevance rank"):
        a, gt = maps[i].flatten(1), masks[i].flatten(1)                 # (B, HW)
        k = gt.sum(1, keepdim=True)                                     # (B, 1)
        vk = a.topk(int(k.max()), 1).values.gather(1, k - 1)            # the K-th largest value
        above, tied = a > vk, a == vk
        share = (k - above.sum(1, keepdim=True)) / tied.sum(1, keepdim=True)
        rank[i] = ((above & gt).sum(1) + share[:, 0] * (tied & gt).sum(1)) / k[:, 0]
    return rank
