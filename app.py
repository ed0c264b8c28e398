"""Gradio demo: classify reviews with a fine-tuned checkpoint, see which words drove it, and see how it trained.

    python app.py                                  # the default run: outputs/all-minilm-l6-v2-rotten-tomatoes
    MODEL_ID=outputs/<run> python app.py           # any local model folder
    MODEL_ID=me/minilm-reviews python app.py       # a Hub repo (private: export HF_TOKEN)
    python app.py --model_id me/minilm-reviews --quantize --port 7860
    python app.py --engine pytorch                 # not the ONNX copy, even if the model has one
    python app.py --mcp_server                     # and the endpoints as MCP tools (on by default in a Space)

A model with an ONNX copy (onnx/model.onnx, written by every training run) is served by ONNX Runtime:
fp32 by default, int8 with --quantize; one without it by PyTorch. The page says which.

API (gradio_client): /classify (text -> label + confidences, note), /explain (text -> word attributions,
note), /classify_batch (file, column -> table, CSV, note), /metrics, /hp_search, /evaluations (README lists
their outputs); with --mcp_server the same endpoints are MCP tools at /gradio_api/mcp/ (finetune/agent_tools.py).
The run's views live in finetune/run_views.py, the server's guards in finetune/serving.py.
"""

import argparse
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # it would look up two hosts at start

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from finetune import agent_tools, artifacts, serving, tasks  # noqa: E402
from finetune.attribution import occlusion  # noqa: E402
from finetune.logs import setup_logging  # noqa: E402
from finetune.run_views import (  # noqa: E402
    MACRO_NOTE,
    RATING_NOTE,
    ServedModel,
    calibration_view,
    evaluations_view,
    example_reviews,
    header_markdown,
    load_served_model,
    metrics_view,
    search_view,
    suspects_view,
)
from finetune.serving import MAX_BATCH_ROWS, MAX_REVIEW_CHARS, MAX_UPLOAD_BYTES, InputProblem  # noqa: E402
from finetune.truncation import READ_PARTS  # noqa: E402

logger = logging.getLogger("app")

# Shown when the run stored no validation reviews to draw examples from.
EXAMPLES = [
    "A delight from start to finish: warm, funny and beautifully made.",
    "Dull, overlong and badly written; I would not recommend it.",
]
SPACE_WITHOUT_MODEL = (
    "This Space serves no model yet. **Owner:** open the Space's *Settings → Variables and secrets*, add a "
    "variable `MODEL_ID` with your model's Hub id (e.g. `me/minilm-reviews`), and for a private model a secret "
    "`HF_TOKEN` with a read token. The Space restarts by itself and serves it."
)


def refused(message: str) -> gr.Error:
    """A user's mistake: a message on the page and one line in the server's log, no traceback."""
    logger.info("request refused: %s", message)
    return gr.Error(message, print_exception=False)


def checked_review(served: ServedModel, *fields: str | None) -> str:
    """One review from the page's boxes (one per text field the model reads), within the limits."""
    if served.classifier is None:
        raise refused(served.problem or "No model is loaded.")
    names = served.text_fields
    if len(names) > 1:
        text = served.classifier.compose(dict(zip(names, fields)))
    else:
        text = (fields[0] if fields else "") or ""
    text = text.strip()
    if not text:
        raise refused("Type or paste a review first.")
    if len(text) > MAX_REVIEW_CHARS:
        raise refused(f"That review has {len(text):,} characters; the limit is {MAX_REVIEW_CHARS:,}.")
    return text


def classify(served: ServedModel, *fields: str) -> tuple[dict[str, float] | str, str]:
    """Every class with its probability; for a rating, the predicted rating in words ("4.3 out of 5"); for several
    labels, every label's probability, and the note says which pass the model's threshold."""
    text = checked_review(served, *fields)
    prediction = served.classifier.predict_one(text)
    task = served.classifier.task
    note = f"Read {prediction.tokens} tokens."
    if prediction.truncated:
        note += (f" The review is longer than the model's {served.classifier.max_length} tokens: only "
                 f"{READ_PARTS[served.classifier.truncation]} was read, as in training.")
    if task.problem_type == tasks.REGRESSION:
        rounded = f" (rounds to {prediction.label})" if task.rating_values else ""
        return task.describe_value(prediction.value), f"Predicted {task.label_names[0]}: {prediction.value:.3f}{rounded}. {note}"
    if task.problem_type == tasks.MULTI_LABEL:
        chosen = ", ".join(f"**{name}**" for name in prediction.labels) or "none"
        note = f"Labels at or above the model's threshold {task.threshold:.2f}: {chosen}. {note}"
    if prediction.unsure:
        note = (f"**Unsure**: the model leans to {prediction.label} at {prediction.scores[prediction.label]:.3f}, below "
                f"its confidence threshold {task.min_confidence:.3f} (under it, validation answers fell short of the "
                f"precision asked for in training). {note}")
    return prediction.scores, note


