"""Writing a finished run's files next to its model: history, results, config, card."""

import csv
import dataclasses
import importlib.metadata
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune import artifacts, embedded, tasks
from finetune.artifacts import public_value
from finetune.config import PROJECT_DEFAULTS, DataArguments, ModelArguments, RunConfig
from finetune.energy import RunCost
from finetune.history import epoch_history
from finetune.model_card import CardFacts, build_card
from finetune.modeling import base_model_hub_id
from finetune.onnx_export import OnnxCopy

FRAMEWORKS = ("transformers", "torch", "datasets", "evaluate", "accelerate", "huggingface-hub", "tokenizers")


def framework_versions() -> dict[str, str]:
    versions = {}
    for package in FRAMEWORKS:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def hyperparameters(config: RunConfig, max_seq_length: int, world_size: int,
                    class_weights: dict[str, float] | None = None) -> dict[str, Any]:
    args = config.training
    dropout = config.model.attention_dropout
    decay = config.run.layerwise_lr_decay
    extra = {}
    if config.data.problem_type != tasks.SINGLE_LABEL:
        extra["problem_type"] = config.data.problem_type
    if len(config.data.text_columns()) > 1:
        extra["text_columns"] = ", ".join(config.data.text_columns()) + " (joined by the tokenizer's separator token)"
    curves = [name for name in (args.report_to or []) if name in ("tensorboard", "trackio")]
    if curves:
        extra["training_curves"] = ", ".join(
            {"tensorboard": "TensorBoard (runs/: this repo's Training metrics tab)",
             "trackio": f"trackio (project {args.project}, logged locally: `trackio show`)"}[name] for name in curves)
    if config.family_recipe:
        extra["recipe"] = f"{config.family_recipe} (the model family's defaults, for the flags not given)"
    return {
        **extra,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "processes": world_size,
        "total_train_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size,
        "num_train_epochs": args.num_train_epochs,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        # transformers 5 reads a warmup_steps under 1 as a share of the steps: the card says which
        "warmup_steps": (f"{args.warmup_steps:g} ({args.warmup_steps:.0%} of the steps)" if 0 < args.warmup_steps < 1
                         else args.warmup_steps),
        "weight_decay": args.weight_decay,
        "optimizer": str(getattr(args.optim, "value", args.optim)),
        "adam_betas": f"({args.adam_beta1:g}, {args.adam_beta2:g})",
        "adam_epsilon": args.adam_epsilon,
        "seed": args.seed,
        "max_seq_length": max_seq_length,
        "truncation": {"head": "head (the first word pieces)", "tail": "tail (the last word pieces)",
                       "head_tail": "head_tail (the first 128 and the last max_seq_length - 128 word pieces)"}[
                           config.data.truncation],
        "layerwise_lr_decay": "off (one rate)" if decay is None else f"{decay} per layer, from the head down",
        "class_weights": "none" if not class_weights else "balanced: " + ", ".join(
            f"{name} {weight:.3f}" for name, weight in class_weights.items()),
        "padding": "max_length" if config.data.pad_to_max_length else (
            "dynamic (per batch)" if (config.run.pad_to_multiple_of or 1) == 1 else
            f"dynamic (per batch, rounded up to a multiple of {config.run.pad_to_multiple_of} tokens)"),
        "train_sampling_strategy": args.train_sampling_strategy,
        "attention_dropout": "model default" if dropout is None else dropout,
        "word_embeddings": "frozen (the pretrained vectors, not trained)" if config.model.freeze_word_embeddings
        else "trained",
        # TrainingArguments resolves --bf16/--fp16 and `accelerate launch --mixed_precision` into one value.
        "mixed_precision": args.mixed_precision,
        "metric_for_best_model": args.metric_for_best_model,
        "early_stopping": "off" if config.run.early_stopping_patience is None else (
            f"patience {config.run.early_stopping_patience} evaluations, threshold {config.run.early_stopping_threshold}"),
        **({"seed spread of this recipe": DEFAULT_RECIPE_SPREAD} if uses_default_recipe(config) else {}),
    }


