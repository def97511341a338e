"""Scoring trained models: FID, KID and an IS-style score from pretrained networks shipped in wheels
(``metrics``), text alignment (``alignment`` on shapes, ``retrieval`` on captioned data), and the
:class:`Evaluator` that applies one protocol to every compared model (``evaluator``). Imports training,
the paper's modules, ``ldlib.data`` and ``ldlib.runtime``; nothing above.
"""

from . import metrics
from .evaluator import (Evaluation, Evaluator, Judge, better, corruption_sanity, evaluate_model, generate,
                        metric_value, ordered, paired_difference, reference_sets, across_seed_value)

__all__ = ["metrics", "Evaluation", "Evaluator", "Judge", "better", "corruption_sanity", "evaluate_model", "generate",
           "metric_value", "ordered", "paired_difference", "reference_sets", "across_seed_value"]
