"""A fine-tuned model as the demo serves it, and the views of its run: pure functions that return
DataFrames or Markdown, testable without Gradio.

`load_served_model` loads the classifier once and reads the run's stored files (history, results,
configuration, card, search, predictions) from a model folder or a Hub repo. A file that is corrupt
or cut short costs only its own view: the views never raise for a run's files, they say what could
not be shown instead.
"""

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from finetune import artifacts, tasks, trust
from finetune.limits import allow_long_csv_fields
from finetune.mistakes import furthest_off, most_confident_mistakes

logger = logging.getLogger("app")

TRAIN_COMMAND = "./setup.sh && .venv/bin/accelerate launch finetune/train.py"
# What a run file that parses but holds unexpected values raises when it is shown.
SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError)
MISTAKES_SHOWN = 20
MACRO_NOTE = ("Precision, recall and F1 are *macro* averages: each is computed per class, then the classes are "
              "averaged with equal weight, so a rare class counts as much as a common one.")
RATING_NOTE = ("MAE and MSE are in rating units (lower is better); Pearson and Spearman correlate the predicted and "
               "the true ratings; accuracy counts a prediction right when it rounds to the true rating.")
# Examples from the run's own validation reviews: short enough to read at a glance, long enough to say something.
EXAMPLE_WORDS = (6, 40)


@dataclass
class ServedModel:
    """What the demo shows: a loaded classifier (or why there is none) and its run's stored files."""

    model_id: str
    classifier: object | None = None
    problem: str | None = None
    file_problems: list[str] = field(default_factory=list)  # run files that could not be read, and why
    history: list[dict] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    card_metadata: dict = field(default_factory=dict)
    card_text: str = ""  # the card's Markdown body, without its metadata
    search: dict = field(default_factory=dict)  # hp_search.json, when the run searched its hyperparameters
    revision: str | None = None  # the Hub commit, branch or tag served (MODEL_REVISION); None: main
    # per-review predictions of the run's scored splits (predictions_<split>.csv rows)
    test_predictions: list[dict] = field(default_factory=list)
    validation_predictions: list[dict] = field(default_factory=list)
    suspects: list[dict] = field(default_factory=list)  # suspect_labels.csv: reviews whose label is probably wrong

    @property
    def is_hub_repo(self) -> bool:
        return not os.path.isdir(os.path.expanduser(self.model_id))

    @property
    def text_fields(self) -> list[str]:
        """The text columns the model reads (a title and a body: one box each); ["text"] for one review text."""
        return list(getattr(self.classifier, "text_fields", None) or ["text"])

    @property
    def task(self) -> tasks.Task:
        """What the model predicts (finetune/tasks.py): the loaded model's, else what its results.json says."""
        if self.classifier is not None and getattr(self.classifier, "task", None) is not None:
            return self.classifier.task
        problem = self.results.get("problem_type") if isinstance(self.results, dict) else None
        names = list(self.results.get("label_names") or []) if isinstance(self.results, dict) else []
        if problem in (tasks.REGRESSION, tasks.MULTI_LABEL):
            return tasks.Task(problem, names, self.results.get("rating_values"),
                              float(self.results.get("threshold") or tasks.DEFAULT_THRESHOLD))
        return tasks.Task(tasks.SINGLE_LABEL, names)


def split_card(text: str) -> tuple[dict, str]:
    """A card's YAML metadata and its Markdown body."""
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            return yaml.safe_load(parts[1]) or {}, parts[2].lstrip("\n")
    return {}, text


def csv_records(text: str) -> list[dict]:
    allow_long_csv_fields()  # a predictions file holds whole reviews, of any length
    try:
        return list(csv.DictReader(io.StringIO(text)))
    except csv.Error as err:
        raise ValueError(str(err)) from err


# Each run file: the ServedModel fields it fills, and how its text becomes their values.
RUN_FILE_READERS = {
    artifacts.HISTORY_FILE: (("history",), json.loads),
    artifacts.RESULTS_FILE: (("results",), json.loads),
    artifacts.CONFIG_FILE: (("config",), lambda text: yaml.safe_load(text) or {}),
    artifacts.CARD_FILE: (("card_metadata", "card_text"), split_card),
    artifacts.SEARCH_FILE: (("search",), json.loads),
    artifacts.predictions_file("test"): (("test_predictions",), csv_records),
    artifacts.predictions_file("validation"): (("validation_predictions",), csv_records),
    artifacts.SUSPECTS_FILE: (("suspects",), csv_records),
}


