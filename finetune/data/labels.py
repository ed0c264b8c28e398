"""A split's labels as a task reads them (finetune/tasks.py): found in train (`discover_labels`), or a trained
model's (`model_labels`), and every split's label cells encoded by one encoder (`encode_labels`).

A single label is a class (a ClassLabel id); a rating a float32; several labels a float32 0/1 row per label name.
Spellings that differ only by case, surrounding spaces or number form (`pos`, `Pos`, `pos `; `5`, `5.0`) are one
label, named as train spells it most often (finetune/audit.py's canonical_label), with a warning that names them:
a spreadsheet's trailing space or a column typed as numbers in one export and text in another is never a second
class, and a refusal would send the user to clean by hand what one rule cleans exactly.
"""

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from datasets import ClassLabel, Dataset, Features, Sequence, Value

from finetune import audit, tasks
from finetune.data.columns import (
    Reading,
    as_text,
    column_of,
    column_values,
    is_number,
    number_name,
    rating_value,
)
from finetune.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labels:
    """The task's labels, and how a split's label cells are read as them."""

    task: tasks.Task
    spelled: dict[str, str] = field(default_factory=dict)  # canonical spelling -> the task's label name
    variants: dict[str, list[str]] = field(default_factory=dict)  # train's merged spellings: name -> spellings
    label_map: dict[str, str] = field(default_factory=dict)  # --label_map: data label -> model label (scoring)
    known_by: str = "train"  # "train" or "the model": who knows the labels, for a refusal of others

    def resolve(self, key: str) -> str:
        """A data label's task label name: mapped, as written, or its spelling's (`key` itself when none)."""
        key = self.label_map.get(key, key)
        if key in self.task.label_names:
            return key
        return self.spelled.get(audit.canonical_label(key), key)


def model_labels(task: tasks.Task, label_map: dict[str, str]) -> Labels:
    """A trained model's labels (finetune.score): data labels are mapped by --label_map, then matched by spelling."""
    return Labels(task, {audit.canonical_label(name): name for name in task.label_names}, label_map=label_map,
                  known_by="the model")


# --- finding the labels in train -------------------------------------------------------------------------------


def discover_labels(train: Dataset, reading: Reading) -> Labels:
    """train's labels (its clean rows): the classes, the rating values, or the label names; refused when they
    cannot teach a model."""
    column, where = reading.label_column, reading.where("train")
    if reading.problem_type == tasks.REGRESSION:
        values = sorted({rating_value(v) for v in column_values(train, column)})
        if len(values) < 2:
            prefix, described = column_of(column, "train", where)
            raise UsageError(f"{prefix}{described} holds a single value ({values}): a rating model needs 2+.")
        return Labels(tasks.Task(tasks.REGRESSION, [column], values if len(values) <= tasks.MAX_RATING_VALUES else None))
    if reading.problem_type == tasks.MULTI_LABEL:
        return _discover_label_names(train, reading)
    feature = train.features[column]
    values = column_values(train, column)
    spelled, variants = spelling_map(values)
    values = [spelled.get(audit.canonical_label(v), v) if isinstance(v, str) else v for v in values]
    names = label_names_of(values, feature, column, where)
    if len(names) < 2:
        prefix, described = column_of(column, "train", where)
        raise UsageError(f"{prefix}{described} holds a single label ({names}): a classifier needs 2+.")
    return Labels(tasks.Task(tasks.SINGLE_LABEL, names), spelled, variants)


