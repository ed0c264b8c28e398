"""The three kinds of review label this project trains, and what follows from each.

transformers names them in a model's config (`problem_type`), and picks the loss by that name:

- single_label_classification: one class per review (fresh or rotten; 1 to 5 stars as classes). Cross-entropy;
  outputs are class probabilities (softmax); the prediction is the likeliest class.
- regression: a rating, a number per review (3.5 stars). One output, MSE; the prediction is the value, and the
  rounded label is the nearest of the values seen in train (`rating_values`, saved with the model).
- multi_label_classification: any number of labels per review (aspects: food, service, price). BCE; each label
  has its own probability (sigmoid); the labels predicted are those at or above a decision threshold, chosen
  on validation after training and saved with the model (`review_threshold` in config.json).

`Task` carries one model's kind, its labels and those saved settings; every path that turns logits into
predictions, scores or rows of a predictions file (training, `finetune.score`, the demo) asks it.
"""

from dataclasses import dataclass

import numpy as np

from finetune.errors import UsageError

SINGLE_LABEL = "single_label_classification"
REGRESSION = "regression"
MULTI_LABEL = "multi_label_classification"
PROBLEM_TYPES = (SINGLE_LABEL, REGRESSION, MULTI_LABEL)
# Shorter names people type (and run_classification.py's words); each means one of the three.
ALIASES = {"single_label": SINGLE_LABEL, "classification": SINGLE_LABEL, "multi_label": MULTI_LABEL,
           "multilabel": MULTI_LABEL, "rating": REGRESSION}
# The metric that picks the best epoch unless --metric_for_best_model says otherwise.
DEFAULT_METRIC = {SINGLE_LABEL: "f1", REGRESSION: "mae", MULTI_LABEL: "f1_micro"}
LOWER_IS_BETTER = ("loss", "mse", "mae")
# The metrics the card's model-index, its tables, the summary and the demo show, per kind.
HEADLINE_METRICS = {
    SINGLE_LABEL: ("accuracy", "precision", "recall", "f1"),
    REGRESSION: ("mae", "mse", "pearson", "spearman", "accuracy"),
    MULTI_LABEL: ("f1_micro", "f1", "precision", "recall", "accuracy"),
}
METRIC_TITLES = {
    "mae": "Mean absolute error", "mse": "Mean squared error", "pearson": "Pearson correlation",
    "spearman": "Spearman correlation", "f1_micro": "F1 (micro)", "precision_micro": "Precision (micro)",
    "recall_micro": "Recall (micro)",
}
DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95
# More distinct values than this in a rating column: a continuous score, not stars. No rounded label then.
MAX_RATING_VALUES = 100
LABELS_JOINER = ";"  # how a review's several labels are written in one cell of a predictions file
HISTORY_START = ("epoch", "step", "train_loss", "eval_loss")  # a history row's first columns, then the metrics


def resolve(name: str) -> str:
    """A problem type by its transformers name or a shorter one; UsageError for anything else."""
    key = name.strip().lower().replace("-", "_")
    if key in PROBLEM_TYPES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    raise UsageError(f"--problem_type {name}: choose one of {', '.join(PROBLEM_TYPES)} (or single_label, "
                     "multi_label).")


def greater_is_better(metric: str) -> bool:
    return metric.removeprefix("eval_") not in LOWER_IS_BETTER