def load_served_model(model_id: str, quantize: bool = False, revision: str | None = None, engine: str = "auto",
                      no_model_hint: str | None = None) -> ServedModel:
    """Load the model once, at start. A missing model becomes a message on the page, and a run file
    that is corrupt or cut short becomes a message on the metrics tab: the demo still serves.
    `no_model_hint` replaces the advice given when no model loads (a Space's owner sets a variable)."""
    from finetune.inference import ReviewClassifier

    served = ServedModel(model_id=model_id, revision=revision)
    token = os.environ.get("HF_TOKEN") or None
    advice = (f"Train the default model with `{TRAIN_COMMAND}`, or set `MODEL_ID` to a model folder or a Hub repo "
              "id (and `HF_TOKEN` for a private repo).")
    cause = None
    if artifacts.is_local_path(model_id) and not Path(model_id).expanduser().is_dir():
        # a path, not a Hub id: the Hub client's "Repo id must be in the form ..." would only confuse
        cause = f": no such folder (relative to {Path.cwd()})"
    else:
        try:
            served.classifier = ReviewClassifier(model_id, token=token, quantize=quantize, engine=engine,
                                                 revision=revision)
        except Exception as err:  # OSError (no folder/repo), HTTP errors, bad files: all end the same way
            cause = f" ({type(err).__name__}: {str(err).splitlines()[0][:300]})"
    if cause is not None:
        served.problem = no_model_hint or f"No model could be loaded from `{model_id}`{cause}.\n\n{advice}"
        logger.warning("%s", served.problem.replace("\n\n", " "))  # the server's log says it too, not only the page
        return served
    try:
        files = artifacts.fetch_run_files(model_id, token=token, names=tuple(RUN_FILE_READERS), revision=revision)
    except Exception as err:
        served.problem = f"The model loaded, but its training files could not be read ({err})."
        return served
    for name, path in files.items():
        if path is not None and name in RUN_FILE_READERS:
            _read_run_file(served, name, path)
    return served


def _read_run_file(served: ServedModel, name: str, path) -> None:
    attributes, parse = RUN_FILE_READERS[name]
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError("the file is empty")
        values = parse(text)
    except (OSError, ValueError, csv.Error, yaml.YAMLError) as err:  # ValueError: bad JSON or bad UTF-8
        served.file_problems.append(f"`{name}` could not be read: {describe(err)}. It may be cut short or corrupt.")
        return
    values = values if len(attributes) > 1 else (values,)
    for attribute, value in zip(attributes, values):
        expected = type(getattr(served, attribute))
        if not isinstance(value, expected) or (expected is list and not all(isinstance(r, dict) for r in value)):
            what = {list: "a list of rows", dict: "a mapping"}.get(expected, expected.__name__)
            served.file_problems.append(f"`{name}` holds {type(value).__name__} data where {what} was expected.")
            return
    for attribute, value in zip(attributes, values):
        setattr(served, attribute, value)


