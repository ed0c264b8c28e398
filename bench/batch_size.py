"""Batch size and bucketed shapes: training throughput of each setting, side by side in one run.

    python bench/batch_size.py                                  # embedded reviews and clothing_recommend
    python bench/batch_size.py --data embedded --samples 2048 --rounds 2

Every row trains the embedded MiniLM through the real pipeline (finetune.train.prepare / build_trainer,
bench/train_throughput.py `measure`) for one epoch of the same seeded subset of reviews; only the batch
size and --pad_to_multiple_of differ (one row: frozen word embeddings). Rows run in rounds, the second in
reverse order, and each figure is the mean of its rounds, so that a machine getting slower or faster during
the run biases no row. Printed per row: reviews/s and its ratio to the first row (the defaults before issue
25: batch 16, padded to the longest review), optimizer steps/s, the distinct padded shapes the epoch met, the padding share of the
compute, and the share of this machine's fp32 matmul peak (a large torch.mm) the training arithmetic reached.
clothing_recommend is the quality suite's title + body product reviews (bench/quality_data.py; median 62 words).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine_line, markdown_table, matmul_peak_flops, quiet_libraries  # noqa: E402
from train_throughput import measure  # noqa: E402

BASELINE = "batch 16, longest review (before)"
ROWS = {
    BASELINE: ["--per_device_train_batch_size", "16", "--pad_to_multiple_of", "1", "--freeze_word_embeddings", "false"],
    "batch 16, buckets of 16": ["--per_device_train_batch_size", "16", "--pad_to_multiple_of", "16"],
    "batch 32, longest review": ["--per_device_train_batch_size", "32", "--pad_to_multiple_of", "1"],
    "batch 64, longest review": ["--per_device_train_batch_size", "64", "--pad_to_multiple_of", "1"],
    "batch 64, buckets of 8": ["--per_device_train_batch_size", "64", "--pad_to_multiple_of", "8"],
    "batch 64, buckets of 16": ["--per_device_train_batch_size", "64", "--pad_to_multiple_of", "16"],
    "batch 16, longest review, frozen word embeddings": ["--per_device_train_batch_size", "16",
                                                         "--pad_to_multiple_of", "1", "--freeze_word_embeddings", "true"],
}
# Every other row trains the word embeddings, as the baseline does, unless it says otherwise.
for _flags in ROWS.values():
    if "--freeze_word_embeddings" not in _flags:
        _flags += ["--freeze_word_embeddings", "false"]


def clothing_file(folder: Path) -> list[str]:
    import quality_data

    rows = quality_data.load("clothing_recommend")["train"]
    path = folder / "clothing_recommend.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return ["--train_file", str(path)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["embedded", "clothing", "both"], default="both")
    parser.add_argument("--samples", type=int, default=1024, help="reviews per row (one epoch)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", nargs="*", default=None, help="row names to run (default: all)")
    args = parser.parse_args(argv)

    quiet_libraries()
    peak = matmul_peak_flops()
    print(f"Machine: {machine_line()}\nfp32 matmul peak (large square torch.mm): {peak / 1e9:,.0f} GFLOP/s\n", flush=True)
    names = [name for name in ROWS if not args.rows or name in args.rows]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        sources = {}
        if args.data in ("embedded", "both"):
            sources["embedded Rotten Tomatoes reviews"] = []
        if args.data in ("clothing", "both"):
            sources["clothing_recommend (title + body)"] = clothing_file(workdir)
        for source, data_flags in sources.items():
            runs: dict[str, list[dict]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                for name in (names if round_ % 2 == 0 else names[::-1]):
                    result = measure(ROWS[name], data_flags, args.samples, peak, workdir)
                    runs[name].append(result)
                    print(f"  round {round_ + 1}: {name}: {result['samples/s']:.2f} reviews/s", flush=True)
            mean = {name: {key: sum(r[key] for r in rs) / len(rs) for key in rs[0]} for name, rs in runs.items()}
            base = mean.get(BASELINE)
            headers = ["setting", "reviews/s", "vs before", "steps/s", "distinct shapes", "mean padded length",
                       "padding share of compute", "share of fp32 peak"]
            rows = [[name, r["samples/s"], f"{r['samples/s'] / base['samples/s']:.2f}x" if base else "-",
                     r["samples/s"] / r["batch"], int(r["distinct shapes"]), r["mean padded length"],
                     f"{r['padding share of compute']:.0%}", f"{r['share of fp32 peak']:.0%}"]
                    for name, r in mean.items()]
            print(f"\n### Training throughput by batch size and bucket: {source} (one epoch of {args.samples} "
                  f"reviews per row, mean of {args.rounds} rounds)\n\n{markdown_table(headers, rows)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
