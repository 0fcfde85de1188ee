"""Typical mistakes in 04_interpretable_by_design (see tests/mistakes.py)."""
from mistakes import Mistake as M

LOSS = "F.cross_entropy(class_logits, labels) + lam * torch.where(continuous, mse, bce).mean(0).sum()"
FIXED = "fixed = torch.where(model.continuous[idx], truth, torch.where(truth > 0.5, model.high[idx], model.low[idx]))"
CLST = "clst = torch.where(own, min_distances, inf).amin(1).mean()"
TOP = "top = torch.sort(-similarities, dim=1, stable=True).indices[:, :k]"
ROWS = 'y = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="reflect")'

MISTAKES = {
    "bottleneck": [
        M("f on the raw logits", "f(torch.where(continuous, c, torch.sigmoid(c)))", "f(c)", "sigmoid"),
        M("sigmoid on the continuous concepts too", "f(torch.where(continuous, c, torch.sigmoid(c)))",
          "f(torch.sigmoid(c))", "unchanged"),
        M("mean over the concepts", ".mean(0).sum()", ".mean()", "sum over the concepts"),
        M("BCE of probabilities taken as logits", "binary_cross_entropy_with_logits(concept_outputs,",
          "binary_cross_entropy_with_logits(torch.sigmoid(concept_outputs),", "takes the logit itself"),
        M("lambda on the label loss", LOSS,
          "lam * F.cross_entropy(class_logits, labels) + torch.where(continuous, mse, bce).mean(0).sum()",
          "lam weighs the concept term only"),
    ],
    "intervention": [
        M("the truth 0/1 as a logit", "torch.where(truth > 0.5, model.high[idx], model.low[idx])", "truth",
          "model.high"),
        M("c_pred changed in place", "c = c_pred.clone()", "c = c_pred", "in place"),
        M("k = 0..L-1", "for k in range(len(order) + 1)", "for k in range(len(order))", "one accuracy per k"),
        M("a continuous concept set to a percentile", FIXED,
          "fixed = torch.where(truth > 0.5, model.high[idx], model.low[idx])", "continuous concept takes its true value"),
        M("f on the raw concepts", "return model.f(torch.where(model.continuous, c, torch.sigmoid(c)))",
          "return model.f(c)", "activated"),
    ],
    "prototype_similarity": [
        M("Euclidean, not squared", "** 2).sum(2)", "** 2).sum(2).sqrt()", "squared"),
        M("eps fixed", "(d_min + eps))", "(d_min + 1e-4))", "eps is an argument"),
        M("the farthest patch", ".amin(2)", ".amax(2)", "closest"),
        M("the similarity upside down", "torch.log((d_min + 1) / (d_min + eps))",
          "torch.log((d_min + eps) / (d_min + 1))", "log((d + 1) / (d + eps))"),
    ],
    "cluster_separation": [
        M("Clst over every class", CLST, "clst = min_distances.amin(1).mean()", "own class"),
        M("Sep: the farthest prototype", "sep = torch.where(own, inf, min_distances).amin(1).mean()",
          "sep = torch.where(own, -inf, min_distances).amax(1).mean()", "other classes"),
        M("a sum over the images", CLST, "clst = torch.where(own, min_distances, inf).amin(1).sum()", "mean"),
        M("the mean over own prototypes, not the closest", CLST,
          "clst = (torch.where(own, min_distances, 0 * inf.nan_to_num()).sum(1) / own.sum(1)).mean()", "min("),
    ],
    "push": [
        M("a patch of any class", 'd = torch.where(owner == prototype_classes[j], d, torch.full_like(d, float("inf")))',
          "d = d", "may only become a patch of"),
        M("row and column swapped", "cell = torch.stack([found % (h * w) // w, found % w], 1)",
          "cell = torch.stack([found % w, found % (h * w) // w], 1)", "(row, column)"),
        M("the prototypes overwritten", "return patches[found].clone(),",
          "prototypes.copy_(patches[found])\n    return prototypes,", "were changed"),
        M("the distance not squared", "d = ((patches - prototypes[j]) ** 2).sum(1)",
          "d = ((patches - prototypes[j]) ** 2).sum(1).sqrt()", "squared"),
        M("the patch index as the image", "found // (h * w), cell", "found, cell", "images"),
    ],
    "top_prototypes": [
        M("ranked by points", TOP, "top = torch.sort(-(similarities * weight[pred]), dim=1, stable=True).indices[:, :k]",
          "similarity 2"),
        M("the least activated first", TOP, "top = torch.sort(similarities, dim=1, stable=True).indices[:, :k]",
          "largest similarities"),
        M("points without the weight", "similarities.gather(1, top) * weight[pred].gather(1, top)",
          "similarities.gather(1, top)", "W[1, 2]"),
    ],
    "low_pass": [
        M("zero padding", ROWS, "y = F.conv2d(F.pad(x, (1, 1, 0, 0))", "zero padding"),
        M("the border repeated", ROWS, 'y = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate")', "not repeated"),
        M("one axis only", "return F.conv2d(F.pad(y, (0, 0, 1, 1)", "return y\n    F.conv2d(F.pad(y, (0, 0, 1, 1)",
          "outer product"),
        M("a box filter", "k = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype)",
          "k = torch.full((3,), 1 / 3, dtype=x.dtype)", "alternating pattern"),
    ],
    "cue_evidence": [
        M("follows-cue against the labels", '(pred["swapped"] == other)', '(pred["swapped"] == labels)',
          "swapped-in classes"),
        M("the other cue added, the own one kept", "swapped = x - a * pat[cue] + a * pat[other]",
          "swapped = x + a * pat[other]", "remove the image's own cue"),
        M("no low-pass", '"low_pass": models.predict(model, low_pass(x))', '"low_pass": models.predict(model, x)',
          "low-pass"),
    ],
}