def describe(err: Exception) -> str:
    """An error in one line: its type and the start of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {' '.join(line.strip() for line in lines[:3])[:300]}"


# --- the header: what the model is and how good it is --------------------------------------------


def card_link(served: ServedModel) -> str | None:
    """Where the model card is read: its Hub page for a repo (None for a local folder, whose card the page
    renders itself)."""
    if not served.is_hub_repo:
        return None
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{served.model_id}"


def header_markdown(served: ServedModel) -> str:
    """Under the title: what the model classifies and on which data, its test scores with the split's size, the
    base model, the card, the labels' meanings, and what serves it. Never raises for a run's files."""
    if served.classifier is None:
        return f"Model: `{served.model_id}`"
    try:
        return _header(served)
    except SHAPE_ERRORS:
        return f"Model: `{served.model_id}` · labels: {', '.join(served.classifier.label_names)}"


def _header(served: ServedModel) -> str:
    labels = served.classifier.label_names
    task = served.task
    results, meta = served.results, served.card_metadata
    dataset = dataset_name(meta)
    sizes = results.get("split_sizes", {})
    if task.problem_type == tasks.REGRESSION:
        scale = task.scale()
        what = f"Predicts a review's **{labels[0]}**" + (f", from {scale[0]:g} to {scale[1]:g}" if scale else "")
    elif task.problem_type == tasks.MULTI_LABEL:
        what = (f"Tags a review with any of {len(labels)} labels: " + ", ".join(f"**{n}**" for n in labels)
                + f" (each label at or above probability {task.threshold:.2f})")
    else:
        what = f"Sorts a review into one of {len(labels)} classes: " + ", ".join(f"**{n}**" for n in labels)
    if dataset != "unknown":
        trained = f" ({sizes['train']:,} training reviews)" if "train" in sizes else ""
        what += f", trained on *{dataset}*{trained}."
    lines = [what]
    meanings = results.get("label_descriptions") or {}
    if meanings:
        lines.append(" · ".join(f"**{name}**: {meanings[name]}" for name in labels if name in meanings))
    split = "test" if "test" in results.get("scores", {}) else "validation"
    scores = results.get("scores", {}).get(split)
    if scores:
        size = f" on {sizes[split]:,} {split} reviews" if split in sizes else f" on the {split} split"
        if task.problem_type == tasks.SINGLE_LABEL:
            said = f"**{split.capitalize()} accuracy {scores['accuracy']:.1%}**, macro F1 {scores['f1']:.1%}"
        elif task.problem_type == tasks.REGRESSION:
            said = f"**{split.capitalize()} MAE {scores['mae']:.3f}**, Spearman {scores['spearman']:.3f}" + (
                f", rounded accuracy {scores['accuracy']:.1%}" if "accuracy" in scores else "")
        else:
            said = (f"**{split.capitalize()} micro F1 {scores['f1_micro']:.1%}**, macro F1 {scores['f1']:.1%}, "
                    f"subset accuracy {scores['accuracy']:.1%}")
        leaked = ((results.get("unseen_scores") or {}).get(split) or {}).get("leaked", 0)
        seen = "the model never saw while training" if not leaked else "held out from training"
        lines.append(f"{said}{size} {seen}." + _uncertainty(results, split, task))
    base = meta.get("base_model") or (served.config.get("model") or {}).get("model_name_or_path")
    facts = [f"Model `{served.model_id}`" + (f" at revision `{served.revision[:12]}`" if served.revision else "")]
    if base:
        facts.append(f"base model `{base}`")
    link = card_link(served)
    facts.append(f"[model card]({link})" if link else "model card below")
    facts.append(f"served by {served.classifier.engine}")
    lines.append(" · ".join(facts))
    return "\n\n".join(lines)


def _uncertainty(results: dict, split: str, task: tasks.Task) -> str:
    """The header's second sentence: the headline figure's 95% interval, the score without leaked reviews, and
    what the confidences mean (calibrated; "unsure" below a threshold)."""
    said = []
    metric = {tasks.SINGLE_LABEL: "accuracy", tasks.REGRESSION: "mae", tasks.MULTI_LABEL: "f1_micro"}[task.problem_type]
    bounds = (results.get("intervals") or {}).get(split, {}).get(metric)
    if bounds:
        shown = (lambda v: f"{v:.3f}") if metric == "mae" else (lambda v: f"{v:.1%}")
        said.append(f"95% interval {shown(bounds[0])} to {shown(bounds[1])} (bootstrap).")
    unseen = (results.get("unseen_scores") or {}).get(split)
    if unseen and unseen.get("scores", {}).get(metric) is not None:
        value = unseen["scores"][metric]
        shown = f"{value:.3f}" if metric == "mae" else f"{value:.1%}"
        said.append(f"But {unseen['leaked']:,} of them are also in the training data (the same text); on the other "
                    f"{unseen['reviews']:,}, the ones it never saw: {shown}.")
    abstention = (results.get("calibration") or {}).get("abstention") or {}
    calibrated = any((results.get("calibration") or {}).get("fitted") or [])
    if abstention.get("threshold") is not None and split in abstention:
        answered = abstention[split]
        said.append(("Confidences are calibrated on validation; b" if calibrated else "B")
                    + f"elow {abstention['threshold']:.3f} the answer is *unsure* "
                    f"({trust.share_text(answered['coverage'])} of {split} reviews answered, "
                    f"{answered['precision']:.1%} of them right).")
    return (" " + " ".join(said)) if said else ""


def calibration_view(served: ServedModel) -> tuple[pd.DataFrame, str]:
    """The reliability plot's points (per confidence bin: mean confidence against accuracy, with the diagonal a
    calibrated model would follow) and a note with the temperature and ECE before/after."""
    report = served.results.get("calibration") if isinstance(served.results, dict) else None
    empty = pd.DataFrame({"confidence": [], "accuracy": [], "series": []})
    if not report:
        return empty, "No calibration: ratings have no class probabilities, or the run predates it."
    try:
        split = "test" if "test" in report["reliability"] else "validation"
        points = [{"confidence": b["confidence"], "accuracy": b["accuracy"], "series": f"{split} (calibrated)"}
                  for b in report["reliability"][split] if b["count"]]
        points += [{"confidence": x, "accuracy": x, "series": "perfectly calibrated"} for x in (0.0, 1.0)]
        temperature = report["temperature"]
        shown = ", ".join(f"{t:.2f}" for t in temperature) if isinstance(temperature, list) else f"{temperature:.2f}"
        fitted = all(report.get("fitted") or [True])
        how = (f"Temperature **{shown}**, fitted on validation." if fitted else
               "No temperature was fitted (" + "; ".join(report.get("notes") or []) + "): the model's own confidences.")
        note = (how + " Expected calibration error (lower is better): "
                + "; ".join(f"{s} {report['ece_before'][s]:.3f} before, {report['ece_after'][s]:.3f} after"
                            for s in report["ece_after"]) + ". On the plot, a calibrated model's points lie on the "
                "diagonal: of the reviews it gives 0.8, 80% are right.")
    except SHAPE_ERRORS as err:
        return empty, f"`{artifacts.RESULTS_FILE}`: its calibration could not be shown ({describe(err)})."
    return pd.DataFrame(points), note


def suspects_view(served: ServedModel, shown: int = 20) -> tuple[pd.DataFrame, str]:
    """The reviews whose label is most probably wrong (suspect_labels.csv), most suspect first."""
    rows = served.suspects
    if not rows:
        return pd.DataFrame(), "This run ranked no labels (`suspect_labels.csv`: classes only, `--frozen_baseline`)."
    try:
        flagged = sum(row["label_issue"] == "True" for row in rows)
        table = pd.DataFrame([{"split": r["split"], "label": r["label"], "model says": r["model_label"],
                               "label quality": round(float(r["score"]), 3), "review": r["text"]} for r in rows[:shown]])
    except SHAPE_ERRORS as err:
        return pd.DataFrame(), f"`{artifacts.SUSPECTS_FILE}` could not be shown ({describe(err)})."
    note = (f"**{flagged:,} of {len(rows):,}** reviews are flagged by cleanlab as probably mislabelled. The "
            f"{len(table)} with the lowest label quality (the probability given to their own label, by the fine-tuned "
            "model and a baseline that never saw them) are below: check their labels before trusting a score "
            "that counts them.")
    return table, note


def example_reviews(served: ServedModel, fallback: list[str]) -> list:
    """One short validation review per class (per rounded rating; per label set for several labels), each one the
    model gets right (surest or nearest first among the shortest), so the examples fit whatever this model
    predicts; `fallback` when the run stored none. A model of several text fields gets each example as its fields."""
    rows = served.validation_predictions or served.test_predictions
    task = served.task
    picks = []
    try:
        if task.problem_type == tasks.REGRESSION:
            groups = {}
            for row in rows:
                groups.setdefault(row.get("label"), []).append(row)
            keyed = [(name, [r for r in group if r.get("predicted_label") == name], lambda r: -abs(
                float(r["predicted_value"]) - float(r["label"]))) for name, group in sorted(groups.items())]
        elif task.problem_type == tasks.MULTI_LABEL:
            keyed = [(name, [r for r in rows if r.get("label") == r.get("predicted_labels") and
                             name in (r.get("label") or "").split(tasks.LABELS_JOINER)],
                      lambda r, n=name: float(r[f"p({n})"])) for name in task.label_names]
        else:
            keyed = [(name, [r for r in rows if r.get("label") == name == r.get("predicted_label")],
                      lambda r, n=name: float(r[f"p({n})"])) for name in (served.classifier.label_names
                                                                            if served.classifier else [])]
        for _name, candidates, sureness in keyed:
            candidates = [r for r in candidates if EXAMPLE_WORDS[0] <= len(r["text"].split()) <= EXAMPLE_WORDS[1]]
            if candidates:  # short and sure: a fifth of the candidates, the surest of those
                shortest = sorted(candidates, key=lambda row: len(row["text"]))[:max(1, len(candidates) // 5)]
                text = max(shortest, key=sureness)["text"]
                if text not in picks:
                    picks.append(text)
    except SHAPE_ERRORS:
        picks = []
    fields = served.text_fields
    if len(fields) > 1:  # the joined text, back into its fields (a review with an empty field is left out)
        separator = served.classifier.separator
        picks = [parts for parts in (text.split(separator) for text in picks) if len(parts) == len(fields)]
        return picks or [[""] * (len(fields) - 1) + [fallback[0]]]
    return picks or fallback


# --- training metrics ---------------------------------------------------------------------------


def metrics_view(served: ServedModel) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """History table, loss plot data, score plot data, confusion matrix, card summary.

    Never raises for a run's files: what cannot be shown is named in the summary instead."""
    task = served.task
    columns = list(task.history_columns)
    rows = [{k: row.get(k) for k in columns} for row in served.history]
    history = pd.DataFrame(rows, columns=columns).apply(pd.to_numeric, errors="coerce")
    losses = _long(history, ["train_loss", "eval_loss"], "loss")
    scores = _long(history, ["accuracy", "f1"] if task.problem_type == tasks.SINGLE_LABEL else list(task.headline[:2]),
                   "score")
    problems = list(served.file_problems)
    try:
        confusion = confusion_table(served)
    except SHAPE_ERRORS as err:
        confusion = pd.DataFrame()
        problems.append(f"`{artifacts.RESULTS_FILE}`: its confusion matrix could not be shown ({describe(err)}).")
    try:
        summary = card_summary(served)
    except SHAPE_ERRORS as err:
        summary = f"`{served.model_id}`"
        problems.append(f"`{artifacts.RESULTS_FILE}`, `{artifacts.CONFIG_FILE}` or `{artifacts.CARD_FILE}` holds "
                        f"values the summary could not show ({describe(err)}).")
    if problems:
        summary = ("**⚠️ Some of the run's files could not be shown** (predictions are not affected):\n\n"
                   + "\n".join(f"- {p}" for p in problems) + "\n\n" + summary)
    return history.round(4), losses, scores, confusion, summary


