"""An `evaluate` metric module that loads offline: the scores of a rating model (regression).

MSE, MAE, Pearson and Spearman correlation, and, given the label values seen in training (the stars),
the accuracy of the predictions rounded to the nearest of them, with the confusion matrix of the rounded
predictions.
"""

import datasets
import evaluate
import numpy as np

from finetune.tasks import nearest  # the rounding every other path uses (predictions files, the demo)

_DESCRIPTION = "MSE, MAE, Pearson and Spearman correlation, and accuracy after rounding, for a rating (regression)."
_KWARGS = """
Args:
    predictions (list of float): predicted values.
    references (list of float): true values.
    label_values (list of float, optional): the values a label takes (e.g. 1, 2, 3, 4, 5 stars): predictions
        are rounded to the nearest of them for `accuracy` and the confusion matrix.
    confusion_matrix (bool, optional): also return the rounded predictions' matrix (rows: true value).
Returns:
    mse, mae, pearson, spearman (floats; a correlation is 0 when either side is constant), and
    accuracy when label_values are given.
"""




def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties given their mean rank (what Spearman's correlation needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inverse, ranks)
    return (sums / counts)[inverse]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class RatingScores(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references, label_values=None, confusion_matrix=False):
        predictions = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.float64)
        error = predictions - references
        scores = {
            "mse": float((error ** 2).mean()) if len(error) else 0.0,
            "mae": float(np.abs(error).mean()) if len(error) else 0.0,
            "pearson": _pearson(predictions, references) if len(error) > 1 else 0.0,
            "spearman": _pearson(_ranks(predictions), _ranks(references)) if len(error) > 1 else 0.0,
        }
        if label_values:
            predicted, true = nearest(predictions, label_values), nearest(references, label_values)
            scores["accuracy"] = float((predicted == true).mean()) if len(error) else 0.0
            if confusion_matrix:
                matrix = np.zeros((len(label_values), len(label_values)), dtype=np.int64)
                np.add.at(matrix, (true, predicted), 1)
                scores["confusion_matrix"] = matrix.tolist()
        return scores