def nearest(values, label_values) -> np.ndarray:
    """Each value rounded to the nearest label value (a tie goes to the lower one): an index into sorted label_values."""
    grid = np.asarray(sorted(label_values), dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.abs(values[:, None] - grid[None, :]).argmin(axis=1)


def value_name(value: float) -> str:
    """A rating as people write it: 4 for 4.0, 3.5 for 3.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class Task:
    problem_type: str
    label_names: list[str]  # the classes or labels, in output order; a rating: its column's name, one output
    rating_values: list[float] | None = None  # a rating: the distinct values of train's labels, sorted
    threshold: float = DEFAULT_THRESHOLD  # multi-label: a label is predicted at or above this probability
    # Calibration (finetune/calibration.py), fitted on validation after training: the logits are divided by it
    # before softmax (one number) or sigmoid (one per label), so that 0.9 means right about 9 times in 10.
    temperature: float | list[float] = 1.0
    # Single label: below this calibrated confidence the answer is "unsure" (the lowest confidence at which
    # validation precision reached --min_precision); None: every review is answered.
    min_confidence: float | None = None

    @property
    def num_labels(self) -> int:
        return 1 if self.problem_type == REGRESSION else len(self.label_names)

    @property
    def headline(self) -> tuple[str, ...]:
        metrics = HEADLINE_METRICS[self.problem_type]
        return metrics if self.problem_type != REGRESSION or self.rating_values else metrics[:-1]

    @property
    def history_columns(self) -> tuple[str, ...]:
        """The per-epoch table's columns (the card's, the demo's): epoch, step, the losses, the headline metrics."""
        return (*HISTORY_START, *self.headline)

    def metric_names(self) -> list[str]:
        """Every metric an evaluation of this task produces, as --metric_for_best_model may name it."""
        per_label = [f"{m}_{name}" for m in ("precision", "recall", "f1") for name in self.label_names]
        if self.problem_type == REGRESSION:
            return ["loss", *self.headline]
        if self.problem_type == MULTI_LABEL:
            return ["loss", *self.headline, "precision_micro", "recall_micro", *per_label]
        return ["loss", *self.headline, *per_label]

    # --- outputs and decisions ------------------------------------------------------------------------

    def outputs(self, logits) -> np.ndarray:
        """Logits -> what the model says per review: class probabilities, label probabilities, or the value."""
        logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits, dtype=np.float64)
        if self.problem_type == REGRESSION:
            return logits.reshape(len(logits), 1)
        logits = logits / np.asarray(self.temperature, dtype=np.float64)  # per label: broadcast over the last axis
        if self.problem_type == MULTI_LABEL:
            return 1.0 / (1.0 + np.exp(-logits))
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def decisions(self, outputs: np.ndarray) -> np.ndarray:
        """Class ids (single label), 0/1 per label (multi-label) or the values (rating)."""
        outputs = np.asarray(outputs)
        if self.problem_type == REGRESSION:
            return outputs.reshape(-1)
        if self.problem_type == MULTI_LABEL:
            return (outputs >= self.threshold).astype(np.int64)
        return outputs.argmax(axis=-1)

    def unsure(self, output_row) -> bool:
        """Single label: the calibrated confidence is below the abstention threshold, so the answer is "unsure"."""
        return bool(self.unsure_mask(np.asarray(output_row)[None, :])[0])

    def unsure_mask(self, outputs) -> np.ndarray:
        """Per review (rows of class probabilities): True where the answer is "unsure". Compared in float32, the
        precision the predictions files and the serving path hold: the review whose confidence set the threshold
        is answered in every path, whether its probability is held in 32 or 64 bits."""
        outputs = np.asarray(outputs)
        if self.problem_type != SINGLE_LABEL or self.min_confidence is None:
            return np.zeros(len(outputs), dtype=bool)
        return outputs.max(axis=-1).astype(np.float32) < np.float32(self.min_confidence)

    def rounded(self, values) -> list[str]:
        """Ratings rounded to the nearest value seen in train, as names ("4"); empty without such values."""
        if not self.rating_values:
            return ["" for _ in np.asarray(values).reshape(-1)]
        return [value_name(self.rating_values[i]) for i in nearest(np.asarray(values).reshape(-1), self.rating_values)]

    def label_text(self, reference) -> str:
        """A true label as the predictions file writes it: the class, the value, or the labels joined."""
        if self.problem_type == REGRESSION:
            return value_name(float(reference))
        if self.problem_type == MULTI_LABEL:
            return LABELS_JOINER.join(n for n, on in zip(self.label_names, reference) if on >= 0.5)
        return self.label_names[int(reference)]

    def predicted_text(self, output_row) -> str:
        """One review's prediction in words: its class, its rounded rating, or its labels joined."""
        row = np.asarray(output_row)
        if self.problem_type == REGRESSION:
            return self.rounded(row)[0] or f"{float(row[0]):.2f}"
        if self.problem_type == MULTI_LABEL:
            return LABELS_JOINER.join(self.predicted_labels(row))
        return self.label_names[int(row.argmax())]

    def predicted_labels(self, output_row) -> list[str]:
        """Multi-label: the labels whose probability is at or above the threshold, in label order."""
        return [name for name, p in zip(self.label_names, output_row) if p >= self.threshold]

    def scale(self) -> tuple[float, float] | None:
        """The lowest and highest rating seen in train."""
        return (min(self.rating_values), max(self.rating_values)) if self.rating_values else None

    def describe_value(self, value: float) -> str:
        """'4.3 out of 5' (on a scale that starts at 1); '0.72 on 0 to 1' otherwise."""
        scale = self.scale()
        if scale is None:
            return f"{value:.2f}"
        low, high = scale
        digits = 1 if high - low >= 2 else 2
        if low in (0, 1) and float(high).is_integer():
            return f"{value:.{digits}f} out of {value_name(high)}"
        return f"{value:.{digits}f} on a scale of {value_name(low)} to {value_name(high)}"

    # --- scores (finetune/metrics.py score_task computes them, through `evaluate`) ---------------------------

    def confusion_names(self) -> list[str] | None:
        """The rows and columns of `scores`' confusion matrix."""
        if self.problem_type == REGRESSION:
            return [value_name(v) for v in self.rating_values] if self.rating_values else None
        return list(self.label_names) if self.problem_type == SINGLE_LABEL else None

    def choose_threshold(self, probabilities: np.ndarray, references) -> float:
        """The decision threshold with the best micro F1 on these (validation) reviews; the one nearest 0.5 of
        equal ones. Multi-label only."""
        references = (np.asarray(references) >= 0.5).astype(np.int64)
        best, best_f1 = DEFAULT_THRESHOLD, -1.0
        for threshold in sorted(THRESHOLD_GRID, key=lambda t: (abs(t - DEFAULT_THRESHOLD), t)):
            predicted = (np.asarray(probabilities) >= threshold).astype(np.int64)
            hits = float((predicted & references).sum())
            f1 = 2 * hits / max(float(predicted.sum() + references.sum()), 1.0)
            if f1 > best_f1 + 1e-12:
                best, best_f1 = threshold, f1
        return best

    # --- saved with the model ---------------------------------------------------------------------------

    def save(self, model_config) -> None:
        """On the model's config (config.json): transformers' problem_type, and this project's settings."""
        model_config.problem_type = self.problem_type
        if self.problem_type == REGRESSION:
            model_config.review_rating_values = self.rating_values
        if self.problem_type == MULTI_LABEL:
            model_config.review_threshold = self.threshold
        if self.problem_type != REGRESSION:
            model_config.review_temperature = self.temperature
        if self.problem_type == SINGLE_LABEL:
            model_config.review_min_confidence = self.min_confidence

    @classmethod
    def of_model(cls, model_config) -> "Task":
        """The task a loaded model was trained for (a model of another project: single label, or its problem_type)."""
        problem = getattr(model_config, "problem_type", None) or SINGLE_LABEL
        if problem not in PROBLEM_TYPES:
            problem = SINGLE_LABEL
        names = [model_config.id2label[i] for i in range(model_config.num_labels)]
        if problem == SINGLE_LABEL and model_config.num_labels == 1:
            problem = REGRESSION  # what transformers itself infers from one output
        values = getattr(model_config, "review_rating_values", None)
        temperature = getattr(model_config, "review_temperature", None) or 1.0
        return cls(problem, names, [float(v) for v in values] if values else None,
                   float(getattr(model_config, "review_threshold", None) or DEFAULT_THRESHOLD),
                   [float(t) for t in temperature] if isinstance(temperature, list) else float(temperature),
                   getattr(model_config, "review_min_confidence", None))
