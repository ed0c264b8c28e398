"""Gradio demo: classify reviews with a fine-tuned checkpoint and show how it trained.

    python app.py                                  # the default run: outputs/all-minilm-l6-v2-rotten-tomatoes
    MODEL_ID=outputs/<run> python app.py           # any local model folder
    MODEL_ID=me/minilm-reviews python app.py       # a Hub repo (private: export HF_TOKEN)
    python app.py --model_id me/minilm-reviews --quantize --port 7860

API (gradio_client): /classify (text -> label + confidences), /classify_batch (file, column
-> table + CSV), /metrics (-> history table, plots, confusion matrix, card summary).
"""

import argparse
import csv
import io
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # it would look up two hosts at start

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from finetune import artifacts  # noqa: E402

MAX_REVIEW_CHARS = 20_000  # one review; the model reads at most its max length in tokens anyway
MAX_BATCH_ROWS = 1_000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
CONCURRENCY_LIMIT = 2  # model calls at once: a burst queues instead of exhausting memory
QUEUE_SIZE = 64
EXAMPLES = [
    "A gorgeous, moving film with a cast that makes every scene count.",
    "Two hours of my life I will never get back: dull, loud and badly written.",
    "The food was fine, but the service was painfully slow and the room was cold.",
]
TRAIN_COMMAND = "./setup.sh && .venv/bin/accelerate launch finetune/train.py"


@dataclass
class Run:
    """What the app shows: a loaded classifier (or why there is none) and the run's stored files."""

    model_id: str
    classifier: object | None = None
    problem: str | None = None
    history: list[dict] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    card_metadata: dict = field(default_factory=dict)


def load_run(model_id: str, quantize: bool = False) -> Run:
    """Load the model once, at start. A missing model becomes a message on the page."""
    from finetune.inference import ReviewClassifier

    run = Run(model_id=model_id)
    token = os.environ.get("HF_TOKEN") or None
    try:
        run.classifier = ReviewClassifier(model_id, token=token, quantize=quantize)
    except Exception as err:  # OSError (no folder/repo), HTTP errors, bad files: all end the same way
        run.problem = (
            f"No model could be loaded from `{model_id}` ({type(err).__name__}: {str(err).splitlines()[0][:300]}).\n\n"
            f"Train the default model with `{TRAIN_COMMAND}`, or set `MODEL_ID` to a model folder or a Hub repo "
            "id (and `HF_TOKEN` for a private repo)."
        )
        return run
    try:
        files = artifacts.fetch_run_files(model_id, token=token)
    except Exception as err:
        run.problem = f"The model loaded, but its training files could not be read ({err})."
        return run
    if files[artifacts.HISTORY_FILE]:
        run.history = artifacts.read_json(files[artifacts.HISTORY_FILE].parent, artifacts.HISTORY_FILE)
    if files[artifacts.RESULTS_FILE]:
        run.results = artifacts.read_json(files[artifacts.RESULTS_FILE].parent, artifacts.RESULTS_FILE)
    if files[artifacts.CONFIG_FILE]:
        run.config = yaml.safe_load(files[artifacts.CONFIG_FILE].read_text()) or {}
    if files[artifacts.CARD_FILE]:
        run.card_metadata = _front_matter(files[artifacts.CARD_FILE].read_text())
    return run


def _front_matter(text: str) -> dict:
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            return yaml.safe_load(parts[1]) or {}
    return {}


# --- predictions ------------------------------------------------------------------------------


def classify(run: Run, text: str) -> tuple[dict[str, float], str]:
    _require_model(run)
    text = (text or "").strip()
    if not text:
        raise gr.Error("Type or paste a review first.")
    if len(text) > MAX_REVIEW_CHARS:
        raise gr.Error(f"That review has {len(text):,} characters; the limit is {MAX_REVIEW_CHARS:,}.")
    prediction = run.classifier.predict_one(text)
    note = f"Read {prediction.tokens} tokens."
    if prediction.truncated:
        note += f" The review is longer than the model's {run.classifier.max_length} tokens: only its beginning was read."
    return prediction.scores, note


