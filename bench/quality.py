"""The quality suite: which recipe gives the best model on data other than ours, by several seeds.

    .venv/bin/python bench/quality.py --recipes today previous --seeds 42 43 44       # runs, appends rows
    .venv/bin/python bench/quality.py --summary bench/results/2026-12-01-quality.jsonl  # the tables only

Each cell (dataset x recipe x seed) is one real training run, `python finetune/train.py` in a fresh
process, on fixed subsets of bench/quality_data.py's splits (the same subset for every recipe and seed:
only the training seed varies). Its validation and test scores come from the run's results.json and go
to --results as one JSON line; a cell already there is not run again, so a stopped suite resumes.
The summary prints per dataset the mean and the spread (sample standard deviation over seeds) of
validation and test accuracy and macro F1, and each recipe's mean over the datasets. Recipes are
compared and chosen on validation; test is reported, never used to choose.
"""

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import quality_data  # noqa: E402
import yaml  # noqa: E402

DATA_DIR = HERE / ".data" / "quality"
RUNS_DIR = HERE / ".data" / "quality-runs"

# The recipes, as training flags. Pinned here (not "the project default"), so that a row keeps its meaning
# when the default changes.
# (The rows of 2026-12-01 ran before --truncation's default became tail: they read the head, as pinned now.)
TODAY = ["--num_train_epochs", "2", "--learning_rate", "4.7e-5", "--warmup_steps", "0.03", "--weight_decay", "0.016",
         "--truncation", "head"]
PREVIOUS = ["--num_train_epochs", "3", "--learning_rate", "5e-5", "--warmup_steps", "0.1", "--weight_decay", "0.01",
            "--truncation", "head"]
RECIPES = {
    "today": TODAY,  # the default chosen by a search on the embedded reviews (2026-11-28)
    "previous": PREVIOUS,  # the 3-epoch default before it
    "previous_llrd": [*PREVIOUS, "--layerwise_lr_decay", "0.95"],
    "previous_balanced": [*PREVIOUS, "--class_weights", "balanced"],
    "previous_tail": [*PREVIOUS, "--truncation", "tail"],
    "previous_head_tail": [*PREVIOUS, "--truncation", "head_tail"],
    # issue 25: a larger batch at a square-root-scaled learning rate (Adam), against batch 16, with the same epochs;
    # the frozen baseline is off in both (it adds time, not scores)
    "batch16": [*PREVIOUS, "--frozen_baseline", "false"],
    "batch64_lr1e-4": [*PREVIOUS, "--per_device_train_batch_size", "64", "--learning_rate", "1e-4",
                       "--frozen_baseline", "false"],
    # issue 25: the default recipe at its start (3 epochs, 5e-5, batch 16, tail), with and without frozen word embeddings
    "default25": [*PREVIOUS, "--truncation", "tail", "--frozen_baseline", "false",
                  "--freeze_word_embeddings", "false"],
    "default25_frozen_words": [*PREVIOUS, "--truncation", "tail", "--frozen_baseline", "false",
                               "--freeze_word_embeddings", "true"],
    # ... and the candidate for larger training sets: frozen word embeddings and 2 epochs
    "default25_frozen_words_2_epochs": [*PREVIOUS, "--truncation", "tail", "--frozen_baseline", "false",
                                        "--freeze_word_embeddings", "true", "--num_train_epochs", "2"],
    "default": [],  # the project's own defaults, whatever they are when run (with --as_user: the user's path)
}
# Reviews per split, so that a comparison of three recipes x 4 datasets x 3 seeds fits in about an hour on
# 2 cores (one cell: 35 s to 3.5 min); --train_samples etc. override. imdb_long's reviews are 5 to 10 times
# longer than the others': fewer of them.
# Further pre-training (finetune/pretrain.py) before a recipe: the budget, per dataset and once (seed 42; the
# fine-tuning seeds vary). Its texts are the dataset's whole training split (the labelled subset among them):
# never a validation or test review. cpu: 1 epoch over at most 5,000 texts; large: 3 epochs over 20,000.
PRETRAIN = {"cpu": {"epochs": "1", "texts": 5000}, "large": {"epochs": "3", "texts": 20000}}
PRETRAINED = {"previous_mlm_cpu": ("previous", "cpu"), "previous_mlm_large": ("previous", "large")}
SIZES = {"train": 500, "validation": 300, "test": 500}
TRAIN_SIZES = {"imdb_long": 400}


def subset_files(name: str, sizes: dict[str, int]) -> dict[str, Path]:
    """The dataset's fixed splits, each cut to a seeded random subset of its size, as JSON Lines files."""
    folder = DATA_DIR / f"{name}-{sizes['train']}-{sizes['validation']}-{sizes['test']}"
    files = {split: folder / f"{split}.jsonl" for split in sizes}
    if all(path.is_file() for path in files.values()):
        return files
    splits = quality_data.load(name)
    folder.mkdir(parents=True, exist_ok=True)
    for split, path in files.items():
        rows = splits[split]
        rows = random.Random(quality_data.SEED).sample(rows, min(sizes[split], len(rows)))
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return files


