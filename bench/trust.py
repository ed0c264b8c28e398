"""Trust figures, measured: suspect labels recovering deliberately flipped labels, calibration, interval widths.

    .venv/bin/python bench/trust.py                                    # 3 datasets x 3 seeds, appends rows
    .venv/bin/python bench/trust.py --summary bench/results/2026-12-07-trust.jsonl   # the tables only

Each cell is one real training run, `python finetune/train.py` with the project's defaults (its precision fixed
to fp32 and its length to 256, as the quality suite's, so that cells compare), on a fixed subset of one of
bench/quality_data.py's datasets whose *training* labels were flipped at random for a share of the reviews
(--noise, 10%: each flipped review gets another class, seeded; validation and test stay clean). From the run:

- suspect labels: precision at N of `suspect_labels.csv`'s train rows (N = the number of flips: how many of the
  N most suspect reviews were flipped), for each signal (the fine-tuned model's probability of the given label,
  the frozen baseline's out-of-sample one, and their average, which the run ranks by) and for cleanlab's
  confident-learning verdicts (precision and recall of the flagged rows); chance is the noise rate;
- calibration: the temperature, ECE before and after on validation (where it was fitted) and test (where not);
- the 'unsure' answer: the threshold's precision and coverage on test; the test accuracy's 95% interval width;
- the frozen baseline's test accuracy beside the fine-tuned model's.
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

import quality  # noqa: E402

DATA_DIR = HERE / ".data" / "trust"
RUNS_DIR = HERE / ".data" / "trust-runs"
# Sized so that 3 datasets x 3 seeds run in about an hour on 2 cores (one cell: 3 to 8 min).
SIZES = {"rotten_tomatoes": {"train": 1000, "validation": 300, "test": 500},
         "clothing_recommend": {"train": 600, "validation": 300, "test": 500},
         "fine_foods": {"train": 600, "validation": 300, "test": 497}}
SIGNALS = {"finetuned": "p_label_finetuned", "frozen": "p_label_frozen"}  # "combined": their mean


def noisy_files(dataset: str, noise: float, seed: int) -> tuple[dict[str, Path], set[int]]:
    """The dataset's fixed subset with `noise` of train's labels flipped (seeded): the files and the flipped rows."""
    clean = quality.subset_files(dataset, SIZES[dataset])
    folder = DATA_DIR / f"{dataset}-noise{noise}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in clean["train"].read_text().splitlines()]
    names = sorted({row["label"] for row in rows})
    rng = random.Random(seed)
    flipped = set(rng.sample(range(len(rows)), round(noise * len(rows))))
    for i in flipped:
        rows[i] = {**rows[i], "label": rng.choice([n for n in names if n != rows[i]["label"]])}
    files = {**clean, "train": folder / "train.jsonl"}
    files["train"].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return files, flipped


def precision_at(ranked_rows: list[int], flipped: set[int], n: int) -> float:
    return sum(row in flipped for row in ranked_rows[:n]) / max(n, 1)


def run_cell(dataset: str, noise: float, seed: int) -> dict:
    files, flipped = noisy_files(dataset, noise, seed)
    output_dir = RUNS_DIR / f"{dataset}-{noise}-{seed}"
    command = [sys.executable, str(ROOT / "finetune" / "train.py"),
               *[arg for split, path in files.items() for arg in (f"--{split}_file", str(path))],
               "--output_dir", str(output_dir), "--overwrite_output_dir", "true", "--seed", str(seed),
               "--max_seq_length", "256", "--bf16", "false", "--export_onnx", "false", "--save_total_limit", "1",
               "--logging_steps", "100000", "--disable_tqdm", "true"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "FINETUNE_ENERGY": "0"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{dataset}/{noise}/{seed} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    results = json.loads((output_dir / "results.json").read_text())
    with open(output_dir / "suspect_labels.csv", newline="") as handle:
        train = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    shutil.rmtree(output_dir, ignore_errors=True)
    n = len(flipped)
    row = {"dataset": dataset, "noise": noise, "seed": seed, "seconds": round(seconds, 1),
           "train": len(train), "flipped": n}
    if n:
        for name, column in SIGNALS.items():
            ranked = sorted((r for r in train if r[column] != ""), key=lambda r: float(r[column]))
            row[f"precision_at_n_{name}"] = round(precision_at([int(r["row"]) for r in ranked], flipped, n), 4)
        # the average of both signals' probability of the given label (the run's own ranking in the first cells)
        both = sorted((r for r in train if r["p_label_frozen"] != ""),
                      key=lambda r: float(r["p_label_finetuned"]) + float(r["p_label_frozen"]))
        row["precision_at_n_combined"] = round(precision_at([int(r["row"]) for r in both], flipped, n), 4)
        # what cleanlab's verdicts (label_issue) were computed from: the average at first, then the fine-tuned model
        row["ranked_by"] = ((results.get("frozen_baseline") or {}).get("suspects") or {}).get("signals")
        flagged = {int(r["row"]) for r in train if r["label_issue"] == "True"}
        row["cleanlab_flagged"] = len(flagged)
        row["cleanlab_precision"] = round(len(flagged & flipped) / len(flagged), 4) if flagged else None
        row["cleanlab_recall"] = round(len(flagged & flipped) / n, 4)
    calibration = results["calibration"]
    abstention = calibration.get("abstention") or {}
    low, high = results["intervals"]["test"]["accuracy"]
    row.update({
        "temperature": calibration["temperature"],
        **{f"ece_{when}_{split}": calibration[f"ece_{when}"][split] for when in ("before", "after")
           for split in ("validation", "test")},
        "unsure_threshold": abstention.get("threshold"),
        "unsure_test_precision": (abstention.get("test") or {}).get("precision"),
        "unsure_test_coverage": (abstention.get("test") or {}).get("coverage"),
        "test_accuracy": round(results["scores"]["test"]["accuracy"], 4),
        "test_accuracy_interval_width": round(high - low, 4),
        "frozen_test_accuracy": ((results.get("frozen_baseline") or {}).get("scores") or {}).get("test", {}).get("accuracy"),
    })
    return row


def summary(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["noise"])].append(row)

    def mean(cells, key):
        values = [c[key] for c in cells if c.get(key) is not None]
        if not values:
            return "-"
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.3f}{spread}"

    out = ["| dataset | noise | seeds | P@N combined | P@N fine-tuned | P@N frozen | cleanlab precision | cleanlab "
           "recall | chance |", "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, noise), cells in sorted(groups.items()):
        if noise:
            out.append(f"| {dataset} | {noise} | {len(cells)} | {mean(cells, 'precision_at_n_combined')} | "
                       f"{mean(cells, 'precision_at_n_finetuned')} | {mean(cells, 'precision_at_n_frozen')} | "
                       f"{mean(cells, 'cleanlab_precision')} | {mean(cells, 'cleanlab_recall')} | {noise} |")
    out += ["", "| dataset | noise | temperature | ECE validation before -> after | ECE test before -> after | "
            "unsure: test precision / coverage | test accuracy | 95% CI width | frozen baseline |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, noise), cells in sorted(groups.items()):
        out.append(f"| {dataset} | {noise} | {mean(cells, 'temperature')} | {mean(cells, 'ece_before_validation')} -> "
                   f"{mean(cells, 'ece_after_validation')} | {mean(cells, 'ece_before_test')} -> "
                   f"{mean(cells, 'ece_after_test')} | {mean(cells, 'unsure_test_precision')} / "
                   f"{mean(cells, 'unsure_test_coverage')} | {mean(cells, 'test_accuracy')} | "
                   f"{mean(cells, 'test_accuracy_interval_width')} | {mean(cells, 'frozen_test_accuracy')} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--noise", nargs="+", type=float, default=[0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--results", type=Path, default=HERE / "results" / "trust.jsonl")
    parser.add_argument("--summary", type=Path, help="print the tables of this results file and stop")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return 0
    done = set()
    if args.results.is_file():
        done = {(r["dataset"], r["noise"], r["seed"]) for r in map(json.loads, args.results.read_text().splitlines())}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; results: {args.results}", flush=True)
    for seed in args.seeds:
        for noise in args.noise:
            for dataset in args.datasets:
                if (dataset, noise, seed) in done:
                    continue
                row = run_cell(dataset, noise, seed)
                with open(args.results, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    print(summary(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