# What a different seed alone does to the default recipe's scores, where it is known: bench/quality.py's
# seeds on each of its datasets with the word embeddings frozen (bench/results/2026-12-07-frozen-word-embeddings.jsonl;
# bench/README.md "Frozen word embeddings"). imdb_long ran one seed of that recipe; its figure is the 3-seed spread
# of the same recipe with the word embeddings trained (bench/results/2026-12-01-quality.jsonl).
DEFAULT_RECIPE_SPREAD = (
    "test macro F1 moved by a standard deviation of 0.009 to 0.025 across 3 seeds on bench/quality.py's 4 datasets "
    "(500-review subsets; rotten_tomatoes 0.009, clothing_recommend 0.010, clothing_stars 0.017, imdb_long 0.025 "
    "with the word embeddings trained): a single run's score carries about that much seed noise")
RECIPE_FLAGS = ("num_train_epochs", "learning_rate", "warmup_steps", "weight_decay")


def uses_default_recipe(config: RunConfig) -> bool:
    same = all(float(getattr(config.training, name)) == float(PROJECT_DEFAULTS[name]) for name in RECIPE_FLAGS)
    return (same and config.model.freeze_word_embeddings == ModelArguments.freeze_word_embeddings
            and config.data.problem_type == tasks.SINGLE_LABEL
            and config.data.truncation == DataArguments().truncation and config.run.layerwise_lr_decay is None
            and config.run.class_weights == "none")


@dataclass
class RunOutcome:
    """What a finished run produced beyond its weights, for its files: one object, complete when built, written
    once."""

    scores: dict[str, dict[str, float]]  # split -> metric -> value, the restored best model's
    confusion_matrices: dict[str, list[list[int]]]
    probabilities: dict[str, list[list[float]]]  # scored split -> per-review class probabilities, in data order
    unlabelled_probabilities: dict[str, list[list[float]]]  # the same for splits whose labels are hidden
    max_seq_length: int
    world_size: int
    repo_id: str | None = None  # the Hub repo the run pushes to, when known
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase
    peak_memory_gb: dict[str, float] = field(default_factory=dict)  # main process's peak after each phase
    batches_in_pieces: int = 0  # training batches over --max_train_batch_tokens, run in pieces (main process)
    class_weights: dict[str, float] | None = None  # --class_weights balanced: class name -> weight
    onnx_copy: OnnxCopy | None = None  # the checked ONNX copy, if the run wrote one
    cost: RunCost | None = None  # wall time, hardware, energy and CO2-equivalent (finetune/energy.py)
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split -> metric -> 95% bootstrap CI
    calibration: dict[str, Any] | None = None  # finetune/trust.py: temperature, ECE before/after, abstention
    unseen: dict[str, dict] = field(default_factory=dict)  # split -> its scores without the reviews also in train
    audit: Any | None = None  # the data audit before training (finetune/audit.AuditReport)
    small_validation: str = ""  # what a too-small validation split changed (train.plan_small_validation)
    frozen: dict | None = None  # the frozen baseline's scores and the suspect labels' summary (finetune/suspects.py)
    precision_fallback: str = ""  # a non-finite loss in mixed precision, and how training went on (train.py)
    search: dict | None = None  # the hyperparameter search's trials and choice (hp_search.json), when it searched


