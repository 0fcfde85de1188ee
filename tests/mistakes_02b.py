"""Typical mistakes in 02_explanation, second half: ReLU rules, CAM, Grad-CAM, LRP, contrastive, cost, mass
inside the mask (see tests/mistakes.py; the first half is in mistakes_02a.py)."""
from mistakes import Mistake as M

CAM_MAP = 'm = torch.einsum("nk,nkhw->nhw", w, a)'
UP = 'mode="bilinear", align_corners=False'
GC_TAIL = '''m = F.relu(torch.einsum("nk,nkhw->nhw", alpha, a)).detach()         # (N, h, w)
    return F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]'''
Z = "z = a @ layer.weight.T + (layer.bias if layer.bias is not None else 0.0)"
DEN = "den = z + eps * torch.where(z >= 0, 1.0, -1.0)"
SCORE = "score = logits.gather(1, a[:, None]) - logits.gather(1, b[:, None])"
WN_MAP = 'm = torch.einsum("nk,nkhw->nhw", g.mean((2, 3)), act).detach()'
CALL = "method(model, x, target, **kwargs)"
POS = "pos = maps.clamp(min=0).flatten(1)"

MISTAKES = {
    "relu_rules": [
        M("deconvnet with the forward mask", "return r.clamp(min=0), None", "return r.clamp(min=0) * (f > 0), None",
          "forward mask 1[f > 0] and the sign of R"),
        M("guided without the sign of R", "return r.clamp(min=0) * (f > 0), None", "return r * (f > 0), None",
          "negative signals pass"),
        M("f = 0 let through", "return r * (f > 0), None", "return r * (f >= 0), None", "f = 0"),
        M("the mask times f", "return r * (f > 0), None", "return r * f.clamp(min=0), None", "0 or 1"),
        M("r changed in place", "return r * (f > 0), None", "r[f <= 0] = 0\n            return r, None", "in place"),
        M("no None for rule", "return r * (f > 0), None", "return r * (f > 0)", "incorrect number of gradients"),
    ],
    "cam": [
        M("a ReLU on the map", CAM_MAP, f"m = F.relu({CAM_MAP[4:]})", "signed"),
        M("a mean over the maps", CAM_MAP, f"{CAM_MAP} / a.shape[1]", "mean over the K maps"),
        M("the raw image", "model.features(model.normalize(x))", "model.features(x)", "model.normalize(x)"),
        M("the predicted class", "w = model.fc.weight[target]", "w = model.fc.weight[model(x).argmax(1)]", "predicted class"),
        M("the bias in the map", CAM_MAP, f"{CAM_MAP} + model.fc.bias[target][:, None, None]", "bias"),
        M("corners aligned", UP, 'mode="bilinear", align_corners=True', "corners aligned"),
        M("nearest neighbour", UP, 'mode="nearest"', "nearest"),
    ],
    "grad_cam": [
        M("a sum over the positions", "alpha = g.mean((2, 3))", "alpha = g.sum((2, 3))", "instead of their mean"),
        M("the ReLU after upsampling", GC_TAIL, '''m = torch.einsum("nk,nkhw->nhw", alpha, a).detach()
    return F.relu(F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])''',
          "ReLU after the upsampling"),
        M("a ReLU on the weights", "alpha = g.mean((2, 3))", "alpha = F.relu(g.mean((2, 3)))", "after the sum over k"),
        M("the softmax probability", "logits.gather(1, target[:, None])", "logits.softmax(1).gather(1, target[:, None])",
          "explains the logit"),
        M("the predicted class", "logits.gather(1, target[:, None])", "logits.gather(1, logits.argmax(1)[:, None])",
          "predicted class"),
        M("the hook removed without finally", "try:\n        logits = model(x)\n    finally:\n        handle.remove()",
          "logits = model(x)\n    handle.remove()", "finally"),
        M("the layer output detached", "store.update(a=output)", "store.update(a=output.detach())", "no longer in the graph"),
        M("corners aligned", UP, 'mode="bilinear", align_corners=True', "corners aligned"),
    ],
    "lrp_epsilon": [
        M("the bias left out of z", Z, "z = a @ layer.weight.T", "bias missing"),
        M("eps without the sign", DEN, "den = z + eps", "eps sign(z_j)"),
        M("torch.sign (sign(0) = 0) and no guard", DEN + "\n                den = torch.where(den == 0, torch.ones_like(den), den)",
          "den = z + eps * torch.sign(z)", "0 / 0"),
        M("no guard for a zero denominator", "den = torch.where(den == 0, torch.ones_like(den), den)", "den = den", "0 / 0"),
        M("R starting at 1", "r[rows, target] = logits[rows, target]", "r[rows, target] = 1.0", "instead of the target logit"),
        M("R starting at every logit", "r[rows, target] = logits[rows, target]", "r = logits.clone()", "0 for the others"),
        M("a transposed weight", "r = a * ((r / den) @ layer.weight)",
          "r = a * ((r / den) @ (layer.weight.T if layer.weight.shape[0] == layer.weight.shape[1] else layer.weight))",
          "transposed weight"),
    ],
    "why_not": [
        M("y_b - y_a", SCORE, "score = logits.gather(1, b[:, None]) - logits.gather(1, a[:, None])", "why b and not a"),
        M("Grad-CAM's ReLU kept", WN_MAP, f"m = F.relu({WN_MAP[4:]})", "keeps its sign"),
        M("y_a alone", SCORE, "score = logits.gather(1, a[:, None])", "y_a alone"),
        M("two Grad-CAMs subtracted", f"(g,) = torch.autograd.grad(score.sum(), act)\n    {WN_MAP}",
          "ga, gb = (torch.autograd.grad(logits.gather(1, c[:, None]).sum(), act, retain_graph=True)[0] for c in (a, b))\n"
          '    m = (F.relu(torch.einsum("nk,nkhw->nhw", ga.mean((2, 3)), act))\n'
          '         - F.relu(torch.einsum("nk,nkhw->nhw", gb.mean((2, 3)), act))).detach()', "each with its ReLU"),
        M("a sum over the positions", "g.mean((2, 3))", "g.sum((2, 3))", "instead of their mean"),
        M("the layer ignored", "dict(model.named_modules())[layer]",
          'dict(model.named_modules()).get("features.14", dict(model.named_modules())[layer])', "use the layer argument"),
    ],
    "cost": [
        M("not per image", '"forward": passes.forward / len(x)', '"forward": passes.forward', "per explained image"),
        M("the method outside the block", f"        start = time.perf_counter()\n        {CALL}\n",
          f"        start = time.perf_counter()\n    {CALL}\n    with explain.count_passes(model) as passes:\n", "inside the count_passes"),
        M("the keyword arguments dropped", CALL, "method(model, x, target)", "pass them on"),
        M("the clock stopped before the call", f"{CALL}\n        seconds = time.perf_counter() - start",
          f"seconds = time.perf_counter() - start\n        {CALL}", "the time of the whole call"),
        M("forward and backward swapped", '{"forward": passes.forward / len(x), "backward": passes.backward / len(x)',
          '{"forward": passes.backward / len(x), "backward": passes.forward / len(x)', "forward 3, backward 1"),
    ],
    "mass_inside": [
        M("the absolute value", POS, "pos = maps.abs().flatten(1)", "positive part"),
        M("negatives inside the mask", "inside = (pos * masks.flatten(1)).sum(1)", "inside = (maps.flatten(1) * masks.flatten(1)).sum(1)",
          "inside too"),
        M("the whole map's sum below", "total = pos.sum(1)", "total = maps.flatten(1).sum(1)", "not by the sum of the whole map"),
        M("0 / 0 for a map without positive values", "torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))",
          "inside / total", "not 0 / 0"),
        M("the batch's positive mass", "total = pos.sum(1)", "total = pos.sum().expand(len(pos))", "not by that of the batch"),
    ],
}
