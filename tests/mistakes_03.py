"""Typical mistakes in 03_evaluation (see tests/mistakes.py)."""
from mistakes import Mistake as M

OFF = "torch.as_tensor(order)[:k].tolist()"
BATCHES = "pred = torch.cat([model(b).argmax(1) for b in x.split(batch_size)])\n                accuracy.append((pred == y).float().mean())"
PEAK = "peak = up.transpose(0, 1).flatten(1).amax(1).clamp(min=1e-12)"
KEPT = "kept = agg > torch.quantile(agg.flatten(), 1 - q)"
IOU = ('inter = torch.einsum("np,ncp->c", b, c)\n    union = b.sum()[None] + c.sum((0, 2)) - inter\n'
       "    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))")
RESET = "        m.reset_parameters()\n        if name == upto:\n            break"
SEED = "    torch.manual_seed(seed)\n    for name, m in layers:\n"
SCORE = ".gather(1, target[i][:, None])[:, 0])"
FRAC = "frac = (torch.arange(curves.shape[1]) * step).clamp(max=n_pixels) / n_pixels"
D2 = "d2 = (rows - r.view(-1, 1, 1)) ** 2 + (cols - c.view(-1, 1, 1)) ** 2"
DR, DC = "(rows - r.view(-1, 1, 1))", "(cols - c.view(-1, 1, 1))"
AREA = "    inter = wi * hi\n    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])"
SIGNED = "torch.where(torch.as_tensor(higher_is_better).view(1, -1), -scores, scores)"
TAU = "float(stats.kendalltau(ranks[:, i], ranks[:, j])[0])"