def write_run_files(output_dir: Path, config: RunConfig, data, log_history: list[dict[str, Any]],
                    outcome: RunOutcome) -> CardFacts:
    """History, results, every split's per-review predictions, and the card: each written once (run_config.yaml is
    the run's plan, written before training: train.start_run_folder)."""
    scores, confusion_matrices = outcome.scores, outcome.confusion_matrices
    output_dir = Path(output_dir)
    history = epoch_history(log_history)
    split_sizes = {name: len(split) for name, split in data.splits.items()}
    unlabelled = {name: len(split) for name, split in data.unlabelled.items()}
    artifacts.write_json(output_dir, artifacts.HISTORY_FILE, history)
    artifacts.write_json(
        output_dir,
        artifacts.RESULTS_FILE,
        {
            "scores": scores,
            # 95% bootstrap intervals of each split's headline figures (1,000 resamples, seeded)
            "intervals": outcome.intervals,
            # temperature scaling fitted on validation, ECE before/after, the "unsure" threshold (finetune/trust.py)
            "calibration": outcome.calibration,
            # a split's scores on its reviews that are not also in train (the data audit's leaked rows left out)
            "unseen_scores": outcome.unseen,
            # logistic regression on the base model's frozen embeddings, and the suspect labels (finetune/suspects.py)
            "frozen_baseline": outcome.frozen,
            "label_names": data.label_names,
            # what a label is (finetune/tasks.py), and what the model saved with it: a rating's values seen in
            # train, a multi-label model's decision threshold (chosen on validation)
            "problem_type": data.task.problem_type,
            **({"rating_values": data.task.rating_values} if data.task.problem_type == tasks.REGRESSION else {}),
            **({"threshold": data.task.threshold} if data.task.problem_type == tasks.MULTI_LABEL else {}),
            "text_fields": config.data.text_columns(),
            "max_seq_length": outcome.max_seq_length,  # the length reviews were cut to (--max_seq_length or the default)
            # what each label means, where the data says so (the embedded reviews): the demo explains them
            "label_descriptions": embedded.LABEL_DESCRIPTIONS if config.data.uses_embedded_data else {},
            "confusion_matrices": confusion_matrices,
            "split_sizes": split_sizes,
            "dropped_rows": data.dropped,
            "hidden_label_rows_dropped": data.hidden_labels,
            "unlabelled_splits": {name: {"reviews": n, "predictions": artifacts.predictions_file(name)}
                                  for name, n in unlabelled.items()},
            # per-review results of the scored splits: text, label, predicted label, probabilities
            "predictions": {name: artifacts.predictions_file(name) for name in scores},
            "seconds": outcome.seconds,  # wall time per phase of the run
            "peak_memory_gb": outcome.peak_memory_gb,  # the main process's peak resident memory after each phase
            # training batches over --max_train_batch_tokens, run in pieces (main process)
            "batches_in_pieces": outcome.batches_in_pieces,
            # a non-finite loss in bf16/fp16: where training went back to, in fp32 ("" when none)
            "precision_fallback": outcome.precision_fallback,
            "onnx": dataclasses.asdict(outcome.onnx_copy) if outcome.onnx_copy else None,
            # wall time, hardware, energy (kWh, by part), CO2-equivalent (g) and how they were obtained
            "cost": dataclasses.asdict(outcome.cost) if outcome.cost else None,
        },
    )
    if outcome.audit is not None:
        artifacts.write_json(output_dir, artifacts.AUDIT_FILE, outcome.audit.to_json())
    task = data.task
    for split, rows in outcome.unlabelled_probabilities.items():
        # [:] reads a column at once; iterating a datasets 5 Column reads row by row (seconds per 10,000 rows)
        write_predictions(output_dir, split, data.unlabelled[split]["text"][:], rows, task)
    for split, rows in outcome.probabilities.items():  # per-review results of the scored splits: where the model errs
        labels = [task.label_text(label) for label in data.splits[split]["label"][:]]
        write_predictions(output_dir, split, data.splits[split]["text"][:], rows, task, labels)
    repo_id = outcome.repo_id
    facts = CardFacts(
        model_name=Path(output_dir).name if repo_id is None else repo_id.split("/")[-1],
        base_model=public_value(config.model.model_name_or_path) or embedded.MODEL_HUB_ID,
        base_model_hub_id=base_model_hub_id(config.model),
        dataset_name=data.dataset_name,
        dataset_id=data.dataset_id,
        label_names=data.label_names,
        split_sizes=split_sizes,
        history=history,
        scores=scores,
        confusion_matrices=confusion_matrices,
        hyperparameters={**hyperparameters(config, outcome.max_seq_length, outcome.world_size, outcome.class_weights),
                         **({"precision_fallback": outcome.precision_fallback} if outcome.precision_fallback else {})},
        framework_versions=framework_versions(),
        best_metric=config.training.metric_for_best_model or "loss",
        dropped_rows=data.dropped,
        license=embedded.MODEL_LICENSE if config.model.model_name_or_path is None else None,
        data_notes=_data_notes(config),
        repo_id=repo_id or str(output_dir),
        unlabelled_splits=unlabelled,
        hidden_label_rows=data.hidden_labels,
        search=outcome.search,
        onnx_copy=outcome.onnx_copy,
        truncation=config.data.truncation,
        max_seq_length=outcome.max_seq_length,
        task=task,
        text_fields=config.data.text_columns(),
        text_pairing=config.data.text_pairing,
        cost=outcome.cost,
        intervals=outcome.intervals,
        calibration=outcome.calibration,
        unseen=outcome.unseen,
        audit=outcome.audit.to_json() if outcome.audit is not None else None,
        small_validation=outcome.small_validation,
        frozen=outcome.frozen,
    )
    artifacts.write_text(output_dir / artifacts.CARD_FILE, build_card(facts).content)
    return facts


