"""Preparation at the tutorial's real size: yelp_review_full has 650,000 training and 50,000 test reviews.

    python bench/scale.py                          # 10,000, 100,000 and 650,000 reviews, twice each
    python bench/scale.py --sizes 10000 100000     # the smaller sizes only
    python bench/scale.py --sizes 650000 --before  # also a run with --overwrite_cache, the cache ignored

It writes a Yelp-shaped local Parquet folder per size under bench/.data/ (git-ignored): `train` and
`test` files, a ClassLabel of the 5 star names, reviews of synthetic text drawn from the tokenizer's
own whole words (Zipf frequencies, so that a word is about 1.3 word pieces as in English), with
log-normal lengths of mean ~130 words and 95th percentile ~340, test 1/13 of train as in Yelp.
Seeded: the same bytes every time. It prints the data audit of each folder (finetune/audit.py: its time and
findings, one line; bench/audit.py measures it in depth). Then for each size it runs the real entry point
(`python finetune/train.py --dataset_name FOLDER --max_steps 3 ...`) twice in fresh processes, with a
fresh HF_DATASETS_CACHE per size, and reads from each run's log the phase times (`preparation took`,
`first training step`), and samples the memory of the run's process tree during preparation (the sum
of the processes' proportional set sizes: pages shared by forked workers counted once).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table  # noqa: E402
from audit import audit_folder  # noqa: E402

DATA_ROOT = REPO / "bench" / ".data"
RESULTS = REPO / "bench" / "results" / f"{date.today()}-scale.md"
SIZES = (10_000, 100_000, 650_000)
TEST_SHARE = 50_000 / 650_000  # yelp_review_full's test split against its train split
STAR_NAMES = ["1 star", "2 star", "3 stars", "4 stars", "5 stars"]  # yelp_review_full's ClassLabel
# Log-normal words per review: mean exp(mu + sigma^2/2) = 130, 95th percentile exp(mu + 1.645 sigma) = 340.
SIGMA = 0.760
MU = np.log(130) - SIGMA**2 / 2
MAX_WORDS = 1_000
COMPOUND_SHARE = 0.15
# --bf16 false: the precision probe (issue 15 item 1) times the model, not the data, and would count in
# preparation; the runs measure the data path.
RUN_FLAGS = ["--max_steps", "3", "--max_eval_samples", "64", "--max_test_samples", "64", "--export_onnx", "false",
             "--disable_tqdm", "true", "--overwrite_output_dir", "true", "--bf16", "false"]
PREPARED = re.compile(r"preparation took (\d+(?:\.\d+)?) s")
FIRST_STEP = re.compile(r"first training step began (\d+(?:\.\d+)?) s after preparation")
CACHE_LINE = re.compile(r"tokenized (\w+): (reused the cache|tokenized afresh[^(]*)")


def vocabulary(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Words with Zipf weights, in a seeded order: the embedded model's WordPiece whole words (no ## pieces,
    no [special] tokens), and as many compounds of two of them (2+ word pieces each) drawn COMPOUND_SHARE
    of the time, so that a review has about 1.3 word pieces a word, as English has with BERT's vocabulary."""
    from finetune import embedded

    words = [w for w in (embedded.model_path() / "vocab.txt").read_text().split("\n")
             if w.isalpha() and w.isascii() and not w.startswith("[")]
    rng = np.random.default_rng(seed)
    words = np.array(words, dtype=object)
    rng.shuffle(words)
    compounds = words + rng.permutation(words)
    zipf = 1.0 / np.arange(1, len(words) + 1) ** 1.07
    zipf /= zipf.sum()
    weights = np.concatenate([(1 - COMPOUND_SHARE) * zipf, COMPOUND_SHARE * zipf])
    return np.concatenate([words, compounds]), weights / weights.sum()


def synthetic_reviews(count: int, seed: int):
    """`count` review texts (a pyarrow string array) and star labels 0-4, seeded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    words, weights = vocabulary(seed)
    lengths = np.clip(np.rint(rng.lognormal(MU, SIGMA, count)), 1, MAX_WORDS).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    chosen = rng.choice(len(words), size=int(offsets[-1]), p=weights)
    tokens = pc.take(pa.array(words.tolist(), type=pa.string()), pa.array(chosen))
    texts = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), tokens), " ")
    return texts, rng.integers(0, len(STAR_NAMES), count)


def yelp_folder(train_size: int, seed: int = 0) -> Path:
    """bench/.data/yelp-N/ with train and test Parquet files in datasets' layout (ClassLabel kept in the
    schema's metadata); written once per size and seed."""
    from datasets import ClassLabel, Dataset, Features, Value

    folder = DATA_ROOT / f"yelp-{train_size}-seed{seed}"
    if (folder / "done").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    features = Features({"label": ClassLabel(names=STAR_NAMES), "text": Value("string")})
    sizes = {"train": train_size, "test": max(1, round(train_size * TEST_SHARE))}
    for offset, (split, size) in enumerate(sizes.items()):
        texts, labels = synthetic_reviews(size, seed * 10 + offset)
        data = Dataset.from_dict({"label": labels, "text": texts.to_pylist()}, features=features)
        data.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    (folder / "done").write_text("")
    return folder