MISTAKES = {
    "ablate_units": [
        M("k = 0..K-1", "range(len(order) + 1)", "range(len(order))", "one accuracy per k"),
        M("only the k-th unit off", OFF, "torch.as_tensor(order)[max(k - 1, 0):k].tolist()", "stay off"),
        M("a count, not a fraction", "(pred == y).float().mean()", "(pred == y).float().sum()", "fraction"),
        M("the mean of per-batch accuracies", BATCHES,
          "accuracy.append(torch.stack([(model(b).argmax(1) == t).float().mean()\n"
          "                                             for b, t in zip(x.split(batch_size), y.split(batch_size))]).mean())",
          "per-batch"),
        M("the hook never removed", "        handle.remove()\n", "", "hook is still attached"),
        M("the hook kept after an error", "    finally:\n        handle.remove()\n        for m, training in modes:\n            m.training = training",
          "    except Exception:\n        raise\n    handle.remove()\n    for m, training in modes:\n        m.training = training", "finally"),
        M("not in eval mode", "        model.eval()\n", "", "eval mode"),
        M("the mode not restored", "            m.training = training", "            pass", "mode it came in"),
        M("the units switched off in the weights", "        out = out.clone()\n        out[:, off] = 0\n        return out",
          "        mod.weight.data[off] = 0", "weights changed"),
    ],
    "semantic_coverage": [
        M("corners aligned", "align_corners=False", "align_corners=True", "aligned corners"),
        M("nearest neighbours", 'mode="bilinear", align_corners=False', 'mode="nearest"', "nearest"),
        M("one maximum for all units", PEAK, "peak = up.amax().clamp(min=1e-12).repeat(up.shape[1])", "own maximum"),
        M("the maximum before upsampling", PEAK, "peak = acts.float().transpose(0, 1).flatten(1).amax(1).clamp(min=1e-12)",
          "before upsampling"),
        M("the q quantile, not 1 - q", KEPT, "kept = agg > torch.quantile(agg.flatten(), q)", "(1 - q) quantile"),
        M(">= the threshold", KEPT, "kept = agg >= torch.quantile(agg.flatten(), 1 - q)", ">= instead of >"),
        M("a threshold per image", KEPT, "kept = agg > torch.quantile(agg.flatten(1), 1 - q, dim=1).view(-1, 1, 1)",
          "threshold per image"),
        M("the mean of per-image IoUs", IOU,
          'inter = torch.einsum("np,ncp->nc", b, c)\n    union = b.sum(1)[:, None] + c.sum(2) - inter\n'
          "    return (inter / union.clamp(min=1)).mean(0)", "mean of the per-image IoUs"),
        M("the union counts the overlap twice", "c.sum((0, 2)) - inter", "c.sum((0, 2))", "union counts the intersection once"),
        M("nan for an empty union", "inter / union.clamp(min=1), torch.zeros_like(union)", "inter / union, inter / union",
          "union is empty"),
    ],
    "spearman": [
        M("distinct ranks for ties", "return torch.empty_like(avg).scatter_(1, order, avg)",
          "return v.flatten(1).argsort(1).argsort(1).double()", "average rank"),
        M("ties at their lowest rank", "avg = ((start + end) / 2).gather(1, group - 1)", "avg = start.gather(1, group - 1)",
          "lowest rank"),
        M("Pearson of the values", "ra, rb = ranks(a), ranks(b)", "ra, rb = a.flatten(1).double(), b.flatten(1).double()",
          "correlate their ranks"),
        M("the shortcut formula with ties", "return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))).float()",
          "n = ra.shape[1]\n    return (1 - 6 * ((ra - rb) ** 2).sum(1) / (n * (n ** 2 - 1))).float()", "shortcut"),
        M("the means not subtracted", "ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)", "pass",
          "means were not subtracted"),
    ],
    "randomize": [
        M("the model itself randomised", "new = copy.deepcopy(model)", "new = model", "copy"),
        M("upto excluded", RESET, "        if name == upto:\n            break\n        m.reset_parameters()", "included"),
        M("only upto reset", RESET, "        if name == upto:\n            m.reset_parameters()\n            break", "cascading"),
        M("the cascade from the input up", "if list(m.parameters(recurse=False))][::-1]", "if list(m.parameters(recurse=False))]",
          "reverse order of named_modules"),
        M("a seed per layer", SEED, "    for name, m in layers:\n        torch.manual_seed(seed)\n", "seed once"),
        M("the seed ignored", "torch.manual_seed(seed)", "torch.manual_seed(0)", "seed argument"),
        M("a hand-made initialisation", "        m.reset_parameters()\n",
          "        [torch.nn.init.normal_(p, std=0.01) for p in m.parameters(recurse=False)]\n", "reset_parameters"),
    ],
    "morf_curve": [
        M("least relevant first", "torch.sort(-sums, dim=1, stable=True)", "torch.sort(sums, dim=1, stable=True)", "most relevant first"),
        M("abs of the sums", "F.avg_pool2d(maps[:, None], region)", "F.avg_pool2d(maps[:, None].abs(), region)", "signed"),
        M("only the k-th square removed", "gone = rank[i] < step[:, None, None]", "gone = rank[i] == step[:, None, None] - 1",
          "stay removed"),
        M("removed squares set to 0", "torch.where(gone[:, None], baseline, x[i])", "torch.where(gone[:, None], 0.0, x[i])",
          "baseline"),
        M("the probability, not the logit", SCORE, ".softmax(1)" + SCORE, "logit"),
        M("the predicted class", SCORE, ".amax(1))", "given target class"),
        M("AOPC without k = 0", "return (curves[:, :1] - curves).mean(1)", "return (curves[:, :1] - curves)[:, 1:].mean(1)",
          "k = 0 counts too"),
        M("AOPC with the wrong sign", "return (curves[:, :1] - curves).mean(1)", "return (curves - curves[:, :1]).mean(1)", "sign"),
        M("one image at a time", "torch.arange(n * (L + 1)).split(batch_size)", "torch.arange(n * (L + 1)).split(1)",
          "calls"),
    ],
    "pixel_curve": [
        M("logits", ".softmax(1).gather(1,", ".gather(1,", "softmax probability"),
        M("least relevant first", "torch.sort(-maps.flatten(1), dim=1, stable=True)", "torch.sort(maps.flatten(1), dim=1, stable=True)",
          "decreasing order"),
        M("floor of P / step", "s = math.ceil(p / step)", "s = p // step", "ceil"),
        M("the predicted class", ".softmax(1).gather(1, target[i][:, None])[:, 0])", ".softmax(1).amax(1))", "given target"),
        M("evenly spaced points", FRAC, "frac = torch.linspace(0, 1, curves.shape[1])", "evenly spaced"),
        M("x in pixels", FRAC, "frac = (torch.arange(curves.shape[1]) * step).clamp(max=n_pixels).float()", "not their number"),
        M("the mean as the area", "return torch.trapezoid(curves, frac, dim=1)", "return curves.mean(1)", "trapezoid"),
    ],
    "pointing_game": [
        M("row and column swapped", "r, c = top // w, top % w", "r, c = top % w, top // w", "row * W + column"),
        M("the height as the row length", "r, c = top // w, top % w", "r, c = top // h, top % h", "the width"),
        M("the larger axis distance", D2, f"d2 = torch.maximum({DR}.abs(), {DC}.abs()) ** 2", "not the largest of the two axes"),
        M("city-block distance", D2, f"d2 = ({DR}.abs() + {DC}.abs()) ** 2", "not the sum of the two axes"),
        M("strictly within", "<= tolerance ** 2", "< tolerance ** 2", "at most the tolerance"),
        M("squared distance against the tolerance", "<= tolerance ** 2", "<= tolerance", "not with its square"),
        M("the last maximum", "top = maps.flatten(1).argmax(1)",
          "top = maps.flatten(1).shape[1] - 1 - maps.flatten(1).flip(1).argmax(1)", "first in row-major order"),
    ],
    "box_iou": [
        M("rows first", "torch.stack([first(cols), first(rows), last(cols), last(rows)], 1)",
          "torch.stack([first(rows), first(cols), last(rows), last(cols)], 1)", "x (the column) comes first"),
        M("inclusive ends", "last = lambda v: v.shape[1] - v.flip(1).float().argmax(1)",
          "last = lambda v: v.shape[1] - 1 - v.flip(1).float().argmax(1)", "exclusive"),
        M("strictly above the threshold", "kept = maps >= threshold", "kept = maps > threshold", "at least"),
        M("one maximum for the batch", "maps.flatten(1).amax(1).view(-1, 1, 1)", "maps.amax()", "its own maximum"),
        M("+1 in the areas", AREA,
          "    inter = (wi + 1) * (hi + 1)\n    area = lambda t: (t[:, 2] - t[:, 0] + 1) * (t[:, 3] - t[:, 1] + 1)", "no + 1"),
        M("the width not clamped", "torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)", "torch.maximum(a[:, 0], b[:, 0]))", "clamp"),
        M("the overlap counted twice in the union", "area(a) + area(b) - inter", "area(a) + area(b)", "overlap once"),
    ],
    "relevance_rank": [
        M("ties: the higher index first", "torch.sort(-maps.flatten(1), dim=1, stable=True).indices",
          "torch.sort(maps.flatten(1), dim=1, stable=True).indices.flip(1)", "lower row-major index"),
        M("abs of the map", "torch.sort(-maps.flatten(1)", "torch.sort(-maps.flatten(1).abs()", "signed"),
        M("the lowest values", "torch.sort(-maps.flatten(1)", "torch.sort(maps.flatten(1)", "lowest values"),
        M("divided by H * W", "return (inside * top).sum(1) / k", "return (inside * top).sum(1) / order.shape[1]", "division by H * W"),
        M("one K for the batch", "k = masks.flatten(1).sum(1)", "k = masks.flatten(1).sum(1).max().expand(masks.shape[0])",
          "own mask size"),
    ],
    "agreement": [
        M("the directions ignored", SIGNED, "-scores", "direction"),
        M("rank 1 for the worst", SIGNED, "torch.where(torch.as_tensor(higher_is_better).view(1, -1), scores, -scores)",
          "rank 1 is the best"),
        M("distinct ranks for ties", "stats.rankdata(signed.numpy(), axis=0)", 'stats.rankdata(signed.numpy(), axis=0, method="ordinal")',
          "average of their ranks"),
        M("ranks along the methods", "stats.rankdata(signed.numpy(), axis=0)", "stats.rankdata(signed.numpy(), axis=1)", "column"),
        M("Spearman instead of Kendall", TAU, "float(stats.spearmanr(ranks[:, i], ranks[:, j])[0])", "Kendall"),
        M("tau-c", TAU, 'float(stats.kendalltau(ranks[:, i], ranks[:, j], variant="c")[0])', "tau_b divides"),
        M("tau of the raw scores", TAU, "float(stats.kendalltau(scores[:, i], scores[:, j])[0])", "compare the ranks"),
    ],
}
