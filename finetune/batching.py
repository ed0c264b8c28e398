"""Training batches bounded by tokens: the same update in less memory.

A batch of 16 reviews at 512 word pieces holds 8,192 tokens of activations for the backward pass,
four times a batch of typical reviews, and it alone sets the run's peak memory. `ReviewTrainer` runs
such a batch in row pieces of at most `--max_train_batch_tokens` padded tokens and adds up their
gradients, each piece's loss weighted by its share of the batch's rows. The loss of a sequence
classifier is the mean over rows, so the sum is the batch's mean loss and the gradient is the one
the whole batch would give (up to float rounding and dropout's random draws): the optimizer, the
learning-rate schedule and the logged losses see one step of the configured batch size.
"""

import contextlib
import logging
import math
from typing import Any

import datasets
import torch
from torch.utils.data import SequentialSampler
from transformers import DataCollatorWithPadding, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from finetune import memory, objective

logger = logging.getLogger("finetune")


class BucketedCollator:
    """Pads each batch to its longest review rounded up to a multiple of `multiple` tokens, never past `max_length`.

    Length-grouped batches of reviews change shape almost every step, and a CPU's kernels (oneDNN's bf16 and
    int8 matmuls above all) are built per shape; with lengths rounded to buckets a run sees a few dozen shapes
    instead of hundreds. Padding only: every review was already truncated by tokenization, so a bucket never
    cuts a review, and the attention mask hides the extra pads. `max_length` caps the bucket so that no batch
    is longer than the model's positions (a 510-token limit with buckets of 16 would otherwise pad to 512).
    `multiple` None or 1: pad to the longest review, as transformers' DataCollatorWithPadding does.
    """

    def __init__(self, tokenizer, multiple: int | None, max_length: int | None):
        self.tokenizer, self.multiple, self.max_length = tokenizer, multiple or 1, max_length

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(feature["input_ids"]) for feature in features)
        target = bucket_length(longest, self.multiple, self.max_length)
        # transformers' collator at a fixed length: its handling of labels (`label` -> `labels`) stays the Trainer's
        return DataCollatorWithPadding(self.tokenizer, padding="max_length", max_length=target)(features)


