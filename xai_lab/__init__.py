"""xai-lab: the support library of the course "Model Interpretation and Explanation for Deep Neural Networks".

Modules: ``data`` (procedural flowers with ground truth), ``models`` (shipped small CNNs), ``hooks``
(activations and gradients by layer name), ``analysis`` (the measurements of 00_foundations),
``viz`` (plots), ``grading`` (nbgrader test helpers), ``course`` (instructor tooling),
``cli`` (the ``xai-lab`` command).
"""
__version__ = "0.1.0"
