"""Which part of the library solves which exercise: ``REFERENCE_IMPLEMENTATIONS`` (re-exported as
``grading.REFERENCE_IMPLEMENTATIONS``). ``grading.forbid`` watches these while a hidden test runs the
student's function, and the grading sandbox replaces them by stubs (``course.stubs``).
"""
__all__ = ["REFERENCE_IMPLEMENTATIONS"]

# exercise -> the library's public functions and classes that solve it (dotted paths inside
# xai_lab). Forbidding one forbids with it every function and class of its own module that it
# reaches (its private helpers, found from the code, see `implementation`), so a helper renamed or
# added later is covered without being listed; shared helpers of other modules are listed by their
# public names. tests/test_grading.py checks that every entry resolves and is public.
REFERENCE_IMPLEMENTATIONS = {
    "00_foundations.accuracy": ["analysis.accuracy", "models.evaluate"],
    "00_foundations.per_class_accuracy": ["analysis.per_class_accuracy"],
    "00_foundations.subgroup_accuracy": ["analysis.subgroup_accuracy", "analysis.per_class_accuracy"],
    "00_foundations.largest_gap": ["analysis.largest_gap"],
    "00_foundations.watermark_effect": ["analysis.watermark_effect"],
    "00_foundations.capture_activations": ["hooks.capture", "hooks.taps", "hooks.forward_to"],
    "00_foundations.top_k_images": ["analysis.top_k_images", "analysis.unit_scores"],
    "01_interpretation.unit_thresholds": ["interpret.quantile_thresholds"],
    "01_interpretation.unit_masks": ["interpret.unit_masks", "interpret.concepts.unit_pixels"],
    "01_interpretation.dataset_iou": ["interpret.dissect", "interpret.concepts.Concepts",
                                      "interpret.concepts.iou_scores"],
    "01_interpretation.label_units": ["interpret.Dissection"],
    "01_interpretation.formula_mask": ["interpret.Formula", "interpret.Leaf"],
    "01_interpretation.extension_ious": ["interpret.compose", "interpret.concepts.iou_scores"],
    "01_interpretation.filter_energies": ["interpret.filter_energies", "interpret.relevance.filter_energy"],
    "01_interpretation.l1_regression": ["interpret.l1_regression", "interpret.relevant_units"],
    "01_interpretation.gradient_ascent": ["interpret.maximize"],
    "02_explanation.occlusion": ["explain.occlusion"],
    "02_explanation.rise_masks": ["explain.rise", "explain.perturbation.rise_masks"],
    "02_explanation.rise": ["explain.rise", "explain.perturbation.rise_masks", "explain.base.scatter_rows"],
    "02_explanation.lime_perturb": ["explain.lime"],
    "02_explanation.lime_kernel": ["explain.lime"],
    "02_explanation.weighted_ridge": ["explain.lime", "explain.lime.weighted_ridge"],
    "02_explanation.relu_rules": ["explain.saliency", "explain.deconvnet", "explain.guided_backprop",
                                  "explain.gradient.relu_rule", "explain.by_interpretation"],
    "02_explanation.cam": ["explain.cam", "explain.grad_cam", "explain.grad_cam_pp", "explain.base.layer_gradients"],
    "02_explanation.grad_cam": ["explain.grad_cam", "explain.grad_cam_pp", "explain.cam",
                                "explain.base.layer_gradients", "explain.contrastive"],
    "02_explanation.lrp_epsilon": ["explain.lrp"],
    "02_explanation.why_not": ["explain.contrastive", "explain.grad_cam", "explain.cam",
                               "explain.base.layer_gradients", "explain.base.Contrast"],
    "03_evaluation.ablate_units": ["evaluate.ablate_units"],
    "03_evaluation.semantic_coverage": ["evaluate.semantic_coverage"],
    "03_evaluation.spearman": ["evaluate.rank_correlation", "evaluate.model_randomisation"],
    "03_evaluation.randomize": ["evaluate.randomize", "evaluate.model_randomisation"],
    "03_evaluation.morf_curve": ["evaluate.morf_curve", "evaluate.aopc", "evaluate.Curve"],
    "03_evaluation.pixel_curve": ["evaluate.deletion", "evaluate.insertion", "evaluate.Curve"],
    "03_evaluation.pointing_game": ["evaluate.pointing_game"], "03_evaluation.relevance_rank": ["evaluate.relevance_rank"],
    "03_evaluation.box_iou": ["evaluate.box_iou", "evaluate.heatmap_boxes"],
    "03_evaluation.agreement": ["evaluate.metric_agreement", "evaluate.rank_methods"],
    # 04: the model classes stay (the notebook runs them); their forward passes use private cores
    "04_interpretable_by_design.bottleneck": ["design.joint_loss", "design.concept_loss"],
    "04_interpretable_by_design.intervention": ["design.intervene", "design.intervention_curve"],
    "04_interpretable_by_design.prototype_similarity": ["design.patch_distances", "design.prototype_similarity"],
    "04_interpretable_by_design.cluster_separation": ["design.cluster_cost", "design.separation_cost",
                                                      "design.prototype_loss"],
    "04_interpretable_by_design.push": ["design.push"],
    "04_interpretable_by_design.top_prototypes": ["viz.this_looks_like_that"],
    "04_interpretable_by_design.low_pass": ["design.low_pass", "design.binomial_kernel"],
    "04_interpretable_by_design.cue_evidence": ["design.reliance", "design.swap_cue"],
}
