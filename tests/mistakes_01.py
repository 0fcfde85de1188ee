"""Typical mistakes in 01_interpretation (see tests/mistakes.py)."""
from mistakes import Mistake as M

QUANTILE = "torch.quantile(values, 1 - quantile, dim=1)"
UP = 'up = F.interpolate(acts, size=size, mode="bilinear", align_corners=False)'
MASK = "return up > thresholds.view(1, -1, 1, 1)"
UNION = "union = m.sum(1, keepdim=True) + c.sum(1)[None] - inter"
IOU = "return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))"
PER_IMAGE = ("m, c = masks.flatten(2).float(), concepts.flatten(2).float()\n"
             "    inter = m @ c.transpose(1, 2)\n"
             "    union = m.sum(2)[:, :, None] + c.sum(2)[:, None] - inter\n"
             "    return (inter / union.clamp(min=1)).mean(0)")
COUNT = "for k in detectors.nonzero().flatten().tolist():"
EXT = ("inter = (m & unit_mask).flatten(2).sum(2)\n"
       "        union = (m | unit_mask).flatten(2).sum(2)")
EXT_PER_IMAGE = ("inter = (m & unit_mask).flatten(3).sum(3).float()\n"
                 "        union = (m | unit_mask).flatten(3).sum(3).float()\n"
                 "        out.append((inter / union.clamp(min=1)).mean(2))\n"
                 "        continue")
STEP = "w = project(w - eta * 2 * (gram @ w - xty), mu)"
OBJECTIVE = "objective = s - l2 * ((img - 0.5) ** 2).sum()"

