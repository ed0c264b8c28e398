"""Gradio demo: classify reviews with a fine-tuned checkpoint and show how it trained.

    python app.py                                  # the default run: outputs/all-minilm-l6-v2-rotten-tomatoes
    MODEL_ID=outputs/<run> python app.py           # any local model folder
    MODEL_ID=me/minilm-reviews python app.py       # a Hub repo (private: export HF_TOKEN)
    python app.py --model_id me/minilm-reviews --quantize --port 7860
    python app.py --engine pytorch                 # not the ONNX copy, even if the model has one

A model with an ONNX copy (onnx/model.onnx, written by every training run) is served by ONNX Runtime:
fp32 by default, int8 with --quantize; one without it by PyTorch. The page says which.

API (gradio_client): /classify (text -> label + confidences), /classify_batch (file, column
-> table + CSV), /metrics (-> history table, plots, confusion matrix, card summary).

Built to be public (a Space): uploads, reviews, concurrency, the queue and the cache are bounded by
the constants below, and a corrupt run file only costs its metrics.
"""

import argparse
import asyncio
import codecs
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # it would look up two hosts at start

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from finetune import artifacts  # noqa: E402

# What one request may send. The upload limit is enforced by the server while the file streams in
# (launch_settings): a larger upload is cut off at 2 MB and refused with HTTP 413, never stored whole.
MAX_REVIEW_CHARS = 20_000  # one review; the model reads at most its max length in tokens anyway
MAX_BATCH_ROWS = 1_000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
HEADER_BYTES = 64 * 1024  # what the column picker reads of a CSV to find its header row

# How many requests run and wait. Gradio limits concurrency per *group* of events and the queue's
# length over all events together; it has no cap per event. So: every event that calls the model
# (classify button, Enter in the textbox, file job) joins the one group "model", at most
# MODEL_CONCURRENCY forward passes at once (2 vCPU: more only oversubscribes the cores and adds
# memory). The queue holds a 200-caller burst with room to spare; at ~20 ms per MiniLM review it
# drains in seconds. A file job holds its slot for tens of seconds (1,000 reviews), so at most
# MAX_FILE_JOBS of them may be waiting or running: more are refused when they arrive (a validator
# runs before a request joins the queue), and a handler-side guard holds the line if several arrive
# in the same instant. File jobs thus take at most one queue place and one of the two slots:
# single reviews always keep the other.
MODEL_CONCURRENCY = 2
QUEUE_SIZE = 256
MAX_FILE_JOBS = 1
FILE_JOB_BUSY = "Another file is being classified. Files go one at a time: try again in a minute."

# Gradio's cache (uploads and prediction files): every CACHE_CLEANING[0] s, files older than
# CACHE_CLEANING[1] s are deleted, and so is what Gradio's cleaning leaves behind (sweep_cache).
# A download link thus lives at least an hour; disk use is bounded by an hour of traffic.
CACHE_CLEANING = (600, 3600)

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
    file_problems: list[str] = field(default_factory=list)  # run files that could not be read, and why
    history: list[dict] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    card_metadata: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)  # hp_search.json, when the run searched its hyperparameters
    revision: str | None = None  # the Hub commit, branch or tag served (MODEL_REVISION); None: main
    # per-review predictions of the run's scored splits (predictions_<split>.csv rows)
    test_predictions: list[dict] = field(default_factory=list)
    validation_predictions: list[dict] = field(default_factory=list)


def _front_matter(text: str) -> dict:
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            return yaml.safe_load(parts[1]) or {}
    return {}


# Each run file: the Run field it fills, and how its text becomes that field's value.
RUN_FILE_READERS = {
    artifacts.HISTORY_FILE: ("history", json.loads),
    artifacts.RESULTS_FILE: ("results", json.loads),
    artifacts.CONFIG_FILE: ("config", lambda text: yaml.safe_load(text) or {}),
    artifacts.CARD_FILE: ("card_metadata", _front_matter),
    artifacts.SEARCH_FILE: ("search", json.loads),
    artifacts.predictions_file("test"): ("test_predictions", lambda text: _csv_records(text)),
    artifacts.predictions_file("validation"): ("validation_predictions", lambda text: _csv_records(text)),
}


