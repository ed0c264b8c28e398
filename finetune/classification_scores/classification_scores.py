"""An `evaluate` metric module that loads offline: accuracy, macro and per-class
precision, recall and F1, and the confusion matrix, from one pass over the labels.

`evaluate.load("accuracy")` fetches a script from the Hub; this module lives in the
repository instead, so `evaluate.load(<this folder>)` works without a network.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy, macro/per-class precision, recall, F1 and the confusion matrix for single-label classification."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    label_names (list of str, optional): class names, in id order; defaults to "0", "1", ...
    confusion_matrix (bool, optional): also return the matrix (rows: true class, columns: predicted).
Returns:
    accuracy, precision, recall, f1 (macro averages over the classes), and
    precision_<name>, recall_<name>, f1_<name> per class (floats in [0, 1]).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ClassificationScores(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, label_names=None, confusion_matrix=False):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        n_classes = max(len(label_names or ()), int(max(predictions.max(initial=0), references.max(initial=0))) + 1)
        names = list(label_names) if label_names else [str(i) for i in range(n_classes)]
        matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(matrix, (references, predictions), 1)

        true_positives = np.diag(matrix).astype(float)
        predicted = matrix.sum(axis=0)
        actual = matrix.sum(axis=1)
        # A class never predicted (or absent) scores 0, as scikit-learn's zero_division=0 does.
        precision = np.divide(true_positives, predicted, out=np.zeros(n_classes), where=predicted > 0)
        recall = np.divide(true_positives, actual, out=np.zeros(n_classes), where=actual > 0)
        denominator = precision + recall
        f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(n_classes), where=denominator > 0)

        scores = {
            "accuracy": float(true_positives.sum() / max(len(references), 1)),
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        }
        for i, name in enumerate(names):
            scores[f"precision_{name}"] = float(precision[i])
            scores[f"recall_{name}"] = float(recall[i])
            scores[f"f1_{name}"] = float(f1[i])
        if confusion_matrix:
            scores["confusion_matrix"] = matrix.tolist()
        return scores