def pretrained_model(dataset: str, budget: str, files: dict[str, Path], max_seq_length: int,
                     threads: int | None) -> tuple[Path, float]:
    """The embedded MiniLM after masked-LM training on the dataset's training texts (made once, then reused)."""
    folder = DATA_DIR / f"{dataset}-mlm-{budget}"
    texts_file = DATA_DIR / f"{dataset}-train-texts-{PRETRAIN[budget]['texts']}.jsonl"
    if not (folder / "pretrain.json").is_file():
        rows = quality_data.load(dataset)["train"]
        rows = random.Random(quality_data.SEED).sample(rows, min(PRETRAIN[budget]["texts"], len(rows)))
        texts_file.write_text("".join(json.dumps({"text": row["text"]}) + "\n" for row in rows))
        # the labelled subset, read as the fine-tuning run splits it (train only), and the rest as unlabelled text
        command = [sys.executable, "-m", "finetune.pretrain", "--train_file", str(files["train"]),
                   "--validation_file", str(files["validation"]), "--unlabelled_file", str(texts_file),
                   "--num_train_epochs", PRETRAIN[budget]["epochs"], "--max_seq_length", str(max_seq_length),
                   "--output_dir", str(folder), *(["--cpu_threads", str(threads)] if threads else [])]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pre-training {dataset}/{budget} failed:\n{done.stderr[-3000:]}")
    return folder, json.loads((folder / "pretrain.json").read_text())["seconds"]