def load_run(model_id: str, quantize: bool = False, revision: str | None = None, engine: str = "auto") -> Run:
    """Load the model once, at start. A missing model becomes a message on the page, and a run file
    that is corrupt or cut short becomes a message on the metrics tab: the demo still serves."""
    from finetune.inference import ReviewClassifier

    run = Run(model_id=model_id, revision=revision)
    token = os.environ.get("HF_TOKEN") or None
    try:
        run.classifier = ReviewClassifier(model_id, token=token, quantize=quantize, engine=engine, revision=revision)
    except Exception as err:  # OSError (no folder/repo), HTTP errors, bad files: all end the same way
        run.problem = (
            f"No model could be loaded from `{model_id}` ({type(err).__name__}: {str(err).splitlines()[0][:300]}).\n\n"
            f"Train the default model with `{TRAIN_COMMAND}`, or set `MODEL_ID` to a model folder or a Hub repo "
            "id (and `HF_TOKEN` for a private repo)."
        )
        return run
    try:
        files = artifacts.fetch_run_files(model_id, token=token, names=tuple(RUN_FILE_READERS), revision=revision)
    except Exception as err:
        run.problem = f"The model loaded, but its training files could not be read ({err})."
        return run
    for name, path in files.items():
        if path is None or name not in RUN_FILE_READERS:
            continue
        attribute, parse = RUN_FILE_READERS[name]
        try:
            text = path.read_text(encoding="utf-8")
            if not text.strip():
                raise ValueError("the file is empty")
            value = parse(text)
        except (OSError, ValueError, yaml.YAMLError) as err:  # ValueError: bad JSON or bad UTF-8
            run.file_problems.append(f"`{name}` could not be read: {_describe(err)}. It may be cut short or corrupt.")
            continue
        expected = type(getattr(run, attribute))
        if not isinstance(value, expected) or (expected is list and not all(isinstance(r, dict) for r in value)):
            what = "a list of rows" if expected is list else "a mapping"
            run.file_problems.append(f"`{name}` holds {type(value).__name__} data where {what} was expected.")
            continue
        setattr(run, attribute, value)
    return run


def _csv_records(text: str) -> list[dict]:
    try:
        return list(csv.DictReader(io.StringIO(text)))
    except csv.Error as err:
        raise ValueError(str(err)) from err