def search_view(served: ServedModel) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The hyperparameter search's trials: a table, score against learning rate, and a summary line."""
    search = served.search
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
        return pd.DataFrame(), empty, f"`{artifacts.SEARCH_FILE}` could not be shown ({describe(err)})."
    return pd.DataFrame(rows).round(4), plot if "learning_rate" in names else empty, note


def evaluations_view(served: ServedModel) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Every evaluation in the card's model-index (the run's own splits and `finetune.score` results), and
    the run's most confidently wrong reviews: what a user reads to learn what the model has not understood."""
    try:
        evaluations = pd.DataFrame(card_evaluations(served.card_metadata))
    except SHAPE_ERRORS as err:
        evaluations = pd.DataFrame({"problem": [f"the card's model-index could not be shown ({describe(err)})"]})
    split = next((s for s, rows in (("test", served.test_predictions), ("validation", served.validation_predictions))
                  if rows and "label" in rows[0]), None)
    if split is None:
        return evaluations, pd.DataFrame(), ("This run stored no per-review predictions of a labelled split "
                                             f"(`{artifacts.predictions_file('test')}`): nothing to show here.")
    rows = served.test_predictions if split == "test" else served.validation_predictions
    task = served.task
    try:
        if task.problem_type == tasks.REGRESSION:
            return evaluations, *_furthest_off(rows, split, task)
        if task.problem_type == tasks.MULTI_LABEL:
            wrong = most_confident_mistakes(
                [row["text"] for row in rows], [row["label"] for row in rows], [row["predicted_labels"] for row in rows],
                [_surest_wrong_label(row, task) for row in rows])
        else:
            wrong = most_confident_mistakes(
                [row["text"] for row in rows], [row["label"] for row in rows], [row["predicted_label"] for row in rows],
                [float(row[f"p({row['predicted_label']})"]) for row in rows])
    except SHAPE_ERRORS as err:
        return evaluations, pd.DataFrame(), f"`{artifacts.predictions_file(split)}` could not be shown ({describe(err)})."
    kind = "whose labels are not all right" if task.problem_type == tasks.MULTI_LABEL else "are wrong"
    surest = ("furthest from the threshold on a label it got wrong" if task.problem_type == tasks.MULTI_LABEL
              else "surest about")
    note = (f"**{len(wrong):,} of {len(rows):,}** {split} reviews {kind}. The {min(len(wrong), MISTAKES_SHOWN)} "
            f"the model was {surest} are below, surest first: the kinds of review it has not understood "
            "(or labels that are wrong).")
    # The short columns first: on a narrow screen they stay in view, the review wraps beside them.
    table = pd.DataFrame([{"true label": m["label"], "predicted": m["predicted_label"],
                           "confidence": round(m["confidence"], 4), "review": m["text"]}
                          for m in wrong[:MISTAKES_SHOWN]])
    flagged = {row.get("text") for row in served.suspects if row.get("split") == split and row.get("label_issue") == "True"}
    if flagged and not table.empty:  # a confident mistake on a mislabelled review is the label's mistake
        table["label suspect"] = table["review"].isin(flagged)
        note += (f" {int(table['label suspect'].sum())} of them are flagged as probably mislabelled (`label suspect`): "
                 "there the model may be right.")
    return evaluations, table, note


