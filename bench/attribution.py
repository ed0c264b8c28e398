"""The demo's word attributions (occlusion): what one explanation costs, against one classification.

    python bench/attribution.py                      # a MiniLM-shaped model from the embedded weights
    python bench/attribution.py --model outputs/<run>

Occlusion leaves each word (or span of words) out in turn and runs the review and all its variants through
the model in one batch (finetune/attribution.py). Rows: per engine the demo can serve (ONNX Runtime fp32 and
int8, PyTorch fp32), for reviews of 20, 60 and 120 words made of real critic snippets: the median time of
one classification (the baseline, as `/classify` runs it), of one explanation (`/explain`), and their ratio.
The model's weights do not matter for speed: without --model, the embedded MiniLM gets a fresh 2-class head
and an ONNX copy in a temporary folder.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, quiet_libraries  # noqa: E402

from finetune.attribution import MAX_SPANS, occlusion  # noqa: E402
from finetune.data import load_embedded_reviews  # noqa: E402
from finetune.inference import ReviewClassifier  # noqa: E402

WORD_COUNTS = (20, 60, 120)


def model_folder(tmp: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune import embedded
    from finetune.onnx_export import export_onnx

    source = embedded.model_path()
    folder = tmp / "minilm"
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    export_onnx(folder, ["a fine film", "a dull film"])
    return folder


def review_of(words: int, snippets: list[str]) -> str:
    out: list[str] = []
    for snippet in snippets:
        out.extend(snippet.split())
        if len(out) >= words:
            break
    return " ".join(out[:words])


def median_ms(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a model folder with an ONNX copy (default: see above)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max_spans", type=int, nargs="+", default=[MAX_SPANS],
                        help="bounds on the variants to compare (default: the demo's)")
    args = parser.parse_args(argv)
    quiet_libraries()
    snippets = list(load_embedded_reviews()["train"]["text"])[:400]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else model_folder(Path(tmp))
        engines = [("onnxruntime fp32", dict(engine="onnxruntime")),
                   ("onnxruntime int8", dict(engine="onnxruntime", quantize=True)),
                   ("pytorch fp32", dict(engine="pytorch"))]
        rows = []
        for name, options in engines:
            classifier = ReviewClassifier(folder, **options)
            for words in WORD_COUNTS:
                text = review_of(words, snippets)
                classify = median_ms(lambda: classifier.predict_one(text), args.repeats)
                for bound in args.max_spans:
                    explain = median_ms(lambda: occlusion(classifier, text, bound), args.repeats)
                    spans = len(occlusion(classifier, text, bound).spans)
                    rows.append([name, words, bound, spans, round(classify, 1), round(explain, 1),
                                 f"{explain / classify:.1f}x"])
    print(machine_line())
    print(f"the demo's bound: {MAX_SPANS} spans; median of {args.repeats} runs after a warm-up\n")
    print(markdown_table(["engine", "words", "max spans", "spans left out", "classify ms", "explain ms",
                          "explain / classify"],
                         rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