MISTAKES = {
    "unit_thresholds": [
        M("the quantile direction reversed", QUANTILE, "torch.quantile(values, quantile, dim=1)", "direction"),
        M("the value at a rank, not interpolated", QUANTILE,
          "values.sort(1).values[:, int((1 - quantile) * values.shape[1])]", "interpolat"),
        M("units and images mixed by a reshape", "acts.transpose(0, 1).flatten(1)", "acts.reshape(acts.shape[1], -1)",
          "unit axis first"),
        M("one threshold for the whole layer", QUANTILE,
          "torch.quantile(values.flatten(), 1 - quantile).repeat(len(values))", "own threshold"),
    ],
    "unit_masks": [
        M("corners aligned", "align_corners=False", "align_corners=True", "align_corners"),
        M("nearest-neighbour upsampling", 'mode="bilinear", align_corners=False', 'mode="nearest"', "bilinear"),
        M("thresholded before upsampling", MASK,
          "on = (acts > thresholds.view(1, -1, 1, 1)).float()\n"
          '    return F.interpolate(on, size=size, mode="bilinear", align_corners=False) > 0.5', "before upsampling"),
        M(">= instead of >", MASK, "return up >= thresholds.view(1, -1, 1, 1)", "strict"),
        M("the first unit's threshold for all", MASK, "return up > thresholds[0]", "own threshold"),
    ],
    "dataset_iou": [
        M("the mean of per-image IoUs", "m = masks.transpose(0, 1).flatten(1).float()" + "        # (K, N*H*W)",
          PER_IMAGE + "\n    m = masks.transpose(0, 1).flatten(1).float()", "per-image"),
        M("the union counts the intersection twice", UNION, "union = m.sum(1, keepdim=True) + c.sum(1)[None]",
          "subtract the intersection"),
        M("units and images mixed by a reshape", "m = masks.transpose(0, 1).flatten(1).float()",
          "m = masks.reshape(masks.shape[1], -1).float()", "axis first"),
        M("nan for an empty union", IOU, "return inter / union", "empty union"),
    ],
    "label_units": [
        M(">= instead of >", "detectors = best > threshold", "detectors = best >= threshold", "strictly"),
        M("the threshold argument ignored", "detectors = best > threshold", "detectors = best > 0.04", "threshold argument"),
        M("the last maximum on ties", "best, labels = iou.max(1)",
          "best, labels = iou.max(1)[0], iou.shape[1] - 1 - iou.flip(1).argmax(1)", "first maximum"),
        M("categories without detectors left out", "per_category = dict.fromkeys(dict.fromkeys(categories), 0)",
          "per_category = {}", "every category"),
        M("every unit counted, detector or not", COUNT, "for k in range(len(labels)):", "only detectors"),
        M("categories sorted", "dict.fromkeys(dict.fromkeys(categories), 0)", "dict.fromkeys(sorted(set(categories)), 0)",
          "first appear"),
    ],
    "formula_mask": [
        M("AND NOT the wrong way round", "return a & ~b", "return ~a & b", "left and not right"),
        M("AND NOT as NOT (left AND right)", "return a & ~b", "return ~(a & b)", "left and not right"),
        M("the concepts changed in place", "return a & b", "a &= b\n        return a", "in place"),
        M("no recursion into nested formulas", "a, b = formula_mask(left, concepts), formula_mask(right, concepts)",
          "a, b = concepts[:, left].bool(), concepts[:, right].bool()", "nested"),
        M("an unknown operator falls through", "if op == \"OR\":", "if op in (\"OR\", \"XOR\"):", "unknown operator"),
    ],
    "extension_ious": [
        M("the mean of per-image IoUs", EXT, EXT_PER_IMAGE, "per-image"),
        M("nan for an empty union", "torch.where(union > 0, inter / union.clamp(min=1), 0.0)", "inter / union", "empty union"),
        M("AND NOT the wrong way round", '"AND NOT": f & ~c', '"AND NOT": ~f & c', "beam formula AND NOT"),
        M("operators in another order", "for op in OPERATORS:", 'for op in ("AND", "AND NOT", "OR"):', "order"),
        M("beams and concepts swapped", "return torch.stack(out).float()", "return torch.stack(out).float().transpose(1, 2)",
          "operators, B, C"),
    ],
    "filter_energies": [
        M("|A| instead of A^2", "a.pow(2)", "a.abs()", "squared"),
        M("normalised over all layers at once", "parts.append(e / e.sum(1, keepdim=True).clamp(min=1e-12))\n    return torch.cat(parts, 1)",
          "parts.append(e)\n    x = torch.cat(parts, 1)\n    return x / x.sum(1, keepdim=True).clamp(min=1e-12)", "each layer"),
        M("normalised over the images", "e.sum(1, keepdim=True)", "e.sum(0, keepdim=True)", "per image"),
        M("nan for an all-zero layer", ".clamp(min=1e-12)", "", "all-zero"),
        M("L2 normalisation", "e / e.sum(1, keepdim=True).clamp(min=1e-12)", "e / e.norm(dim=1, keepdim=True).clamp(min=1e-12)",
          "L1"),
    ],
    "l1_regression": [
        M("projected once, after the loop", STEP + "\n    return w.float()",
          "w = w - eta * 2 * (gram @ w - xty)\n    return project(w, mu).float()", "every step"),
        M("the gradient's sign", STEP, "w = project(w + eta * 2 * (gram @ w - xty), mu)", "sign"),
        M("the gradient without its factor 2", STEP, "w = project(w - eta * (gram @ w - xty), mu)", "factor 2"),
        M("the Frobenius norm for sigma_max", "torch.linalg.matrix_norm(x, ord=2)", "torch.linalg.matrix_norm(x)",
          "largest singular value"),
        M("mu fixed", STEP, "w = project(w - eta * 2 * (gram @ w - xty), 1.0)", "the argument mu"),
    ],
    "gradient_ascent": [
        M("the penalty with the wrong sign", OBJECTIVE, "objective = s + l2 * ((img - 0.5) ** 2).sum()", "penalty"),
        M("the penalty around 0, not grey", OBJECTIVE, "objective = s - l2 * (img ** 2).sum()", "0.5"),
        M("a mean instead of a sum in the penalty", OBJECTIVE, "objective = s - l2 * ((img - 0.5) ** 2).mean()", "sum"),
        M("the objective recorded, not the logit", "scores.append(s.detach())", "scores.append(objective.detach())",
          "logit"),
        M("descent, not ascent", "img = (img + lr * g).clamp(0, 1)", "img = (img - lr * g).clamp(0, 1)", "ascent"),
        M("no clamp", "img = (img + lr * g).clamp(0, 1)", "img = img + lr * g", "clamp"),
    ],
}