def _surest_wrong_label(row: dict, task: tasks.Task) -> float:
    """How far from the threshold the model was on the labels it decided wrongly (0 when it got them all right)."""
    true = set(row["label"].split(tasks.LABELS_JOINER)) if row["label"] else set()
    return max((abs(float(row[f"p({name})"]) - task.threshold) for name in task.label_names
                if (float(row[f"p({name})"]) >= task.threshold) != (name in true)), default=0.0)


def _furthest_off(rows: list[dict], split: str, task: tasks.Task) -> tuple[pd.DataFrame, str]:
    """A rating model's reviews whose predicted value is furthest from the true one."""
    shown = furthest_off([r["text"] for r in rows], [float(r["label"]) for r in rows],
                         [float(r["predicted_value"]) for r in rows], MISTAKES_SHOWN)
    off = sum(r["predicted_label"] != r["label"] for r in rows) if task.rating_values else len(rows)
    note = (f"**{off:,} of {len(rows):,}** {split} reviews round to another rating than theirs. The "
            f"{len(shown)} furthest off are below, furthest first.")
    table = pd.DataFrame([{"true rating": tasks.value_name(m["label"]), "predicted": round(m["value"], 2),
                           "error": round(m["error"], 2), "review": m["text"]} for m in shown])
    return table, note


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