def write_predictions(output_dir: Path, split: str, texts, outputs: list[list[float]], task,
                      labels: list[str] | None = None) -> Path:
    """predictions_<split>.csv: each review, its true label when known (column `label`), and what the model
    says of it, by the task (finetune/tasks.py; a list of class names means single label):

    - classes: the predicted label, whether the model is unsure of it (its calibrated confidence is below the
      abstention threshold saved with it; the column is there when it has one) and the probability of every class
      (the predicted label's is the model's confidence);
    - a rating: the predicted value and the predicted label (the value rounded to the nearest rating seen in
      train);
    - several labels: the labels predicted (at or above the threshold, joined by ';') and each label's probability.

    One format for every split, scored or not, of a training run or of `python -m finetune.score`.
    """
    if isinstance(task, list):
        task = tasks.Task(tasks.SINGLE_LABEL, task)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    known = [] if labels is None else ["label"]
    if task.problem_type == tasks.REGRESSION:
        writer.writerow(["text", *known, "predicted_value", "predicted_label"])
        rounded = task.rounded([row[0] for row in outputs]) if len(outputs) else []
        for i, (text, row) in enumerate(zip(texts, outputs)):
            truth = [] if labels is None else [labels[i]]
            writer.writerow([text, *truth, f"{row[0]:.6f}", rounded[i]])
    else:
        column = "predicted_labels" if task.problem_type == tasks.MULTI_LABEL else "predicted_label"
        abstains = task.min_confidence is not None and task.problem_type == tasks.SINGLE_LABEL
        writer.writerow(["text", *known, column, *(["unsure"] if abstains else []),
                         *(f"p({name})" for name in task.label_names)])
        for i, (text, row) in enumerate(zip(texts, outputs)):
            truth = [] if labels is None else [labels[i]]
            unsure = [str(task.unsure(row)).lower()] if abstains else []
            writer.writerow([text, *truth, task.predicted_text(row), *unsure, *(f"{p:.6f}" for p in row)])
    return artifacts.write_text(Path(output_dir) / artifacts.predictions_file(split), buffer.getvalue())


def _data_notes(config: RunConfig) -> str:
    if not config.data.uses_embedded_data:
        return ""
    return (
        f"{embedded.DATA_DESCRIPTION} (Apache-2.0). Only `fresh`/`rotten` critic snippets are used (plot synopses "
        "are dropped, repeated snippets kept once), split 80/10/10 by movie so that no movie appears in two splits. "
        f"Base weights: {embedded.MODEL_HUB_ID} (Apache-2.0), as shipped by the `{embedded.MODEL_PACKAGE}` package. "
        "Labels: " + "; ".join(f"`{name}`: {meaning}" for name, meaning in embedded.LABEL_DESCRIPTIONS.items()) + "."
    )
