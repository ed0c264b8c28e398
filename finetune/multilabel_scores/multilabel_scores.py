"""An `evaluate` metric module that loads offline: the scores of a multi-label classifier.

Micro and macro precision, recall and F1, per-label precision, recall and F1, and subset accuracy (the
share of reviews whose whole set of labels is right), from 0/1 predictions and references per label.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Micro/macro and per-label precision, recall and F1, and subset accuracy, for multi-label classification."
_KWARGS = """
Args:
    predictions (list of list of int): per review, 1 for each label predicted, else 0.
    references (list of list of int): per review, 1 for each true label, else 0.
    label_names (list of str, optional): the labels, in column order; defaults to "0", "1", ...
Returns:
    accuracy (subset accuracy: every label of the review right), precision, recall, f1 (macro averages over
    the labels), precision_micro, recall_micro, f1_micro (over every review-label decision), and
    precision_<name>, recall_<name>, f1_<name> per label.
"""


def _ratio(top, bottom):
    return np.divide(top, bottom, out=np.zeros_like(top, dtype=float), where=bottom > 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MultilabelScores(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                        "references": datasets.Sequence(datasets.Value("int64"))}),
        )

    def _compute(self, predictions, references, label_names=None):
        predictions = np.asarray(predictions, dtype=np.int64).reshape(len(predictions), -1)
        references = np.asarray(references, dtype=np.int64).reshape(len(references), -1)
        n_labels = predictions.shape[1]
        names = list(label_names) if label_names else [str(i) for i in range(n_labels)]
        hits = (predictions & references).sum(axis=0).astype(float)
        predicted, actual = predictions.sum(axis=0).astype(float), references.sum(axis=0).astype(float)
        # A label never predicted (or never true) scores 0, as scikit-learn's zero_division=0 does.
        precision, recall = _ratio(hits, predicted), _ratio(hits, actual)
        f1 = _ratio(2 * precision * recall, precision + recall)
        micro_p = float(_ratio(np.array([hits.sum()]), np.array([predicted.sum()]))[0])
        micro_r = float(_ratio(np.array([hits.sum()]), np.array([actual.sum()]))[0])
        micro_f1 = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r > 0 else 0.0
        scores = {
            "accuracy": float((predictions == references).all(axis=1).mean()) if len(references) else 0.0,
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
            "precision_micro": micro_p,
            "recall_micro": micro_r,
            "f1_micro": float(micro_f1),
        }
        for i, name in enumerate(names):
            scores[f"precision_{name}"] = float(precision[i])
            scores[f"recall_{name}"] = float(recall[i])
            scores[f"f1_{name}"] = float(f1[i])
        return scores
