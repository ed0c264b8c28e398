"""Time to result: whole training runs, from launch to the printed summary, as a user waits for them.

    python bench/time_to_result.py                                  # embedded default run + Yelp-like CSV
    python bench/time_to_result.py --data embedded --max_train_samples 2000
    python bench/time_to_result.py --data yelp-like --extra --per_device_eval_batch_size 32

For each data source it runs `python finetune/train.py` twice in fresh processes, one after the
other on the same machine: once with the defaults from before the "optimal performance" work pinned
by flags (random-order evaluation in batches of 64, fp32, the 3-epoch recipe: BEFORE below) and once as
the project runs by default. It reports
wall seconds from launch to exit, the seconds spent in evaluation (results.json `seconds`), the
evaluation's share, peak resident memory of the run (its process and children), and scores.
The Yelp-like CSV is built from the embedded reviews strung together to Yelp's length mix
(median ~160 word pieces, ~6% past 512): 3,600 train / 400 validation / 1,000 test.
"""

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, yelp_like_reviews  # noqa: E402

# Runs the command and prints the peak RSS (KiB) of the largest process it waited for.
MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(code)")
# "before": the defaults before issue 9's work, pinned flag by flag: evaluation in data order with 64
# reviews a batch, fp32, no token bound on training batches, no malloc_trim, the earlier recipe
# (3 epochs, learning rate 5e-5, batch 16, warmup 0.1, weight decay 0.01).
BEFORE = ["--sort_eval_by_length", "false", "--per_device_eval_batch_size", "64", "--bf16", "false",
          "--max_train_batch_tokens", "0", "--num_train_epochs", "3", "--learning_rate", "5e-5",
          "--per_device_train_batch_size", "16", "--warmup_steps", "0.1", "--weight_decay", "0.01"]
ROWS = {"previous defaults (before)": (BEFORE, {"FINETUNE_MALLOC_TRIM": "0"}), "project default (after)": ([], {})}


def write_yelp_like(folder: Path) -> list[str]:
    from transformers import AutoTokenizer

    from finetune import embedded
    from finetune.data import load_embedded_reviews

    source = list(load_embedded_reviews()["train"]["text"])
    tokenizer = AutoTokenizer.from_pretrained(embedded.model_path())
    texts = yelp_like_reviews(source, tokenizer, 5000, seed=3)
    rng = random.Random(3)
    # Labels follow the source sentences' own labels loosely: the bench times runs, it does not chase accuracy.
    labels = [rng.choice(["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]) for _ in texts]
    sizes = {"train": 3600, "validation": 400, "test": 1000}
    flags, start = [], 0
    for split, size in sizes.items():
        path = folder / f"yelp_like_{split}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts[start:start + size], labels[start:start + size]))
        flags += [f"--{split}_file", str(path)]
        start += size
    return flags


def run(flags: list[str], output_dir: Path, env: dict[str, str]) -> dict:
    command = [sys.executable, "-c", MEASURE, sys.executable, str(REPO / "finetune" / "train.py"),
               *flags, "--output_dir", str(output_dir), "--disable_tqdm", "true"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, **env})
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    peak_kib = int(result.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0])
    results = json.loads((output_dir / "results.json").read_text())
    seconds = results["seconds"]
    evaluation = seconds.get("evaluation_during_training", 0) + seconds.get("final_evaluation", 0)
    test = results["scores"].get("test", {})
    return {"wall": wall, "evaluation": evaluation, "peak_gb": peak_kib * 1024 / 1e9,
            "validation_accuracy": results["scores"]["validation"]["accuracy"],
            "test_accuracy": test.get("accuracy")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["embedded", "yelp-like", "both"], default="both")
    parser.add_argument("--max_train_samples", type=int, default=None, help="passed to train.py (default: all)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train.py flags, for every run")
    args = parser.parse_args(argv)
    print(f"Machine: {machine_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ttr-") as tmp:
        workdir = Path(tmp)
        sources = {}
        if args.data in ("embedded", "both"):
            sources["embedded Rotten Tomatoes reviews (the default run)"] = []
        if args.data in ("yelp-like", "both"):
            sources["Yelp-like CSV (3,600 / 400 / 1,000)"] = write_yelp_like(workdir)
        common = args.extra + (["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else [])
        for source, data_flags in sources.items():
            rows, measured = [], {}
            for i, (name, (flags, env)) in enumerate(ROWS.items()):
                # The row's own flags come last: they win over --extra for the "before" row.
                measured[name] = run(data_flags + common + flags, workdir / f"run{len(rows)}-{i}-{hash(source)}", env)
                print(f"  measured: {source}: {name}: {measured[name]['wall']:.0f} s", flush=True)
            before = next(iter(measured.values()))
            for name, m in measured.items():
                rows.append([name, m["wall"], f"{before['wall'] / m['wall']:.2f}x", m["evaluation"],
                             f"{m['evaluation'] / m['wall']:.0%}", f"{before['evaluation'] / m['evaluation']:.2f}x",
                             m["peak_gb"], f"{m['validation_accuracy']:.4f}",
                             "-" if m["test_accuracy"] is None else f"{m['test_accuracy']:.4f}"])
            print(f"\n### Time to result: {source}; flags: {' '.join(common) or '(defaults)'}\n")
            print(markdown_table(["run", "wall s (launch to exit)", "speed-up", "evaluation s", "evaluation share",
                                  "evaluation speed-up", "peak RSS GB", "validation accuracy", "test accuracy"],
                                 rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