def _describe(err: Exception) -> str:
    """An error in one line: its type and the start of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {' '.join(line.strip() for line in lines[:3])[:300]}"


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


def classify_batch(run: Run, file_path: str | None, column: str | None, out_dir: str) -> tuple[pd.DataFrame, str]:
    """Predictions for a file of reviews, as a table and as a CSV written to `out_dir` (Gradio's
    cache, which CACHE_CLEANING empties). A review past MAX_REVIEW_CHARS is cut to that length
    before tokenizing, as a single review over it would be refused, and marked truncated."""
    _require_model(run)
    reviews = read_reviews(file_path, column)
    texts = [review[:MAX_REVIEW_CHARS] for review in reviews]
    predictions = run.classifier.predict(texts)
    table = pd.DataFrame(
        {
            "review": texts,
            "label": [p.label for p in predictions],
            "confidence": [round(p.scores[p.label], 4) for p in predictions],
            **{f"p({name})": [round(p.scores[name], 4) for p in predictions] for name in run.classifier.label_names},
            "truncated": [p.truncated or len(r) > MAX_REVIEW_CHARS for p, r in zip(predictions, reviews)],
        }
    )
    # One flat file, no folder of its own: Gradio serves a file already in its cache as it is, and
    # its cache cleaning deletes it later.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    handle, out = tempfile.mkstemp(prefix="predictions-", suffix=".csv", dir=out_dir)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
        table.to_csv(stream, index=False)
    return table, out


def read_reviews(file_path: str | None, column: str | None) -> list[str]:
    """Reviews from a CSV (the chosen column) or a text file (one per line), within the limits."""
    if not file_path:
        raise gr.Error("Upload a CSV or text file of reviews first.")
    path = Path(file_path)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_UPLOAD_BYTES + 1)  # never more than the limit, whatever the file holds
    if len(raw) > MAX_UPLOAD_BYTES:
        size = path.stat().st_size
        raise gr.Error(f"The file has {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise gr.Error("The file is not UTF-8 text: upload a .csv or .txt file of reviews.") from None
    if "\x00" in text:
        raise gr.Error("The file looks binary, not text: upload a .csv or .txt file of reviews.")
    if path.suffix.lower() == ".csv":
        columns, rows = _csv_rows(text)
        if not column:
            raise gr.Error(f"Choose the column that holds the reviews: {', '.join(columns)}.")
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
    with open(file_path, "rb") as handle:
        header = csv_header(handle.read(HEADER_BYTES), whole=handle.read(1) == b"")
    preferred = next((c for c in header if c.lower() in ("text", "review", "content")), header[0] if header else None)
    return gr.Dropdown(choices=header, value=preferred)


def csv_header(head: bytes, whole: bool) -> list[str]:
    """The header row of a CSV from the file's first bytes (all of it if `whole`); none if those
    bytes are not UTF-8 text or the row does not end within them."""
    try:  # an incremental decoder keeps a character cut at the end of `head` instead of failing on it
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=whole)
    except UnicodeDecodeError:
        return []
    if not whole and "\n" not in text and "\r" not in text:
        return []
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        return []


def _require_model(run: Run) -> None:
    if run.classifier is None:
        raise gr.Error(run.problem or "No model is loaded.")


# --- training metrics ---------------------------------------------------------------------------

HISTORY_COLUMNS = ["epoch", "step", "train_loss", "eval_loss", "accuracy", "precision", "recall", "f1"]
# What a run file that parses but holds unexpected values raises when it is shown.
SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def metrics_view(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """History table, loss plot data, score plot data, confusion matrix, card summary.

    Never raises for a run's files: what cannot be shown is named in the summary instead."""
    rows = [{k: row.get(k) for k in HISTORY_COLUMNS} for row in run.history]
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS).apply(pd.to_numeric, errors="coerce")
    losses = _long(history, ["train_loss", "eval_loss"], "loss")
    scores = _long(history, ["accuracy", "f1"], "score")
    problems = list(run.file_problems)
    try:
        confusion = confusion_table(run)
    except SHAPE_ERRORS as err:
        confusion = pd.DataFrame()
        problems.append(f"`{artifacts.RESULTS_FILE}`: its confusion matrix could not be shown ({_describe(err)}).")
    try:
        summary = card_summary(run)
    except SHAPE_ERRORS as err:
        summary = f"`{run.model_id}`"
        problems.append(f"`{artifacts.RESULTS_FILE}`, `{artifacts.CONFIG_FILE}` or `{artifacts.CARD_FILE}` holds "
                        f"values the summary could not show ({_describe(err)}).")
    if problems:
        summary = ("**⚠️ Some of the run's files could not be shown** (predictions are not affected):\n\n"
                   + "\n".join(f"- {p}" for p in problems) + "\n\n" + summary)
    return history.round(4), losses, scores, confusion, summary


def search_view(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The hyperparameter search's trials: a table, score against learning rate, and a summary line."""
    search = run.search
    empty = pd.DataFrame({"learning_rate": [], "score": [], "state": []})
    if not search:
        return pd.DataFrame(), empty, "This run did not search its hyperparameters (`--hp_search_trials`)."
    try:
        names = list(search["space"])
        rows = [{"trial": t["number"], "state": t["state"], search["metric"]: t["value"], "seconds": t["seconds"],
                 **{name: t["params"].get(name) for name in names}} for t in search["trials"]]
        plot = pd.DataFrame([{"learning_rate": t["params"].get("learning_rate"), "score": t["value"],
                              "state": t["state"]} for t in search["trials"]]).dropna()
        note = (f"{len(rows)} trials on {search['train_samples']:,} training reviews, scored by validation "
                f"{search['metric']}; the final model used the best: "
                + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in search["best_params"].items()))
    except SHAPE_ERRORS as err:
        return pd.DataFrame(), empty, f"`{artifacts.SEARCH_FILE}` could not be shown ({_describe(err)})."
    return pd.DataFrame(rows).round(4), plot if "learning_rate" in names else empty, note


