"""What fine-tuning bought, and which labels are probably wrong: both from the base model's frozen embeddings.

After training, the *pretrained* encoder (not the fine-tuned one) reads every review once; a review's vector is
the mean of its last layer over its tokens. Two things follow, in seconds on these sizes (scikit-learn):

- The frozen baseline: logistic regression on train's vectors (ridge regression for a rating, one logistic
  regression per label for several labels), scored on validation and test as the fine-tuned model is. The card
  shows it beside the fine-tuned scores: a fine-tuned model that barely beats it bought little.
- Suspect labels (classes only): cleanlab's label quality score (Northcutt et al. 2021, self-confidence: the
  probability the model gives the review's own label) from the fine-tuned model's probabilities, and cleanlab's
  verdict (`find_label_issues`, confident learning) of whether each is an issue; `suspect_labels.csv` lists every
  review, most suspect first, with the baseline's *out-of-sample* probability of its label beside it (5-fold
  cross-validation over train: no review scored by a model that saw its label). Ranked by the fine-tuned model
  alone because bench/trust.py measured it so: with 10% of training labels flipped, its top N held more of the
  flips than the average of both signals on each of three datasets (and the out-of-sample baseline alone the
  fewest: frozen embeddings separate these reviews less well than fine-tuning does). Validation and test
  reviews are ranked the same way.

Large splits are sampled (MAX_REVIEWS, seeded; 2,000 reviews a split on a CPU, 20,000 on a GPU) for both: an
embedding pass over 650,000 Yelp reviews would cost as much as an epoch of training.
"""

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from finetune import artifacts, tasks

logger = logging.getLogger(__name__)

# Reviews of each split embedded at most (sampled, seeded): on a GPU an embedding pass is seconds; on a CPU one of
# 12,800 short reviews plus a prediction of 10,000 would add minutes to a run of about fifteen.
MAX_REVIEWS = {"cuda": 20_000, "other": 2_000}
FOLDS = 5
BATCH = 64
SHOWN = 5  # suspects in the log and the card
MIN_REVIEWS = 100  # fewer train reviews: no ranking (cleanlab's noise estimates flag clean labels at random there)


