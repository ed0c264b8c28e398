"""The model card: run facts (a dataclass) -> metadata + Markdown -> huggingface_hub.ModelCard.

The metadata's `model-index` holds the final validation and test scores, so the Hub
shows them and `ModelCard.load(...).data.eval_results` reads them back.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from finetune import tasks, trust
from finetune.truncation import head_size

TASK = "text-classification"


@dataclass
class CardFacts:
    model_name: str
    base_model: str  # what the user passed, or the embedded model's origin
    base_model_hub_id: str | None  # for metadata: only a real Hub id links
    dataset_name: str
    dataset_id: str | None
    label_names: list[str]
    split_sizes: dict[str, int]
    history: list[dict[str, Any]]
    scores: dict[str, dict[str, float]]  # split -> metric -> value ("validation", maybe "test")
    confusion_matrices: dict[str, list[list[int]]]
    hyperparameters: dict[str, Any]
    framework_versions: dict[str, str]
    best_metric: str = "f1"
    dropped_rows: dict[str, int] = field(default_factory=dict)
    license: str | None = None
    data_notes: str = ""
    repo_id: str | None = None  # the Hub repo, for the usage snippet
    unlabelled_splits: dict[str, int] = field(default_factory=dict)  # split -> reviews, labels hidden
    hidden_label_rows: dict[str, int] = field(default_factory=dict)  # split -> rows dropped, label hidden
    search: dict[str, Any] | None = None  # hp_search.json, when the run searched its hyperparameters
    onnx_copy: Any | None = None  # the checked ONNX copy (onnx_export.OnnxCopy), when the run wrote one
    cost: Any | None = None  # what the run cost (energy.RunCost): the Training cost section, co2_eq_emissions
    truncation: str = "head"  # which part of a long review the model reads (finetune/truncation.py)
    max_seq_length: int = 512
    task: Any = None  # what a label is (finetune/tasks.Task); None: single label over label_names
    text_fields: list[str] = field(default_factory=lambda: ["text"])  # the text columns, joined in this order
    text_pairing: str = "join"  # two fields: joined, or the second as BERT's second segment (finetune/text_fields.py)
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split -> metric -> 95% bootstrap CI
    calibration: dict[str, Any] | None = None  # finetune/trust.py's report: temperature, ECE, abstention
    unseen: dict[str, dict] = field(default_factory=dict)  # split -> scores without its reviews also in train
    audit: dict[str, Any] | None = None  # the data audit (finetune/audit.AuditReport.to_json())
    small_validation: str = ""  # what the run did because validation was small (train.py), for the card
    frozen: dict[str, Any] | None = None  # the frozen baseline and suspect labels (finetune/suspects.py)

    def __post_init__(self):
        if self.task is None:
            self.task = tasks.Task(tasks.SINGLE_LABEL, self.label_names)


def build_card(facts: CardFacts) -> ModelCard:
    metadata = ModelCardData(
        model_name=facts.model_name,
        base_model=facts.base_model_hub_id,
        datasets=[facts.dataset_id] if facts.dataset_id else None,
        license=facts.license,
        language=["en"],
        library_name="transformers",
        pipeline_tag=TASK,
        tags=["text-classification", "reviews", "generated_from_trainer",
              *(ONNX_TAGS if facts.onnx_copy is not None else ())],
        metrics=list(facts.task.headline),
        eval_results=_eval_results(facts) or None,
        co2_eq_emissions=facts.cost.co2_eq_emissions() if facts.cost is not None else None,
    )
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{_body(facts)}")


def _eval_results(facts: CardFacts) -> list[EvalResult]:
    return [result for split, scores in facts.scores.items()
            for result in split_results(facts.dataset_name, facts.dataset_id, split, scores, facts.task)]


def split_results(dataset_name: str, dataset_id: str | None, split: str, scores: dict[str, float], task,
                  dataset_config: str | None = None) -> list[EvalResult]:
    """The card's metadata (model-index) entries of one scored split: one per headline metric of the task."""
    return [
        EvalResult(
            task_type=TASK,
            task_name="Text Classification",
            dataset_type=dataset_id or dataset_name,
            dataset_name=dataset_name,
            dataset_config=dataset_config,
            dataset_split=split,
            metric_type=metric,
            metric_name=_metric_title(metric, len(task.label_names), task.problem_type),
            metric_value=round(float(scores[metric]), 4),
        )
        for metric in task.headline
        if metric in scores
    ]


def _metric_title(metric: str, n_labels: int, problem: str = tasks.SINGLE_LABEL) -> str:
    if metric in tasks.METRIC_TITLES:
        return tasks.METRIC_TITLES[metric]
    if metric == "accuracy":
        return {tasks.REGRESSION: "Accuracy (rounded to the nearest rating)",
                tasks.MULTI_LABEL: "Subset accuracy (every label right)"}.get(problem, "Accuracy")
    kind = "labels" if problem == tasks.MULTI_LABEL else "classes"
    return f"{metric.capitalize()} (macro, {n_labels} {kind})"