MISTAKES_SHOWN = 20


def evaluations_view(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Every evaluation in the card's model-index (the run's own splits and `finetune.score` results), and
    the run's most confidently wrong reviews: what a user reads to learn what the model has not understood."""
    try:
        evaluations = pd.DataFrame(card_evaluations(run.card_metadata))
    except SHAPE_ERRORS as err:
        evaluations = pd.DataFrame({"problem": [f"the card's model-index could not be shown ({_describe(err)})"]})
    split = next((s for s, rows in (("test", run.test_predictions), ("validation", run.validation_predictions))
                  if rows and "label" in rows[0]), None)
    if split is None:
        return evaluations, pd.DataFrame(), ("This run stored no per-review predictions of a labelled split "
                                             f"(`{artifacts.predictions_file('test')}`): nothing to show here.")
    rows = run.test_predictions if split == "test" else run.validation_predictions
    try:
        wrong = confident_mistakes(rows)
    except SHAPE_ERRORS as err:
        return evaluations, pd.DataFrame(), f"`{artifacts.predictions_file(split)}` could not be shown ({_describe(err)})."
    note = (f"**{len(wrong):,} of {len(rows):,}** {split} reviews are wrong. The {min(len(wrong), MISTAKES_SHOWN)} "
            "the model was surest about are below, surest first: the kinds of review it has not understood "
            "(or labels that are wrong).")
    return evaluations, pd.DataFrame(wrong[:MISTAKES_SHOWN]), note


def card_evaluations(card_metadata: dict) -> list[dict]:
    """One row per dataset and split in the card's model-index, with its scores."""
    rows = []
    for entry in card_metadata.get("model-index") or []:
        for result in entry.get("results") or []:
            dataset = result.get("dataset") or {}
            name = dataset.get("name") or dataset.get("type")
            rows.append({"dataset": name + (f" ({dataset['config']})" if dataset.get("config") else ""),
                         "split": dataset.get("split"),
                         **{m["type"]: round(float(m["value"]), 4) for m in result.get("metrics") or []}})
    return rows