@dataclass
class FrozenResult:
    """The frozen baseline's scores per split, and the suspect ranking's summary."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> headline metric -> value
    train_reviews: int = 0  # train reviews the baseline was fitted on (sampled past MAX_REVIEWS)
    reviews: dict[str, int] = field(default_factory=dict)  # split -> reviews scored (sampled past MAX_REVIEWS)
    seconds: float = 0.0
    suspects: dict = field(default_factory=dict)  # rows ranked, issues flagged by cleanlab, the top few

    def to_json(self) -> dict:
        return {"scores": self.scores, "train_reviews": self.train_reviews, "reviews": self.reviews,
                "seconds": self.seconds,
                "suspects": self.suspects}


def embed(model, tokenizer, texts: list[str], max_length: int, batch_size: int = BATCH) -> np.ndarray:
    """Mean-pooled last-layer vectors of `texts` (float32, one row per text, in their order), read in
    length-sorted batches (little padding)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    out = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer.pad({k: [encoded[k][i] for i in rows] for k in keys}, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().numpy()
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _classifier(problem_type: str, seed: int):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if problem_type == tasks.REGRESSION:
        head = Ridge(alpha=1.0)
    elif problem_type == tasks.MULTI_LABEL:
        head = OneVsRestClassifier(LogisticRegression(max_iter=1000, C=1.0))
    else:
        head = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    return make_pipeline(StandardScaler(), head)


def _outputs(fitted, vectors: np.ndarray, problem_type: str) -> np.ndarray:
    if problem_type == tasks.REGRESSION:
        return fitted.predict(vectors).reshape(-1, 1)
    return fitted.predict_proba(vectors)


def frozen_baseline(task: tasks.Task, vectors: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                    seed: int) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """The baseline fitted on train, scored on the other splits (finetune.metrics.score_task, as the fine-tuned
    model); and its outputs per split (class probabilities in the task's class order)."""
    from finetune.metrics import score_task

    fitted = _classifier(task.problem_type, seed).fit(vectors["train"], _targets(task, labels["train"]))
    outputs = {split: _in_class_order(task, fitted, _outputs(fitted, vectors[split], task.problem_type))
               for split in vectors if split != "train"}
    scores = {}
    for split, values in outputs.items():
        found, _ = score_task(task, values, labels[split])
        scores[split] = {m: round(float(found[m]), 4) for m in task.headline if m in found}
    return scores, outputs


def out_of_sample_probabilities(task: tasks.Task, vectors: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Class probabilities of every train review from a baseline that did not see it (stratified K folds)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    counts = np.bincount(labels, minlength=task.num_labels)
    folds = int(min(FOLDS, counts[counts > 0].min())) if len(counts) else 0
    if folds < 2:
        raise ValueError("a class has a single training review: no out-of-sample probabilities")
    probabilities = cross_val_predict(_classifier(task.problem_type, seed), vectors, labels, method="predict_proba",
                                      cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    full = np.zeros((len(labels), task.num_labels))
    full[:, np.unique(labels)] = probabilities  # a class absent from train has probability 0
    return full


def _targets(task: tasks.Task, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if task.problem_type == tasks.MULTI_LABEL:
        return (labels >= 0.5).astype(np.int64)
    return labels.astype(np.float64 if task.problem_type == tasks.REGRESSION else np.int64)


def _in_class_order(task: tasks.Task, fitted, outputs: np.ndarray) -> np.ndarray:
    """Probabilities in the task's class order, 0 for a class the baseline never saw (single label)."""
    if task.problem_type != tasks.SINGLE_LABEL:
        return outputs
    full = np.zeros((len(outputs), task.num_labels))
    full[:, fitted.classes_] = outputs
    return full


def rank(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label quality score per review (self-confidence: lower is more suspect) and its confident-
    learning verdict (True: a label issue)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.clip(probabilities, 1e-12, 1.0)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    scores = get_label_quality_scores(labels, probabilities, method="self_confidence")
    try:
        issues = find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    except (ValueError, AssertionError) as err:  # e.g. a class with too few reviews for its noise estimate
        logger.info("cleanlab's label issue filter did not run (%s): the ranking stands alone", err)
        issues = np.zeros(len(labels), dtype=bool)
    return scores, issues


def write_suspects(output_dir: Path, rows: list[dict]) -> Path:
    """suspect_labels.csv: most suspect first."""
    buffer = io.StringIO()
    columns = ["split", "row", "text", "label", "model_label", "score", "label_issue", "p_label_finetuned",
               "p_label_frozen"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return artifacts.write_text(Path(output_dir) / artifacts.SUSPECTS_FILE, buffer.getvalue())


def suspect_rows(task: tasks.Task, split: str, texts: list[str], rows: np.ndarray, labels: np.ndarray,
                 finetuned: np.ndarray, frozen: np.ndarray | None) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """One split's reviews, scored by the fine-tuned model's probabilities (the frozen baseline's beside them): the
    rows for the CSV, the scores and cleanlab's verdicts."""
    labels = np.asarray(labels, dtype=np.int64)
    scores, issues = rank(labels, finetuned)
    index = np.arange(len(labels))
    found = [{
        "split": split, "row": int(rows[i]), "text": texts[i], "label": task.label_names[labels[i]],
        "model_label": task.label_names[int(finetuned[i].argmax())], "score": round(float(scores[i]), 6),
        "label_issue": bool(issues[i]), "p_label_finetuned": round(float(finetuned[i, labels[i]]), 6),
        "p_label_frozen": "" if frozen is None else round(float(frozen[i, labels[i]]), 6),
    } for i in index]
    return found, scores, issues


def review_limit(device_type: str) -> int:
    return MAX_REVIEWS["cuda" if device_type == "cuda" else "other"]


def sample_rows(count: int, seed: int, limit: int) -> np.ndarray:
    """The rows of a split embedded: all, or `limit` of them (seeded, sorted)."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def elapsed(since: float) -> float:
    return round(time.perf_counter() - since, 2)
