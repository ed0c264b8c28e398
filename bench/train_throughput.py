"""Training throughput: the tutorial's recipe against this project's default pipeline, in one run.

    python bench/train_throughput.py                       # embedded reviews, then a Yelp-like length mix
    python bench/train_throughput.py --data yelp-like --steps 12

Every row trains the same model (the embedded MiniLM unless --model_name_or_path) through the
real pipeline (finetune.train.prepare / build_trainer) on the same seeded subset of reviews for
one epoch; only the flags differ. A whole epoch is timed because length-grouped batches come
longest first: a few steps would not be representative. The tutorial row pads every review to
512, so each of its steps costs the same: it is timed over --tutorial_steps steps only.
Reported per row: samples/s, real (non-pad) tokens/s, the share of compute spent on padding,
and achieved model FLOP/s (counting the padded tensors the hardware multiplied) as a share of
this machine's fp32 matmul peak, measured here with a large torch.mm. Before timing, each model
runs one untimed training step on a small batch, so one-time start-up costs are not counted.
"""

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import (  # noqa: E402
    machine_line,
    markdown_table,
    matmul_peak_flops,
    non_embedding_parameters,
    quiet_libraries,
    training_flops,
    yelp_like_reviews,
)
from transformers import TrainerCallback  # noqa: E402

from finetune.data import load_embedded_reviews  # noqa: E402
from finetune.train import (  # noqa: E402
    build_trainer,
    parse_run,  # noqa: E402
    prepare,
    set_cpu_threads,
)

TUTORIAL = "tutorial recipe (pad to 512, batch 8, random order)"
ROWS = {
    TUTORIAL: ["--pad_to_max_length", "true", "--max_seq_length", "512", "--train_sampling_strategy", "random",
               "--per_device_train_batch_size", "8", "--attention_dropout", "0.1"],
    "dynamic padding (batch 8, random order)": ["--train_sampling_strategy", "random",
                                                "--per_device_train_batch_size", "8", "--attention_dropout", "0.1"],
    "+ length-grouped batches": ["--train_sampling_strategy", "group_by_length", "--per_device_train_batch_size", "8",
                                 "--attention_dropout", "0.1"],
    "+ attention dropout 0 (fused SDPA)": ["--train_sampling_strategy", "group_by_length",
                                           "--per_device_train_batch_size", "8", "--attention_dropout", "0"],
    "project default (train.py, no flags)": [],
}


class StepClock(TrainerCallback):
    def __init__(self):
        self.durations: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)


