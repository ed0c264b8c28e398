"""Every figure with its uncertainty: seeded percentile-bootstrap intervals for the headline metrics.

A validation set of 400 reviews measures accuracy to about +-3.5 points; a card that says 0.912 without that
invites readers to rank models by noise. The bootstrap resamples reviews (rows) with replacement and reads
the metric's spread across resamples (Efron's percentile interval).

The metrics here are vectorised over the resample axis: each review is first reduced to what the metric adds
up (right or wrong, its cell of the confusion matrix, its absolute error, its label hits), so a resample is
a sum of row statistics, and 1,000 resamples of 10,000 reviews take a fraction of a second, not a Python loop
of 1,000 metric calls. numpy only: finetune/tasks.py's numbers, no scipy, no torch.
"""

from collections.abc import Callable
from functools import partial

import numpy as np

from finetune import tasks

# Rows x resamples drawn at once: bounds the index array (and each gathered array) to ~16 MB of int64.
MAX_DRAWN = 2_000_000


def bootstrap_interval(metric: Callable[..., np.ndarray], *arrays, resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float] | None:
    """The percentile-bootstrap interval of `metric` over the rows of `arrays` (resampled together, by the same
    row indices). None without rows; the point itself for one row (every resample is that row).

    `metric` is vectorised: it takes the arrays with a leading resample axis, shape (resamples, n, ...), and
    returns one value per resample; the metrics below (`accuracy`, `macro_f1`, ...) are such functions.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_interval: arrays of {sorted({len(a) for a in arrays})} rows; they must match")
    if n == 0:
        return None
    if n == 1:
        point = float(metric(*(a[None] for a in arrays))[0])
        return point, point
    values = _resampled_values(metric, arrays, n, resamples, seed)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def _resampled_values(metric, arrays, n: int, resamples: int, seed: int) -> np.ndarray:
    """The metric on `resamples` resamples, drawn in chunks so 10,000 rows x 1,000 resamples stay small in memory.
    The chunk size depends on n alone, so a seed gives the same interval every time."""
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_DRAWN // n)
    values = []
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, n, (min(chunk, resamples - start), n))
        values.append(np.asarray(metric(*(a[rows] for a in arrays)), dtype=np.float64))
    return np.concatenate(values)


# --- vectorised metrics: arrays (resamples, n) of row statistics in, one value per resample out -------------

def accuracy(correct: np.ndarray) -> np.ndarray:
    """Share of right answers; `correct` is 0/1 per review."""
    return correct.mean(axis=-1)


def mean_absolute_error(absolute_errors: np.ndarray) -> np.ndarray:
    return absolute_errors.mean(axis=-1)


def macro_f1(cells: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean F1 over all `num_classes` classes, as finetune/classification_scores computes it (a class never
    predicted, or absent, scores 0). `cells` is each review's confusion cell, true * K + predicted: one bincount
    over resample * K*K + cell gives every resample's confusion matrix at once."""
    k2 = num_classes * num_classes
    offsets = np.arange(len(cells))[:, None] * k2
    counts = np.bincount((cells + offsets).ravel(), minlength=len(cells) * k2)
    matrices = counts.reshape(len(cells), num_classes, num_classes)
    hits = np.diagonal(matrices, axis1=1, axis2=2).astype(np.float64)
    # F1 = 2 TP / (predicted + actual): the same as 2PR/(P+R), and 0 where the class is neither predicted nor true.
    bottom = matrices.sum(axis=1) + matrices.sum(axis=2)
    f1 = np.divide(2 * hits, bottom, out=np.zeros_like(hits), where=bottom > 0)
    return f1.mean(axis=1)


def micro_f1(hits: np.ndarray, predicted_plus_actual: np.ndarray) -> np.ndarray:
    """F1 over every review-label decision: 2 * hits / (labels predicted + labels true), each summed per resample
    from the per-review counts; 0 when nothing is predicted or true (finetune/multilabel_scores)."""
    top = 2.0 * hits.sum(axis=-1)
    bottom = predicted_plus_actual.sum(axis=-1).astype(np.float64)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


# --- the headline metrics of each kind of task -----------------------------------------------------------

def interval_metrics(problem_type: str, outputs, references, threshold: float | None = None, resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """95% intervals of a task's headline metrics, from its outputs (Task.outputs: probabilities or values) and
    the true labels: accuracy and macro `f1` (single label), `mae` (a rating), `f1_micro` at `threshold`
    (multi-label; default 0.5). Each interval is None without reviews."""
    problem_type = tasks.resolve(problem_type)
    task = tasks.Task(problem_type, [], threshold=tasks.DEFAULT_THRESHOLD if threshold is None else threshold)
    decided = task.decisions(outputs)
    interval = partial(bootstrap_interval, resamples=resamples, confidence=confidence, seed=seed)
    if problem_type == tasks.REGRESSION:
        errors = np.abs(decided - np.asarray(references, dtype=np.float64).reshape(-1))
        return {"mae": interval(mean_absolute_error, errors)}
    if problem_type == tasks.MULTI_LABEL:
        truth = (np.asarray(references) >= 0.5).astype(np.int64).reshape(decided.shape)
        hits, marked = (decided & truth).sum(axis=1), decided.sum(axis=1) + truth.sum(axis=1)
        return {"f1_micro": interval(micro_f1, hits, marked)}
    truth = np.asarray(references, dtype=np.int64).reshape(-1)
    num_classes = np.asarray(outputs).shape[-1]
    return {"accuracy": interval(accuracy, (decided == truth).astype(np.float64)),
            "f1": interval(partial(macro_f1, num_classes=num_classes), truth * num_classes + decided)}
