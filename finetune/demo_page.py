"""The demo's page, one builder per tab: Classify (a review, and the words that drove it), Batch (a file of
reviews) and Training metrics (how the run trained, and where its model errs).

app.py calls each builder inside its `gr.Blocks`, under its `gr.Tab`. A builder lays out its tab and wires
its events to the endpoint functions it is given (finetune/agent_tools.py names and documents them), under the
api_name that gradio_client and the MCP server know them by. What the tabs show is computed by the pure
views of finetune/run_views.py; what a request may send is guarded by finetune/serving.py.
"""

import logging
import threading

import gradio as gr

from finetune import serving, tasks
from finetune.run_views import (
    MACRO_NOTE,
    RATING_NOTE,
    ServedModel,
    calibration_view,
    evaluations_view,
    example_reviews,
    metrics_view,
    search_view,
    suspects_view,
)
from finetune.serving import MAX_BATCH_ROWS, MAX_REVIEW_CHARS, MAX_UPLOAD_BYTES
from finetune.truncation import READ_PARTS

logger = logging.getLogger("app")

# Every event that calls the model shares one concurrency group (serving.py says why).
MODEL_CALLS = {"concurrency_id": "model", "concurrency_limit": serving.MODEL_CONCURRENCY}


def refused(message: str) -> gr.Error:
    """A user's mistake: a message on the page and one line in the server's log, no traceback."""
    logger.info("request refused: %s", message)
    return gr.Error(message, print_exception=False)


# --- Classify: one review -----------------------------------------------------------------------


def classify_tab(served: ServedModel, classify, explain, fallback_examples: list[str]) -> None:
    """One box per text field the model reads, the prediction, and which words drove it (explain runs once
    classify has answered)."""
    fields = served.text_fields
    if len(fields) > 1:  # one box per text field the model reads, named as its column
        boxes = [gr.Textbox(label=name, lines=1 if i < len(fields) - 1 else 5) for i, name in enumerate(fields)]
    else:
        boxes = [gr.Textbox(label="Review", lines=5, placeholder="Paste a review…")]
    review = boxes[-1]
    button = gr.Button("Classify", variant="primary")
    label = gr.Label(label=prediction_label(served), num_top_classes=None)
    note = gr.Markdown()
    words = gr.HighlightedText(label="Which words drove the prediction", show_legend=False, elem_id="attributions")
    words_note = gr.Markdown()
    gr.Examples(example_reviews(served, fallback_examples), inputs=boxes if len(fields) > 1 else review,
                label="Examples from the validation split")
    max_tokens = served.classifier.max_length if served.classifier else 512
    read = READ_PARTS[served.classifier.truncation] if served.classifier else READ_PARTS["head"]
    gr.Markdown(f"Reviews longer than {max_tokens} tokens are truncated: the model reads {read} only, as in training.")
    for trigger, api_name in ((button.click, "classify"), (review.submit, False)):
        trigger(classify, boxes, [label, note], api_name=api_name, **MODEL_CALLS).success(
            explain, boxes, [words, words_note], api_name="explain" if api_name else False, **MODEL_CALLS)


def prediction_label(served: ServedModel) -> str:
    problem_type = served.classifier.task.problem_type if served.classifier else None
    return {tasks.REGRESSION: "Predicted rating", tasks.MULTI_LABEL: "Every label, with its probability"}.get(
        problem_type, "Prediction (every class, with its confidence)")


# --- Batch: a file of reviews --------------------------------------------------------------------


class FileJobs:
    """File jobs, at most serving.MAX_FILE_JOBS waiting or running: `admit` refuses one as it arrives when the
    queue holds enough (before it joins the queue), `run` when several arrived in the same instant."""

    def __init__(self, classify_file, demo: gr.Blocks):
        self.classify_file = classify_file  # (file_path, column, out_dir) -> the endpoint's answer
        self.demo = demo
        self.slots = threading.BoundedSemaphore(serving.MAX_FILE_JOBS)

    def run(self, file_path, column):
        if not self.slots.acquire(blocking=False):  # only if several arrived at once (serving.py)
            raise refused(serving.FILE_JOB_BUSY)
        try:  # the predictions file goes to Gradio's cache, which serving.CACHE_CLEANING empties
            return self.classify_file(file_path, column, self.demo.GRADIO_CACHE)
        finally:
            self.slots.release()

    async def admit(self, file_path, column):
        """Runs as a file job arrives, before it joins the queue; async, so it reads the queue on the
        event loop that changes it."""
        busy = serving.file_jobs_in_line(self.demo._queue) >= serving.MAX_FILE_JOBS
        return gr.validate(not busy, serving.FILE_JOB_BUSY), gr.validate(True, "")


def batch_tab(served: ServedModel, classify_batch, file_columns, admit) -> None:
    """An upload, its review column (picked on upload), and the predictions as a table and a CSV."""
    fields = served.text_fields
    gr.Markdown(f"Upload a CSV or an Excel workbook (.xlsx, its first sheet; the review column is picked for you; "
                f"change it if needed) or a text file with one review per line. Up to {MAX_BATCH_ROWS:,} reviews and "
                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a review longer than {MAX_REVIEW_CHARS:,} characters is cut "
                "to its beginning. The file's other columns are kept. One file at a time.")
    upload = gr.File(label="Reviews file", file_types=[".csv", ".xlsx", ".txt"], type="filepath")
    if len(fields) > 1:
        gr.Markdown(f"This model reads the columns **{', '.join(fields)}** of each review: the CSV needs all of them.")
    column = any_column(gr.Dropdown(label="Review column", choices=[], allow_custom_value=True,
                                    visible=len(fields) == 1))
    run_batch = gr.Button("Classify file", variant="primary")
    batch_note = gr.Markdown()
    table = gr.Dataframe(label="Predictions", interactive=False)
    download = gr.File(label="Download predictions (CSV)")
    upload.change(file_columns, upload, column, api_name=False)
    run_batch.click(classify_batch, [upload, column], [table, download, batch_note], api_name="classify_batch",
                    validator=admit, **MODEL_CALLS)