def run_cell(dataset: str, recipe: str, seed: int, sizes: dict[str, int], max_seq_length: int,
             threads: int | None = None, as_user: bool = False) -> dict:
    files = subset_files(dataset, sizes)
    output_dir = RUNS_DIR / f"{dataset}-{recipe}-{seed}"
    flags, pretrain_seconds = RECIPES.get(recipe), 0.0
    if recipe in PRETRAINED:
        base, budget = PRETRAINED[recipe]
        model, pretrain_seconds = pretrained_model(dataset, budget, files, max_seq_length, threads)
        flags = [*RECIPES[base], "--model_name_or_path", str(model)]
    command = [
        sys.executable, str(ROOT / "finetune" / "train.py"),
        "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
        "--test_file", str(files["test"]), "--output_dir", str(output_dir), "--overwrite_output_dir", "true",
        "--seed", str(seed), "--export_onnx", "false",
        # one precision and length for every cell: the comparison is of recipes (--as_user: the defaults, probe included)
        *([] if as_user else ["--max_seq_length", str(max_seq_length), "--bf16", "false"]),
        "--save_total_limit", "1", "--logging_steps", "100000", "--disable_tqdm", "true",
        *flags, *(["--cpu_threads", str(threads)] if threads else []),
    ]
    started = time.perf_counter()
    env = {**os.environ, "FINETUNE_ENERGY": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{dataset}/{recipe}/{seed} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = json.loads((output_dir / "results.json").read_text())
    history = json.loads((output_dir / "epoch_history.json").read_text())
    run_config = yaml.safe_load((output_dir / "run_config.yaml").read_text())  # what the run chose (--as_user)
    shutil.rmtree(output_dir, ignore_errors=True)
    scores = results["scores"]
    labels = results["label_names"]
    return {
        "dataset": dataset, "recipe": recipe, "seed": seed, "seconds": round(seconds, 1),
        "train": sizes["train"], "validation_reviews": sizes["validation"], "test_reviews": sizes["test"],
        "max_seq_length": results["max_seq_length"], "flags": flags,
        "as_user": as_user, "bf16": run_config["training"].get("bf16"),
        "phase_seconds": results["seconds"], "pretrain_seconds": pretrain_seconds,
        "test_accuracy_interval": (results.get("intervals") or {}).get("test", {}).get("accuracy"),
        **{f"{split}_{metric}": round(scores[split][metric], 4)
           for split in ("validation", "test") for metric in ("accuracy", "f1")},
        "test_recall": {label: round(scores["test"].get(f"recall_{label}", float("nan")), 4) for label in labels},
        "best_epoch": max(history, key=lambda row: row.get("f1", 0)).get("epoch"),
    }


def done_cells(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    return {(row["dataset"], row["recipe"], row["seed"], row["train"], row["max_seq_length"])
            for row in map(json.loads, path.read_text().splitlines()) if row}


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def summary(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    cells = defaultdict(list)
    for row in rows:
        cells[(row["dataset"], row["recipe"])].append(row)
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    recipes = list(dict.fromkeys(row["recipe"] for row in rows))
    out = []
    for dataset in datasets:
        sample = next(row for row in rows if row["dataset"] == dataset)
        out.append(f"\n### {dataset} (train {sample['train']:,}, validation {sample['validation_reviews']:,}, "
                   f"test {sample['test_reviews']:,} reviews, max_seq_length {sample['max_seq_length']})\n")
        out.append("| recipe | seeds | validation accuracy | validation macro F1 | test accuracy | test macro F1 | "
                   "test recall per class | seconds per run |")
        out.append("|---|---|---|---|---|---|---|---|")
        for recipe in recipes:
            group = cells.get((dataset, recipe))
            if not group:
                continue
            recall = {label: statistics.mean(r["test_recall"][label] for r in group) for label in group[0]["test_recall"]}
            out.append(
                f"| {recipe} | {len(group)} | {mean_sd([r['validation_accuracy'] for r in group])} | "
                f"{mean_sd([r['validation_f1'] for r in group])} | {mean_sd([r['test_accuracy'] for r in group])} | "
                f"{mean_sd([r['test_f1'] for r in group])} | "
                + ", ".join(f"{label} {value:.3f}" for label, value in recall.items())
                + f" | {statistics.mean(r['seconds'] for r in group):.0f} |")
    out.append("\n### Mean over the datasets each recipe ran on (per dataset: the mean over seeds)\n")
    out.append("| recipe | datasets | validation accuracy | validation macro F1 | test accuracy | test macro F1 |")
    out.append("|---|---|---|---|---|---|")
    for recipe in recipes:
        per_dataset = [cells[(d, recipe)] for d in datasets if (d, recipe) in cells]
        means = {key: statistics.mean(statistics.mean(r[key] for r in group) for group in per_dataset)
                 for key in ("validation_accuracy", "validation_f1", "test_accuracy", "test_f1")}
        out.append(f"| {recipe} | {len(per_dataset)} | " + " | ".join(f"{means[k]:.4f}" for k in means) + " |")
    out.append("\n### The default (previous + --truncation tail) against both earlier defaults, validation macro F1\n")
    out.append("On datasets where no review is cut, tail reads what head reads: there the default's rows are previous's.\n")
    out.append("| dataset | today | previous | default | default - today | default - previous |")
    out.append("|---|---|---|---|---|---|")
    gains = []
    for dataset in datasets:
        default = "previous_tail" if (dataset, "previous_tail") in cells else "previous"
        values = {name: [r["validation_f1"] for r in cells.get((dataset, name), [])] for name in ("today", "previous")}
        values["default"] = [r["validation_f1"] for r in cells.get((dataset, default), [])]
        if not all(values.values()):
            continue
        means = {name: statistics.mean(v) for name, v in values.items()}
        gains.append((means["default"] - means["today"], means["default"] - means["previous"]))
        out.append(f"| {dataset} | " + " | ".join(mean_sd(values[n]) for n in ("today", "previous", "default"))
                   + f" | {means['default'] - means['today']:+.4f} | {means['default'] - means['previous']:+.4f} |")
    if gains:
        out.append(f"| mean | | | | {statistics.mean(g[0] for g in gains):+.4f} | {statistics.mean(g[1] for g in gains):+.4f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(quality_data.NAMES), choices=quality_data.NAMES)
    parser.add_argument("--recipes", nargs="+", default=["today", "previous"], choices=[*RECIPES, *PRETRAINED])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--train_samples", type=int, help=f"default {SIZES['train']} ({TRAIN_SIZES} aside)")
    parser.add_argument("--validation_samples", type=int, default=SIZES["validation"])
    parser.add_argument("--test_samples", type=int, default=SIZES["test"])
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--cpu_threads", type=int, help="threads per run (two suites side by side: 1 each)")
    parser.add_argument("--as_user", action="store_true", help="no --max_seq_length, no --bf16: the path a user's "
                        "run takes (the precision probe included)")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "quality.jsonl")
    parser.add_argument("--summary", type=Path, help="print the tables of this results file and stop")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return 0
    given = {"train": args.train_samples, "validation": args.validation_samples, "test": args.test_samples}
    done = done_cells(args.results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; results: {args.results}", flush=True)
    for seed in args.seeds:  # seeds outermost: a suite stopped early has every recipe at the same seeds
        for dataset in args.datasets:
            sizes = {**given, "train": given["train"] or TRAIN_SIZES.get(dataset, SIZES["train"])}
            for recipe in args.recipes:
                if (dataset, recipe, seed, sizes["train"], args.max_seq_length) in done:
                    continue
                row = run_cell(dataset, recipe, seed, sizes, args.max_seq_length, args.cpu_threads, args.as_user)
                with open(args.results, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{dataset:18} {recipe:20} seed {seed}: validation f1 {row['validation_f1']:.4f}, "
                      f"test f1 {row['test_f1']:.4f}, {row['seconds']:.0f} s", flush=True)
    print(summary(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
