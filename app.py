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
The page's tabs are built in finetune/demo_page.py, the run's views in finetune/run_views.py, the server's
guards in finetune/serving.py.
"""

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # it would look up two hosts at start

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from finetune import agent_tools, artifacts, demo_page, errors, serving, tasks  # noqa: E402
from finetune.attribution import occlusion  # noqa: E402
from finetune.demo_page import refused  # noqa: E402
from finetune.logs import setup_logging  # noqa: E402
from finetune.run_views import ServedModel, header_markdown, load_served_model  # noqa: E402
from finetune.serving import MAX_REVIEW_CHARS, InputProblem  # noqa: E402
from finetune.truncation import READ_PARTS  # noqa: E402

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
    table = pd.DataFrame({
        **batch.other_columns,
        "review": texts,
        **demo_page.prediction_columns(served.classifier.task, predictions),
        "truncated": [p.truncated or len(r) > MAX_REVIEW_CHARS for p, r in zip(predictions, batch.texts)],
    })
    # One flat file, no folder of its own: Gradio serves a file already in its cache as it is, and
    # its cache cleaning deletes it later.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    handle, out = tempfile.mkstemp(prefix="predictions-", suffix=".csv", dir=out_dir)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
        table.to_csv(stream, index=False)
    return table, out, f"{batch.note} {len(texts):,} reviews."


def file_columns(file_path: str | None):
    choices, value = serving.column_choices(file_path)
    return gr.Dropdown(choices=choices, value=value)


def build_demo(served: ServedModel, cache_cleaning: tuple[int, int] = serving.CACHE_CLEANING) -> gr.Blocks:
    """The page: what the model is, then one tab per job, each laid out by its builder in finetune/demo_page.py."""
    with gr.Blocks(title="Review classifier", delete_cache=cache_cleaning) as demo:
        file_jobs = demo_page.FileJobs(functools.partial(classify_batch, served), demo)
        endpoints = agent_tools.endpoint_tools(served, functools.partial(classify, served),
                                               functools.partial(explain, served), file_jobs.run)
        gr.Markdown(f"# Review classifier\n{header_markdown(served)}", elem_id="model-line")
        if served.problem:
            gr.Markdown(f"### ⚠️ {served.problem}", elem_id="problem")
        if served.card_text.strip():
            with gr.Accordion("Model card", open=False, elem_id="model-card"):
                gr.Markdown(served.card_text)
        with gr.Tab("Classify"):
            demo_page.classify_tab(served, endpoints["classify"], endpoints["explain"], EXAMPLES)
        with gr.Tab("Batch"):
            demo_page.batch_tab(served, endpoints["classify_batch"], file_columns, file_jobs.admit)
        with gr.Tab("Training metrics"):
            demo_page.metrics_tab(served, endpoints["metrics"], endpoints["hp_search"], endpoints["evaluations"])
    # api_open=False: the REST routes (/run/...) would skip the queue and its limits; outside a
    # Space Gradio leaves them open.
    demo.queue(default_concurrency_limit=serving.MODEL_CONCURRENCY, max_size=serving.QUEUE_SIZE, api_open=False)
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    from finetune.inference import ENGINES

    parser = argparse.ArgumentParser(description="Serve a fine-tuned review classifier.", allow_abbrev=False)
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
    try:
        demo.launch(server_name=args.host, server_port=args.port,
                    mcp_server=agent_tools.mcp_server_enabled(args.mcp_server), **serving.launch_settings())
    except OSError as err:  # gradio's "Cannot find empty port": another demo (or program) holds it
        sys.exit(errors.report(f"cannot serve on {args.host}:{args.port} ({err}). Stop what holds that port, or "
                               "pass --port with a free one (or set GRADIO_SERVER_PORT).", errors.EXIT_USAGE))