def classify_batch(run: Run, file_path: str | None, column: str | None) -> tuple[pd.DataFrame, str]:
    _require_model(run)
    texts = read_reviews(file_path, column)
    predictions = run.classifier.predict(texts)
    table = pd.DataFrame(
        {
            "review": texts,
            "label": [p.label for p in predictions],
            "confidence": [round(p.scores[p.label], 4) for p in predictions],
            **{f"p({name})": [round(p.scores[name], 4) for p in predictions] for name in run.classifier.label_names},
            "truncated": [p.truncated for p in predictions],
        }
    )
    out = Path(tempfile.mkdtemp(prefix="predictions-")) / "predictions.csv"
    table.to_csv(out, index=False)
    return table, str(out)


def read_reviews(file_path: str | None, column: str | None) -> list[str]:
    """Reviews from a CSV (the chosen column) or a text file (one per line), within the limits."""
    if not file_path:
        raise gr.Error("Upload a CSV or text file of reviews first.")
    path = Path(file_path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise gr.Error(f"The file has {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise gr.Error("The file is not UTF-8 text: upload a .csv or .txt file of reviews.") from None
    if "\x00" in text:
        raise gr.Error("The file looks binary, not text: upload a .csv or .txt file of reviews.")
    if path.suffix.lower() == ".csv":
        columns, rows = _csv_rows(text)
        if column not in columns:
            raise gr.Error(f"Column '{column}' is not in the file. Its columns: {', '.join(columns)}.")
        texts = [row.get(column) or "" for row in rows]
    else:
        texts = text.splitlines()
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise gr.Error("The file holds no reviews.")
    if len(texts) > MAX_BATCH_ROWS:
        raise gr.Error(f"The file has {len(texts):,} reviews; the limit is {MAX_BATCH_ROWS:,} per request.")
    return texts


def _csv_rows(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as err:
        raise gr.Error(f"The CSV could not be read ({err}).") from None
    return list(reader.fieldnames or []), rows


def file_columns(file_path: str | None):
    """Column choices once a file is uploaded: a CSV's header, or the single line column of a text file."""
    if not file_path or Path(file_path).suffix.lower() != ".csv":
        return gr.Dropdown(choices=["(one review per line)"], value="(one review per line)")
    try:
        with open(file_path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error):
        header = []
    preferred = next((c for c in header if c.lower() in ("text", "review", "content")), header[0] if header else None)
    return gr.Dropdown(choices=header, value=preferred)


def _require_model(run: Run) -> None:
    if run.classifier is None:
        raise gr.Error(run.problem or "No model is loaded.")


# --- training metrics ---------------------------------------------------------------------------


def metrics_view(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """History table, loss plot data, score plot data, confusion matrix, card summary."""
    keys = ["epoch", "step", "train_loss", "eval_loss", "accuracy", "precision", "recall", "f1"]
    history = pd.DataFrame([{k: row.get(k) for k in keys} for row in run.history], columns=keys)
    losses = _long(history, ["train_loss", "eval_loss"], "loss")
    scores = _long(history, ["accuracy", "f1"], "score")
    return history.round(4), losses, scores, confusion_table(run), card_summary(run)


def _long(history: pd.DataFrame, columns: list[str], value_name: str) -> pd.DataFrame:
    if history.empty:
        return pd.DataFrame({"epoch": [], value_name: [], "series": []})
    frame = history.melt(id_vars="epoch", value_vars=columns, var_name="series", value_name=value_name)
    return frame.dropna()


def confusion_table(run: Run) -> pd.DataFrame:
    matrices = run.results.get("confusion_matrices", {})
    split = "test" if "test" in matrices else "validation"
    if split not in matrices:
        return pd.DataFrame()
    names = run.results.get("label_names", [])
    frame = pd.DataFrame(matrices[split], columns=[f"predicted {n}" for n in names])
    frame.insert(0, f"true ({split})", names)
    return frame


def card_summary(run: Run) -> str:
    if run.problem:
        return run.problem
    if not run.results:
        return f"`{run.model_id}` has no stored training metrics (it was not trained with this project)."
    meta, training = run.card_metadata, run.config.get("training", {})
    sizes = run.results.get("split_sizes", {})
    lines = [
        f"**Model**: `{run.model_id}`" + (" (int8 quantized for serving)" if getattr(run.classifier, "quantized", False) else ""),
        f"**Base model**: `{meta.get('base_model') or run.config.get('model', {}).get('model_name_or_path')}`",
        f"**Dataset**: {_dataset_name(meta)} ({', '.join(f'{k} {v:,}' for k, v in sizes.items())} reviews)",
        f"**Labels**: {', '.join(run.results.get('label_names', []))}",
        "**Hyperparameters**: " + ", ".join(
            f"{k} {training[k]}" for k in ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed")
            if k in training
        ),
    ]
    for split, values in run.results.get("scores", {}).items():
        lines.append(f"**{split.capitalize()}**: " + ", ".join(
            f"{m} {values[m]:.4f}" for m in ("accuracy", "precision", "recall", "f1") if m in values))
    return "\n\n".join(lines)


def _dataset_name(meta: dict) -> str:
    try:
        return meta["model-index"][0]["results"][0]["dataset"]["name"]
    except (KeyError, IndexError, TypeError):
        return "unknown"


# --- the page -----------------------------------------------------------------------------------


def build_demo(run: Run) -> gr.Blocks:
    max_tokens = run.classifier.max_length if run.classifier else 512
    labels = ", ".join(run.classifier.label_names) if run.classifier else "-"
    history, losses, scores, confusion, summary = metrics_view(run)
    with gr.Blocks(title="Review classifier") as demo:
        gr.Markdown(f"# Review classifier\nModel: `{run.model_id}` · labels: {labels}")
        if run.problem:
            gr.Markdown(f"### ⚠️ {run.problem}", elem_id="problem")
        with gr.Tab("Classify"):
            review = gr.Textbox(label="Review", lines=5, placeholder="Paste a review…")
            button = gr.Button("Classify", variant="primary")
            label = gr.Label(label="Prediction (every class, with its confidence)", num_top_classes=None)
            note = gr.Markdown()
            gr.Examples(EXAMPLES, inputs=review)
            gr.Markdown(f"Reviews longer than {max_tokens} tokens are truncated: the model reads their beginning only.")
            button.click(lambda t: classify(run, t), review, [label, note], api_name="classify")
            review.submit(lambda t: classify(run, t), review, [label, note], api_name=False)
        with gr.Tab("Batch"):
            gr.Markdown(f"Upload a CSV (choose the review column) or a text file with one review per line. "
                        f"Up to {MAX_BATCH_ROWS:,} reviews and {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
            upload = gr.File(label="Reviews file", file_types=[".csv", ".txt"], type="filepath")
            column = gr.Dropdown(label="Review column", choices=[], allow_custom_value=True)
            run_batch = gr.Button("Classify file", variant="primary")
            table = gr.Dataframe(label="Predictions", interactive=False)
            download = gr.File(label="Download predictions (CSV)")
            upload.change(file_columns, upload, column, api_name=False)
            run_batch.click(lambda f, c: classify_batch(run, f, c), [upload, column], [table, download],
                            api_name="classify_batch")
        with gr.Tab("Training metrics"):
            summary_box = gr.Markdown(summary)
            history_table = gr.Dataframe(history, label="Per-epoch history", interactive=False)
            with gr.Row():
                loss_plot = gr.LinePlot(losses, x="epoch", y="loss", color="series", title="Loss per epoch",
                                        elem_id="loss-plot")
                score_plot = gr.LinePlot(scores, x="epoch", y="score", color="series",
                                         title="Validation accuracy and F1 per epoch", elem_id="score-plot")
            confusion_table_box = gr.Dataframe(confusion, label="Confusion matrix (rows: true label)",
                                               interactive=False)
            refresh = gr.Button("Reload metrics")
            refresh.click(lambda: metrics_view(run), None,
                          [history_table, loss_plot, score_plot, confusion_table_box, summary_box],
                          api_name="metrics")
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fine-tuned review classifier.")
    parser.add_argument("--model_id", default=os.environ.get("MODEL_ID", artifacts.DEFAULT_OUTPUT_DIR),
                        help="model folder or Hub repo id (env MODEL_ID; default: the default training run)")
    parser.add_argument("--quantize", action="store_true", default=os.environ.get("QUANTIZE", "") == "1",
                        help="int8 dynamic quantization of Linear layers (faster on CPU; env QUANTIZE=1)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    build_demo(load_run(args.model_id, quantize=args.quantize)).launch(server_name=args.host, server_port=args.port)