class CountingCollator:
    """Wraps the Trainer's collator and records each batch's padded shape and real lengths."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, features):
        batch = self.inner(features)
        self.batches.append((batch["input_ids"].shape, batch["attention_mask"].sum(dim=1).tolist()))
        return batch


def warm_up(model, tokenizer) -> None:
    """One untimed forward/backward so allocator and kernel set-up are not timed."""
    batch = tokenizer(["a short warm-up review"] * 4, return_tensors="pt")
    model.train()
    model(**batch, labels=torch.zeros(4, dtype=torch.long)).loss.backward()
    model.zero_grad(set_to_none=True)


def measure(flags: list[str], data_flags: list[str], samples: int, peak: float, workdir: Path) -> dict:
    config = parse_run([
        *data_flags, *flags, "--output_dir", str(workdir / "run"), "--overwrite_output_dir",
        "--num_train_epochs", "1", "--max_train_samples", str(samples), "--eval_strategy", "no",
        "--save_strategy", "no", "--load_best_model_at_end", "false", "--logging_strategy", "no",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false", "--warmup_steps", "0",
    ])
    set_cpu_threads(config)
    run = prepare(config)
    warm_up(run.model, run.tokenizer)
    trainer = build_trainer(config, run)
    clock, counter = StepClock(), CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.add_callback(clock)
    trainer.train()

    model_config = run.model.config
    params = non_embedding_parameters(run.model)
    layers, hidden = model_config.num_hidden_layers, model_config.hidden_size
    timed = list(zip(clock.durations, counter.batches))
    seconds = sum(d for d, _ in timed)
    samples = sum(shape[0] for _, (shape, _) in timed)
    padded_tokens = sum(shape[0] * shape[1] for _, (shape, _) in timed)
    real_tokens = sum(sum(lengths) for _, (_, lengths) in timed)
    flops = sum(training_flops(params, layers, hidden, shape[0], shape[1]) for _, (shape, _) in timed)
    useful = sum(training_flops(params, layers, hidden, 1, n) for _, (_, lengths) in timed for n in lengths)
    return {
        "batch": config.training.per_device_train_batch_size,
        "samples/s": samples / seconds,
        "real tokens/s": real_tokens / seconds,
        "mean padded length": padded_tokens / samples,
        "padding share of compute": 1 - useful / flops,
        "share of fp32 peak": flops / seconds / peak,
        "distinct shapes": len({shape for _, (shape, _) in timed}),
        "seconds": seconds,
    }


def write_yelp_like(path: Path, tokenizer_source: str | None, count: int) -> Path:
    from transformers import AutoTokenizer

    from finetune import embedded

    reviews = list(load_embedded_reviews()["train"]["text"])
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source or embedded.model_path())
    texts = yelp_like_reviews(reviews, tokenizer, count)
    rng = random.Random(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for text in texts:
            writer.writerow([text, rng.choice(["fresh", "rotten"])])
    lengths = sorted(len(ids) for ids in tokenizer(texts[:1000])["input_ids"])
    print(f"Yelp-like mix: median {lengths[len(lengths) // 2]} word pieces, "
          f"{sum(n > 512 for n in lengths) / len(lengths):.1%} past 512")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["embedded", "yelp-like", "both"], default="both")
    parser.add_argument("--samples", type=int, default=None,
                        help="reviews per row, one epoch (default: 1024 embedded, 512 Yelp-like)")
    parser.add_argument("--tutorial_steps", type=int, default=8, help="steps timed for the tutorial row")
    parser.add_argument("--model_name_or_path", default=None)
    parser.add_argument("--rows", nargs="*", default=None, help="row names to run (default: all)")
    args = parser.parse_args(argv)

    quiet_libraries()
    peak = matmul_peak_flops()
    print(f"Machine: {machine_line()}\nfp32 matmul peak (large square torch.mm): {peak / 1e9:,.0f} GFLOP/s\n")
    model_flags = ["--model_name_or_path", args.model_name_or_path] if args.model_name_or_path else []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        sources = {}
        if args.data in ("embedded", "both"):
            sources["embedded Rotten Tomatoes reviews"] = ([], args.samples or 1024)
        if args.data in ("yelp-like", "both"):
            csv_path = write_yelp_like(workdir / "yelp_like.csv", args.model_name_or_path, 4000)
            sources["Yelp-like length mix"] = (["--train_file", str(csv_path)], args.samples or 512)
        for source, (data_flags, samples) in sources.items():
            results = {}
            for name, flags in ROWS.items():
                if args.rows and name not in args.rows:
                    continue
                if name == TUTORIAL:
                    flags = flags + ["--max_steps", str(args.tutorial_steps)]
                results[name] = measure(model_flags + flags, data_flags, samples, peak, workdir)
                print(f"  measured: {name}: {results[name]['samples/s']:.2f} samples/s", flush=True)
            base = results.get(TUTORIAL)
            headers = ["configuration", "batch", "samples/s", "vs tutorial", "real tokens/s", "mean padded length",
                       "padding share of compute", "share of fp32 peak"]
            rows = [
                [name, r["batch"], r["samples/s"], f"{r['samples/s'] / base['samples/s']:.1f}x" if base else "-",
                 r["real tokens/s"], r["mean padded length"], f"{r['padding share of compute']:.0%}",
                 f"{r['share of fp32 peak']:.0%}"]
                for name, r in results.items()
            ]
            print(f"\n### Training throughput: {source} (one epoch of {samples} reviews per row; tutorial row: "
                  f"{args.tutorial_steps} steps; torch threads {torch.get_num_threads()})\n\n"
                  f"{markdown_table(headers, rows)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
