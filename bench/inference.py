"""Inference: the demo's prediction paths against transformers.pipeline, on the same model and reviews.

    python bench/inference.py                                   # the default run's model folder
    python bench/inference.py --model outputs/<run>

Rows: `pipeline("text-classification")` (batch 32); this project's ReviewClassifier (length-sorted
batches) through PyTorch in fp32 and in torch.ao int8 (`app.py --engine pytorch [--quantize]`: the
fallback for a model without an ONNX copy), through ONNX Runtime on the model's ONNX copy in fp32
and int8 (`app.py [--quantize]`), the same through a copy made by the dynamo exporter (the baseline:
what the project wrote before 2026-12-01); and two int8 alternatives that app.py does not take. Reported:
single-review latency p50/p95 for ~150-token reviews, batch throughput on the embedded test reviews
and on a Yelp-like length mix, accuracy on the embedded test split and how many of its labels equal
the pipeline's (fp32 PyTorch); an int8 row's change in accuracy is the price of its speed.
"""

import argparse
import statistics
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
    quiet_libraries,
    require_trained_model,
    yelp_like_reviews,
)

from finetune import artifacts, onnx_export  # noqa: E402
from finetune.data import load_embedded_reviews  # noqa: E402
from finetune.inference import ReviewClassifier  # noqa: E402

BATCH = 32


def reviews_of_length(source: list[str], tokenizer, tokens: int, count: int) -> list[str]:
    """Texts of about `tokens` word pieces, made of real reviews strung together."""
    texts, i = [], 0
    for _ in range(count):
        words: list[str] = []
        while len(tokenizer(" ".join(words))["input_ids"]) < tokens:
            words.extend(source[i % len(source)].split())
            i += 1
        while len(tokenizer(" ".join(words))["input_ids"]) > tokens:
            words.pop()
        texts.append(" ".join(words))
    return texts


class PipelinePath:
    name = "transformers.pipeline (fp32)"

    def __init__(self, model_dir: str):
        from transformers import pipeline

        self.pipe = pipeline("text-classification", model=model_dir, top_k=None, device=-1)

    def one(self, text):
        return self.pipe(text, truncation=True)

    def labels(self, texts):
        out = self.pipe(texts, batch_size=BATCH, truncation=True)
        return [max(scores, key=lambda s: s["score"])["label"] for scores in out]


class ClassifierPath:
    NAMES = {
        "pytorch fp32": "ReviewClassifier, PyTorch fp32 (app.py --engine pytorch)",
        "pytorch int8": "ReviewClassifier, PyTorch int8 (app.py --engine pytorch --quantize)",
        "onnxruntime fp32": "ReviewClassifier, ONNX Runtime fp32 (app.py)",
        "onnxruntime int8": "ReviewClassifier, ONNX Runtime int8 (app.py --quantize)",
    }

    def __init__(self, model_dir: str, quantize: bool, engine: str):
        self.classifier = ReviewClassifier(model_dir, quantize=quantize, engine=engine)
        self.name = self.NAMES[self.classifier.engine]

    def one(self, text):
        return self.classifier.predict_one(text)

    def labels(self, texts):
        return [p.label for p in self.classifier.predict(texts, batch_size=BATCH)]


class EveryLinearInt8Path(ClassifierPath):
    """The alternative app.py does not take: every Linear layer in int8 (torch.ao quantize_dynamic over nn.Linear)."""

    def __init__(self, model_dir: str, per_channel: bool):
        super().__init__(model_dir, quantize=False, engine="pytorch")
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig if per_channel else None
        spec = {torch.nn.Linear: qconfig} if qconfig else {torch.nn.Linear}
        self.classifier.model = torch.ao.quantization.quantize_dynamic(self.classifier.model, spec, dtype=torch.qint8)
        self.name = f"alternative: every Linear int8 ({'per-channel' if per_channel else 'per-tensor'} weights)"


class DynamoExportPath(ClassifierPath):
    """The ONNX copy as the project wrote it before 2026-12-01 (torch.export/dynamo exporter), whose attention
    ONNX Runtime does not fuse: the baseline of the TorchScript export that finetune/onnx_export.py now writes."""

    def __init__(self, model_dir: str, quantize: bool, tmp: Path):
        folder = tmp / "dynamo-export"
        if not folder.exists():
            import shutil

            shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns("checkpoint-*", "onnx"))
            (folder / "onnx").mkdir()
            dynamo_export(folder, folder / artifacts.ONNX_MODEL_FILE)
            onnx_export._quantize(folder / artifacts.ONNX_MODEL_FILE, folder / artifacts.ONNX_QUANTIZED_FILE)
        super().__init__(str(folder), quantize=quantize, engine="onnxruntime")
        self.name = f"before: ONNX Runtime {'int8' if quantize else 'fp32'}, dynamo export"


