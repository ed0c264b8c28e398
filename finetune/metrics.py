"""Metrics through the `evaluate` library, with the metric modules in this repo (one per kind of label:
finetune/tasks.py)."""

from pathlib import Path

import numpy as np

METRIC_MODULE = Path(__file__).parent / "classification_scores"
METRIC_MODULES = {
    "single_label_classification": METRIC_MODULE,
    "regression": Path(__file__).parent / "rating_scores",
    "multi_label_classification": Path(__file__).parent / "multilabel_scores",
}


def load_metric(problem_type: str = "single_label_classification"):
    import evaluate  # costs seconds (it imports transformers' pipelines): only where metrics are computed

    return evaluate.load(str(METRIC_MODULES[problem_type]))


def score_task(task, outputs, references, confusion_matrix: bool = False) -> tuple[dict, list | None]:
    """The metrics of a finetune.tasks.Task's `outputs` against the true labels (class ids, ratings, or 0/1 rows),
    through `evaluate`; and the confusion matrix (rows: true) where the task has one (classes; a rating's rounded
    values)."""
    from finetune import tasks

    decided = task.decisions(outputs)
    if task.problem_type == tasks.REGRESSION:
        scores = load_metric(tasks.REGRESSION).compute(
            predictions=decided, references=np.asarray(references, dtype=np.float64).reshape(-1),
            label_values=task.rating_values, confusion_matrix=confusion_matrix and bool(task.rating_values))
    elif task.problem_type == tasks.MULTI_LABEL:
        scores = load_metric(tasks.MULTI_LABEL).compute(
            predictions=decided, references=(np.asarray(references) >= 0.5).astype(np.int64),
            label_names=task.label_names)
    else:
        scores = load_metric(tasks.SINGLE_LABEL).compute(
            predictions=decided, references=np.asarray(references, dtype=np.int64), label_names=task.label_names,
            confusion_matrix=confusion_matrix)
    return scores, scores.pop("confusion_matrix", None)


def make_compute_metrics(task):
    """A `compute_metrics` for the Trainer (a finetune.tasks.Task, or a list of class names): scalars only, so
    every value lands in the logs and history."""
    if isinstance(task, list):
        from finetune.tasks import SINGLE_LABEL, Task

        task = Task(SINGLE_LABEL, task)

    def compute_metrics(eval_prediction) -> dict[str, float]:
        return score_task(task, task.outputs(eval_prediction.predictions), eval_prediction.label_ids)[0]

    return compute_metrics
