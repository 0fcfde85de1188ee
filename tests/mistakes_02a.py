"""Typical mistakes in 02_explanation, perturbation and surrogate exercises (see tests/mistakes.py);
the other exercises of the assignment are in tests/mistakes_02b.py."""
from mistakes import Mistake as M

DROPS = "drops = full[:, None] - torch.cat(scores).view(n, p)"
BATCHES = "torch.arange(n * p).split(batch_size)"
CROP = "u[dy:dy + h, dx:dx + w]"
BILINEAR = 'mode="bilinear", align_corners=False'
SCALE = "/ (len(masks) * p)"
PAINT = "means[:, segments].to(x.dtype)"
CENTRE_Z = "zc = z - (weights[:, None] * z).sum(0) / weights.sum()"

MISTAKES = {
    "occlusion": [
        M("a sum over the covering squares", "drops @ cover / cover.sum(0)", "drops @ cover", "average"),
        M("the rise, not the drop", DROPS, "drops = torch.cat(scores).view(n, p) - full[:, None]", "sign"),
        M("the last position left out", "range(0, h - window + 1, stride)", "range(0, h - window, stride)",
          "last square"),
        M("the pairs numbered square-major", "i, j = k // p, k % p", "i, j = k % n, k // n", "pair k"),
        M("the probability, not the logit", "model(images).gather", "model(images).softmax(1).gather", "logit"),
        M("the baseline ignored", "baseline, x[i]", "0.5, x[i]", "baseline"),
        M("the last, partial batch dropped", BATCHES, f"{BATCHES}[:n * p // batch_size]", "last batch"),
        M("one forward pass per square", BATCHES, "torch.arange(n * p).split(1)", "batches of batch_size"),
    ],
    "rise_masks": [
        M("corners aligned", "align_corners=False", "align_corners=True", "corners aligned"),
        M("nearest, not bilinear", BILINEAR, 'mode="nearest"', "bilinear"),
        M("upsampled straight to H x W", "size=((s + 1) * ch, (s + 1) * cw)", "size=(h, w)", "(s+1) C"),
        M("the shift's row and column swapped", CROP, "u[dx:dx + h, dy:dy + w]", "rows"),
        M("the shift ignored", CROP, "u[:h, :w]", "shift"),
        M("the cell height for both sides", "math.ceil(w / s)", "math.ceil(h / s)", "ceil(W / s)"),
    ],
    "rise": [
        M("the logit, not the probability", ".softmax(1)[:, target[i]]", "[:, target[i]]", "probability"),
        M("divided by M only", SCALE, "/ len(masks)", "1 / p"),
        M("divided by p only", SCALE, "/ p", "by p alone"),
        M("the image not masked", "model(x[i] * b[:, None])", "model(x[i].expand(len(b), -1, -1, -1))",
          "masked image"),
        M("the predicted class", ".softmax(1)[:, target[i]]", ".softmax(1).amax(1)", "target"),
        M("softmax over the batch", ".softmax(1)", ".softmax(0)", "over the classes"),
    ],
    "lime_perturb": [
        M("hidden superpixels black", PAINT, "torch.zeros_like(x)", "black"),
        M("the sum, not the mean", "]) / size", "])", "sum"),
        M("the whole image's mean colour", PAINT, "x.mean((1, 2))[:, None, None]", "whole image"),
        M("z = 0 keeps", "z[:, segments].bool()", "~z[:, segments].bool()", "z = 1 keeps"),
        M("one grey for all channels", PAINT, "means.mean(0)[segments].to(x.dtype)", "channel"),
    ],
    "lime_kernel": [
        M("no square root", "kernel_width ** 2).sqrt()", "kernel_width ** 2)", "square root"),
        M("D not squared", "-dist ** 2", "-dist", "D^2"),
        M("w not squared", "/ kernel_width ** 2", "/ kernel_width", "w^2"),
        M("the width ignored", "kernel_width ** 2", "0.25 ** 2", "kernel_width"),
        M("the similarity, not the distance", "dist = 1 - kept", "dist = kept", "distance 0"),
        M("0 / 0 for the all-zero sample", ".clamp(min=1e-12)", "", "all-zero"),
        M("d = the number of samples", "math.sqrt(z.shape[1])", "math.sqrt(len(z))", "columns"),
    ],
    "weighted_ridge": [
        M("no intercept", CENTRE_Z, "zc = z", "intercept"),
        M("unweighted means", "(weights[:, None] * z).sum(0) / weights.sum()", "z.mean(0)", "weighted mean"),
        M("the weights on one side only", "zc.T @ (weights[:, None] * zc)", "zc.T @ zc", "both sides"),
        M("no penalty", " + alpha * torch.eye(z.shape[1], dtype=z.dtype)", "", "alpha"),
    ],
}