def confident_mistakes(rows: list[dict]) -> list[dict]:
    """The wrong predictions of a predictions_<split>.csv, most confident first."""
    wrong = [{"review": row["text"], "true label": row["label"], "predicted": row["predicted_label"],
              "confidence": round(float(row[f"p({row['predicted_label']})"]), 4)}
             for row in rows if row["label"] != row["predicted_label"]]
    return sorted(wrong, key=lambda row: -row["confidence"])


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
        if run.file_problems:  # results.json may be among them: metrics_view lists them above this
            return f"**Model**: `{run.model_id}`"
        return f"`{run.model_id}` has no stored training metrics (it was not trained with this project)."
    meta, training = run.card_metadata, run.config.get("training", {})
    sizes = run.results.get("split_sizes", {})
    lines = [
        f"**Model**: `{run.model_id}`" + (f" (served by {run.classifier.engine})" if run.classifier else ""),
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


def build_demo(run: Run, cache_cleaning: tuple[int, int] = CACHE_CLEANING) -> gr.Blocks:
    max_tokens = run.classifier.max_length if run.classifier else 512
    labels = ", ".join(run.classifier.label_names) if run.classifier else "-"
    engine = run.classifier.engine if run.classifier else "-"
    history, losses, scores, confusion, summary = metrics_view(run)
    file_job_slots = threading.BoundedSemaphore(MAX_FILE_JOBS)

    def classify_text(text):
        return classify(run, text)

    def classify_file(file_path, column):
        if not file_job_slots.acquire(blocking=False):  # only if several arrived at once (see above)
            raise gr.Error(FILE_JOB_BUSY)
        try:
            return classify_batch(run, file_path, column, download.GRADIO_CACHE)
        finally:
            file_job_slots.release()

    async def admit_file_job(file_path, column):
        """Runs as a file job arrives, before it joins the queue; async, so it reads the queue on the
        event loop that changes it."""
        busy = file_jobs_in_line(demo._queue) >= MAX_FILE_JOBS
        return gr.validate(not busy, FILE_JOB_BUSY), gr.validate(True, "")

    model_calls = {"concurrency_id": "model", "concurrency_limit": MODEL_CONCURRENCY}
    with gr.Blocks(title="Review classifier", delete_cache=cache_cleaning) as demo:
        pinned = f" at revision `{run.revision[:12]}`" if run.revision else ""
        gr.Markdown(f"# Review classifier\nModel: `{run.model_id}`{pinned} · labels: {labels} · engine: {engine}",
                    elem_id="model-line")
        if run.problem:
            gr.Markdown(f"### ⚠️ {run.problem}", elem_id="problem")
        with gr.Tab("Classify"):
            review = gr.Textbox(label="Review", lines=5, placeholder="Paste a review…")
            button = gr.Button("Classify", variant="primary")
            label = gr.Label(label="Prediction (every class, with its confidence)", num_top_classes=None)
            note = gr.Markdown()
            gr.Examples(EXAMPLES, inputs=review)
            gr.Markdown(f"Reviews longer than {max_tokens} tokens are truncated: the model reads their beginning only.")
            button.click(classify_text, review, [label, note], api_name="classify", **model_calls)
            review.submit(classify_text, review, [label, note], api_name=False, **model_calls)
        with gr.Tab("Batch"):
            gr.Markdown(f"Upload a CSV (choose the review column) or a text file with one review per line. "
                        f"Up to {MAX_BATCH_ROWS:,} reviews and {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a review "
                        f"longer than {MAX_REVIEW_CHARS:,} characters is cut to its beginning. One file at a time.")
            upload = gr.File(label="Reviews file", file_types=[".csv", ".txt"], type="filepath")
            column = gr.Dropdown(label="Review column", choices=[], allow_custom_value=True)
            run_batch = gr.Button("Classify file", variant="primary")
            table = gr.Dataframe(label="Predictions", interactive=False)
            download = gr.File(label="Download predictions (CSV)")
            upload.change(file_columns, upload, column, api_name=False)
            run_batch.click(classify_file, [upload, column], [table, download], api_name="classify_batch",
                            validator=admit_file_job, **model_calls)
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
            trials, trials_plot_data, search_note = search_view(run)
            with gr.Accordion("Hyperparameter search", open=bool(run.search)):
                search_box = gr.Markdown(search_note)
                trials_table = gr.Dataframe(trials, label="Trials", interactive=False)
                trials_plot = gr.ScatterPlot(trials_plot_data, x="learning_rate", y="score", color="state",
                                             title="Validation score against learning rate", elem_id="trials-plot")
            evaluations, mistakes, mistakes_note = evaluations_view(run)
            evaluations_table = gr.Dataframe(evaluations, label="Evaluations in the model card", interactive=False)
            with gr.Accordion("Where the model is most confidently wrong", open=True):
                mistakes_box = gr.Markdown(mistakes_note)
                mistakes_table = gr.Dataframe(mistakes, label="Most confidently wrong", interactive=False, wrap=True)
            refresh = gr.Button("Reload metrics")
            refresh.click(lambda: metrics_view(run), None,
                          [history_table, loss_plot, score_plot, confusion_table_box, summary_box],
                          api_name="metrics")
            refresh.click(lambda: search_view(run), None, [trials_table, trials_plot, search_box],
                          api_name="hp_search")
            refresh.click(lambda: evaluations_view(run), None, [evaluations_table, mistakes_table, mistakes_box],
                          api_name="evaluations")
    # api_open=False: the REST routes (/run/...) would skip the queue and its limits; outside a
    # Space Gradio leaves them open.
    demo.queue(default_concurrency_limit=MODEL_CONCURRENCY, max_size=QUEUE_SIZE, api_open=False)
    return demo


def file_jobs_in_line(queue) -> int:
    """File jobs waiting or running in Gradio's queue (gradio.queueing.Queue, read as of 6.31)."""
    waiting = [event for line in list(queue.event_queue_per_concurrency_id.values()) for event in line.queue]
    running = [event for job in queue.active_jobs if job for event in job]
    return sum(event.fn.api_name == "classify_batch" for event in waiting + running)


def sweep_cache(folder: Path, older_than: float) -> int:
    """Remove what Gradio's own cache cleaning leaves in its cache `folder`, once older than
    `older_than` s; return how many entries went.

    Gradio 6.31 keeps each upload (and each file it copies) in a folder named by the file's SHA-256,
    and its cleaning deletes the files but not those folders; and gr.File(type="filepath") creates
    an empty tmp* file at every call that reads an upload, never deleted. Without this sweep both
    pile up, a few per request. Anything else, and any folder or file that is not empty, stays."""
    removed = 0
    cutoff = time.time() - older_than
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False) and _is_sha256(entry.name):
                    os.rmdir(entry.path)  # fails, and keeps the folder, unless it is empty
                elif entry.is_file(follow_symlinks=False) and entry.name.startswith("tmp") and info.st_size == 0:
                    os.remove(entry.path)
                else:
                    continue
                removed += 1
            except OSError:
                continue
    return removed