def _discover_label_names(train: Dataset, reading: Reading) -> Labels:
    column, where = reading.label_column, reading.where("train")
    lists = _label_lists(train, column, reading.delimiter)
    spelled, variants = spelling_map([label for labels in lists for label in labels or []])
    lists = [None if labels is None else list(dict.fromkeys(spelled.get(audit.canonical_label(x), x) for x in labels))
             for labels in lists]
    cells = column_values(train, column)
    if not reading.delimiter and not reading.label_flag_columns and not any(
            isinstance(v, (list, tuple)) or str(v).strip().startswith("[") for v in cells):
        prefix, described = column_of(column, "train", where)
        example = next((str(v) for v in cells if v), "")[:40]
        raise UsageError(f"{prefix}{described} holds one text per review (e.g. {example!r}), not lists: for "
                         "several labels per review pass the character between them with --label_delimiter "
                         "(e.g. ';' for 'food;service'), or write them as a JSON array (e.g. [\"food\", "
                         "\"service\"]); for one label per review drop --problem_type.")
    names = list(reading.label_sources) if reading.label_flag_columns else sorted(
        {label for labels in lists for label in labels or []})
    counts = Counter(label for labels in lists for label in labels or [])
    if not counts:
        prefix, described = column_of(column, "train", where)
        raise UsageError(f"{prefix}{described}: no training review has any label, so there is nothing to learn.")
    never = [n for n in names if not counts[n]]
    if never:
        raise UsageError(f"labels {', '.join(never)} are on no training review: a model cannot learn them. Add "
                         "such reviews to train, or drop those columns from --label_column_names.")
    return Labels(tasks.Task(tasks.MULTI_LABEL, names), spelled, variants)


def spelling_map(labels) -> tuple[dict[str, str], dict[str, list[str]]]:
    """canonical key -> train's display spelling (the most frequent), for text labels; and the groups of 2+, with a
    warning that names them. A ClassLabel or numeric column has one spelling per label: no map."""
    texts = [str(v) for v in labels if isinstance(v, str)]
    if not texts:
        return {}, {}
    # train's most frequent spelling names the label, without surrounding spaces (`pos ` is `pos`)
    variants = {name.strip(): spellings for name, spellings in audit.label_variants(texts).items()}
    display = {audit.canonical_label(v): v for v in dict.fromkeys(texts)}
    display.update({audit.canonical_label(name): name for name in variants})
    if variants:
        logger.warning("labels that differ only by case, spaces or number form are merged: %s",
                       "; ".join(f"{', '.join(repr(v) for v in spellings)} -> {name!r}"
                                 for name, spellings in variants.items()))
    return display, variants


def label_names_of(values: list, feature, column: str, where: str | None = None) -> list[str]:
    """ClassLabel names when the data has them, else the sorted set of train's labels (numbers sort as numbers).

    Raises UsageError when train's labels cannot make a classifier (see check_labels_teachable); `where`
    (`--train_file PATH`) names train's file in the message.
    """
    numeric = not isinstance(feature, ClassLabel) and all(is_number(v) for v in values)
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        labels = [names[v] for v in values if 0 <= v < len(names)]
    elif numeric:
        _refuse_continuous(values, column, where)
        names = [number_name(v) for v in sorted(set(values))]
        labels = [number_name(v) for v in values]
    else:
        names = sorted({str(v) for v in values})
        labels = [str(v) for v in values]
    check_labels_teachable(labels, column, numeric, where)
    return names


def _refuse_continuous(values: list, column: str, where: str | None = None) -> None:
    """Numbers with fractions other than halves (3.7, 4.15) are a regression target, not classes.

    Whole numbers (1-5 stars) and halves (3.5 stars) are classes.
    """
    fractional = list(dict.fromkeys(v for v in values if not float(v * 2).is_integer()))
    if fractional:
        distinct = len(set(values))
        examples = ", ".join(number_name(v) for v in fractional[:3])
        how_many = f"{distinct} distinct numbers" + (
            " with fractions" if len(fractional) == distinct else f", {len(fractional)} of them with fractions"
        )
        prefix, described = column_of(column, "train", where)
        raise UsageError(
            f"{prefix}{described} holds {how_many} (e.g. {examples}): this looks like a regression target, "
            "not classes. Train a rating model with --problem_type regression, or bin the values into classes (e.g. "
            "whole stars, or low/medium/high) in a new column and pass its name with --label_column_name."
        )