def explain(served: ServedModel, *fields: str) -> tuple[list[tuple[str, float | None]], str]:
    """Per word, how much the predicted class's probability (a rating: the predicted value) drops when the word
    is left out."""
    text = checked_review(served, *fields)
    # a review of several fields: the separator between them is not a word to leave out
    separator = served.classifier.separator.strip() if len(served.text_fields) > 1 else None
    attribution = occlusion(served.classifier, text, skip=(separator,) if separator else ())
    raised, lowered = attribution.strongest()
    unit = "word" if attribution.words_per_span == 1 else f"span of {attribution.words_per_span} words"
    if served.classifier.task.problem_type == tasks.REGRESSION:
        what = f"the predicted {attribution.label} (now {attribution.probability:.2f})"
    else:
        what = f"p({attribution.label}) (now {attribution.probability:.2f})"
    note = f"Each {unit} left out in turn: red ones raised {what}, purple ones lowered it."
    if raised:
        note += " Most for: " + ", ".join(f"“{w}” {d:+.3f}" for w, d in raised) + "."
    if lowered:
        note += " Most against: " + ", ".join(f"“{w}” {d:+.3f}" for w, d in lowered) + "."
    return attribution.segments(), note


def classify_batch(served: ServedModel, file_path: str | None, column: str | None,
                   out_dir: str) -> tuple[pd.DataFrame, str, str]:
    """Predictions for a file of reviews, as a table and as a CSV written to `out_dir` (Gradio's cache, which
    serving.CACHE_CLEANING empties), and a note on what was read. The file's other columns are kept. A review
    past MAX_REVIEW_CHARS is cut to that length before tokenizing, and marked truncated."""
    if served.classifier is None:
        raise refused(served.problem or "No model is loaded.")
    fields = served.text_fields
    try:
        batch = serving.read_batch_file(file_path, fields[0] if len(fields) > 1 else column)
        if len(fields) > 1:
            missing = [name for name in fields[1:] if name not in batch.other_columns]
            if missing:
                raise InputProblem(f"The model reads the columns {', '.join(fields)} of each review; the file lacks "
                                   f"{', '.join(missing)}. Upload a CSV with all of them.")
            values = {name: batch.other_columns[name] for name in fields[1:]}
            batch.other_columns = {fields[0]: list(batch.texts), **batch.other_columns}  # every column of the file
            batch.texts = [served.classifier.compose({fields[0]: first, **{n: values[n][i] for n in values}})
                           for i, first in enumerate(batch.texts)]
            batch.note = f"Read the columns {', '.join(fields)}, joined as in training."
    except InputProblem as err:
        raise refused(str(err)) from None
    texts = [review[:MAX_REVIEW_CHARS] for review in batch.texts]
    predictions = served.classifier.predict(texts)
    task = served.classifier.task
    if task.problem_type == tasks.REGRESSION:
        said = {task.label_names[0]: [round(p.value, 4) for p in predictions],
                **({"rounded": [p.label for p in predictions]} if task.rating_values else {})}
    elif task.problem_type == tasks.MULTI_LABEL:
        said = {"labels": [p.label for p in predictions],  # the labels predicted, joined
                **{f"p({name})": [round(p.scores[name], 4) for p in predictions] for name in task.label_names}}
    else:
        said = {"label": [p.label for p in predictions],
                "confidence": [round(p.scores[p.label], 4) for p in predictions],
                **({"unsure": [p.unsure for p in predictions]} if task.min_confidence is not None else {}),
                **{f"p({name})": [round(p.scores[name], 4) for p in predictions] for name in task.label_names}}
    table = pd.DataFrame({
        **batch.other_columns,
        "review": texts,
        **said,
        "truncated": [p.truncated or len(r) > MAX_REVIEW_CHARS for p, r in zip(predictions, batch.texts)],
    })
    # One flat file, no folder of its own: Gradio serves a file already in its cache as it is, and
    # its cache cleaning deletes it later.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    handle, out = tempfile.mkstemp(prefix="predictions-", suffix=".csv", dir=out_dir)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
        table.to_csv(stream, index=False)
    return table, out, f"{batch.note} {len(texts):,} reviews."


