"""Evaluation throughput: the Trainer's own order, this project's length-sorted order, and the serving path.

    python bench/evaluation.py                      # 400 Yelp-like reviews, the embedded MiniLM
    python bench/evaluation.py --reviews 1000 --repeats 3

All rows score the same model (the embedded MiniLM with its new classification head) on the same
reviews, with the same threads, in one process:
- "Trainer before": `trainer.evaluate()` on the validation split as it comes
  (`--sort_eval_by_length false`) at the earlier default eval batch of 64;
- the same, length-sorted (with `train_sampling_strategy=group_by_length`, transformers 5 already
  groups evaluation batches by length, so this changes little);
- "train.py now": length-sorted at the default eval batch of 16, what `finetune/train.py` does at
  every epoch and at the end;
- "serving path": `finetune.inference.ReviewClassifier.predict`, the demo's batch path;
- "python -m finetune.score": the evaluation command's prediction (the serving path, fed in chunks).
Each row's time is the median of --repeats runs; reviews/s and the ratio to the first row are printed.
"""

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import machine_line, markdown_table, quiet_libraries, yelp_like_reviews  # noqa: E402
from transformers import AutoTokenizer, PrinterCallback  # noqa: E402

from finetune import embedded  # noqa: E402
from finetune.data import load_embedded_reviews  # noqa: E402
from finetune.inference import ReviewClassifier  # noqa: E402
from finetune.score import predict_probabilities  # noqa: E402
from finetune.train import (  # noqa: E402
    build_trainer,
    parse_run,  # noqa: E402
    prepare,
    set_cpu_threads,
)


def write_reviews(path: Path, texts: list[str]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i, text in enumerate(texts):
            writer.writerow([text, ("fresh", "rotten")[i % 2]])
    return path


def timed(function, repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=400, help="validation reviews (Yelp-like lengths)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    quiet_libraries()

    source = list(load_embedded_reviews()["train"]["text"])
    tokenizer = AutoTokenizer.from_pretrained(embedded.model_path())
    texts = yelp_like_reviews(source, tokenizer, args.reviews + 64, seed=1)
    lengths = sorted(len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"])
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        workdir = Path(tmp)
        train_file = write_reviews(workdir / "train.csv", texts[:64])
        validation_file = write_reviews(workdir / "validation.csv", texts[64:])
        trainers = {}
        rows_to_run = (
            ("Trainer before: data order, eval batch 64", ["--sort_eval_by_length", "false",
                                                         "--per_device_eval_batch_size", "64"]),
            ("Trainer, length-sorted, eval batch 64", ["--per_device_eval_batch_size", "64"]),
            ("train.py now: length-sorted, eval batch 16", []),
        )
        for name, flags in rows_to_run:
            config = parse_run([
                "--train_file", str(train_file), "--validation_file", str(validation_file),
                "--output_dir", str(workdir / "run"), "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
                "--export_onnx", "false", *flags,
            ])
            set_cpu_threads(config)
            run = prepare(config)
            trainers[name] = build_trainer(config, run)
            trainers[name].remove_callback(PrinterCallback)  # a table, not a log line per evaluation
        model_dir = workdir / "model"
        next(iter(trainers.values())).save_model(str(model_dir))
        classifier = ReviewClassifier(model_dir)
        validation = texts[64:]

        rows, seconds = [], {}
        for name, trainer in trainers.items():
            trainer.evaluate()  # warm-up: first calls pay one-time set-up
            seconds[name] = timed(trainer.evaluate, args.repeats)
        classifier.predict(validation[:32])
        seconds["serving path (ReviewClassifier.predict, batch 32)"] = timed(
            lambda: classifier.predict(validation), args.repeats)
        seconds["python -m finetune.score (serving path in chunks of 512, progress bar)"] = timed(
            lambda: predict_probabilities(classifier, validation, 32, progress=False), args.repeats)
        base = next(iter(seconds.values()))
        for name, value in seconds.items():
            rows.append([name, len(validation) / value, f"{base / value:.2f}x", value])

    print(f"Machine: {machine_line()}")
    print(f"\n### Evaluation throughput: {len(validation)} Yelp-like reviews (median {lengths[len(lengths) // 2]} "
          f"word pieces, {sum(n >= 512 for n in lengths) / len(lengths):.0%} at the 512 cap), MiniLM-L6 (PyTorch), "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}\n")
    print(markdown_table(["path", "reviews/s", "vs Trainer before", "seconds"], rows))
    now, serving = rows[2][1], rows[3][1]
    print(f"\ntrain.py's evaluation now runs {now / rows[0][1]:.2f}x as fast as before, at {now / serving:.0%} of the "
          f"serving path's speed; python -m finetune.score at {rows[4][1] / serving:.0%}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
