"""What a run's figures are worth: calibrated confidences, an "unsure" answer, and every score's interval.

After training, on the restored best model's validation and test logits (train.py's final evaluation):

- `calibrate` fits temperature scaling on validation (finetune/calibration.py: one temperature for classes,
  one per label for several labels; a rating has no probabilities to calibrate), sets it on the task, which
  saves it with the model so that every serving path applies it, and measures the expected calibration error
  (ECE) before and after on validation and test. For classes it then sets the abstention threshold: the
  lowest calibrated confidence at which validation answers reach --min_precision, and reports the precision
  and coverage it gives on validation (optimistic: chosen there) and on test (not).
- `intervals` gives each split's 95% bootstrap interval of its headline figures (finetune/intervals.py).

Both return plain dicts for results.json, the card, the summary and the demo.
"""

import logging

import numpy as np

from finetune import calibration, intervals, tasks

logger = logging.getLogger(__name__)

RESAMPLES = 1000
INTERVAL_SEED = 0
ECE_BINS = 15
RELIABILITY_BINS = 10


def share_text(share: float) -> str:
    """A share of reviews as the log, card and demo print it: one decimal below 10%, so that 3 reviews of 1,252
    read 0.2%, not 0%."""
    return f"{share:.1%}" if 0 < share < 0.1 else f"{share:.0%}"


def calibrate(task: tasks.Task, logits: dict[str, np.ndarray], references: dict[str, np.ndarray],
              min_precision: float) -> dict | None:
    """Fit the temperature (and, for classes, the abstention threshold) on validation; set them on `task`.
    `logits` and `references` are per split, raw model logits and label ids (or 0/1 per label)."""
    if task.problem_type == tasks.REGRESSION or "validation" not in logits:
        return None
    before = {split: _confidences(task, values, references[split]) for split, values in logits.items()}
    if task.problem_type == tasks.MULTI_LABEL:
        fits = calibration.fit_label_temperatures(logits["validation"], references["validation"])
        task.temperature = [fit.temperature for fit in fits]
    else:
        fits = [calibration.fit_temperature(logits["validation"], references["validation"])]
        task.temperature = fits[0].temperature
    after = {split: _confidences(task, values, references[split]) for split, values in logits.items()}
    ece_before, ece_after = _ece(*before["validation"]), _ece(*after["validation"])
    if any(fit.fitted for fit in fits) and ece_after > ece_before:
        # The fit minimises validation NLL; on a small or near-random validation set that can sharpen the
        # confidences past what they are worth. A calibration that looks worse on the very data it was fitted on
        # is not kept.
        note = (f"temperature {_temperature_text(task.temperature)} would raise the validation ECE "
                f"({ece_before:.3f} -> {ece_after:.3f}): kept 1")
        fits = [calibration.TemperatureFit(1.0, False, note) for _ in fits]  # one per label, as fitted
        task.temperature = [1.0] * len(task.temperature) if isinstance(task.temperature, list) else 1.0
        after = before
    report = {
        "temperature": task.temperature,
        "fitted": [fit.fitted for fit in fits],
        "notes": sorted({fit.reason for fit in fits if fit.reason}),
        "ece_before": {split: _ece(*pair) for split, pair in before.items()},
        "ece_after": {split: _ece(*pair) for split, pair in after.items()},
        "reliability": {split: calibration.reliability_table(*pair, bins=RELIABILITY_BINS)
                        for split, pair in after.items()},
    }
    fitted = (f"temperature {_temperature_text(task.temperature)} fitted on validation" if any(report["fitted"])
              else "no temperature fitted (" + "; ".join(report["notes"]) + ")")
    logger.info("calibration: %s; ECE %s", fitted, ", ".join(
        f"{split} {report['ece_before'][split]:.3f} -> {report['ece_after'][split]:.3f}" for split in after))
    if task.problem_type == tasks.SINGLE_LABEL:
        report["abstention"] = abstain(task, after, min_precision)
    return report


def abstain(task: tasks.Task, confidences: dict[str, tuple[np.ndarray, np.ndarray]], min_precision: float) -> dict:
    """The abstention threshold fitted on validation, set on the task; its precision and coverage per split."""
    if min_precision <= 0:
        task.min_confidence = None
        return {"min_precision": 0.0, "threshold": None, "note": "--min_precision 0: every review is answered"}
    threshold, precision, coverage = calibration.abstention_threshold(*confidences["validation"], min_precision)
    task.min_confidence = threshold
    report = {"min_precision": min_precision, "threshold": threshold}
    reviews = len(confidences["validation"][0])
    if threshold is None and reviews < calibration.MIN_ANSWERED:
        report["note"] = (f"{reviews} validation reviews are too few to set a confidence threshold on (at least "
                          f"{calibration.MIN_ANSWERED}): every review is answered")
        logger.warning("abstention: %s", report["note"])
        return report
    if threshold is None:
        report["note"] = (f"no confidence reaches precision {min_precision:.2f} on validation (the best: "
                          f"{precision:.3f} at coverage {coverage:.2f}): every review is answered")
        logger.warning("abstention: %s", report["note"])
        return report
    for split, (confidence, correct) in confidences.items():
        answered = confidence.astype(np.float32) >= np.float32(threshold)  # as Task.unsure_mask decides
        report[split] = {"precision": float(correct[answered].mean()) if answered.any() else None,
                         "coverage": float(answered.mean()), "answered": int(answered.sum()), "reviews": len(correct)}
    logger.info("abstention: 'unsure' below confidence %.3f; %s", threshold, "; ".join(
        f"{split} precision {r['precision']:.3f} at coverage {r['coverage']:.2f}"
        for split, r in report.items() if isinstance(r, dict)))
    return report


def _confidences(task: tasks.Task, logits: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a reader takes at face value and whether it was right: the top class's probability and whether it is
    the label; for several labels, every label's probability and whether the label is on."""
    outputs = task.outputs(logits)
    if task.problem_type == tasks.MULTI_LABEL:
        return outputs.reshape(-1), (np.asarray(references) >= 0.5).reshape(-1).astype(np.float64)
    return outputs.max(axis=-1), (outputs.argmax(axis=-1) == np.asarray(references).reshape(-1)).astype(np.float64)


def _ece(confidences: np.ndarray, correct: np.ndarray) -> float:
    return round(calibration.expected_calibration_error(confidences, correct, bins=ECE_BINS), 4)


def _temperature_text(temperature) -> str:
    if isinstance(temperature, list):
        return "per label " + ", ".join(f"{t:.2f}" for t in temperature)
    return f"{temperature:.2f}"


def split_intervals(task: tasks.Task, outputs: np.ndarray, references: np.ndarray) -> dict[str, list[float]]:
    """The split's headline figures' 95% bootstrap intervals (seeded: the same run gives the same interval)."""
    found = intervals.interval_metrics(task.problem_type, outputs, references, threshold=task.threshold,
                                       resamples=RESAMPLES, seed=INTERVAL_SEED)
    return {metric: [round(low, 4), round(high, 4)] for metric, bounds in found.items() if bounds is not None
            for low, high in [bounds]}


def plus_minus(interval: list[float] | None) -> str:
    """An interval as people read it next to a figure: '(95% CI 0.801-0.842)'; '' without one."""
    if not interval:
        return ""
    return f"(95% CI {interval[0]:.3f}-{interval[1]:.3f})"
