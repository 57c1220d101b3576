"""What higgs_mae's training hands to its report: the saved models, and (stored in the run
directory) the comparison rows and test scores that only training can compute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..base import FitResult, stored


@dataclass
class HiggsResult(FitResult):
    """The result of :func:`kerahep.tasks.higgs_mae.stages.fit`.

    Attributes:
        models: ``model`` (the final classifier), ``encoder`` (pre-trained, before any
            fine-tuning) and ``pretrainer`` (the whole autoencoder).
        rows: comparison rows by name, in table order: the frozen-encoder classifier
            (``pretrained_frozen``), the fine-tuned one (``pretrained_finetuned``), the
            Transformer from scratch (``scratch``) and the tree baselines
            (``gbt_same_features``, ``gbt_all28``); each ``{"roc_auc", "roc_auc_ci", "accuracy",
            "n", "features"}`` on the run's test events. The row of the final classifier
            is recomputed from ``model.keras`` by the report and must equal its stored one.
        test_labels: the labels of the test events, in order.
        test_scores: the test scores of each row, by the same names (for the ROC curves).
    """

    rows: dict = stored(default_factory=dict)
    test_labels: np.ndarray = stored(default_factory=lambda: np.zeros(0, np.float32))
    test_scores: dict = stored(default_factory=dict)

    def __post_init__(self):
        # read back from fit_result.json, the scores of each row are lists
        self.test_labels = np.asarray(self.test_labels)
        self.test_scores = {k: np.asarray(v) for k, v in self.test_scores.items()}

    def add(self, name: str, row: dict, labels, scores) -> None:
        """Record one comparison row and its test scores (the labels are the same for every row)."""
        self.rows[name] = row
        self.test_labels = np.asarray(labels)
        self.test_scores[name] = np.asarray(scores)