def bucket_length(longest: int, multiple: int, max_length: int | None) -> int:
    """`longest` rounded up to a multiple of `multiple`, at most max(longest, max_length)."""
    rounded = -(-longest // multiple) * multiple
    return max(longest, min(rounded, max_length)) if max_length else rounded


# --pad_to_multiple_of when not given. On a GPU in fp16/bf16: multiples of 8, as transformers' own examples pad there
# (tensor cores work on tiles of 8). On a CPU: the longest review. In fp32 buckets are only cost (buckets of 16 trained
# 20% slower on an AMD EPYC: bench/batch_size.py); in bf16 oneDNN builds kernels per shape (on a Sapphire Rapids Xeon
# bf16 was 1.4x faster than fp32 on a shape it had seen, 1.45x slower on a new one), but whether buckets make a whole
# bf16 run faster than their padding costs is not measured yet: `--pad_to_multiple_of 16` asks for them.
CUDA_MIXED_PRECISION_MULTIPLE = 8


def default_multiple(training_args) -> int:
    """The bucket size for the device and the precision the run trains in (after the precision probe chose it)."""
    mixed = training_args.bf16 or training_args.fp16 or getattr(training_args, "mixed_precision", "no") in (
        "bf16", "fp16")  # `accelerate launch --mixed_precision bf16` sets only the latter
    return CUDA_MIXED_PRECISION_MULTIPLE if mixed and training_args.device.type == "cuda" else 1


def split_rows(inputs: dict[str, Any], max_tokens: int | None) -> list[dict[str, Any]]:
    """The batch as pieces of whole rows, each of at most max_tokens padded tokens (one row at least),
    with each piece cut to its own longest review when the padding is on the right."""
    input_ids = inputs.get("input_ids")
    if not max_tokens or not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        return [inputs]
    rows, length = input_ids.shape
    if rows * length <= max_tokens or rows == 1:
        return [inputs]
    most_rows = max(1, max_tokens // length)  # a piece of this many rows fits the budget
    count = math.ceil(rows / most_rows)  # as few pieces as fit, their sizes differing by one row at most
    base, extra = divmod(rows, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (i < extra))
    mask = inputs.get("attention_mask")
    right_padded = isinstance(mask, torch.Tensor) and bool(mask[:, 0].all())
    out = []
    for start, end in zip(bounds, bounds[1:]):
        piece = {key: value[start:end] if _per_row(value, rows) else value for key, value in inputs.items()}
        if right_padded:
            longest = int(piece["attention_mask"].sum(dim=1).max())
            piece = {key: value[:, :longest] if _per_token(value, rows, length) else value
                     for key, value in piece.items()}
        out.append(piece)
    return out


def _per_row(value: Any, rows: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows


def _per_token(value: Any, rows: int, length: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == length


class ReviewTrainer(Trainer):
    """transformers' Trainer whose training steps keep each forward/backward under max_train_batch_tokens."""

    def __init__(self, *args, max_train_batch_tokens: int | None = None, layerwise_lr_decay: float | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.max_train_batch_tokens = max_train_batch_tokens
        self.layerwise_lr_decay = layerwise_lr_decay  # finetune/objective.py
        self.batches_in_pieces = 0  # for results.json: how often the limit mattered
        self._loss_weight = 1.0
        # A classifier's loss is the mean over its batch's rows. transformers 5 decides from the forward's
        # **kwargs that the model divides by the step's item count itself, which BERT's classifier does
        # not: with --gradient_accumulation_steps N the loss (logged, and clipped) came out N times too
        # large. Mean per batch, divided by N by the Trainer, is right for every classifier.
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset=None):
        """Length-grouped batches from the `length` column that tokenization wrote (data.tokenize_splits).

        The Trainer drops columns the model does not take before it builds the sampler, `length` among them,
        and LengthGroupedSampler then reads every review to learn its length (2.6 s per 100,000 reviews); and
        given the column itself it would index it row by row. One Arrow read of the column gives the same
        lengths, so the same batches.
        """
        source, column = self.train_dataset, self.args.length_column_name
        if (self.args.train_sampling_strategy == "group_by_length" and isinstance(source, datasets.Dataset)
                and column in source.column_names and (train_dataset is None or len(train_dataset) == len(source))):
            model_input = self.processing_class.model_input_names[0] if self.processing_class is not None else None
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=source[column][:], model_input_name=model_input)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation and `predict` in the dataset's own order.

        With `train_sampling_strategy="group_by_length"`, transformers 5 groups the evaluation batches by
        length too, with a seeded random sampler: `predict` then returns rows permuted, and per-review files
        written from it pair each review with another review's prediction (metrics stay right, as
        predictions and labels stay paired). The evaluation splits are already sorted by length here
        (data.sort_by_length), so data order is also length order. Under several processes Accelerate
        shards a sequential loader and `gather_for_metrics` puts the rows back in data order.
        """
        if eval_dataset is None or self.args.world_size > 1:
            return None  # what the Trainer itself does without length grouping: Accelerate's sequential shards
        return SequentialSampler(eval_dataset)

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, with a learning rate per layer under --layerwise_lr_decay."""
        decay = getattr(self.args, "layerwise_lr_decay", None) or self.layerwise_lr_decay  # a search trial sets args
        if self.optimizer is not None or not decay or decay == 1:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        groups = objective.layerwise_groups(opt_model, self.args.learning_rate, decay, self.args.weight_decay,
                                            set(self.get_decay_parameter_names(opt_model)))
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        logger.info("layer-wise learning rates (--layerwise_lr_decay %g): %s", decay, objective.describe_rates(groups))
        return self.optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        try:
            return self._pieces_step(model, inputs, num_items_in_batch)
        finally:
            memory.trim()  # the step's activations are free: hand their pages back (finetune/memory.py)

    def _pieces_step(self, model, inputs, num_items_in_batch):
        pieces = split_rows(inputs, self.max_train_batch_tokens)
        if len(pieces) == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        rows = len(inputs["input_ids"])
        self.batches_in_pieces += 1
        total = None
        try:
            for i, piece in enumerate(pieces):
                self._loss_weight = len(piece["input_ids"]) / rows
                # Under several processes only the last piece's backward may synchronise gradients: each
                # process then all-reduces once per batch, however many pieces its own batch needed.
                last = i == len(pieces) - 1
                sync = contextlib.nullcontext() if last or self.args.world_size == 1 else self.accelerator.no_sync(model)
                with sync:
                    loss = super().training_step(model, piece, num_items_in_batch)
                total = loss if total is None else total + loss
        finally:
            self._loss_weight = 1.0
        return total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if self._loss_weight == 1.0:
            return result
        if return_outputs:
            loss, outputs = result
            return loss * self._loss_weight, outputs
        return result * self._loss_weight