class TreeMemory:
    """Samples the summed proportional set size (PSS) of a process and its descendants, every 0.2 s."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for process in processes:
                try:
                    total += process.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.samples.append((time.perf_counter(), total / 1e9))
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def peak_before(self, moment: float) -> float:
        return max((gb for at, gb in self.samples if at <= moment), default=0.0)


def run_once(folder: Path, cache: Path, output_dir: Path, extra: list[str], log_path: Path, tree: Path = REPO) -> dict:
    """One run of `tree`'s entry point (this checkout, or another, e.g. the code before a change)."""
    command = [sys.executable, str(tree / "finetune" / "train.py"), "--dataset_name", str(folder),
               "--output_dir", str(output_dir), *RUN_FLAGS, *extra]
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "DISABLE_TQDM": "1"}
    started = time.perf_counter()
    prepared_at = None
    lines = []
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        memory = TreeMemory(process.pid)
        for line in process.stdout:
            log.write(line)
            lines.append(line)
            if prepared_at is None and PREPARED.search(line):
                prepared_at = time.perf_counter()
        code = process.wait()
        memory.stop()
    total = time.perf_counter() - started
    text = "".join(lines)
    if code != 0:
        sys.exit(f"error: the run failed (exit {code}); its log: {log_path}\n{text[-3000:]}")
    results = json.loads((output_dir / "results.json").read_text())
    preparation = results["seconds"]["preparation"]
    first_step = FIRST_STEP.search(text)
    caches = {split: how for split, how in CACHE_LINE.findall(text)}
    return {
        "preparation_s": preparation,
        "to_first_step_s": float(first_step.group(1)) if first_step else float("nan"),
        "peak_gb": memory.peak_before(prepared_at or time.perf_counter()),
        "main_peak_gb": results["peak_memory_gb"]["preparation"],
        "total_s": total,
        "train_cache": caches.get("train", "?"),
    }


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


HEADERS = ["code", "train reviews", "preparation 1st (s)", "preparation 2nd (s)",
           "preparation, --overwrite_cache (s)", "peak memory of preparation, all processes (GB)",
           "main process peak (GB)", "to first step 1st / 2nd (s)", "run 1st / 2nd (s)"]


def measure_size(size: int, work: Path, tree: Path, label: str, extra: list[str], overwrite: bool) -> tuple[list, str]:
    """Two runs (a fresh cache, then the same cache) and, if asked, one with --overwrite_cache."""
    folder = yelp_folder(size)
    cache = work / f"cache-{label}-{size}"
    runs = {}
    for attempt in ("first", "second") + (("overwrite",) if overwrite else ()):
        flags = [*extra, *(["--overwrite_cache", "true"] if attempt == "overwrite" else [])]
        before = load_average()
        result = run_once(folder, cache, work / f"run-{label}-{size}", flags, work / f"{label}-{size}-{attempt}.log",
                          tree)
        result["load"] = f"{before} -> {load_average()}"
        runs[attempt] = result
        print(f"  {label} {size:,} {attempt}: {result}", flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    first, second = runs["first"], runs["second"]
    row = [label, f"{size:,}", first["preparation_s"], second["preparation_s"],
           runs["overwrite"]["preparation_s"] if overwrite else "-",
           max(r["peak_gb"] for r in runs.values()), max(r["main_peak_gb"] for r in runs.values()),
           f"{first['to_first_step_s']:.1f} / {second['to_first_step_s']:.1f}",
           f"{first['total_s']:.0f} / {second['total_s']:.0f}"]
    note = (f"- {label}, {size:,}: train split {first['train_cache']}, then {second['train_cache']}; load average "
            f"(1, 5, 15 min) during the runs: " + "; ".join(r["load"] for r in runs.values()))
    return row, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="training reviews per run")
    parser.add_argument("--before", action="store_true",
                        help="a third run per size with --overwrite_cache (the cache is not read)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout (e.g. `git archive COMMIT | tar -x -C DIR`) to run the same way, "
                        "for a before/after comparison")
    parser.add_argument("--baseline_sizes", type=int, nargs="+", default=None,
                        help="sizes for --baseline (default: --sizes)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for finetune/train.py")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    rows, notes = [], []
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    try:
        for size in args.sizes:
            started = time.perf_counter()
            print(f"data for {size:,} reviews: {yelp_folder(size)} ({time.perf_counter() - started:.0f} s)", flush=True)
            print(f"  data audit (finetune/audit.py): {audit_folder(yelp_folder(size))}", flush=True)
            if args.baseline is not None and size in (args.baseline_sizes or args.sizes):
                row, note = measure_size(size, work, args.baseline.resolve(), "before", args.extra, overwrite=False)
                rows.append(row)
                notes.append(note)
            row, note = measure_size(size, work, REPO, "this checkout", args.extra, args.before)
            rows.append(row)
            notes.append(note)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from _common import machine_line

    report = "\n".join([
        f"## Preparation at scale ({machine_line()})", "",
        "`python bench/scale.py " + " ".join(sys.argv[1:]) + "`", "",
        "Each run: `python finetune/train.py --dataset_name bench/.data/yelp-N-seed0 " + " ".join(RUN_FLAGS) + "`, "
        "the first with an empty HF_DATASETS_CACHE, the second reading what the first cached. Preparation: "
        "results.json `seconds.preparation` (parse, model, data, tokenization, model load). Memory: the most the "
        "run's processes held together (proportional set size, sampled every 0.2 s) before preparation ended, and "
        "the main process's own peak (results.json).", "",
        markdown_table(HEADERS, rows), "", *notes, "",
    ])
    print(report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as handle:
        handle.write(report + "\n")


if __name__ == "__main__":
    main()
