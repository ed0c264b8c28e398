"""A burst of concurrent callers against the demo: are they all answered, and how fast?

    python bench/burst.py                                    # 200 callers, a tiny model built here
    python bench/burst.py --callers 200 --file_jobs 2        # with 2 file jobs sent at the same time
    python bench/burst.py --model_id outputs/<run>           # a trained model folder (or a Hub repo id)

It starts `python app.py` (so the launch and queue settings are the production ones) on a free
port, opens one gradio_client session per caller, then releases every caller at once: each sends
one review to /classify. File jobs (1,000 reviews each, --file_jobs) go to /classify_batch at the
same moment. It prints how many were answered or failed (and why) and the latency percentiles,
measured from the release.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table  # noqa: E402
from startup import free_port  # noqa: E402

WORDS = ["great", "wonderful", "loved", "awful", "terrible", "boring", "the", "film", "was", "plot", "acting", "cast"]


def build_tiny_model(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT classifier (hidden 32) with a vocabulary of WORDS: what the
    tests use, so the burst measures the serving machinery more than the model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(WORDS)]) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab), model_max_length=64)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def start_demo(model_id: str, port: int, timeout: float = 180):
    """`python app.py` on the model; returns the process once /classify answers."""
    from gradio_client import Client

    env = {**os.environ, "MODEL_ID": model_id, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}")
        try:
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict("warm up", api_name="/classify")
            return process
        except Exception:
            if time.perf_counter() - start > timeout:
                process.terminate()
                raise TimeoutError(f"app.py did not answer in {timeout} s") from None
            time.sleep(0.2)


def burst(url: str, callers: int, file_jobs: int, reviews_file: Path) -> dict[str, list]:
    """Every caller and file job waits at a barrier, then all send at once. Returns, per kind,
    (seconds from the release, error or None) for each."""
    from gradio_client import Client, handle_file

    def connect(_):
        return Client(url, verbose=False)

    with ThreadPoolExecutor(16) as pool:  # sessions first, off the clock
        clients = list(pool.map(connect, range(callers + file_jobs)))
    barrier = threading.Barrier(callers + file_jobs + 1)
    release: list[float] = []

    def call(index: int):
        client = clients[index]
        barrier.wait()
        try:
            if index < callers:
                client.predict(f"{WORDS[index % len(WORDS)]} film, caller {index}", api_name="/classify")
            else:
                client.predict(handle_file(str(reviews_file)), "(one review per line)", api_name="/classify_batch")
            error = None
        except Exception as err:
            error = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
        return ("review" if index < callers else "file job", time.perf_counter() - release[0], error)

    with ThreadPoolExecutor(callers + file_jobs) as pool:
        futures = [pool.submit(call, i) for i in range(callers + file_jobs)]
        time.sleep(0.5)  # every thread at the barrier
        release.append(time.perf_counter())
        barrier.wait()
        outcomes = [f.result() for f in futures]
    by_kind: dict[str, list] = collections.defaultdict(list)
    for kind, seconds, error in outcomes:
        by_kind[kind].append((seconds, error))
    return by_kind


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_id", default=None, help="model folder or Hub repo id (default: a tiny model built here)")
    parser.add_argument("--callers", type=int, default=200, help="concurrent single-review callers")
    parser.add_argument("--file_jobs", type=int, default=0, help="file jobs (1,000 reviews each) sent at the same time")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="burst-") as scratch:
        model_id = args.model_id or str(build_tiny_model(Path(scratch) / "tiny-model"))
        reviews_file = Path(scratch) / "reviews.txt"
        reviews_file.write_text("\n".join(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(20)) for i in range(1000)))
        port = free_port()
        process = start_demo(model_id, port)
        try:
            results = burst(f"http://127.0.0.1:{port}/", args.callers, args.file_jobs, reviews_file)
        finally:
            process.terminate()
            process.wait(timeout=30)

    rows, failures = [], collections.Counter()
    for kind, outcomes in results.items():
        answered = [seconds for seconds, error in outcomes if error is None]
        failures.update(error for _, error in outcomes if error is not None)
        rows.append([kind, len(outcomes), len(answered), len(outcomes) - len(answered),
                     percentile(answered, 0.5), percentile(answered, 0.95), max(answered, default=float("nan"))])
    print(f"Machine: {machine_line()}\nModel: {args.model_id or 'tiny BERT built from a config (2 layers, hidden 32)'}\n\n"
          f"### Burst: {args.callers} single-review callers + {args.file_jobs} file jobs, all released at once\n\n"
          + markdown_table(["request", "sent", "answered", "failed", "p50 s", "p95 s", "max s"], rows))
    for error, count in failures.most_common():
        print(f"- {count} x {error}")
    all_reviews_answered = all(error is None for _, error in results.get("review", []))
    return 0 if all_reviews_answered else 1


if __name__ == "__main__":
    sys.exit(main())