def dynamo_export(folder: Path, path: Path) -> None:
    import warnings

    import onnx
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).float().eval()
    inputs = dict(AutoTokenizer.from_pretrained(folder)(["a fine film", "a dull one"], padding=True, return_tensors="pt"))
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (), kwargs=inputs, input_names=list(inputs), output_names=["logits"],
                                    dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
                                    opset_version=onnx_export.OPSET, dynamo=True, external_data=False, verbose=False)
    proto = program.model_proto
    weights = {init.name for init in proto.graph.initializer}
    annotations = [info for info in proto.graph.value_info if info.name not in weights]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(annotations)
    onnx.save(proto, str(path))


def latency_ms(path, texts: list[str]) -> tuple[float, float]:
    for text in texts[:5]:
        path.one(text)
    times = []
    for text in texts:
        start = time.perf_counter()
        path.one(text)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def throughput(path, texts: list[str]) -> float:
    path.labels(texts[:BATCH])
    start = time.perf_counter()
    path.labels(texts)
    return len(texts) / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=artifacts.DEFAULT_OUTPUT_DIR, help="a fine-tuned model folder")
    parser.add_argument("--latency_reviews", type=int, default=100)
    parser.add_argument("--yelp_like_reviews", type=int, default=256)
    parser.add_argument("--skip_alternatives", action="store_true",
                        help="leave out the rows for int8 choices app.py does not make")
    args = parser.parse_args(argv)
    require_trained_model(args.model)
    if not (Path(args.model) / artifacts.ONNX_MODEL_FILE).is_file():
        sys.exit(f"error: {args.model} has no ONNX copy. Write one: .venv/bin/python -m finetune.onnx_export {args.model}")
    quiet_libraries()
    test = load_embedded_reviews()["test"]  # the split every embedded run is scored on
    texts, gold = list(test["text"]), list(test["label"])
    paths = [PipelinePath(args.model)] + [ClassifierPath(args.model, quantize, engine)
                                          for engine in ("pytorch", "onnxruntime") for quantize in (False, True)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    paths += [DynamoExportPath(args.model, quantize, tmp) for quantize in (False, True)]
    if not args.skip_alternatives:
        paths += [EveryLinearInt8Path(args.model, per_channel=False), EveryLinearInt8Path(args.model, per_channel=True)]
    tokenizer = paths[1].classifier.tokenizer
    long_texts = reviews_of_length(texts, tokenizer, 150, args.latency_reviews)
    yelp_like = yelp_like_reviews(texts, tokenizer, args.yelp_like_reviews, seed=1)

    print(f"Machine: {machine_line()}\nModel: {args.model}\n")
    # All latencies first, then the batch runs: measured after the batch runs, single-review latency
    # came out 20-40% higher here (cause not pinned down), which would penalise the later paths.
    latencies = {path.name: latency_ms(path, long_texts) for path in paths}
    rows, base = [], None
    for path in paths:
        p50, p95 = latencies[path.name]
        real = throughput(path, texts)
        yelp = throughput(path, yelp_like)
        labels = path.labels(texts)
        accuracy = sum(p == g for p, g in zip(labels, gold)) / len(gold)
        base = base or {"real": real, "yelp": yelp, "accuracy": accuracy, "labels": labels}
        same = sum(a == b for a, b in zip(labels, base["labels"]))
        rows.append([path.name, p50, p95, real, f"{real / base['real']:.1f}x", yelp, f"{yelp / base['yelp']:.1f}x",
                     f"{accuracy:.4f}", f"{(accuracy - base['accuracy']) * 100:+.2f}", f"{same:,}/{len(labels):,}"])
        print(f"  measured: {path.name}", flush=True)
    headers = ["path", "p50 ms (150 tokens)", "p95 ms", f"reviews/s, test split (batch {BATCH})", "vs pipeline",
               "reviews/s, Yelp-like", "vs pipeline", "test accuracy", "points vs pipeline",
               "labels as pipeline's"]
    print(f"\n### Inference ({len(texts)} test reviews, {len(yelp_like)} Yelp-like reviews, torch threads "
          f"{torch.get_num_threads()})\n\n{markdown_table(headers, rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