def _what_it_does(facts: CardFacts) -> str:
    task, base = facts.task, f"This model is a fine-tuned version of `{facts.base_model}` on **{facts.dataset_name}**"
    fields = facts.text_fields
    how = ("as a pair (the second as BERT's second segment)" if facts.text_pairing == "pair"
           else "joined by the tokenizer's separator token")
    read = "" if len(fields) == 1 else (" It reads " + " and ".join(f"`{f}`" for f in fields) + f", {how}, in that order.")
    if task.problem_type == tasks.REGRESSION:
        scale = task.scale()
        return (f"{base} to predict a review's rating, `{task.label_names[0]}`"
                + (f" ({scale[0]:g} to {scale[1]:g} in the training data)" if scale else "") + " (regression)." + read)
    if task.problem_type == tasks.MULTI_LABEL:
        return (f"{base} to tag a review with any of {len(task.label_names)} labels (multi-label): "
                f"{', '.join(f'`{n}`' for n in task.label_names)}. A label is predicted when its probability is at "
                f"least **{task.threshold:.2f}**, the threshold chosen on validation (saved as `review_threshold` in "
                "config.json)." + read)
    return (f"{base} for review classification into {len(facts.label_names)} classes: "
            f"{', '.join(f'`{n}`' for n in facts.label_names)}." + read)


def _usage(facts: CardFacts, repo: str) -> str:
    task = facts.task
    review = '"The food was great and the staff were lovely."'
    if len(facts.text_fields) > 1 and facts.text_pairing == "pair":
        review = '{"text": "Lovely place", "text_pair": "The food was great and the staff were lovely."}'
        note = (f"\n\nGive the fields ({', '.join(facts.text_fields)}) as a pair, as training did: the second is "
                "BERT's second segment (`config.json` has them as `review_text_fields`).")
    elif len(facts.text_fields) > 1:
        review = '" [SEP] ".join(["Lovely place", "The food was great and the staff were lovely."])'
        note = (f"\n\nJoin the fields ({', '.join(facts.text_fields)}) as training did: with the tokenizer's "
                "separator token between them (`config.json` has them as `review_text_fields` and "
                "`review_text_separator`).")
    else:
        note = ""
    if task.problem_type == tasks.REGRESSION:
        code = (f'rater = pipeline("text-classification", model="{repo}", function_to_apply="none")\n'
                f"rating = rater({review})[0][\"score\"]  # the predicted {task.label_names[0]}, e.g. 4.3\n"
                "print(rating)")
        note = ("The model has one output, the rating itself: `function_to_apply=\"none\"` reads it as it is "
                "(the pipeline's label is the rating's name, its score the value). This project's demo and "
                "`finetune.score` also round it to the nearest rating seen in training." + note)
    elif task.problem_type == tasks.MULTI_LABEL:
        code = (f'tagger = pipeline("text-classification", model="{repo}", function_to_apply="sigmoid", top_k=None)\n'
                f"scores = tagger({review})\n"
                f"print([s[\"label\"] for s in scores if s[\"score\"] >= {task.threshold:.2f}])  # the labels predicted")
        note = ("Each label has its own probability (sigmoid); the labels predicted are those at or above the "
                f"threshold {task.threshold:.2f}." + note)
    else:
        code = (f'classifier = pipeline("text-classification", model="{repo}", top_k=None)\n'
                f"print(classifier({review}))")
        temperature = task.temperature if isinstance(task.temperature, float) else 1.0
        if temperature != 1.0 and len(facts.text_fields) == 1:
            code += ("  # the model's own probabilities\n\n"
                     "# Calibrated, as this project's demo shows them: the logits divided by the temperature fitted on\n"
                     "# validation (config.json's review_temperature), and 'unsure' below review_min_confidence\n"
                     "import torch\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                     f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
                     f'model = AutoModelForSequenceClassification.from_pretrained("{repo}").eval()\n'
                     "with torch.no_grad():\n"
                     f"    logits = model(**tokenizer([{review}], truncation=True, return_tensors=\"pt\")).logits\n"
                     "probabilities = (logits / model.config.review_temperature).softmax(-1)[0]\n"
                     "confidence, label = probabilities.max(-1)\n"
                     "unsure = confidence < (model.config.review_min_confidence or 0.0)\n"
                     "print(\"unsure\" if unsure else model.config.id2label[int(label)], round(float(confidence), 3))")
    return ("## How to use\n\n```python\nfrom transformers import pipeline\n\n" + code + "\n```\n\n"
            + (note + "\n\n" if note else "") + f"Or serve it with this project's demo: `MODEL_ID={repo} python app.py`.")