def score_plot_title(task) -> str:
    if task is None or task.problem_type == tasks.SINGLE_LABEL:
        return "Validation accuracy and F1 per epoch"
    return "Validation " + " and ".join(task.headline[:2]) + " per epoch"


def any_column(dropdown: gr.Dropdown) -> gr.Dropdown:
    """The review column dropdown, whose API schema says it takes any name, as it does (allow_custom_value).
    Gradio 6.31 lists a dropdown's choices as the input's enum, empty until a file is uploaded: an MCP server
    enforces it and would refuse every column an agent names. (Overridden on the instance: a subclass of a
    component makes gradio write a .pyi file next to this one.)"""
    dropdown.api_info = lambda: {"type": "string"}
    return dropdown


def endpoint_tools(served: ServedModel, run_file_job) -> dict[str, object]:
    """The page's endpoint functions by api_name, each named, with parameters and a docstring for agents: the MCP
    server's tool list is made of them (finetune/agent_tools.py). `run_file_job(file_path, column)` runs a file
    job within the page's limit on file jobs."""
    task = served.classifier.task if served.classifier else None
    fields = served.text_fields
    classes = ""
    if task is not None and task.problem_type != tasks.REGRESSION:  # an agent needs the names to read the answer
        kind = "labels" if task.problem_type == tasks.MULTI_LABEL else "classes"
        classes = f" The model's {kind}: {', '.join(task.label_names)}."
    review = f"the review's text (at most {MAX_REVIEW_CHARS:,} characters)"
    return {
        "classify": agent_tools.tool(
            lambda *texts: classify(served, *texts), "classify",
            f"Classify a review with the fine-tuned model: the predicted {_predicted(task)}.{classes}",
            agent_tools.review_args(fields, review),
            ['label: {"label": the prediction, "confidences": [{"label", "confidence"}, ...]}, every class with its '
             'probability, highest first (a rating model: {"label": "4.3 out of 5"}; a multi-label model: every '
             "label's probability)",
             "note: how many tokens the model read, and whether the review was truncated (a multi-label model: the "
             "labels at or above its threshold)"]),
        "explain": agent_tools.tool(
            lambda *texts: explain(served, *texts), "explain",
            "Which words of a review drove the model's prediction: each word (or span of words) is left out in turn "
            "and the drop in the predicted class's probability is measured.",
            agent_tools.review_args(fields, review),
            ['attributions: [{"token": word, "class_or_confidence": drop scaled to [-1, 1]}, ...] covering the '
             "review (positive: the word raised the prediction)",
             "note: the predicted class and the words that raised and lowered it most, with their drops"]),
        "classify_batch": agent_tools.tool(
            run_file_job, "classify_batch",
            f"Classify every review of a file: a CSV, an Excel workbook (.xlsx, first sheet) or a text file with one "
            f"review per line; up to {MAX_BATCH_ROWS:,} reviews and {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.",
            {"file_path": "the file of reviews (.csv, .xlsx or .txt)",
             "column": "the column of reviews, by its name in the header; an empty string picks the one named text, "
                       "review or content, else the one with the longest texts"},
            ["table: the file's other columns, the review, the prediction and each class's probability, one row per "
             "review",
             "file: the same table as a CSV to download",
             "note: which column was read and how many reviews"]),
        "metrics": agent_tools.tool(
            lambda: metrics_view(served), "metrics", "How the model trained: its per-epoch validation scores.", {},
            ["history: the per-epoch table (epoch, step, train and validation loss, the headline metrics)",
             "losses: loss per epoch, for a plot", "scores: the headline metrics per epoch, for a plot",
             "confusion: the test (else validation) confusion matrix, rows the true labels",
             "summary: the model card's summary of the run in Markdown"]),
        "hp_search": agent_tools.tool(
            lambda: search_view(served), "hp_search", "The hyperparameter search that chose the run's settings, if "
            "there was one.", {},
            ["trials: one row per trial (its hyperparameters, validation score, state)",
             "plot: score against learning rate", "note: the search's summary in Markdown"]),
        "evaluations": agent_tools.tool(
            lambda: evaluations_view(served), "evaluations",
            "The evaluations recorded in the model card, and the reviews the model got wrong with the most "
            "confidence.", {},
            ["evaluations: one row per dataset and split (its metrics)",
             "mistakes: the most confidently wrong reviews (true label, predicted, confidence, review)",
             "note: what the mistakes table shows, in Markdown"]),
    }


def _predicted(task) -> str:
    if task is not None and task.problem_type == tasks.REGRESSION:
        return f"{task.label_names[0]} (a rating)"
    if task is not None and task.problem_type == tasks.MULTI_LABEL:
        return "labels, each with its probability"
    return "class and every class's probability"


