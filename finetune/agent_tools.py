"""The demo's endpoints as tools for agents: gradio's MCP server (`launch(mcp_server=True)`) turns each
named endpoint into a tool, named after its function, its inputs named after the function's parameters,
described by the function's docstring (the lines before `Args:`, then each `Returns:` line). So every
endpoint function gets a plain name, one parameter per input the agent fills in (`review`, or a
multi-field model's columns, not gradio's `param_0` for `*fields`) and a docstring that says what
comes back. The same names serve gradio_client's keyword arguments. `endpoint_tools` is the demo's list of them.

Whether the demo serves MCP at all (`mcp_server_enabled`): the --mcp_server flag, else gradio's own
GRADIO_MCP_SERVER variable, else on in a Hugging Face Space where the `mcp` package is installed
(requirements.txt installs it there; measured cost: README, "The Space as a tool for agents").
"""

import importlib.util
import inspect
import os
import re
from typing import Callable

from finetune import tasks
from finetune.run_views import ServedModel, evaluations_view, metrics_view, search_view
from finetune.serving import MAX_BATCH_ROWS, MAX_REVIEW_CHARS, MAX_UPLOAD_BYTES

REVIEW_PARAMETER = "review"  # the one input of a single-field model's review tools


def tool(fn: Callable, name: str, summary: str, args: dict[str, str], returns: list[str]) -> Callable:
    """`fn` under `name`, taking the parameters named in `args` (in order, each a text), documented for MCP."""

    def endpoint(*values):
        return fn(*values)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str) for arg in args])
    endpoint.__doc__ = docstring(summary, args, returns)
    return endpoint


def endpoint_tools(served: ServedModel, classify: Callable, explain: Callable, classify_batch: Callable) -> dict:
    """The demo's endpoint functions by api_name, each named, with parameters and a docstring for agents: the MCP
    server's tool list is made of them. `classify(*fields)` and `explain(*fields)` take the review's fields,
    `classify_batch(file_path, column)` runs a file job; the run's views (finetune/run_views.py) take nothing."""
    task = served.classifier.task if served.classifier else None
    fields = served.text_fields
    classes = ""
    if task is not None and task.problem_type != tasks.REGRESSION:  # an agent needs the names to read the answer
        kind = "labels" if task.problem_type == tasks.MULTI_LABEL else "classes"
        classes = f" The model's {kind}: {', '.join(task.label_names)}."
    review = f"the review's text (at most {MAX_REVIEW_CHARS:,} characters)"
    return {
        "classify": tool(
            classify, "classify",
            f"Classify a review with the fine-tuned model: the predicted {_predicted(task)}.{classes}",
            review_args(fields, review),
            ['label: {"label": the prediction, "confidences": [{"label", "confidence"}, ...]}, every class with its '
             'probability, highest first (a rating model: {"label": "4.3 out of 5"}; a multi-label model: every '
             "label's probability)",
             "note: how many tokens the model read, and whether the review was truncated (a multi-label model: the "
             "labels at or above its threshold)"]),
        "explain": tool(
            explain, "explain",
            "Which words of a review drove the model's prediction: each word (or span of words) is left out in turn "
            "and the drop in the predicted class's probability is measured.",
            review_args(fields, review),
            ['attributions: [{"token": word, "class_or_confidence": drop scaled to [-1, 1]}, ...] covering the '
             "review (positive: the word raised the prediction)",
             "note: the predicted class and the words that raised and lowered it most, with their drops"]),
        "classify_batch": tool(
            classify_batch, "classify_batch",
            f"Classify every review of a file: a CSV, an Excel workbook (.xlsx, first sheet) or a text file with one "
            f"review per line; up to {MAX_BATCH_ROWS:,} reviews and {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.",
            {"file_path": "the file of reviews (.csv, .xlsx or .txt)",
             "column": "the column of reviews, by its name in the header; an empty string picks the one named text, "
                       "review or content, else the one with the longest texts"},
            ["table: the file's other columns, the review, the prediction and each class's probability, one row per "
             "review",
             "file: the same table as a CSV to download",
             "note: which column was read and how many reviews"]),
        "metrics": tool(
            lambda: metrics_view(served), "metrics", "How the model trained: its per-epoch validation scores.", {},
            ["history: the per-epoch table (epoch, step, train and validation loss, the headline metrics)",
             "losses: loss per epoch, for a plot", "scores: the headline metrics per epoch, for a plot",
             "confusion: the test (else validation) confusion matrix, rows the true labels",
             "summary: the model card's summary of the run in Markdown"]),
        "hp_search": tool(
            lambda: search_view(served), "hp_search", "The hyperparameter search that chose the run's settings, if "
            "there was one.", {},
            ["trials: one row per trial (its hyperparameters, validation score, state)",
             "plot: score against learning rate", "note: the search's summary in Markdown"]),
        "evaluations": tool(
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


def docstring(summary: str, args: dict[str, str], returns: list[str]) -> str:
    """The layout gradio's utils.get_function_description parses: one `name: text` line per argument and one
    line per returned value (it joins those into the tool's description)."""
    lines = [summary]
    if args:
        lines += ["", "Args:", *(f"    {name}: {text}" for name, text in args.items())]
    if returns:
        lines += ["", "Returns:", *(f"    {text}" for text in returns)]
    return "\n".join(lines)


def review_args(fields: list[str], what: str) -> dict[str, str]:
    """The review tools' parameters: `review` for a one-field model, else one per field, named after its column."""
    if len(fields) == 1:
        return {REVIEW_PARAMETER: what}
    names = parameter_names(fields)
    return {name: f"the review's {field!r} field ({i + 1} of {len(fields)}, as in training)"
            for i, (name, field) in enumerate(zip(names, fields))}


def parameter_names(fields: list[str]) -> list[str]:
    """Column names as Python identifiers (a signature needs them): 'Review title' -> 'Review_title'; unique."""
    names: list[str] = []
    for field in fields:
        name = re.sub(r"\W", "_", field.strip()) or "field"
        name = f"_{name}" if name[0].isdigit() else name
        while name in names:
            name += "_"
        names.append(name)
    return names


def mcp_server_enabled(flag: bool | None) -> bool:
    """--mcp_server/--no-mcp_server if given, else GRADIO_MCP_SERVER, else: in a Space (SPACE_ID is set there)
    when the `mcp` package is installed. Off by default elsewhere: a local demo needs no agents."""
    installed = importlib.util.find_spec("mcp") is not None
    if flag is not None or "GRADIO_MCP_SERVER" in os.environ:
        wanted = flag if flag is not None else os.environ["GRADIO_MCP_SERVER"].strip().lower() == "true"
        if wanted and not installed:  # gradio would stop with a traceback and `pip install "gradio[mcp]"`
            asked = "--mcp_server" if flag else "GRADIO_MCP_SERVER=true"
            raise SystemExit(f"error: {asked} needs the mcp package, which is not installed. Install it as "
                             "requirements.txt pins it (pip install -r requirements.txt), or leave the MCP server off.")
        return wanted
    return bool(os.environ.get("SPACE_ID")) and installed
