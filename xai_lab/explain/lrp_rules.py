"""The LRP rules (Bach et al. 2015; Montavon et al. 2017, 2019), as data, with the formulas of Zennit.

A rule maps the relevance ``r`` at the output of a linear layer (``z = fn(a, w, b)``, a Conv or
Linear with its BatchNorm merged in) to the relevance at its input ``a``. Each rule is one
function ``rule(layer, a, z, r, **params)`` with its equation in the docstring, where
z_ij = a_i w_ij and z_j = sum_i z_ij + b_j; ``layer`` (an ``LRPLayer``) gives ``fn(a, w, b)`` and
``vjp(shape, w, s)`` = (d fn(a, w) / d a)^T s. :data:`RULES` names the rules of the layers, with
the :func:`~xai_lab.explain.lrp` arguments each takes, :data:`INPUT_RULES` those of the first
layer. Denominators are stabilised as Zennit does (:func:`stabilize`).
"""
from __future__ import annotations

import torch

__all__ = ["STABILIZER", "stabilize", "sign_pairs", "lrp_0", "lrp_epsilon", "lrp_gamma",
           "lrp_alpha_beta", "lrp_zb", "lrp_flat", "RULES", "INPUT_RULES"]

STABILIZER = 1e-6  # Zennit's default stabiliser of the gamma, alpha-beta, z^B, flat and pooling rules


def stabilize(z, eps):
    """z + eps sign(z), sign(0) = +1 (Zennit's convention); with eps = 0, 0 becomes 1 (0/0 -> 0)."""
    den = z + torch.where(z >= 0, eps, -eps)
    return den if eps else torch.where(den == 0, torch.ones_like(den), den)


def sign_pairs(a, w_pos, w_neg, b_pos, b_neg):
    """The (input, weight, bias) pairs whose contributions z_ij = a_i w_ij are positive, and those
    whose contributions are negative: a+ with w_pos (w_neg), and, where inputs can be negative,
    a- with w_neg (w_pos)."""
    ap, an = a.clamp(min=0), a.clamp(max=0)
    pos, neg = [(ap, w_pos, b_pos)], [(ap, w_neg, b_neg)]
    if (a < 0).any():
        pos.append((an, w_neg, None))
        neg.append((an, w_pos, None))
    return pos, neg


def lrp_epsilon(layer, a, z, r, epsilon):
    """LRP-epsilon (Bach 2015): R_i = sum_j a_i w_ij R_j / (z_j + eps sign z_j); eps = 0: LRP-0."""
    return a * layer.vjp(a.shape, layer.weight, r / stabilize(z, epsilon))


def lrp_0(layer, a, z, r):
    """LRP-0 (Bach 2015): R_i = sum_j a_i w_ij R_j / z_j (0 / 0 -> 0): :func:`lrp_epsilon` with eps = 0."""
    return lrp_epsilon(layer, a, z, r, epsilon=0.0)


def lrp_gamma(layer, a, z, r, gamma):
    """LRP-gamma (Montavon 2019): R_i = sum_j (z_ij + gamma z+_ij) / (z_j + gamma z+_j) R_j where
    z_j > 0 (z- where z_j < 0), z+_ij the positive contributions a+ w+ and a- w- (z+_j with b+).
    On ReLU inputs, w -> w + gamma w+; Zennit's generalisation to signed inputs."""
    w, b = layer.weight, layer.bias
    pairs_pos, pairs_neg = sign_pairs(a, w + gamma * w.clamp(min=0), w + gamma * w.clamp(max=0),
                                      b + gamma * b.clamp(min=0), b + gamma * b.clamp(max=0))
    out = 0
    for pairs, mask in ((pairs_pos, z > 0), (pairs_neg, z < 0)):
        s = r * mask / stabilize(sum(layer.fn(ai, wi, bi) for ai, wi, bi in pairs), STABILIZER)
        out = out + sum(ai * layer.vjp(a.shape, wi, s) for ai, wi, _ in pairs)
    return out


def lrp_alpha_beta(layer, a, z, r, alpha, beta):
    """LRP-alpha-beta (Bach 2015): R_i = sum_j (alpha z+_ij / z+_j - beta z-_ij / z-_j) R_j, with
    z+ the positive contributions a+ w+ and a- w- (and b+), z- the negative ones."""
    w, b = layer.weight, layer.bias
    pos, neg = sign_pairs(a, w.clamp(min=0), w.clamp(max=0), b.clamp(min=0), b.clamp(max=0))
    out = 0
    for pairs, factor in ((pos, alpha), (neg, -beta)):
        if factor == 0:
            continue
        s = r / stabilize(sum(layer.fn(ai, wi, bi) for ai, wi, bi in pairs), STABILIZER)
        out = out + factor * sum(ai * layer.vjp(a.shape, wi, s) for ai, wi, _ in pairs)
    return out


def lrp_zb(layer, a, z, r, low, high):
    """z^B (Montavon 2017) for inputs in [l, h]: R_i = sum_j (a_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j."""
    w = layer.weight
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    den = layer.fn(a, w, None) - layer.fn(low, wp, None) - layer.fn(high, wn, None)
    s = r / stabilize(den, STABILIZER)
    return a * layer.vjp(a.shape, w, s) - low * layer.vjp(a.shape, wp, s) - high * layer.vjp(a.shape, wn, s)


def lrp_flat(layer, a, z, r):
    """Flat rule (Lapuschkin 2019): R_j spread equally over the inputs j sees (all weights 1)."""
    ones_w = torch.ones_like(layer.weight)
    den = layer.fn(torch.ones_like(a[:1]), ones_w, None)
    return layer.vjp(a.shape, ones_w, r / stabilize(den, STABILIZER))


RULES = {  # lrp(rule=...) -> (the rule, the lrp() arguments it takes)
    "0": (lrp_0, ()),
    "epsilon": (lrp_epsilon, ("epsilon",)),
    "gamma": (lrp_gamma, ("gamma",)),
    "alpha_beta": (lrp_alpha_beta, ("alpha", "beta")),
}

# lrp(input_rule=...) -> the rule of the first layer; lrp() gives zb its bounds ``low``, ``high``
# mapped from image space to that layer's input
INPUT_RULES = {"zb": lrp_zb, "flat": lrp_flat}