def file_columns(file_path: str | None):
    choices, value = serving.column_choices(file_path)
    return gr.Dropdown(choices=choices, value=value)


def build_demo(served: ServedModel, cache_cleaning: tuple[int, int] = serving.CACHE_CLEANING) -> gr.Blocks:
    max_tokens = served.classifier.max_length if served.classifier else 512
    history, losses, scores, confusion, summary = metrics_view(served)
    file_job_slots = threading.BoundedSemaphore(serving.MAX_FILE_JOBS)

    fields = served.text_fields
    task = served.classifier.task if served.classifier else None
    shown = {tasks.REGRESSION: "Predicted rating", tasks.MULTI_LABEL: "Every label, with its probability"}.get(
        task.problem_type if task else None, "Prediction (every class, with its confidence)")

    def run_file_job(file_path, column):
        if not file_job_slots.acquire(blocking=False):  # only if several arrived at once (serving.py)
            raise refused(serving.FILE_JOB_BUSY)
        try:
            return classify_batch(served, file_path, column, download.GRADIO_CACHE)
        finally:
            file_job_slots.release()

    endpoints = endpoint_tools(served, run_file_job)

    async def admit_file_job(file_path, column):
        """Runs as a file job arrives, before it joins the queue; async, so it reads the queue on the
        event loop that changes it."""
        busy = serving.file_jobs_in_line(demo._queue) >= serving.MAX_FILE_JOBS
        return gr.validate(not busy, serving.FILE_JOB_BUSY), gr.validate(True, "")

    model_calls = {"concurrency_id": "model", "concurrency_limit": serving.MODEL_CONCURRENCY}
    has_history = not history.empty
    with gr.Blocks(title="Review classifier", delete_cache=cache_cleaning) as demo:
        gr.Markdown(f"# Review classifier\n{header_markdown(served)}", elem_id="model-line")
        if served.problem:
            gr.Markdown(f"### ⚠️ {served.problem}", elem_id="problem")
        if served.card_text.strip():
            with gr.Accordion("Model card", open=False, elem_id="model-card"):
                gr.Markdown(served.card_text)
        with gr.Tab("Classify"):
            if len(fields) > 1:  # one box per text field the model reads, named as its column
                boxes = [gr.Textbox(label=name, lines=1 if i < len(fields) - 1 else 5) for i, name in enumerate(fields)]
            else:
                boxes = [gr.Textbox(label="Review", lines=5, placeholder="Paste a review…")]
            review = boxes[-1]
            button = gr.Button("Classify", variant="primary")
            label = gr.Label(label=shown, num_top_classes=None)
            note = gr.Markdown()
            words = gr.HighlightedText(label="Which words drove the prediction", show_legend=False,
                                       elem_id="attributions")
            words_note = gr.Markdown()
            gr.Examples(example_reviews(served, EXAMPLES), inputs=boxes if len(fields) > 1 else review,
                        label="Examples from the validation split")
            read = READ_PARTS[served.classifier.truncation] if served.classifier else READ_PARTS["head"]
            gr.Markdown(f"Reviews longer than {max_tokens} tokens are truncated: the model reads {read} only, as in "
                        "training.")
            for trigger, api_name in ((button.click, "classify"), (review.submit, False)):
                trigger(endpoints["classify"], boxes, [label, note], api_name=api_name, **model_calls).success(
                    endpoints["explain"], boxes, [words, words_note], api_name="explain" if api_name else False,
                    **model_calls)
        with gr.Tab("Batch"):
            gr.Markdown(f"Upload a CSV or an Excel workbook (.xlsx, its first sheet; the review column is picked "
                        f"for you; change it if needed) or a text file with one review per line. Up to "
                        f"{MAX_BATCH_ROWS:,} reviews and {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a review longer than "
                        f"{MAX_REVIEW_CHARS:,} "
                        "characters is cut to its beginning. The file's other columns are kept. One file at a time.")
            upload = gr.File(label="Reviews file", file_types=[".csv", ".xlsx", ".txt"], type="filepath")
            if len(fields) > 1:
                gr.Markdown(f"This model reads the columns **{', '.join(fields)}** of each review: the CSV needs all "
                            "of them.")
            column = any_column(gr.Dropdown(label="Review column", choices=[], allow_custom_value=True,
                                            visible=len(fields) == 1))
            run_batch = gr.Button("Classify file", variant="primary")
            batch_note = gr.Markdown()
            table = gr.Dataframe(label="Predictions", interactive=False)
            download = gr.File(label="Download predictions (CSV)")
            upload.change(file_columns, upload, column, api_name=False)
            run_batch.click(endpoints["classify_batch"], [upload, column], [table, download, batch_note],
                            api_name="classify_batch", validator=admit_file_job, **model_calls)
        with gr.Tab("Training metrics"):
            summary_box = gr.Markdown(summary)
            gr.Markdown(MACRO_NOTE if task is None or task.problem_type != tasks.REGRESSION else RATING_NOTE)
            history_table = gr.Dataframe(history, label="Per-epoch history", interactive=False, visible=has_history)
            with gr.Row(visible=has_history):  # side by side on a wide screen, stacked on a phone (min_width)
                loss_plot = gr.LinePlot(losses, x="epoch", y="loss", color="series", title="Loss per epoch",
                                        elem_id="loss-plot", min_width=360)
                score_plot = gr.LinePlot(scores, x="epoch", y="score", color="series",
                                         title=score_plot_title(task), elem_id="score-plot",
                                         min_width=360)
            confusion_table_box = gr.Dataframe(confusion, label="Confusion matrix (rows: true label)",
                                               interactive=False, visible=has_history)
            trials, trials_plot_data, search_note = search_view(served)
            with gr.Accordion("Hyperparameter search", open=bool(served.search), visible=has_history):
                search_box = gr.Markdown(search_note)
                trials_table = gr.Dataframe(trials, label="Trials", interactive=False)
                trials_plot = gr.ScatterPlot(trials_plot_data, x="learning_rate", y="score", color="state",
                                             title="Validation score against learning rate", elem_id="trials-plot")
            evaluations, mistakes, mistakes_note = evaluations_view(served)
            evaluations_table = gr.Dataframe(evaluations, label="Evaluations in the model card", interactive=False)
            with gr.Accordion("Where the model is most confidently wrong", open=True):
                mistakes_box = gr.Markdown(mistakes_note)
                mistakes_table = gr.Dataframe(mistakes, label="Most confidently wrong", interactive=False, wrap=True,
                                              column_widths=["92px", "92px", "84px"], elem_id="mistakes")
            reliability, calibration_note = calibration_view(served)
            with gr.Accordion("Calibration: can the confidences be taken at face value?", open=False,
                              visible=not reliability.empty):
                gr.Markdown(calibration_note)
                gr.ScatterPlot(reliability, x="confidence", y="accuracy", color="series", x_lim=[0, 1], y_lim=[0, 1],
                               title="Reliability", elem_id="reliability-plot")
            suspects, suspects_note = suspects_view(served)
            with gr.Accordion("Reviews whose label is probably wrong", open=False, visible=not suspects.empty):
                gr.Markdown(suspects_note)
                gr.Dataframe(suspects, label="Suspect labels", interactive=False, wrap=True, elem_id="suspects")
            refresh = gr.Button("Reload metrics")
            refresh.click(endpoints["metrics"], None,
                          [history_table, loss_plot, score_plot, confusion_table_box, summary_box],
                          api_name="metrics")
            refresh.click(endpoints["hp_search"], None, [trials_table, trials_plot, search_box],
                          api_name="hp_search")
            refresh.click(endpoints["evaluations"], None, [evaluations_table, mistakes_table, mistakes_box],
                          api_name="evaluations")
    # api_open=False: the REST routes (/run/...) would skip the queue and its limits; outside a
    # Space Gradio leaves them open.
    demo.queue(default_concurrency_limit=serving.MODEL_CONCURRENCY, max_size=serving.QUEUE_SIZE, api_open=False)
    return demo


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
    parser.add_argument("--mcp_server", action=argparse.BooleanOptionalAction, default=None,
                        help="also serve the endpoints as MCP tools for agents, at /gradio_api/mcp/ (default: "
                        "GRADIO_MCP_SERVER=true/false if set, else on in a Space, off elsewhere)")
    return parser.parse_args(argv)


def no_model_hint(argv: list[str]) -> str | None:
    """In a Space (SPACE_ID is set there) started without MODEL_ID, the page speaks to the Space's owner."""
    if os.environ.get("SPACE_ID") and not os.environ.get("MODEL_ID") and "--model_id" not in argv:
        return SPACE_WITHOUT_MODEL
    return None


if __name__ == "__main__":
    setup_logging()
    args = parse_args(sys.argv[1:])
    demo = build_demo(load_served_model(args.model_id, quantize=args.quantize, engine=args.engine,
                                        revision=args.model_revision, no_model_hint=no_model_hint(sys.argv[1:])))
    demo.launch(server_name=args.host, server_port=args.port, mcp_server=agent_tools.mcp_server_enabled(args.mcp_server),
                **serving.launch_settings())