def _long(history: pd.DataFrame, columns: list[str], value_name: str) -> pd.DataFrame:
    if history.empty:
        return pd.DataFrame({"epoch": [], value_name: [], "series": []})
    frame = history.melt(id_vars="epoch", value_vars=columns, var_name="series", value_name=value_name)
    return frame.dropna()


def confusion_table(served: ServedModel) -> pd.DataFrame:
    matrices = served.results.get("confusion_matrices", {})
    split = "test" if "test" in matrices else "validation"
    if split not in matrices:
        return pd.DataFrame()
    names = served.task.confusion_names() or served.results.get("label_names", [])
    frame = pd.DataFrame(matrices[split], columns=[f"predicted {n}" for n in names])
    frame.insert(0, f"true ({split})", names)
    return frame


def card_summary(served: ServedModel) -> str:
    if served.problem:
        return served.problem
    if not served.results:
        if served.file_problems:  # results.json may be among them: metrics_view lists them above this
            return f"**Model**: `{served.model_id}`"
        return f"`{served.model_id}` has no stored training metrics (it was not trained with this project)."
    meta, training = served.card_metadata, served.config.get("training", {})
    sizes = served.results.get("split_sizes", {})
    hyperparameters = [f"{k} {training[k]}" for k in ("learning_rate", "num_train_epochs",
                                                      "per_device_train_batch_size", "seed") if k in training]
    frozen = served.config.get("model", {}).get("freeze_word_embeddings")  # absent from runs made before the flag
    if frozen is not None:
        hyperparameters.append(f"word embeddings {'frozen' if frozen else 'trained'}")
    lines = [
        f"**Model**: `{served.model_id}`" + (f" (served by {served.classifier.engine})" if served.classifier else ""),
        f"**Base model**: `{meta.get('base_model') or served.config.get('model', {}).get('model_name_or_path')}`",
        f"**Dataset**: {dataset_name(meta)} ({', '.join(f'{k} {v:,}' for k, v in sizes.items())} reviews)",
        f"**Labels**: {', '.join(served.results.get('label_names', []))}",
        "**Hyperparameters**: " + ", ".join(hyperparameters),
    ]
    for split, values in served.results.get("scores", {}).items():
        lines.append(f"**{split.capitalize()}**: " + ", ".join(
            f"{m} {values[m]:.4f}" for m in served.task.headline if m in values))
    return "\n\n".join(lines)


def dataset_name(meta: dict) -> str:
    try:
        return meta["model-index"][0]["results"][0]["dataset"]["name"]
    except (KeyError, IndexError, TypeError):
        return "unknown"
