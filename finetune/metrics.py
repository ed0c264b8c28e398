"""Classification metrics through the `evaluate` library, with the metric module in this repo."""

from pathlib import Path

import numpy as np

METRIC_MODULE = Path(__file__).parent / "classification_scores"


def load_metric():
    import evaluate  # costs seconds (it imports transformers' pipelines): only where metrics are computed

    return evaluate.load(str(METRIC_MODULE))


def make_compute_metrics(label_names: list[str]):
    """A `compute_metrics` for the Trainer: scalars only, so every value lands in the logs and history."""
    metric = load_metric()

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        return metric.compute(predictions=np.argmax(logits, axis=-1), references=labels, label_names=label_names)

    return compute_metrics


def confusion_matrix(predictions, references, label_names: list[str]) -> list[list[int]]:
    scores = load_metric().compute(
        predictions=predictions, references=references, label_names=label_names, confusion_matrix=True
    )
    return scores["confusion_matrix"]


def scores_and_confusion(predictions, references, label_names: list[str]) -> tuple[dict[str, float], list[list[int]]]:
    """The training run's metrics (accuracy, macro and per-class precision/recall/F1) and the confusion
    matrix, from one pass of the same `evaluate` module: what `python -m finetune.score` reports."""
    scores = load_metric().compute(
        predictions=predictions, references=references, label_names=label_names, confusion_matrix=True
    )
    return scores, scores.pop("confusion_matrix")