def check_labels_teachable(labels: list[str], column: str, numeric: bool = False, where: str | None = None) -> None:
    """Refuse more distinct labels than half the rows (fewer than 2 examples a class); warn about single examples."""
    prefix, described = column_of(column, "train", where)
    counts = Counter(labels)  # in order of first appearance, as the messages list them
    examples = ", ".join(list(counts)[:3])
    if len(counts) >= 2 and len(counts) > len(labels) / 2:
        raise UsageError(
            f"{prefix}{described} holds {len(counts)} distinct labels in {len(labels)} rows (e.g. {examples}): "
            "fewer than 2 examples a class, more classes than the data can teach. Check that --label_column_name "
            "names the label column (not an id or a text), merge rare labels, or add reviews"
            + ("; if the numbers are a score, train a rating model with --problem_type regression." if numeric else ".")
        )
    single = [label for label, count in counts.items() if count == 1]
    if single:
        logger.warning(
            "%s%d of %d labels in %s have a single example (%s): the model can hardly learn them, "
            "and they cannot be in both train and validation",
            prefix, len(single), len(counts), described, ", ".join(single[:5]) + (", ..." if len(single) > 5 else ""),
        )


# --- ratings --------------------------------------------------------------------------------------------------


def ratings_of_class_names(split: Dataset, column: str) -> Dataset:
    """A ClassLabel column as ratings: the number each class name starts with when every name has one (Yelp's
    "1 star" ... "5 stars": 1 to 5), else the class ids. Hidden labels (-1) become missing ones."""
    feature = split.features[column]
    if not isinstance(feature, ClassLabel):
        return split
    numbers = [re.match(r"\s*(-?\d+(?:\.\d+)?)", name) for name in feature.names]
    scale = [float(m.group(1)) for m in numbers] if all(numbers) else [float(i) for i in range(len(feature.names))]
    values = [scale[v] if v is not None and 0 <= v < len(scale) else None for v in column_values(split, column)]
    return split.remove_columns(column).add_column(column, values, feature=Value("float64"))


def check_ratings(split: Dataset, column: str, name: str, where: str | None, needs: str) -> None:
    """A rating column holds numbers (or numbers written as text); the first that is not one is named by row.
    `needs` says who needs them (training's flag; a rating model, for finetune.score)."""
    for i, value in enumerate(column_values(split, column)):
        if value is None or is_number(value) or (isinstance(value, str) and not value.strip()):
            continue
        if rating_value(value) is None:
            prefix, described = column_of(column, name, where)
            raise UsageError(
                f"{prefix}{described} holds {str(value)[:40]!r} in row {i + 1} (the header not counted): "
                f"{needs} a number in every row (e.g. 4 or 3.5). Fix or remove that row, "
                "or pass the column of numbers with --label_column_name.")


# --- several labels per review ---------------------------------------------------------------------------------