def any_column(dropdown: gr.Dropdown) -> gr.Dropdown:
    """The review column dropdown, whose API schema says it takes any name, as it does (allow_custom_value).
    Gradio 6.31 lists a dropdown's choices as the input's enum, empty until a file is uploaded: an MCP server
    enforces it and would refuse every column an agent names. (Overridden on the instance: a subclass of a
    component makes gradio write a .pyi file next to this one.)"""
    dropdown.api_info = lambda: {"type": "string"}
    return dropdown


def prediction_columns(task: tasks.Task, predictions: list) -> dict[str, list]:
    """The batch table's columns of what the model said, one value per review."""
    if task.problem_type == tasks.REGRESSION:
        return {task.label_names[0]: [round(p.value, 4) for p in predictions],
                **({"rounded": [p.label for p in predictions]} if task.rating_values else {})}
    probabilities = {f"p({name})": [round(p.scores[name], 4) for p in predictions] for name in task.label_names}
    if task.problem_type == tasks.MULTI_LABEL:
        return {"labels": [p.label for p in predictions], **probabilities}  # the labels predicted, joined
    return {"label": [p.label for p in predictions],
            "confidence": [round(p.scores[p.label], 4) for p in predictions],
            **({"unsure": [p.unsure for p in predictions]} if task.min_confidence is not None else {}),
            **probabilities}


# --- Training metrics: how the run trained -------------------------------------------------------


def metrics_tab(served: ServedModel, metrics, hp_search, evaluations) -> None:
    """The run's history, plots and confusion matrix, its search, its evaluations and surest mistakes, its
    calibration and its suspect labels; one button reloads the first three through their endpoints."""
    task = served.classifier.task if served.classifier else None
    history, losses, scores, confusion, summary = metrics_view(served)
    has_history = not history.empty
    summary_box = gr.Markdown(summary)
    gr.Markdown(MACRO_NOTE if task is None or task.problem_type != tasks.REGRESSION else RATING_NOTE)
    history_table = gr.Dataframe(history, label="Per-epoch history", interactive=False, visible=has_history)
    with gr.Row(visible=has_history):  # side by side on a wide screen, stacked on a phone (min_width)
        loss_plot = gr.LinePlot(losses, x="epoch", y="loss", color="series", title="Loss per epoch",
                                elem_id="loss-plot", min_width=360)
        score_plot = gr.LinePlot(scores, x="epoch", y="score", color="series", title=score_plot_title(task),
                                 elem_id="score-plot", min_width=360)
    confusion_box = gr.Dataframe(confusion, label="Confusion matrix (rows: true label)", interactive=False,
                                 visible=has_history)
    trials, trials_plot_data, search_note = search_view(served)
    with gr.Accordion("Hyperparameter search", open=bool(served.search), visible=has_history):
        search_box = gr.Markdown(search_note)
        trials_table = gr.Dataframe(trials, label="Trials", interactive=False)
        trials_plot = gr.ScatterPlot(trials_plot_data, x="learning_rate", y="score", color="state",
                                     title="Validation score against learning rate", elem_id="trials-plot")
    evaluations_data, mistakes, mistakes_note = evaluations_view(served)
    evaluations_table = gr.Dataframe(evaluations_data, label="Evaluations in the model card", interactive=False)
    with gr.Accordion("Where the model is most confidently wrong", open=True):
        mistakes_box = gr.Markdown(mistakes_note)
        mistakes_table = gr.Dataframe(mistakes, label="Most confidently wrong", interactive=False, wrap=True,
                                      column_widths=["92px", "92px", "84px"], elem_id="mistakes")
    calibration_section(served)
    suspects_section(served)
    refresh = gr.Button("Reload metrics")
    refresh.click(metrics, None, [history_table, loss_plot, score_plot, confusion_box, summary_box],
                  api_name="metrics")
    refresh.click(hp_search, None, [trials_table, trials_plot, search_box], api_name="hp_search")
    refresh.click(evaluations, None, [evaluations_table, mistakes_table, mistakes_box], api_name="evaluations")


def calibration_section(served: ServedModel) -> None:
    reliability, note = calibration_view(served)
    with gr.Accordion("Calibration: can the confidences be taken at face value?", open=False,
                      visible=not reliability.empty):
        gr.Markdown(note)
        gr.ScatterPlot(reliability, x="confidence", y="accuracy", color="series", x_lim=[0, 1], y_lim=[0, 1],
                       title="Reliability", elem_id="reliability-plot")


def suspects_section(served: ServedModel) -> None:
    suspects, note = suspects_view(served)
    with gr.Accordion("Reviews whose label is probably wrong", open=False, visible=not suspects.empty):
        gr.Markdown(note)
        gr.Dataframe(suspects, label="Suspect labels", interactive=False, wrap=True, elem_id="suspects")


def score_plot_title(task) -> str:
    if task is None or task.problem_type == tasks.SINGLE_LABEL:
        return "Validation accuracy and F1 per epoch"
    return "Validation " + " and ".join(task.headline[:2]) + " per epoch"
