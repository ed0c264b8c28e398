"""The data audit (finetune/audit.py) at the tutorial's size, and its near-duplicate search against datasketch's.

    python bench/audit.py                                   # datasketch vs this at 20,000; the audit at 10k, 100k, 650k
    python bench/audit.py --compare 0 --sizes 10000 100000  # the audit at the smaller sizes only
    python bench/audit.py --sizes                           # the comparison only

Data: bench/scale.py's Yelp-shaped synthetic reviews (`synthetic_reviews`: Zipf words, log-normal lengths of
mean ~130 words), train N and test N/13 as in yelp_review_full, with findings planted so that the counts can be
checked: 0.5% of train rows copy an earlier row, 1% of test rows copy a train review in another case and spacing
with a `<br />` (exact leaks), 1% of test rows copy a train review of 60+ words with one word changed
(near-duplicates, Jaccard of the 3-word shingles about 0.9). Each measurement runs in a fresh process: the texts
are built, then the peak resident memory is reset (/proc/self/clear_refs) and the audit runs, so "extra memory"
is the audit's own peak above the texts it was given.

Comparison: the same near-duplicate question (which test reviews have a train review at estimated Jaccard >= 0.8)
answered with datasketch 2.0.0, as its documentation shows it (`MinHash.bulk` over each review's set of shingles,
default SHA-1 hash, 128 permutations; `MinHashLSH(threshold=0.8, num_perm=128)`, train inserted, test queried),
also with a cheaper hash function (xxhash's 32-bit digest), and with this module's vectorised sketches.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune import audit  # noqa: E402

RESULTS = REPO / "bench" / "results" / f"{date.today()}-audit.md"
SIZES = (10_000, 100_000, 650_000)
TEST_SHARE = 50_000 / 650_000
STAR_NAMES = ["1 star", "2 star", "3 stars", "4 stars", "5 stars"]


def yelp_texts(train_size: int, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, int]]:
    """Texts and labels of a train and a test split (bench/scale.py's generator), with planted findings; and
    how many of each were planted."""
    from scale import synthetic_reviews

    test_size = max(1, round(train_size * TEST_SHARE))
    texts, labels = {}, {}
    for offset, (split, size) in enumerate({"train": train_size, "test": test_size}.items()):
        reviews, stars = synthetic_reviews(size, seed * 10 + offset)
        texts[split], labels[split] = reviews.to_pylist(), [STAR_NAMES[star] for star in stars]
    return texts, labels, plant_findings(texts["train"], texts["test"], np.random.default_rng(seed))


def plant_findings(train: list[str], test: list[str], rng: np.random.Generator) -> dict[str, int]:
    duplicates, per_kind = len(train) // 200, len(test) // 100
    sources = rng.choice(len(train) // 2, duplicates, replace=False)
    for target, source in zip(range(len(train) - duplicates, len(train)), sources):
        train[target] = train[source]
    long_reviews = np.flatnonzero([text.count(" ") >= 60 for text in train[: len(train) // 2]])
    test_rows = rng.choice(len(test), 2 * per_kind, replace=False)
    for row in test_rows[:per_kind]:
        source = train[rng.integers(len(train) // 2)]
        test[row] = "  ".join(source.upper().split()) + " <br />"
    for row in test_rows[per_kind:]:
        words = train[rng.choice(long_reviews)].split()
        words[len(words) // 2] = "plantedword"
        test[row] = " ".join(words)
    return {"duplicates_in_train": duplicates, "leaked": per_kind, "near_duplicates": per_kind}


def reset_peak_memory() -> float:
    """Reset the process's peak resident set (Linux) and return the current one, in GB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return resident_gb("VmRSS")


def resident_gb(field: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith(field + ":"))
    return int(line.split()[1]) / 1e6


def measure_audit(size: int) -> dict:
    started = time.perf_counter()
    texts, labels, planted = yelp_texts(size)
    built = time.perf_counter() - started
    before = reset_peak_memory()
    cpu = time.process_time()
    report = audit.audit(texts, labels)
    return {
        "train": size, "test": len(texts["test"]), "seconds": report.seconds,
        "cpu_s": round(time.process_time() - cpu, 2), "load": load_average(),
        "extra_gb": round(resident_gb("VmHWM") - before, 3), "texts_gb": round(before, 3),
        "data_s": round(built, 1), "planted": planted,
        "found": {"duplicates_in_train": report.duplicates_in_train, "leaked": len(report.leaked["test"]),
                  "near_duplicates": report.near_duplicates["test"], "near_in_train": report.near_duplicates["train"],
                  "conflicts": report.conflicts},
        "ru_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
    }


def audit_folder(folder: Path) -> str:
    """The audit of a bench/scale.py Parquet folder's splits, as one line: bench/scale.py prints it."""
    import pyarrow.parquet as pq

    texts, labels = {}, {}
    for path in sorted(folder.glob("*.parquet")):
        split = path.name.split("-")[0]
        table = pq.read_table(path, columns=["text", "label"])
        texts[split], labels[split] = table.column("text").to_pylist(), table.column("label").to_pylist()
    return "; ".join(audit.audit(texts, labels).summary_lines())


def shingle_sets(texts: list[str]) -> list[set[bytes]]:
    """Each review's 3-word shingles as datasketch takes them (bytes), after the audit's normalisation."""
    sets = []
    for text in texts:
        words = audit.normalize(text).split()
        sets.append({" ".join(words[i:i + audit.SHINGLE_WORDS]).encode()
                     for i in range(max(1, len(words) - audit.SHINGLE_WORDS + 1))})
    return sets


def datasketch_near(train: list[str], test: list[str], hashfunc=None) -> dict:
    """Test rows with a train review at estimated Jaccard >= 0.8, by datasketch's MinHash and MinHashLSH."""
    from datasketch import MinHash, MinHashLSH

    kwargs = {"num_perm": audit.NUM_PERM, **({"hashfunc": hashfunc} if hashfunc else {})}
    times, started = {}, time.perf_counter()
    train_sets, test_sets = shingle_sets(train), shingle_sets(test)
    times["shingles_s"] = time.perf_counter() - started
    started = time.perf_counter()
    train_sketches = MinHash.bulk(train_sets, **kwargs)
    test_sketches = MinHash.bulk(test_sets, **kwargs)
    times["minhash_s"] = time.perf_counter() - started
    started = time.perf_counter()
    index = MinHashLSH(threshold=audit.NEAR_THRESHOLD, num_perm=audit.NUM_PERM)
    with index.insertion_session() as session:
        for row, sketch in enumerate(train_sketches):
            session.insert(row, sketch, check_duplication=False)
    near = 0
    for sketch in test_sketches:
        near += any(sketch.jaccard(train_sketches[row]) >= audit.NEAR_THRESHOLD for row in index.query(sketch))
    times["lsh_s"] = time.perf_counter() - started
    return {**{k: round(v, 2) for k, v in times.items()}, "near_or_exact": near}


def measure_comparison(size: int) -> dict:
    """datasketch (SHA-1, then xxhash) and this module on the same `size` train reviews (and size/13 test)."""
    import xxhash

    texts, labels, planted = yelp_texts(size)
    results = {"train": size, "test": len(texts["test"]), "planted": planted}
    for name, hashfunc in (("datasketch_sha1", None), ("datasketch_xxh32", xxhash.xxh32_intdigest)):
        before = reset_peak_memory()
        started, cpu = time.perf_counter(), time.process_time()
        results[name] = datasketch_near(texts["train"], texts["test"], hashfunc)
        results[name]["seconds"] = round(time.perf_counter() - started, 2)
        results[name]["cpu_s"] = round(time.process_time() - cpu, 2)
        results[name]["extra_gb"] = round(resident_gb("VmHWM") - before, 3)
    before = reset_peak_memory()
    without = audit.audit(texts, labels, near_duplicates=False)
    cpu = time.process_time()
    with_near = audit.audit(texts, labels)
    results["vectorised"] = {
        "seconds": with_near.seconds, "cpu_s": round(time.process_time() - cpu, 2),
        "without_near_duplicates_s": without.seconds,
        "near_or_exact": with_near.near_duplicates["test"] + len(with_near.leaked["test"]),
        "extra_gb": round(resident_gb("VmHWM") - before, 3),
    }
    return results


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def in_fresh_process(kind: str, size: int) -> dict:
    command = [sys.executable, __file__, "--one", kind, str(size)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_lines(comparison: dict | None, runs: list[dict]) -> list[str]:
    from _common import machine_line, markdown_table

    lines = [f"## Data audit ({machine_line()})", "", "`python bench/audit.py " + " ".join(sys.argv[1:]) + "`", ""]
    if comparison:
        scale = (650_000 + 50_000) / (comparison["train"] + comparison["test"])
        rows = []
        for name in ("datasketch_sha1", "datasketch_xxh32", "vectorised"):
            result = comparison[name]
            rows.append([name, result["seconds"], result["cpu_s"], f"{result['seconds'] * scale:.0f}", result["extra_gb"],
                         result["near_or_exact"],
                         json.dumps({k: v for k, v in result.items() if k.endswith("_s")})])
        lines += [f"Near-duplicates of {comparison['test']:,} test reviews among {comparison['train']:,} train reviews "
                  f"(planted: {comparison['planted']}); extrapolated linearly to 650,000 + 50,000:", "",
                  markdown_table(["method", "seconds", "CPU seconds", "x (700,000 / rows) s", "extra memory (GB)",
                                  "test rows near or exact", "phases"], rows), ""]
    if runs:
        rows = [[f"{run['train']:,} + {run['test']:,}", run["seconds"], run["cpu_s"], run["extra_gb"], run["texts_gb"],
                 json.dumps(run["planted"]), json.dumps(run["found"])] for run in runs]
        lines += ["The whole audit (exact, near-duplicates, conflicts, labels), each size in a fresh process:", "",
                  markdown_table(["train + test reviews", "seconds", "CPU seconds", "extra memory, peak (GB)",
                                  "process with the texts (GB)", "planted", "found"], rows), "",
                  "Raw:", "", "```", *(json.dumps(run) for run in runs), "```", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="train reviews per audit run")
    parser.add_argument("--compare", type=int, default=20_000,
                        help="train reviews for datasketch against the vectorised sketches (0: skip)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: one measurement, in this process
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.one:
        kind, size = args.one[0], int(args.one[1])
        print(json.dumps(measure_comparison(size) if kind == "compare" else measure_audit(size)))
        return
    comparison = in_fresh_process("compare", args.compare) if args.compare else None
    if comparison:
        print(json.dumps(comparison), flush=True)
    runs = []
    for size in args.sizes:
        runs.append(in_fresh_process("audit", size))
        print(json.dumps(runs[-1]), flush=True)
    report = "\n".join(report_lines(comparison, runs))
    print(report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as handle:
        handle.write(report + "\n")


if __name__ == "__main__":
    main()