def _is_sha256(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


@contextlib.asynccontextmanager
async def _sweep_while_serving(server):
    """The server's lifespan: sweep the cache on the schedule of the Blocks' delete_cache."""
    frequency, age = server.get_blocks().delete_cache or (None, None)

    async def sweep_forever():
        while True:
            await asyncio.sleep(frequency)
            if os.path.isdir(server.uploaded_file_dir):
                await asyncio.to_thread(sweep_cache, Path(server.uploaded_file_dir), age)

    task = asyncio.create_task(sweep_forever()) if frequency and age else None
    try:
        yield
    finally:
        if task:
            task.cancel()


def launch_settings() -> dict:
    """Settings of every launch (python app.py, and so a Space; the tests use them too): the server
    refuses an upload past MAX_UPLOAD_BYTES as it streams in, and sweeps the cache (sweep_cache)."""
    return {"max_file_size": MAX_UPLOAD_BYTES, "app_kwargs": {"lifespan": _sweep_while_serving}}


def parse_args(argv=None) -> argparse.Namespace:
    from finetune.inference import ENGINES

    parser = argparse.ArgumentParser(description="Serve a fine-tuned review classifier.")
    parser.add_argument("--model_id", default=os.environ.get("MODEL_ID", artifacts.DEFAULT_OUTPUT_DIR),
                        help="model folder or Hub repo id (env MODEL_ID; default: the default training run)")
    parser.add_argument("--model_revision", default=os.environ.get("MODEL_REVISION") or None,
                        help="branch, tag or commit of a Hub model (env MODEL_REVISION; a Space deploy pins the commit)")
    parser.add_argument("--quantize", action="store_true", default=os.environ.get("QUANTIZE", "") == "1",
                        help="serve in int8, faster on CPU: the model's int8 ONNX copy, or PyTorch's dynamic "
                        "quantization for a model without one (env QUANTIZE=1)")
    parser.add_argument("--engine", choices=ENGINES, default=os.environ.get("ENGINE", "auto"),
                        help="auto: ONNX Runtime when the model has an ONNX copy (onnx/model.onnx), else PyTorch "
                        "(env ENGINE)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    demo = build_demo(load_run(args.model_id, quantize=args.quantize, engine=args.engine,
                               revision=args.model_revision))
    demo.launch(server_name=args.host, server_port=args.port, **launch_settings())
