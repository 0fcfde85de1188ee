"""Typical mistakes in 00_foundations (see tests/mistakes.py)."""
from mistakes import Mistake as M

ACC = "(pred == labels).float().mean().item()"
PRECISION = "of_k = labels == k\n        if of_k.any():\n            acc[k] = (pred[of_k] == k).float().mean()"
NAN_TABLE = 'table = torch.full((num_groups, num_classes), float("nan"))'
HI_LO = ("hi = torch.where(table.isnan(), -torch.inf, table).max(0).values\n"
         "    lo = torch.where(table.isnan(), torch.inf, table).min(0).values")
RETURN_WM = "return right[agree].mean().item(), right[disagree].mean().item()"
TRY = ("    try:\n        with torch.no_grad():\n            model(images)\n    finally:\n        handle.remove()")
NO_GRAD = ('captured["out"] = output.detach()\n\n    handle = module.register_forward_hook(hook)\n'
           "    try:\n        with torch.no_grad():\n            model(images)")
SORT = "torch.sort(-scores, stable=True).indices[:k]"

MISTAKES = {
    "accuracy": [
        M("the error rate", "(pred == labels)", "(pred != labels)", "error rate"),
        M("a count", ".float().mean().item()", ".float().sum().item()", "number of right predictions"),
        M("a tensor, not a float", ".mean().item()", ".mean()", "Python float"),
        M("integer division", ACC, "(pred == labels).sum().item() // len(pred)", "integer division"),
        M("a percentage", ".mean().item()", ".mean().item() * 100", "percentage"),
    ],
    "per_class_accuracy": [
        M("the overall accuracy for every class (the demo's bug)", "return acc",
          "return (pred == labels).float().mean().repeat(num_classes)", "overall accuracy"),
        M("the precision: conditioned on the prediction", PRECISION,
          "of_k = pred == k\n        if of_k.any():\n            acc[k] = (labels[of_k] == k).float().mean()", "precision"),
        M("0 for a class without images", 'torch.full((num_classes,), float("nan"))', "torch.zeros(num_classes)", "not 0"),
        M("divided by all images", "(pred[of_k] == k).float().mean()", "(pred[of_k] == k).float().sum() / len(labels)",
          "divide by the number of images of that class"),
        M("the last class left out", "range(num_classes)", "range(num_classes - 1)", "last class"),
        M("the number of classes from the labels", "torch.full((num_classes,)", "torch.full((int(labels.max()) + 1,)",
          "num_classes fixes the length"),
    ],
    "subgroup_accuracy": [
        M("the group ignored", "cell = (group == g) & (labels == k)", "cell = labels == k", "group is ignored"),
        M("transposed", "return table", "return table.T", "transposed"),
        M("0 for an empty cell", NAN_TABLE, "table = torch.zeros(num_groups, num_classes)", "not 0"),
        M("two groups hard-coded", "for g in range(num_groups)", "for g in range(2)", "num_groups is an argument"),
        M("divided by the group's images", "(pred[cell] == k).float().mean()",
          "(pred[cell] == k).float().sum() / (group == g).sum()", "images of the group"),
    ],
    "largest_gap": [
        M("nan not ignored (max and min return nan)", HI_LO, "hi = table.max(0).values\n    lo = table.min(0).values",
          "meets a nan"),
        M("nan counted as 0", "lo = torch.where(table.isnan(), torch.inf, table)", "lo = torch.where(table.isnan(), 0.0, table)",
          "counted as 0"),
        M("along a row", HI_LO, HI_LO.replace("(0)", "(1)"), "down a column"),
        M("the last of tied classes", "k = int(gap.argmax())", "k = len(gap) - 1 - int(gap.flip(0).argmax())",
          "return the first"),
        M("a tensor, not a float", "return gap[k].item(), k", "return gap[k], k", "(float, int)"),
    ],
    "watermark_effect": [
        M("no glyph counted as a lying glyph", "disagree = (watermark != labels) & (watermark >= 0)",
          "disagree = watermark != labels", "no glyph"),
        M("the two numbers swapped", RETURN_WM, "return right[disagree].mean().item(), right[agree].mean().item()",
          "wrong order"),
        M("how often the prediction follows the glyph", RETURN_WM,
          "return right[agree].mean().item(), (pred == watermark)[disagree].float().mean().item()", "follows the glyph"),
        M("the sets defined by the prediction", "agree = watermark == labels", "agree = watermark == pred", "true class"),
        M("tensors, not floats", RETURN_WM, "return right[agree].mean(), right[disagree].mean()", "Python floats"),
    ],
    "capture_activations": [
        M("no try / finally", TRY, "    with torch.no_grad():\n        model(images)\n    handle.remove()", "try / finally"),
        M("the hook never removed", "handle.remove()", "pass", "still attached"),
        M("the layer hard-coded", "dict(model.named_modules())[layer]", 'dict(model.named_modules())["features.14"]',
          "layer name is an argument"),
        M("the module's input", 'captured["out"] = output.detach()', 'captured["out"] = inputs[0].detach()', "the hook's `inputs`"),
        M("the model's output", 'return captured["out"]', "return model(images)", "logits"),
        M("gradients kept", NO_GRAD, NO_GRAD.replace(".detach()", "").replace(
            "with torch.no_grad():\n            model(images)", "model(images)"), "torch.no_grad()"),
    ],
    "top_k_images": [
        M("the mean, not the peak", ".max(1).values", ".mean(1)", "mean of the map"),
        M("the lowest first", SORT, "torch.sort(scores, stable=True).indices[:k]", "lowest scores first"),
        M("an ascending sort read backwards (ties: the higher index first)", SORT,
          "torch.sort(scores, stable=True).indices.flip(0)[:k]", "lower index comes first"),
        M("every channel, not the unit", "activations[:, unit].flatten(1)", "activations.flatten(1)", "channel `unit` alone"),
        M("the scores, not the indices", ".indices[:k]", ".values[:k]", "not their scores"),
        M("k + 1 images", "[:k]", "[:k + 1]", "shape (k,)"),
    ],
    "interpretation_or_explanation": [
        M("a capital letter", '"a": "interpretation",', '"a": "Interpretation",', "lower case"),
        M("an abbreviation", '"b": "explanation",', '"b": "explain",', "whole word"),
        M("a value left None", '"c": "interpretation",', '"c": None,', "still None"),
        M("a key dropped", '    "f": "explanation",\n}', "}", "keys 'a' to 'f'"),
        M("a trailing space", '"d": "explanation",', '"d": "explanation ",', "spaces"),
    ],
}
