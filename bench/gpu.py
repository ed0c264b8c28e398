"""Training throughput on one GPU: the tutorial's recipe against this project's default, bert-base-cased's shape.

    python bench/gpu.py                      # one CUDA GPU; about 2-4 minutes, no Hub access
    python bench/gpu.py --steps 100          # longer timed windows
    python bench/gpu.py --dry-run            # a tiny model on this CPU, a few steps: checks the script runs

The model is bert-base-cased's shape built from a BertConfig (random weights, vocabulary 28,996, 5 labels):
only the shape matters for speed, and nothing is downloaded. The reviews are synthetic with Yelp-like
lengths (log-normal word pieces, median ~160, ~6% past 512, cut at 512) made of random token ids. Both rows
train through transformers' Trainer:

- tutorial: every review padded to 512 (padding="max_length"), batch 8, fp32, random order, BERT's
  attention dropout 0.1 (the "fine-tune bert-base-cased on yelp_review_full" recipe);
- project default: what finetune/train.py picks on this device (finetune/machine.py device_defaults: bf16 or
  fp16, TF32, loader workers, pinned memory), dynamic padding, length-grouped batches of 16, attention
  dropout 0, SDPA attention and the project's ReviewTrainer (--max_train_batch_tokens 4096).

Printed per row: samples/s, real (non-pad) tokens/s, the mean padded length, and achieved TFLOP/s counting
the padded tensors the GPU multiplied (6 x non-embedding params x L + 12 x layers x hidden x L^2 per sample,
bench/_common.py training_flops) against the GPU's peak (a table of published dense bf16/fp16 peaks by
device name; else a measured bf16 matmul). Exits 2 with one line when no CUDA device exists.
"""

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub
os.environ.setdefault("DISABLE_TQDM", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

EXIT_NO_GPU = 2
BERT_BASE_CASED = dict(vocab_size=28_996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512)
TINY = dict(vocab_size=28_996, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
            max_position_embeddings=512)
MAX_LENGTH, MEDIAN_LENGTH, SHARE_PAST_512 = 512, 160, 0.06
CLS, SEP, PAD, FIRST_WORD_ID = 101, 102, 0, 999  # bert-base-cased's special ids; word ids above 999

# Published dense peaks (TFLOP/s, no sparsity) in the precision the project default trains in: bf16, or fp16
# on GPUs without bf16. Matched in this order against torch.cuda.get_device_name().
PEAK_TFLOPS = [
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
    ("A10G", 125.0), ("A10", 125.0), ("T4", 65.0), ("V100", 125.0),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="Timed training steps per row (default 60; 3 dry).")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed steps first (default 8; 1 dry).")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="A tiny BERT on the CPU: checks the script, measures nothing worth keeping.")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("bench/gpu.py measures a CUDA GPU and this machine has none (torch.cuda.is_available() is False); "
              "`python bench/gpu.py --dry-run` checks the script on the CPU.", file=sys.stderr)
        return EXIT_NO_GPU
    steps = args.steps or (3 if args.dry_run else 60)
    warmup = max(1, args.warmup if args.warmup is not None else (1 if args.dry_run else 8))

    import datasets
    import transformers
    from _common import machine_line, matmul_peak_flops

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    shape = TINY if args.dry_run else BERT_BASE_CASED
    reviews = synthetic_reviews(max(2_000, (steps + warmup) * 16 * 2), shape["vocab_size"], seed=0)
    peak, peak_source = gpu_peak(args.dry_run, matmul_peak_flops)
    print(machine_line())
    print(f"model: BertForSequenceClassification, {shape['num_hidden_layers']} layers, hidden {shape['hidden_size']}"
          f"{' (dry run: tiny)' if args.dry_run else ' (bert-base-cased shape)'}; {len(reviews['length']):,} "
          f"synthetic reviews, median {int(np.median(reviews['length']))} tokens, "
          f"{np.mean(np.asarray(reviews['length']) >= MAX_LENGTH):.1%} at 512; {warmup} warm-up + {steps} timed "
          f"steps per row; peak {peak / 1e12:,.1f} TFLOP/s ({peak_source})")
    rows = [run_row(name, reviews, shape, steps, warmup, args.dry_run) for name in ("tutorial", "project default")]
    print("\n| recipe | batch | precision | samples/s | tokens/s | mean padded length | TFLOP/s | share of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['batch']} | {row['precision']} | {row['samples_per_s']:,.1f} | "
              f"{row['tokens_per_s']:,.0f} | {row['mean_length']:.0f} | {row['flops'] / 1e12:,.3f} | "
              f"{row['flops'] / peak:.1%} |")
    print(f"\nproject default / tutorial: {rows[1]['samples_per_s'] / rows[0]['samples_per_s']:.2f}x samples/s")
    return 0