def label_list(value, delimiter: str | None) -> list[str] | None:
    """One review's labels: a list, a JSON array (text), or text split at `delimiter`; None when missing."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = value
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                items = None
            if not isinstance(items, list):
                raise UsageError(f"the label {text[:60]!r} starts like a JSON array but is not one: write it as "
                                 '["food", "service"].')
        elif delimiter:
            items = text.split(delimiter)
        else:
            items = [text] if text else []
    return [as_text(item).strip() for item in items if item is not None and as_text(item).strip()]


def _label_lists(split: Dataset, column: str, delimiter: str | None) -> list[list[str] | None]:
    feature = split.features[column]
    inner = getattr(feature, "feature", None)  # a Sequence's items; a ClassLabel or Value has none
    values = column_values(split, column)
    if isinstance(inner, ClassLabel):  # a Hub dataset's list of class ids (e.g. go_emotions): their names
        return [None if v is None else [inner.names[i] for i in v] for v in values]
    return [label_list(value, delimiter) for value in values]


# --- the one encoder -------------------------------------------------------------------------------------------


def encode_labels(split: Dataset, name: str, reading: Reading, labels: Labels) -> Dataset:
    """Keep two columns, `text` and `label`: a ClassLabel over the task's classes, a float32 rating, or a float32
    0/1 row per label name. A label the task does not know is refused, naming both sets of labels.

    Classes are encoded by column operations and a batched `map`: a split read from files stays memory-mapped (no
    copy of its texts in memory) and keeps a deterministic fingerprint, which the tokenization cache is keyed on.
    """
    text, column, task = reading.text_column, reading.label_column, labels.task
    if task.problem_type == tasks.SINGLE_LABEL:
        clean = _encode_classes(split, name, text, column, labels)
    else:
        if task.problem_type == tasks.REGRESSION:
            values, feature = [rating_value(v) for v in column_values(split, column)], Value("float32")
        else:
            values = _label_rows(split, name, column, reading.delimiter, labels)
            feature = Sequence(Value("float32"), length=len(task.label_names))
        clean = split.select_columns([text]).add_column("label", values, feature=feature)
    if text != "text":
        clean = clean.rename_column(text, "text")
    clean = clean.select_columns(["text", "label"])
    if clean.features["text"] != Value("string"):  # e.g. Parquet's large_string: the one text type downstream
        clean = clean.cast_column("text", Value("string"))
    return clean


def _encode_classes(split: Dataset, name: str, text: str, column: str, labels: Labels) -> Dataset:
    names = labels.task.label_names
    feature = split.features[column]
    if isinstance(feature, ClassLabel) and list(feature.names) == names and not labels.label_map:
        clean = split.select_columns([text, column])
    elif isinstance(feature, ClassLabel) and labels.known_by == "train":
        raise UsageError(f"the {name} split's label names {feature.names} differ from train's {names}.")
    else:
        index = {label: i for i, label in enumerate(names)}
        keys = set(label_keys(split, column))
        ids = {key: index.get(labels.resolve(key)) for key in keys}
        _refuse_unknown([labels.resolve(key) for key, i in ids.items() if i is None], name, column, labels, keys)
        class_names = list(feature.names) if isinstance(feature, ClassLabel) else None
        features = Features({text: split.features[text], column: ClassLabel(names=names)})
        clean = split.select_columns([text, column]).map(
            _label_ids, batched=True, fn_kwargs={"column": column, "ids": ids, "class_names": class_names},
            features=features, desc=f"Encoding {name} labels")
    return clean.rename_column(column, "label") if column != "label" else clean


def _label_ids(batch: dict, column: str, ids: dict[str, int], class_names: list[str] | None) -> dict:
    return {column: [ids[_label_key(v, class_names)] for v in batch[column]]}


def _label_rows(split: Dataset, name: str, column: str, delimiter: str | None, labels: Labels) -> list[list[float]]:
    index = {label: i for i, label in enumerate(labels.task.label_names)}
    lists = _label_lists(split, column, delimiter)
    rows, unknown = [], set()
    for row_labels in lists:
        row = [0.0] * len(index)
        for label in row_labels or []:
            label = labels.resolve(label)
            if label in index:
                row[index[label]] = 1.0
            else:
                unknown.add(label)
        rows.append(row)
    _refuse_unknown(sorted(unknown), name, column, labels, {x for row in lists for x in row or []})
    return rows


def label_keys(split: Dataset, column: str) -> list[str]:
    """Each row's label as a name: a ClassLabel's name, a number as train names it ("4", "3.5"), or the text."""
    feature = split.features[column]
    class_names = list(feature.names) if isinstance(feature, ClassLabel) else None
    return [_label_key(v, class_names) for v in column_values(split, column)]


def _label_key(value, class_names: list[str] | None) -> str:
    if class_names is not None:
        return class_names[value]
    return number_name(value) if is_number(value) else str(value)


def _refuse_unknown(unknown: list[str], name: str, column: str, labels: Labels, data_labels) -> None:
    """Scoring a label the model does not know would count every such review as wrong; training cannot learn one
    that train lacks. The usual cause is another name for the same class (positive vs fresh)."""
    if not unknown:
        return
    unknown, known = sorted(unknown), labels.task.label_names
    if labels.known_by == "train":
        raise UsageError(f"the {name} split has labels that train lacks: {', '.join(unknown[:10])}. A model cannot "
                         f"learn them (it knows: {', '.join(known)}): add such reviews to train, or remove those "
                         "labels from this split.")
    data_labels = sorted(data_labels)
    raise UsageError(
        f"the {name} data has labels the model does not know: {', '.join(unknown[:10])}. The data's labels "
        f"(column '{column}'): {', '.join(data_labels[:20])}; the model's: {', '.join(known)}. If they "
        "name the same classes differently, map each data label to a model label with --label_map "
        f"DATA=MODEL,... (e.g. --label_map {data_labels[0]}={known[0]},...); otherwise this model "
        "cannot be scored on this data."
    )