def _results_text(facts: CardFacts) -> str:
    files = ", ".join(f"`predictions_{split}.csv`" for split in facts.scores)
    chosen = f"Scores of the restored best checkpoint (selected on validation `{facts.best_metric}`). "
    if facts.task.problem_type == tasks.REGRESSION:
        return (chosen + "MAE and MSE are in rating units; accuracy counts a prediction right when it rounds to the "
                "true rating (the nearest rating seen in train). Every review's prediction (text, true rating, "
                f"predicted value, rounded rating) is in {files}.")
    if facts.task.problem_type == tasks.MULTI_LABEL:
        return (chosen + f"At the decision threshold {facts.task.threshold:.2f}, chosen on validation after training "
                "(so validation's scores are a little optimistic; test's are not). F1 (micro) pools every "
                "review-label decision; precision, recall and F1 are macro averages over the labels; accuracy is "
                "subset accuracy (every label of a review right). Every review's prediction (text, true labels, "
                f"labels predicted, each label's probability) is in {files}.")
    return (chosen + "Precision, recall and F1 are macro averages over the classes; in brackets, 95% bootstrap "
            "intervals. Every review's prediction (text, true label, predicted label, calibrated class probabilities) is "
            f"in {files}.")


def _body(facts: CardFacts) -> str:
    repo = facts.repo_id or "path/to/this/folder"
    names = facts.task.confusion_names()
    sections = [
        f"# {facts.model_name}",
        _what_it_does(facts),
        _headline(facts),
        _usage(facts, repo),
        _truncation_section(repo, facts.truncation, facts.max_seq_length),
        _onnx_section(repo, facts.onnx_copy, facts.task, facts.text_fields) if facts.onnx_copy is not None else "",
        "## Training history (one row per epoch)\n\n" + _history_table(facts.history, facts.task),
        "## Final results\n\n" + _results_text(facts) + "\n\n" + _results_table(facts),
        _calibration_section(facts),
        _frozen_section(facts),
        "" if facts.task.problem_type == tasks.REGRESSION else
        ("### Per label\n\n" if facts.task.problem_type == tasks.MULTI_LABEL else "### Per class\n\n")
        + _per_class_table(facts),
        *[_confusion_section(split, matrix, names) for split, matrix in facts.confusion_matrices.items() if names],
        "## Training data\n\n" + _data_section(facts),
        _data_checks_section(facts.audit, facts.small_validation),
        _search_section(facts.search),
        "## Training hyperparameters\n\n" + "\n".join(f"- {k}: {v}" for k, v in facts.hyperparameters.items())
        + _dropout_note(facts.hyperparameters.get("attention_dropout")),
        _cost_section(facts.cost),
        "## Intended use and limitations\n\n"
        "Intended for English review text of the same kind as the training data. It is not "
        "a general sentiment model: scores on other domains (products vs. films), other languages, sarcasm "
        "or very long texts (truncated at the maximum sequence length above) will be lower than those "
        "reported here. Labels reflect the data's own annotation, with its biases. Do not use it for "
        "decisions about people.",
        "## Framework versions\n\n" + "\n".join(f"- {k} {v}" for k, v in facts.framework_versions.items()),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _search_section(search: dict[str, Any] | None) -> str:
    if not search:
        return ""
    names = list(search["space"])
    header = ("| trial | state | validation " + search["metric"] + " | seconds | " + " | ".join(names) + " |\n|"
              + "---|" * (4 + len(names)))
    rows = [
        f"| {t['number']} | {t['state']} | {_fmt(t['value'])} | {_fmt(t['seconds'])} | "
        + " | ".join(_fmt_param(t["params"].get(n)) for n in names) + " |"
        for t in search["trials"]
    ]
    best = ", ".join(f"{k} {_fmt_param(v)}" for k, v in search["best_params"].items())
    return (
        f"## Hyperparameter search\n\n{len(search['trials'])} trials (optuna, TPE sampler) on "
        f"{search['train_samples']:,} training reviews, each scored by its best epoch's validation "
        f"{search['metric']} ({search['direction']}); trials below the median of earlier ones after an epoch were "
        f"stopped (pruned). The test split was not used. The model above was trained on the full training data with "
        f"the best trial's settings: {best}.\n\n" + "\n".join([header, *rows])
    )


def _fmt_param(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else _fmt(value)


def _dropout_note(attention_dropout) -> str:
    if attention_dropout != 0.0:
        return ""
    return (
        "\n\nAttention dropout was 0 during fine-tuning (this project's default; BERT's own is 0.1), so PyTorch "
        "could use its fused attention kernel, which trains faster on CPU. The project's "
        "`bench/accuracy_parity.py` compares it with 0.1 over several seeds; its README reports the result."
    )


COST_HEADING = "## Training cost"


def _cost_section(cost: Any | None) -> str:
    """Wall time, hardware, energy and CO2-equivalent of the run (an energy.RunCost), and how they were obtained."""
    if cost is None:
        return ""
    kwh = cost.energy_kwh
    return (
        f"{COST_HEADING}\n\n| wall time | hardware | energy | CO2-equivalent |\n|---|---|---|---|\n"
        f"| {_duration(cost.wall_seconds)} | {cost.hardware} | {kwh:.3g} kWh ({kwh * 1000:.3g} Wh) | "
        f"{cost.co2_grams:.3g} g |\n\n"
        f"Wall time runs from the start of the run (loading the model and the data) to the writing of this card, "
        f"with {cost.processes} training process(es). Energy: {cost.method} CO2-equivalent: the energy times "
        f"{cost.carbon_intensity:g} gCO2eq/kWh ({cost.carbon_intensity_source}). Not included: data-centre overhead "
        "(PUE), the network, making the hardware, and the base model's pre-training. The metadata's "
        "`co2_eq_emissions` (grams) and `results.json` (`cost`) hold the same figures."
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _headline(facts: CardFacts) -> str:
    lines = []
    for split, scores in facts.scores.items():
        bounds = facts.intervals.get(split, {})
        parts = ", ".join(f"{m} {scores[m]:.4f}" + (f" {trust.plus_minus(bounds[m])}" if m in bounds else "")
                          for m in facts.task.headline if m in scores)
        lines.append(f"- **{split}** ({facts.split_sizes.get(split, 0):,} reviews): {parts}")
    for split, result in facts.unseen.items():
        bounds = result.get("intervals", {})
        parts = ", ".join(f"{m} {v:.4f}" + (f" {trust.plus_minus(bounds[m])}" if m in bounds else "")
                          for m, v in result.get("scores", {}).items())
        lines.append(f"- **{split}, unseen reviews only** ({result['reviews']:,}; {result['leaked']:,} of the split's "
                     "reviews are also in the training data, the same text after normalising case, spacing and HTML, "
                     f"and are left out here): {parts or '-'}")
    if not lines:
        return ""
    return ("It achieves:\n\n" + "\n".join(lines) + "\n\nThe intervals are 95% bootstrap intervals (1,000 resamples of "
            "the split's reviews): how much the figure could move on another sample of the same size.")


def _history_table(history: list[dict[str, Any]], task) -> str:
    if not history:
        return "No evaluation was run during training."
    keys = task.history_columns
    header = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys)
    rows = [
        "| " + " | ".join(f"{row[k]:g}" if k == "epoch" else _fmt(row.get(k)) for k in keys) + " |"
        for row in history
    ]
    return "\n".join([header, *rows])


def _results_table(facts: CardFacts) -> str:
    metrics = facts.task.headline
    header = "| split | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics)
    rows = [f"| {s} | " + " | ".join(_fmt_with_interval(sc.get(m), facts.intervals.get(s, {}).get(m)) for m in metrics)
            + " |" for s, sc in facts.scores.items()]
    return "\n".join([header, *rows])


def _fmt_with_interval(value: Any, interval: list[float] | None) -> str:
    return _fmt(value) + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def _calibration_section(facts: CardFacts) -> str:
    """Temperature, ECE before and after, and the "unsure" answer's precision and coverage."""
    report = facts.calibration
    if not report:
        return ""
    temperature = report["temperature"]
    per_label = isinstance(temperature, list)
    shown = ", ".join(f"{t:.2f}" for t in temperature) if per_label else f"{temperature:.2f}"
    rows = [f"| {split} | {report['ece_before'][split]:.3f} | {report['ece_after'][split]:.3f} |"
            for split in report["ece_after"]]
    if not any(report.get("fitted") or [True]):
        text = ("## Calibration and confidence\n\nNo temperature was fitted on validation ("
                + "; ".join(report.get("notes") or []) + "): the confidences are the model's own. Expected calibration "
                "error (15 bins; lower is better):\n\n| split | ECE before | ECE after |\n|---|---|---|\n" + "\n".join(rows))
        report = {**report, "notes": []}
    else:
        text = ("## Calibration and confidence\n\nFine-tuned classifiers are usually over-confident. Temperature scaling "
                f"(Guo et al. 2017) was fitted on validation after training: the logits are divided by "
                f"**{shown}**{' (one per label)' if per_label else ''} before the {'sigmoid' if per_label else 'softmax'} "
                "(`review_temperature` in config.json; this project's demo, `finetune.score` and ONNX snippet apply it, "
                "a plain `pipeline` does not). It changes no prediction, only how sure the model says it is. Expected "
                "calibration error (15 bins; lower is better):\n\n| split | ECE before | ECE after |\n|---|---|---|\n"
                + "\n".join(rows))
    if report.get("notes"):
        text += "\n\n" + " ".join(f"Note: {note}." for note in report["notes"])
    abstention = report.get("abstention")
    if abstention and abstention.get("threshold") is not None:
        per_split = "; ".join(f"{split}: precision {r['precision']:.3f} on {trust.share_text(r['coverage'])} of the reviews"
                              for split, r in abstention.items() if isinstance(r, dict) and r.get("precision") is not None)
        text += (f"\n\n**Unsure answers.** Below a calibrated confidence of **{abstention['threshold']:.3f}** "
                 f"(`review_min_confidence`), the lowest at which validation answers reached precision "
                 f"{abstention['min_precision']:.2f}, this project's demo and `finetune.score` answer \"unsure\". "
                 f"Answered reviews, {per_split} (validation chose the threshold; test did not).")
    elif abstention and abstention.get("note"):
        text += f"\n\n**Unsure answers**: {abstention['note']}."
    return text


def _per_class_table(facts: CardFacts) -> str:
    columns = [(split, metric) for split in facts.scores for metric in ("precision", "recall", "f1")]
    header = "| label | " + " | ".join(f"{s} {m}" for s, m in columns) + " |\n|---|" + "---|" * len(columns)
    rows = [
        f"| {name} | " + " | ".join(_fmt(facts.scores[s].get(f"{m}_{name}")) for s, m in columns) + " |"
        for name in facts.label_names
    ]
    return "\n".join([header, *rows])


def _confusion_section(split: str, matrix: list[list[int]], label_names: list[str]) -> str:
    header = "| true \\ predicted | " + " | ".join(label_names) + " |\n|---|" + "---|" * len(label_names)
    rows = [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(label_names, matrix)]
    return f"### Confusion matrix ({split})\n\n" + "\n".join([header, *rows])


def _data_section(facts: CardFacts) -> str:
    sizes = ", ".join(f"{split} {n:,}" for split, n in facts.split_sizes.items())
    text = f"Dataset: {facts.dataset_name}. Reviews per split: {sizes}."
    dropped = {s: n for s, n in facts.dropped_rows.items() if n}
    if dropped:
        text += " Rows dropped for empty text or label: " + ", ".join(f"{s} {n}" for s, n in dropped.items()) + "."
    hidden = {s: n for s, n in facts.hidden_label_rows.items() if n}
    if hidden:
        text += " Rows dropped because their label is hidden (-1): " + ", ".join(
            f"{s} {n}" for s, n in hidden.items()) + "."
    for split, n in facts.unlabelled_splits.items():
        text += (f"\n\nThe **{split}** split ({n:,} reviews) has no labels (hidden, as many published test "
                 f"splits are): it is predicted, not scored, so it has no results above. Its predictions are in "
                 f"`predictions_{split}.csv`.")
    if facts.data_notes:
        text += "\n\n" + facts.data_notes
    return text


def _frozen_section(facts: CardFacts) -> str:
    """The frozen baseline beside the fine-tuned scores, and the suspect labels' count."""
    frozen = facts.frozen
    if not frozen or not frozen.get("scores"):
        return ""
    metrics = [m for m in facts.task.headline if any(m in s for s in frozen["scores"].values())]
    header = "| split | model | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics)
    rows = []
    for split, scores in frozen["scores"].items():
        tuned = facts.scores.get(split, {})
        rows.append(f"| {split} | fine-tuned | " + " | ".join(_fmt(tuned.get(m)) for m in metrics) + " |")
        rows.append(f"| {split} | frozen baseline | " + " | ".join(_fmt(scores.get(m)) for m in metrics) + " |")
    text = ("## What fine-tuning bought\n\nThe frozen baseline is a "
            + ("ridge regression" if facts.task.problem_type == tasks.REGRESSION else "logistic regression")
            + f" on the base model's mean-pooled embeddings (not fine-tuned), fitted on {frozen['train_reviews']:,} "
            "training reviews, scored on the same splits" + (" (" + ", ".join(
                f"{n:,} {s} reviews" for s, n in frozen["reviews"].items()) + ", sampled where a split is larger)"
                if frozen.get("reviews") else "") + ":\n\n" + header + "\n" + "\n".join(rows))
    found = frozen.get("suspects") or {}
    if found:
        text += (f"\n\n**Suspect labels.** {found['label_issues']:,} of {found['reviews']:,} reviews are flagged as "
                 "probably mislabelled by cleanlab's confident learning, from the probabilities of the "
                 f"{found['signals']} model(s); `suspect_labels.csv` lists every review, most suspect first.")
    return text


def _data_checks_section(report: dict[str, Any] | None, small_validation: str = "") -> str:
    """The audit's findings in a few lines (audit.json has the examples), and what small data changed."""
    if not report and not small_validation:
        return ""
    lines = []
    if report:
        rows = report["rows"]
        lines.append(f"- Exact duplicates within train (after normalising case, spacing and HTML): "
                     f"{report['duplicates_in_train']:,} of {rows.get('train', 0):,}.")
        for split, leaked in report["leaked"].items():
            lines.append(f"- {split} reviews also in train (the same text after normalising case, spacing and HTML): "
                         f"{len(leaked):,} of {rows[split]:,}"
                         + (" (kept; the scores above are also given without them)." if leaked else "."))
        for split, count in report.get("near_duplicates", {}).items():
            if split != "train":
                lines.append(f"- {split} reviews that nearly repeat a train review (MinHash, Jaccard >= 0.8): "
                             f"{count:,} (kept and counted as unseen).")
        lines.append(f"- Training texts with conflicting labels: {report['conflicts']:,}.")
        for name, spellings in report.get("label_variants", {}).items():
            lines.append(f"- Label spellings merged into `{name}`: " + ", ".join(f"`{s!r}`" for s in spellings) + ".")
        if report.get("numeric_text"):
            lines.append("- Warning: most training texts are numbers (are the text and label columns swapped?).")
    if small_validation:
        lines.append(f"- {small_validation}")
    return "## Data checks\n\nBefore training, the data was audited (`audit.json` has examples of each finding):\n\n" \
        + "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


# --- evaluations added later (python -m finetune.score --add_to_card) ----------------------------

EVALUATION_MARK = "<!-- evaluation: {key} -->"
EVALUATION_END = "<!-- /evaluation: {key} -->"
SECTIONS_AFTER_RESULTS = ("## Training data", "## Intended use and limitations")  # an evaluation goes before these


@dataclass
class Evaluation:
    """One scoring of the model on a dataset split, as the card records it (no review texts: they may be private)."""

    dataset_name: str
    dataset_id: str | None
    dataset_config: str | None
    split: str
    label_names: list[str]
    scores: dict[str, float]
    confusion_matrix: list[list[int]]
    reviews: int
    model_revision: str | None = None
    label_map: dict[str, str] = field(default_factory=dict)
    dropped_rows: int = 0
    hidden_label_rows: int = 0
    max_seq_length: int | None = None
    task: Any = None  # finetune/tasks.Task of the model scored; None: single label over label_names

    def __post_init__(self):
        if self.task is None:
            self.task = tasks.Task(tasks.SINGLE_LABEL, self.label_names)

    @property
    def key(self) -> str:
        return f"{self.dataset_id or self.dataset_name}|{self.dataset_config or ''}|{self.split}"

    def results(self) -> list[EvalResult]:
        return split_results(self.dataset_name, self.dataset_id, self.split, self.scores, self.task,
                             self.dataset_config)


def add_evaluation(card_text: str | None, evaluation: Evaluation, model_name: str) -> str:
    """The card with `evaluation` as model-index entries and a section; an earlier evaluation of the same
    dataset, configuration and split (the training run's own included) is replaced, not repeated."""
    card = ModelCard(card_text) if card_text else _new_card(model_name)
    data = card.data
    same = {(r.dataset_type, r.dataset_config, r.dataset_split) for r in evaluation.results()}
    kept = [r for r in data.eval_results or [] if (r.dataset_type, r.dataset_config, r.dataset_split) not in same]
    data.eval_results = kept + evaluation.results()
    data.model_name = data.model_name or model_name
    return f"---\n{data.to_yaml()}\n---\n{_with_section(card.text, evaluation)}"


def _new_card(model_name: str) -> ModelCard:
    """A card for a model that has none (e.g. one not trained with this project)."""
    metadata = ModelCardData(library_name="transformers", pipeline_tag=TASK)
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n# {model_name}\n")


def _with_section(text: str, evaluation: Evaluation) -> str:
    start, end = EVALUATION_MARK.format(key=evaluation.key), EVALUATION_END.format(key=evaluation.key)
    section = f"{start}\n{evaluation_section(evaluation)}\n{end}\n\n"
    if start in text and end in text:  # the same evaluation again: replace it where it is
        before, rest = text.split(start, 1)
        return before + section + rest.split(end, 1)[1].lstrip("\n")
    for heading in SECTIONS_AFTER_RESULTS:
        at = text.find(f"\n{heading}\n")
        if at >= 0:
            return text[:at + 1] + section + text[at + 1:]
    return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"


def evaluation_section(evaluation: Evaluation) -> str:
    e = evaluation
    where = f"**{e.dataset_name}**" + (f" ([dataset](https://huggingface.co/datasets/{e.dataset_id}))" if e.dataset_id else "")
    lines = [
        f"## Evaluation on {e.dataset_name}, {e.split} split",
        f"Scored with `python -m finetune.score` on {e.reviews:,} reviews of {where} ({e.split} split)"
        + (f", model revision `{e.model_revision[:12]}`" if e.model_revision else "")
        + (f", reviews truncated to {e.max_seq_length} tokens" if e.max_seq_length else "")
        + "." + {tasks.SINGLE_LABEL: " Precision, recall and F1 are macro averages over the classes.",
                 tasks.REGRESSION: " MAE and MSE are in rating units; accuracy is after rounding to the nearest rating.",
                 tasks.MULTI_LABEL: f" At the model's decision threshold {e.task.threshold:.2f}; precision, recall and "
                 "F1 are macro averages over the labels, accuracy is subset accuracy."}[e.task.problem_type],
    ]
    if e.label_map:
        lines.append("The data's labels were mapped to the model's: "
                     + ", ".join(f"`{d}` → `{m}`" for d, m in e.label_map.items()) + ".")
    dropped = [f"{n} with empty text" for n in [e.dropped_rows] if n] + [f"{n} with a hidden label" for n in
                                                                         [e.hidden_label_rows] if n]
    if dropped:
        lines.append("Rows dropped: " + ", ".join(dropped) + ".")
    metrics = e.task.headline
    header = "| " + " | ".join(metrics) + " |\n|" + "---|" * len(metrics)
    lines.append(header + "\n| " + " | ".join(_fmt(e.scores.get(m)) for m in metrics) + " |")
    if e.task.problem_type != tasks.REGRESSION:
        per_class = ["| label | precision | recall | f1 |\n|---|---|---|---|"] + [
            f"| {n} | " + " | ".join(_fmt(e.scores.get(f"{m}_{n}")) for m in ("precision", "recall", "f1")) + " |"
            for n in e.label_names
        ]
        lines.append("\n".join(per_class))
    names = e.task.confusion_names()
    if e.confusion_matrix and names:
        lines.append(_confusion_section(f"{e.dataset_name}, {e.split}", e.confusion_matrix, names))
    return "\n\n".join(lines)


# --- the ONNX copy (finetune/onnx_export.py) ------------------------------------------------------
# A training run renders it with the rest of the card (CardFacts.onnx_copy). `python -m finetune.onnx_export`
# adds it to the card of an older folder, and removing a copy removes its section: with_onnx_section.

ONNX_HEADING = "## ONNX (ONNX Runtime, transformers.js)"
ONNX_TAGS = ("onnx", "transformers.js")


def with_onnx_section(card_text: str, onnx_copy: Any | None, task=None, text_fields: list[str] | None = None) -> str:
    """The card with its ONNX section (and tags) for `onnx_copy` (an onnx_export.OnnxCopy), or without them if None."""
    card = ModelCard(card_text)
    body = _without_section(card.text, ONNX_HEADING)
    tags = [t for t in (card.data.tags or []) if t not in ONNX_TAGS]
    if onnx_copy is not None:
        body = _insert_before(body, "## Training history",
                              _onnx_section(_card_repo(card.text), onnx_copy, task, text_fields))
        tags += ONNX_TAGS
    if body == card.text and tags == list(card.data.tags or []):
        return card_text
    card.text, card.data.tags = body, tags
    return card.content


def _onnx_outputs(task, text_fields: list[str] | None) -> tuple[str, str]:
    """The ONNX snippet's review and its last lines, by the task: classes, the rating, or the labels over the
    threshold; several fields joined as training joined them."""
    review = '"The food was great and the staff were lovely."'
    if text_fields and len(text_fields) > 1:
        review = '" [SEP] ".join(["Lovely place", "The food was great and the staff were lovely."])'
    problem = task.problem_type if task is not None else tasks.SINGLE_LABEL
    if problem == tasks.REGRESSION:
        return review, "print(logits[:, 0])  # the predicted rating: one output, the value itself"
    if problem == tasks.MULTI_LABEL:
        return review, (f"logits = logits / np.asarray(getattr(config, 'review_temperature', 1.0))  # calibrated\n"
                        f"probabilities = 1 / (1 + np.exp(-logits))  # a sigmoid per label\n"
                        f"print([[config.id2label[j] for j, p in enumerate(row) if p >= {task.threshold:.2f}]  "
                        "# the threshold chosen on validation\n       for row in probabilities])")
    return review, ("logits = logits / getattr(config, 'review_temperature', 1.0)  # calibrated on validation\n"
                    "probabilities = np.exp(logits - logits.max(-1, keepdims=True))\n"
                    "probabilities /= probabilities.sum(-1, keepdims=True)  # per class, as the demo shows them\n"
                    "print([config.id2label[int(i)] for i in probabilities.argmax(-1)])")


def _onnx_section(repo: str, copy: Any, task=None, text_fields: list[str] | None = None) -> str:
    fp32, int8 = copy.files
    review, last = _onnx_outputs(task, text_fields)
    return f"""{ONNX_HEADING}

This model also comes in ONNX (opset 20, any batch size and review length), checked against PyTorch on
{copy.reviews_checked} validation reviews when it was written:

| file | weights | check |
|---|---|---|
| `{fp32}` | fp32 | logits within {copy.max_logit_difference:.1e} of PyTorch's |
| `{int8}` | int8 (MatMul weights, per channel; dynamic quantization): smaller, faster on a CPU | \
same label as PyTorch on {copy.int8_same_label} of {copy.reviews_checked} |

Inputs: the tokenizer's, as int64; output: `logits`.

With ONNX Runtime in Python (`pip install onnxruntime transformers`):

```python
import os

import numpy as np
import onnxruntime as ort
from huggingface_hub import hf_hub_download
from transformers import AutoConfig, AutoTokenizer

REPO = "{repo}"  # a Hub repo, or the model's folder on this machine
tokenizer, config = AutoTokenizer.from_pretrained(REPO), AutoConfig.from_pretrained(REPO)
onnx_file = "{fp32}"  # or "{int8}"
path = os.path.join(REPO, onnx_file) if os.path.isdir(REPO) else hf_hub_download(REPO, onnx_file)
session = ort.InferenceSession(path)
inputs = tokenizer([{review}], truncation=True, return_tensors="np")
logits = session.run(["logits"], {{i.name: inputs[i.name] for i in session.get_inputs()}})[0]
{last}
```

In a browser (or Node) with [transformers.js](https://huggingface.co/docs/transformers.js) (`npm i @huggingface/transformers`):
`dtype: 'q8'` loads `{int8}`, `dtype: 'fp32'` loads `{fp32}`.

```js
import {{ pipeline }} from '@huggingface/transformers';

const classifier = await pipeline('text-classification', '{repo}', {{ dtype: 'q8' }});
console.log(await classifier('The food was great and the staff were lovely.', {{ top_k: null }}));
```"""


def _truncation_section(repo: str, strategy: str, max_seq_length: int) -> str:
    """How to read a long review as this model was trained to (nothing to say for the head: `truncation=True`)."""
    if strategy == "head":
        return ""
    room = max_seq_length - 2
    if strategy == "tail":
        return (f"### Long reviews\n\nThis model was trained on the **end** of reviews longer than {max_seq_length} "
                "tokens. Its tokenizer truncates on the left (`truncation_side: left`), so "
                '`classifier(review, truncation=True)` reads the same end; this project\'s demo and '
                "`finetune.score` do so too.")
    head = head_size(room)
    return (
        f"### Long reviews\n\nThis model was trained on the **first {head} and the last {room - head}** word pieces "
        f"of reviews longer than {max_seq_length} tokens (head+tail truncation, Sun et al. 2019). A `pipeline` "
        "cannot cut a review that way (`truncation=True` keeps its head); this project's demo and `finetune.score` "
        "do, and so does this:\n\n```python\nimport torch\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
        f'model = AutoModelForSequenceClassification.from_pretrained("{repo}").eval()\n\n\n'
        "def read(review: str) -> dict[str, float]:\n"
        '    ids = tokenizer(review, add_special_tokens=False)["input_ids"]\n'
        f"    if len(ids) > {room}:  # keep the first {head} and the last {room - head}\n"
        f"        ids = ids[:{head}] + ids[len(ids) - {room - head}:]\n"
        "    input_ids = torch.tensor([[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]])\n"
        "    with torch.no_grad():\n"
        "        probabilities = model(input_ids=input_ids).logits.softmax(-1)[0]\n"
        "    return {model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)}\n\n\n"
        'print(read("The food was great and the staff were lovely."))\n```'
    )


def _card_repo(body: str) -> str:
    """The model the card's usage snippets name (a repo id, or the local folder before a push)."""
    match = re.search(r'model="([^"]*)"', body)
    return match.group(1) if match else "path/to/this/folder"


def with_repo_id(card_text: str, repo_id: str) -> str:
    """The card with every usage snippet naming `repo_id`: for a folder pushed to a repo that was not known when
    its card was written (an offline start, `python -m finetune.push`).

    Every snippet of this module names the model as `_body`'s pipeline snippet does, right after a quote or an
    `=` (model="...", REPO = "...", pipeline('...', '...'), MODEL_ID=...): each such occurrence of the name the
    card has now is replaced, and nothing else of the text (a folder name may also be a word of the card)."""
    old = _card_repo(card_text)
    if old == repo_id:
        return card_text
    return re.sub(r"""(?<=["'=])""" + re.escape(old) + r"""(?=["'\s`])""", repo_id, card_text)


def _without_section(body: str, heading: str) -> str:
    start = body.find(f"\n{heading}\n")
    if start < 0:
        return body
    end = body.find("\n## ", start + 1)
    return body[:start] + (body[end:] if end >= 0 else "\n")


def _insert_before(body: str, heading: str, section: str) -> str:
    at = body.find(f"\n{heading}")
    if at < 0:
        return body.rstrip("\n") + "\n\n" + section + "\n"
    return body[:at] + "\n" + section + "\n" + body[at:]