def synthetic_reviews(count: int, vocab_size: int, seed: int) -> dict[str, list]:
    """Random token ids with Yelp-like lengths: log-normal, median MEDIAN_LENGTH, SHARE_PAST_512 past 512."""
    rng = np.random.default_rng(seed)
    sigma = math.log(MAX_LENGTH / MEDIAN_LENGTH) / 1.5548  # the normal quantile of 1 - 0.06
    lengths = np.clip(rng.lognormal(math.log(MEDIAN_LENGTH), sigma, count).astype(int), 8, MAX_LENGTH)
    ids = [[CLS, *rng.integers(FIRST_WORD_ID, vocab_size, n - 2).tolist(), SEP] for n in lengths]
    return {"input_ids": ids, "length": lengths.tolist(), "label": rng.integers(0, 5, count).tolist()}


def pad_to_max_length(reviews: dict[str, list]) -> dict[str, list]:
    """What the tutorial's tokenizer(padding="max_length") gives: every review 512 ids long."""
    return {**reviews, "input_ids": [ids + [PAD] * (MAX_LENGTH - len(ids)) for ids in reviews["input_ids"]],
            "length": [MAX_LENGTH] * len(reviews["length"])}


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest review (DataCollatorWithPadding without a tokenizer: none is downloaded).
    Rows padded to 512 already keep their zero attention mask past the review."""
    longest = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), longest), PAD, dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "labels": torch.tensor([f["label"] for f in features])}


def gpu_peak(dry_run: bool, matmul_peak_flops) -> tuple[float, str]:
    if dry_run:
        return matmul_peak_flops(), "measured fp32 torch.mm on this CPU"
    name = torch.cuda.get_device_name()
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12, f"published dense peak of {key}"
    return measured_bf16_matmul_peak(), f"measured bf16 torch.mm on {name}"


def measured_bf16_matmul_peak(size: int = 8192, repeats: int = 20) -> float:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def run_row(name: str, reviews: dict[str, list], shape: dict, steps: int, warmup: int, dry_run: bool) -> dict:
    from datasets import Dataset
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments, set_seed

    from finetune.machine import DEVICE_FLAGS, device_defaults, device_facts

    tutorial = name == "tutorial"
    if tutorial:
        batch, dropout, sampling = 8, 0.1, "random"
        device = dict(bf16=False, fp16=False, tf32=None if dry_run else False, dataloader_num_workers=0,
                      dataloader_pin_memory=not dry_run)
        data, max_tokens = Dataset.from_dict(pad_to_max_length(reviews)), None
    else:
        batch, dropout, sampling = 16, 0.0, "group_by_length"
        device = device_defaults(dict.fromkeys(DEVICE_FLAGS), device_facts(use_cpu=dry_run)).values
        data, max_tokens = Dataset.from_dict(reviews), 4096
    set_seed(0)
    config = BertConfig(**shape, num_labels=5, attention_probs_dropout_prob=dropout)
    model = BertForSequenceClassification(config).to(torch.float32)
    model.config._attn_implementation = "sdpa"
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-gpu-"), per_device_train_batch_size=batch,
        max_steps=warmup + steps, learning_rate=5e-5, train_sampling_strategy=sampling, length_column_name="length",
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=dry_run, seed=0, remove_unused_columns=False, **device,
    )
    trainer = timed_trainer(model=model, args=args, train_dataset=data, data_collator=collate,
                            max_train_batch_tokens=max_tokens)
    trainer.train()
    timed = trainer.shapes[warmup:]
    seconds = trainer.step_ends[-1] - trainer.step_ends[warmup - 1]  # the steps after the warm-up ones
    samples = sum(rows for rows, _, _ in timed)
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    flops = sum(rows * (6 * non_embedding * length + 12 * config.num_hidden_layers * config.hidden_size * length**2)
                for rows, length, _ in timed)
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32" + (" (TF32)" if args.tf32 else "")
    if (args.bf16 or args.fp16) and args.tf32:
        precision += " + TF32"
    print(f"{name}: {steps} steps in {seconds:.1f} s ({precision}, {args.dataloader_num_workers} loader workers, "
          f"pinned memory {'on' if args.dataloader_pin_memory else 'off'})")
    return {"name": name, "batch": batch, "precision": precision, "samples_per_s": samples / seconds,
            "tokens_per_s": sum(real for _, _, real in timed) / seconds,
            "mean_length": sum(length * rows for rows, length, _ in timed) / samples, "flops": flops / seconds}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_trainer(**kwargs):
    """The project's ReviewTrainer, recording each step's batch shape (rows, padded length, real tokens) and
    the time each step ended (after the GPU finished it)."""
    from transformers import TrainerCallback

    from finetune.batching import ReviewTrainer

    class StepEnds(TrainerCallback):
        def __init__(self, ends: list[float]):
            self.ends = ends

        def on_step_end(self, args, state, control, **kwargs):
            _sync()  # the GPU's work of the step is done, not just queued
            self.ends.append(time.perf_counter())

    class TimedTrainer(ReviewTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            ids = inputs["input_ids"]
            self.shapes.append((int(ids.shape[0]), int(ids.shape[1]), int(inputs["attention_mask"].sum())))
            return super().training_step(model, inputs, num_items_in_batch)

    trainer = TimedTrainer(**kwargs)
    trainer.shapes, trainer.step_ends = [], []
    trainer.add_callback(StepEnds(trainer.step_ends))
    return trainer


if __name__ == "__main__":
    sys.exit(main())
