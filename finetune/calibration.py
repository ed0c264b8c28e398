"""Confidences that mean what they say, and an "unsure" answer for the reviews a model should not decide alone.

A fine-tuned BERT says 0.99 on reviews it gets wrong one time in ten: its probabilities are over-confident
(Guo et al. 2017, "On Calibration of Modern Neural Networks"). Temperature scaling divides the logits by one
number T fitted on validation; T > 1 softens them. For softmax it never changes the predicted class, only how
sure the model says it is, so accuracy and F1 stay as they are.

With calibrated confidences, `abstention_threshold` finds the confidence above which the model's answers
reach a precision a reader asks for (95%), and how many reviews it then answers; the rest it calls "unsure".

numpy only (finetune/tasks.py's rule for the serving path): the 1-D fit is a golden-section search.
"""

from dataclasses import dataclass

import numpy as np

MIN_ROWS = 20  # fewer validation reviews than this: no temperature fitted (T = 1, the logits as they are)
LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
GOLDEN_STEPS = 80  # each narrows the bracket by 0.618: 80 steps leave ~1e-16 of the log-T range
MIN_ANSWERED = 10  # the fewest reviews a confidence threshold may answer: one lucky review sets nothing


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature, or 1.0 and the reason none was fitted; the validation NLL before and after."""

    temperature: float
    fitted: bool
    reason: str = ""  # why not fitted; or, when fitted, a note (the search stopped at a bound)
    nll_before: float = float("nan")
    nll_after: float = float("nan")


# --- temperature scaling -------------------------------------------------------------------------------------

def fit_temperature(logits, labels) -> TemperatureFit:
    """The T > 0 that minimises the validation NLL of softmax(logits / T) (single label: class ids)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"fit_temperature: logits of shape {logits.shape} for {len(labels)} labels; "
                         "expected (reviews, classes)")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"fit_temperature: class ids must lie in 0..{logits.shape[1] - 1}")
    return _fit(lambda t: _softmax_nll(logits, labels, t), len(labels), len(np.unique(labels)))


def fit_label_temperatures(logits, targets) -> list[TemperatureFit]:
    """One temperature per label of a multi-label model (sigmoid per label, binary NLL).

    Per label, not one shared T: each label's output is its own binary classifier, with its own base rate and
    its own over-confidence (a rare aspect tends to be more over-confident than a common one), and each label
    sees every validation review, so one parameter per label is as well determined as a shared one. The cost:
    different temperatures move labels differently against one decision threshold, so choose the threshold
    (Task.choose_threshold) on the calibrated probabilities, after this fit. A label with fewer than MIN_ROWS
    reviews or one class only in validation keeps T = 1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = (np.asarray(targets) >= 0.5).astype(np.float64).reshape(logits.shape)
    return [_fit(lambda t, z=logits[:, j], y=targets[:, j]: _binary_nll(z, y, t), len(logits),
                 len(np.unique(targets[:, j])))
            for j in range(logits.shape[1])]


def _fit(nll, rows: int, classes: int) -> TemperatureFit:
    """Golden-section search on log T; NLL is convex in 1/T, so it has one minimum along log T too."""
    if rows < MIN_ROWS:
        return TemperatureFit(1.0, False, f"{rows} validation reviews; a temperature needs at least {MIN_ROWS}")
    if classes < 2:
        return TemperatureFit(1.0, False, "validation has one class only: no confidence to calibrate against")
    low, high = LOG_T_BOUNDS
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(GOLDEN_STEPS):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(np.exp(left)) <= nll(np.exp(right)):
            high = right
        else:
            low = left
    temperature = float(np.exp((low + high) / 2.0))
    if min(abs(np.log(temperature) - b) for b in LOG_T_BOUNDS) < 1e-6:
        # No minimum inside the bounds: validation is separated by the model (every review right, so the NLL only
        # falls as T shrinks) or hopeless. A temperature at a bound would make test confidences extreme on the
        # strength of nothing: the logits stay as they are.
        return TemperatureFit(1.0, False, f"no temperature fitted: the validation NLL has no minimum between T = "
                              f"{np.exp(LOG_T_BOUNDS[0]):.2g} and {np.exp(LOG_T_BOUNDS[1]):.2g} (validation separated "
                              "by the model?)", float(nll(1.0)), float(nll(1.0)))
    return TemperatureFit(temperature, True, "", float(nll(1.0)), float(nll(temperature)))


def _softmax_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float((log_norm - scaled[np.arange(len(labels)), labels]).mean())


def _binary_nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """-log sigmoid(z) for a 1, -log(1 - sigmoid(z)) for a 0: log(1 + e^z) - y z, stable for any z."""
    scaled = logits / temperature
    return float((np.logaddexp(0.0, scaled) - targets * scaled).mean())


# --- how calibrated: ECE and the reliability table ------------------------------------------------------------

def _bins(confidences, correct, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of [0, 1] (right edge included, as Guo et al.; 0 falls in the first): count, summed
    confidence, summed correct."""
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    index = np.clip(np.ceil(confidences * bins).astype(np.int64) - 1, 0, bins - 1)
    return (np.bincount(index, minlength=bins), np.bincount(index, confidences, minlength=bins),
            np.bincount(index, correct, minlength=bins))


def expected_calibration_error(confidences, correct, bins: int = 15) -> float:
    """ECE: the gap between accuracy and mean confidence in each bin, weighted by the bin's share of reviews.
    0 is calibrated; NaN without reviews. For a multi-label model pass every label's probability and whether
    the label is on (the probabilities themselves are what a reader takes at face value)."""
    counts, confidence_sums, correct_sums = _bins(confidences, correct, bins)
    total = counts.sum()
    if total == 0:
        return float("nan")
    return float(np.abs(correct_sums - confidence_sums).sum() / total)  # sum_b n_b/N |acc_b - conf_b|


def reliability_table(confidences, correct, bins: int = 10) -> list[dict]:
    """One row per bin for a reliability plot: low, high, count, mean confidence and accuracy (None if empty)."""
    counts, confidence_sums, correct_sums = _bins(confidences, correct, bins)
    return [{"low": i / bins, "high": (i + 1) / bins, "count": int(n),
             "confidence": float(confidence_sums[i] / n) if n else None,
             "accuracy": float(correct_sums[i] / n) if n else None}
            for i, n in enumerate(counts)]


# --- the "unsure" answer -----------------------------------------------------------------------------------------

def abstention_threshold(confidences, correct, min_precision: float = 0.95, min_answered: int = MIN_ANSWERED
                         ) -> tuple[float | None, float, float]:
    """The lowest confidence t whose answers (every review with confidence >= t) reach `min_precision` on these
    (validation) reviews, with that precision and the coverage (share of reviews answered).

    Ties: t is one of the confidences, and every review at t is answered, so reviews with equal confidence are
    never split. A t must answer at least `min_answered` reviews. None when no such t reaches the precision; the
    precision and coverage returned are then the best any t reaches (NaN, 0 when there are too few reviews).
    """
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    order = np.argsort(-confidences, kind="stable")
    ranked = confidences[order]
    # The last review of each run of equal confidences: the candidate thresholds, most confident first.
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True)) if len(ranked) else np.array([], int)
    answered = ends + 1
    precision = np.cumsum(correct[order])[ends] / np.maximum(answered, 1)
    allowed = answered >= min_answered
    if not allowed.any():
        return None, float("nan"), 0.0
    meets = allowed & (precision >= min_precision - 1e-12)
    if meets.any():
        pick = np.flatnonzero(meets)[-1]  # the lowest threshold that meets it: the most reviews answered
        return float(ranked[ends[pick]]), float(precision[pick]), float(answered[pick] / len(ranked))
    candidates = np.flatnonzero(allowed)
    best = candidates[len(candidates) - 1 - np.argmax(precision[candidates][::-1])]  # the larger coverage of ties
    return None, float(precision[best]), float(answered[best] / len(ranked))
