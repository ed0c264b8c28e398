"""Review data: load (Hub, local files or the embedded default), clean, label, split, tokenize.

`load_raw_splits` is the edge that reads data; everything after it is pure and
works on `datasets` objects, so tests feed it small in-memory datasets.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_dataset
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from finetune import audit, embedded, tasks, text_fields, truncation
from finetune.artifacts import public_value
from finetune.config import DataArguments, ReviewSource
from finetune.data_files import read_data_file
from finetune.errors import UsageError

logger = logging.getLogger(__name__)

VALIDATION_SPLIT_NAMES = ("validation", "valid", "dev")


@dataclass
class ReviewData:
    """Clean splits with columns `text` and `label` (a ClassLabel with the names below)."""

    splits: DatasetDict
    label_names: list[str]
    dataset_name: str  # for people: the card and the logs
    dataset_id: str | None  # a Hub dataset id, so the card's metadata links to it
    dropped: dict[str, int] = field(default_factory=dict)  # split -> rows without text or label
    # Splits whose labels are all hidden (-1 or missing, as Hub test splits often publish them):
    # predicted after training, not scored. Column `text` only.
    unlabelled: DatasetDict = field(default_factory=DatasetDict)
    hidden_labels: dict[str, int] = field(default_factory=dict)  # split -> rows dropped for a hidden label
    # What a label is (finetune/tasks.py): for a rating, label is a float and label_names its column's name; for
    # several labels, label is a 0/1 float per label name. None: single label (a ClassLabel), as above.
    task: tasks.Task | None = None
    # Label spellings merged into one label (display name -> every spelling seen): `pos`, `Pos`, `pos `.
    label_variants: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.task is None:
            self.task = tasks.Task(tasks.SINGLE_LABEL, self.label_names)


def load_review_data(args: DataArguments, seed: int, separator: str = " ") -> ReviewData:
    """`separator` joins the texts of several --text_column_names (the tokenizer's separator token)."""
    raw = load_raw_splits(args)
    if args.uses_embedded_data:
        name, hub_id = embedded.DATA_NAME, None
    elif args.dataset_name:
        name, hub_id = dataset_identity(args.dataset_name, args.dataset_config_name)
    else:
        name, hub_id = public_value(args.train_file), None
    return prepare_splits(raw, args, seed, dataset_name=name, dataset_id=hub_id, separator=separator)


# --- the edge: reading data ---------------------------------------------------------------


def load_raw_splits(args: DataArguments) -> DatasetDict:
    if args.uses_embedded_data:
        return load_embedded_reviews()
    if args.dataset_name:
        return load_hub_dataset(args.dataset_name, args.dataset_config_name, other_source="--train_file")
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    columns = (*args.text_columns(), *label_columns(args))
    return DatasetDict(
        {
            split: read_data_file(path, f"{split}_file", args.file_encoding, args.csv_delimiter, columns, args.sheet)
            for split, path in files.items()
            if path is not None
        }
    )


def load_hub_dataset(name: str, config_name: str | None, other_source: str) -> DatasetDict:
    """A Hub dataset (or a local dataset folder) by id; `other_source` names the flag for local files instead."""
    try:
        return load_dataset(name, config_name)
    except Exception as err:  # datasets raises many types here: not found, offline, bad config
        raise UsageError(
            f"--dataset_name {name}: could not load it ({type(err).__name__}: {err}). Check the "
            "id on huggingface.co/datasets, your network (or HF_HUB_OFFLINE), or pass local files with "
            f"{other_source} instead."
        ) from err


def dataset_identity(dataset_name: str, config_name: str | None) -> tuple[str, str | None]:
    """How a --dataset_name is published: a name for people, and a Hub id to link (None for a local folder,
    which is named by its last part only, so that its path stays home)."""
    local = Path(dataset_name).expanduser().exists()
    name = (Path(dataset_name).name if local else dataset_name) + (f" ({config_name})" if config_name else "")
    return name, None if local else dataset_name


def load_embedded_reviews(seed: int = embedded.SPLIT_SEED) -> DatasetDict:
    """Rotten Tomatoes critic reviews, split by movie so that no movie is in two splits."""
    frame = pd.read_csv(embedded.reviews_file())
    frame = frame[frame["category"].isin(embedded.REVIEW_CATEGORIES)]
    frame = frame.drop_duplicates(subset="text")  # a few snippets repeat; a copy in test would leak
    frame = frame.rename(columns={"category": "label"})[["text", "label", embedded.GROUP_COLUMN]]
    assignment = assign_groups(frame[embedded.GROUP_COLUMN].tolist(), embedded.SPLIT_FRACTIONS, seed)
    split_of_row = frame[embedded.GROUP_COLUMN].map(assignment)
    return DatasetDict(
        {
            split: Dataset.from_pandas(frame[split_of_row == split], preserve_index=False)
            for split in embedded.SPLIT_FRACTIONS
        }
    )


# --- pure steps -----------------------------------------------------------------------------


def assign_groups(groups: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Give each group (movie) one split so that each split holds about its fraction of the rows."""
    sizes: dict[str, int] = {}
    for group in groups:
        sizes[group] = sizes.get(group, 0) + 1
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    names = list(fractions)
    targets = [fractions[name] * len(groups) for name in names]
    assignment, split_index, filled = {}, 0, 0
    for group in order:
        # Move on once this split has its share; the last split takes what is left.
        while split_index < len(names) - 1 and filled >= targets[split_index]:
            split_index, filled = split_index + 1, 0
        assignment[group] = names[split_index]
        filled += sizes[group]
    return assignment


def prepare_splits(
    raw: DatasetDict, args: DataArguments, seed: int, dataset_name: str, dataset_id: str | None = None,
    separator: str = " ",
) -> ReviewData:
    if "train" not in raw:
        raise UsageError(f"the data has no 'train' split (it has: {', '.join(raw) or 'none'}). Pass --train_file.")
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    test = raw.get("test")
    splits = {"train": train, "validation": validation, "test": test}
    splits = {name: split for name, split in splits.items() if split is not None}

    problem = getattr(args, "problem_type", tasks.SINGLE_LABEL)
    for name, split in list(splits.items()):
        check_source_columns(split, name, args)
        if problem == tasks.REGRESSION:
            splits[name] = split = ratings_of_class_names(split, args.label_column_name)
            check_ratings(split, args.label_column_name, name, _file_flag(args, name))
    rating_column = args.label_column_name
    splits, args, fixed_names = unify_columns(splits, args, separator)
    if problem != tasks.SINGLE_LABEL:
        return _prepare_other_task(splits, args, seed, dataset_name, dataset_id, problem, fixed_names, rating_column)

    dropped = {}
    # Train must be labelled: a row without a label (or with a hidden one) teaches nothing.
    train_file = _file_flag(args, "train")
    splits["train"], dropped["train"] = drop_empty_rows(splits["train"], args, "train", where=train_file)
    _require_rows(splits["train"], "train", args)
    splits, variants = merge_label_spellings(splits, args.label_column_name)
    label_names = label_names_of(splits["train"], args.label_column_name, train_file)
    if len(label_names) < 2:
        prefix, column = _column_of(args.label_column_name, "train", train_file)
        raise UsageError(f"{prefix}{column} holds a single label ({label_names}): a classifier needs 2+.")
    unlabelled, hidden = {}, {}
    for name in [n for n in splits if n != "train"]:
        splits[name], dropped[name] = drop_empty_rows(
            splits[name], args, name, check_label=False, where=_file_flag(args, name)
        )
        hidden_mask = hidden_label_mask(splits[name], args.label_column_name, label_names)
        if len(splits[name]) and all(hidden_mask):
            logger.warning("the %s split's labels are all hidden (-1 or missing): its %d reviews will be predicted, "
                           "not scored", name, len(splits[name]))
            texts = column_values(splits.pop(name), args.text_column_name)
            unlabelled[name] = Dataset.from_dict({"text": texts})
            continue
        splits[name], hidden[name] = drop_hidden_labels(splits[name], args, name, hidden_mask)
    for name, split in splits.items():
        _require_rows(split, name, args)
    for name in list(splits):
        splits[name] = encode_labels(splits[name], args, label_names, name)

    if "validation" not in splits:
        if "validation" in unlabelled:
            logger.warning("validation has no labels: carving a labelled validation split from train instead")
        splits["train"], splits["validation"] = carve_validation(
            splits["train"], args.validation_split_percentage / 100, seed
        )
    return _finish(splits, unlabelled, dropped, hidden, args, seed, dataset_name, dataset_id,
                   tasks.Task(tasks.SINGLE_LABEL, label_names), variants)


def _finish(splits: dict, unlabelled: dict, dropped: dict, hidden: dict, args: DataArguments, seed: int,
            dataset_name: str, dataset_id: str | None, task: tasks.Task,
            label_variants: dict[str, list[str]] | None = None) -> ReviewData:
    """The subsets the --max_*_samples flags ask for, the log's counts, and the ReviewData."""
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_test_samples}
    for name, limit in limits.items():
        for group in (splits, unlabelled):
            if name in group and limit is not None:
                group[name] = take_subset(group[name], limit, seed)

    for name, count in dropped.items():
        if count:
            logger.warning("dropped %d %s rows with empty or missing text or label", count, name)
    for name, count in hidden.items():
        if count:
            logger.warning("dropped %d %s rows whose label is hidden (-1 or missing); %d remain", count, name,
                           len(splits[name]))
    return ReviewData(
        splits=DatasetDict(splits),
        label_names=task.label_names,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        dropped=dropped,
        unlabelled=DatasetDict(unlabelled),
        hidden_labels={name: count for name, count in hidden.items() if count},
        task=task,
        label_variants=label_variants or {},
    )


# --- label spellings: `pos`, `Pos` and `pos ` are one label ---------------------------------------------------


def merge_label_spellings(splits: dict, column: str) -> tuple[dict, dict[str, list[str]]]:
    """Every split's text labels respelled as train spells them most often, where spellings differ only by case,
    surrounding spaces or number form (finetune/audit.py's canonical_label: `Pos `, `pos`; `5`, `5.0`), with a
    warning that names them. Merged rather than refused: a spreadsheet's trailing space or a column typed as
    numbers in one export and text in another is never a second class, and a refusal would send the user to
    clean by hand what one rule cleans exactly. A ClassLabel or numeric column has one spelling per label."""
    display, variants = spelling_map(column_values(splits["train"], column))
    if not display:
        return splits, {}
    for name, split in splits.items():
        if isinstance(split.features[column], ClassLabel):
            continue
        if any(isinstance(v, str) and display.get(audit.canonical_label(v), v) != v for v in column_values(split, column)):
            splits[name] = split.map(_respelled, batched=True, fn_kwargs={"column": column, "display": display},
                                     desc=f"Merging {name} label spellings")
    _warn_merged(variants)
    return splits, variants


def _warn_merged(variants: dict[str, list[str]]) -> None:
    if variants:
        logger.warning("labels that differ only by case, spaces or number form are merged: %s",
                       "; ".join(f"{', '.join(repr(v) for v in spellings)} -> {name!r}"
                                 for name, spellings in variants.items()))


def spelling_map(labels) -> tuple[dict[str, str], dict[str, list[str]]]:
    """canonical key -> train's display spelling (the most frequent), for text labels; and the groups of 2+."""
    texts = [str(v) for v in labels if isinstance(v, str)]
    if not texts:
        return {}, {}
    # train's most frequent spelling names the label, without surrounding spaces (`pos ` is `pos`)
    variants = {name.strip(): spellings for name, spellings in audit.label_variants(texts).items()}
    display = {audit.canonical_label(v): v for v in dict.fromkeys(texts)}
    display.update({audit.canonical_label(name): name for name in variants})
    return display, variants


def _respelled(batch: dict, column: str, display: dict[str, str]) -> dict:
    return {column: [display.get(audit.canonical_label(v), v) if isinstance(v, str) else v for v in batch[column]]}


# --- several text columns, several label columns ------------------------------------------------------


def label_columns(args: ReviewSource) -> list[str]:
    """The columns the labels come from: --label_column_names, or the one --label_column_name (none: unlabelled)."""
    from finetune.config import column_list  # noqa: PLC0415

    names = column_list(getattr(args, "label_column_names", None))
    if names:
        return names
    return [args.label_column_name] if args.label_column_name else []


def check_source_columns(split: Dataset, name: str, args: ReviewSource, labelled: bool = True) -> None:
    """Every text column and (when `labelled`) label column the flags name is in the split."""
    several_text = len(args.text_columns()) > 1
    several_labels = bool(getattr(args, "label_column_names", None))
    wanted = [(c, "text_column_names" if several_text else "text_column_name") for c in args.text_columns()]
    if labelled:
        wanted += [(c, "label_column_names" if several_labels else "label_column_name") for c in label_columns(args)]
    for column, flag in wanted:
        if column not in split.column_names:
            raise UsageError(
                f"the {name} split has no column '{column}' (it has: {', '.join(split.column_names)}). "
                f"Pass --{flag} with " + ("columns among those." if flag.endswith("names") else "one of those.")
            )


def unify_columns(splits: dict, args: ReviewSource, separator: str) -> tuple[dict, ReviewSource, list[str] | None]:
    """Several text columns joined into one column `text`, and several 0/1 label columns into one column
    `label` of label names per review; the arguments then name those columns (the rest of the preparation reads
    one text and one label column), and the label names in the order the flag gave them (None: from the data)."""
    text_fields = args.text_columns()
    label_names = label_columns(args) if getattr(args, "label_column_names", None) else None
    if len(text_fields) == 1 and label_names is None:
        return splits, args, None
    joined = {}
    for name, split in splits.items():
        if len(text_fields) > 1:
            split = join_text_fields(split, text_fields, separator)
        if label_names is not None:
            split = labels_from_columns(split, label_names, name, _file_flag(args, name))
        joined[name] = split
    changes = {"text_column_name": "text", "text_column_names": None}
    if hasattr(args, "text_pairing"):  # the pairing acts at tokenization (finetune/text_fields.py), after this
        changes["text_pairing"] = "join"
    if label_names is not None:
        changes.update(label_column_name="label", label_column_names=None)
    return joined, dataclasses.replace(args, **changes), label_names


def join_text_fields(split: Dataset, fields: list[str], separator: str) -> Dataset:
    """Column `text`: each row's non-empty fields, in order, joined by `separator` (finetune/text_fields.py);
    None when all are empty."""
    def join(batch):
        return {"text": [text_fields.join(values, separator) for values in zip(*(batch[f] for f in fields))]}

    features = split.features.copy()
    features["text"] = Value("string")
    return split.map(join, batched=True, features=features, desc="Joining the text columns")


def labels_from_columns(split: Dataset, names: list[str], name: str, where: str | None) -> Dataset:
    """Column `label`: per review, the names of the 0/1 columns that hold 1 (an empty cell is a 0)."""
    values = {column: column_values(split, column) for column in names}
    for column, column_vals in values.items():
        bad = next(((i, v) for i, v in enumerate(column_vals)
                    if v is not None and str(v).strip() and _flag_value(v) is None), None)
        if bad is not None:
            prefix, described = _column_of(column, name, where)
            raise UsageError(f"{prefix}{described} holds {bad[1]!r} in row {bad[0] + 1}: a --label_column_names "
                             "column holds 1 where the review has the label and 0 where it has not.")
    rows = []
    for i in range(len(split)):  # an empty cell is a 0, as an empty list is no label
        flags = [_flag_value(values[column][i]) for column in names]
        rows.append([c for c, on in zip(names, flags) if on])
    if "label" in split.column_names:
        split = split.remove_columns("label")
    return split.add_column("label", rows, feature=Sequence(Value("string")))


def _flag_value(value) -> bool | None:
    """1/0, true/false, yes/no -> True/False; None for anything else (or an empty cell)."""
    if isinstance(value, bool):
        return value
    if _is_number(value) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False, "yes": True,
            "no": False}.get(text)


# --- ratings (regression) and several labels per review (multi-label) ------------------------------------


def check_ratings(split: Dataset, column: str, name: str, where: str | None,
                  needs: str = "--problem_type regression needs") -> None:
    """A rating column holds numbers (or numbers written as text); the first that is not one is named by row.
    `needs` says who needs them (training's flag; a rating model, for finetune.score)."""
    for i, value in enumerate(column_values(split, column)):
        if value is None or _is_number(value) or (isinstance(value, str) and not value.strip()):
            continue
        if rating_value(value) is None:
            prefix, described = _column_of(column, name, where)
            raise UsageError(
                f"{prefix}{described} holds {str(value)[:40]!r} in row {i + 1} (the header not counted): "
                f"{needs} a number in every row (e.g. 4 or 3.5). Fix or remove that row, "
                "or pass the column of numbers with --label_column_name.")


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


def rating_value(value) -> float | None:
    """A rating as a float; None for a missing one (or text that is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    if _is_number(value):
        return None if math.isnan(value) else float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return None if math.isnan(number) else number


def missing_label_mask(split: Dataset, column: str, problem_type: str, label_names: list[str] | None = None) -> list[bool]:
    """Which rows' labels are missing or hidden, by what a label is: a class's (hidden_label_mask: empty, or a
    hidden -1), a rating that is not a number; several labels: none, since an empty cell is a review with none
    of the labels (what an empty list says; a CSV cannot write one, and the predictions files write "no labels"
    so). Training and finetune.score both read labels so."""
    if problem_type == tasks.SINGLE_LABEL:
        return hidden_label_mask(split, column, label_names or [])
    if problem_type == tasks.REGRESSION:
        return [rating_value(value) is None for value in column_values(split, column)]
    return [False] * len(split)


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
    return [_as_text(item).strip() for item in items if item is not None and _as_text(item).strip()]


def _label_lists(split: Dataset, column: str, delimiter: str | None) -> list[list[str] | None]:
    feature = split.features[column]
    inner = getattr(feature, "feature", None)
    values = column_values(split, column)
    if isinstance(inner, ClassLabel):  # a Hub dataset's list of class ids (e.g. go_emotions): their names
        return [None if v is None else [inner.names[i] for i in v] for v in values]
    return [label_list(value, delimiter) for value in values]


def _prepare_other_task(splits: dict, args: DataArguments, seed: int, dataset_name: str, dataset_id: str | None,
                        problem: str, fixed_names: list[str] | None, rating_column: str) -> ReviewData:
    """prepare_splits for a rating or several labels: drop empty rows, find train's label values or names,
    encode every split's labels, carve validation (random: there are no classes to stratify by)."""
    dropped, unlabelled, hidden = {}, {}, {}
    train_file = _file_flag(args, "train")
    column = args.label_column_name
    delimiter = getattr(args, "label_delimiter", None)
    # Several labels: an empty cell is a review with none of them (missing_label_mask). A rating: a missing label.
    rating = problem == tasks.REGRESSION
    for name in list(splits):
        splits[name], dropped[name] = drop_empty_rows(splits[name], args, name, check_label=name == "train" and rating,
                                                      where=_file_flag(args, name))
        if name != "train":
            mask = missing_label_mask(splits[name], column, problem)
            if len(splits[name]) and all(mask):
                logger.warning("the %s split's labels are all missing: its %d reviews will be predicted, not scored",
                               name, len(splits[name]))
                unlabelled[name] = Dataset.from_dict({"text": column_values(splits.pop(name), args.text_column_name)})
                continue
            splits[name], hidden[name] = drop_hidden_labels(splits[name], args, name, mask)
        _require_rows(splits[name], name, args)
    display, variants = {}, {}  # several labels: their spellings (merge_label_spellings)
    if problem == tasks.REGRESSION:
        values = sorted({rating_value(v) for v in column_values(splits["train"], column)})
        if len(values) < 2:
            prefix, described = _column_of(rating_column, "train", train_file)
            raise UsageError(f"{prefix}{described} holds a single value ({values}): a rating model needs 2+.")
        task = tasks.Task(tasks.REGRESSION, [rating_column],
                          values if len(values) <= tasks.MAX_RATING_VALUES else None)
    else:
        lists = _label_lists(splits["train"], column, delimiter)
        display, variants = spelling_map([label for labels in lists for label in labels or []])
        respell = {spelling: name for name, spellings in variants.items() for spelling in spellings}
        _warn_merged(variants)
        lists = [None if labels is None else list(dict.fromkeys(respell.get(x, x) for x in labels)) for labels in lists]
        cells = column_values(splits["train"], column)
        if not delimiter and fixed_names is None and not any(
                isinstance(v, (list, tuple)) or str(v).strip().startswith("[") for v in cells):
            prefix, described = _column_of(column, "train", train_file)
            example = next((str(v) for v in cells if v), "")[:40]
            raise UsageError(f"{prefix}{described} holds one text per review (e.g. {example!r}), not lists: for "
                             "several labels per review pass the character between them with --label_delimiter "
                             "(e.g. ';' for 'food;service'), or write them as a JSON array (e.g. [\"food\", "
                             "\"service\"]); for one label per review drop --problem_type.")
        names = fixed_names or sorted({label for labels in lists for label in labels or []})
        counts = Counter(label for labels in lists for label in labels or [])
        if not counts:
            prefix, described = _column_of(column, "train", train_file)
            raise UsageError(f"{prefix}{described}: no training review has any label, so there is nothing to learn.")
        never = [n for n in names if not counts[n]]
        if never:
            raise UsageError(f"labels {', '.join(never)} are on no training review: a model cannot learn them. Add "
                             "such reviews to train, or drop those columns from --label_column_names.")
        task = tasks.Task(tasks.MULTI_LABEL, names)
    for name in list(splits):
        splits[name] = encode_task_labels(splits[name], args, task, name, delimiter,
                                          _respeller(display) if task.problem_type == tasks.MULTI_LABEL else None)
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=args.validation_split_percentage / 100, seed=seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    return _finish(splits, unlabelled, dropped, hidden, args, seed, dataset_name, dataset_id, task, variants)


class _respeller:
    """A label map (data spelling -> train's) for every spelling, seen or not, of a train label."""

    def __init__(self, display: dict[str, str]):
        self.display = display

    def get(self, key, default=None):
        return self.display.get(audit.canonical_label(key), default)


def task_label_values(split: Dataset, column: str, task: tasks.Task, name: str, delimiter: str | None = None,
                      label_map: dict[str, str] | None = None) -> list:
    """Each row's label as the model's loss and metrics read it: a float (a rating) or a 0/1 float per label
    name (multi-label); a label name the task does not know is refused. `label_map` renames data labels."""
    if task.problem_type == tasks.REGRESSION:
        return [rating_value(v) for v in column_values(split, column)]
    index = {label: i for i, label in enumerate(task.label_names)}
    rows, unknown = [], set()
    for labels in _label_lists(split, column, delimiter):
        row = [0.0] * len(index)
        for label in labels or []:
            label = (label_map or {}).get(label, label)
            if label in index:
                row[index[label]] = 1.0
            else:
                unknown.add(label)
        rows.append(row)
    if unknown:
        raise UsageError(f"the {name} split has labels that train lacks: {', '.join(sorted(unknown)[:10])}. A model "
                         f"cannot learn them (it knows: {', '.join(task.label_names)}): add such reviews to train, or "
                         "remove those labels from this split.")
    return rows


def encode_task_labels(split: Dataset, args: ReviewSource, task: tasks.Task, name: str,
                       delimiter: str | None, label_map: dict[str, str] | None = None) -> Dataset:
    """Keep two columns, `text` and `label` (a float32 rating, or a float32 0/1 row per label name)."""
    values = task_label_values(split, args.label_column_name, task, name, delimiter, label_map)
    feature = Value("float32") if task.problem_type == tasks.REGRESSION else Sequence(Value("float32"),
                                                                                        length=len(task.label_names))
    texts = split.select_columns([args.text_column_name])
    if args.text_column_name != "text":
        texts = texts.rename_column(args.text_column_name, "text")
    if texts.features["text"] != Value("string"):
        texts = texts.cast_column("text", Value("string"))
    return texts.add_column("label", values, feature=feature)


def _file_flag(args: ReviewSource, name: str) -> str | None:
    """`--train_file PATH` for a split read from a file (as the file's read errors name it); None for a Hub
    dataset or the embedded data, whose splits are named by their split name."""
    path = getattr(args, f"{name}_file", None)
    return f"--{name}_file {path}" if path else None


def _column_of(column: str, name: str, where: str | None) -> tuple[str, str]:
    """A message's start and its words for a column of split `name`: `--train_file scores.csv: ` and
    `column 'label'` for a split read from a file; no start and `column 'label' of train` for other data."""
    return (f"{where}: ", f"column '{column}'") if where else ("", f"column '{column}' of {name}")


def _require_rows(split: Dataset, name: str, args: DataArguments) -> None:
    if len(split) == 0:
        raise UsageError(
            f"the {name} split is empty after dropping rows without text or label. Check "
            f"--text_column_name {args.text_column_name} and --label_column_name {args.label_column_name}."
        )


def drop_empty_rows(
    split: Dataset, args: ReviewSource, name: str, check_label: bool = True, where: str | None = None
) -> tuple[Dataset, int]:
    """Drop rows without text, and (for train) rows without a usable label, ClassLabel's hidden -1 included.

    A text column of numbers is read as text first (see _read_numbers_as_text); `where` names its file.
    """
    text, label = args.text_column_name, args.label_column_name
    split = _read_numbers_as_text(split, text, name, where)
    hidden_class = check_label and isinstance(split.features[label], ClassLabel)

    def has_label(value) -> bool:
        if value is None or str(value).strip() == "" or (isinstance(value, float) and math.isnan(value)):
            return False
        return not (hidden_class and value < 0)

    def keep(batch):
        labels = batch[label] if check_label else [None] * len(batch[text])  # unlabelled data may have no column
        return [
            isinstance(t, str) and t.strip() != "" and (not check_label or has_label(lab))
            for t, lab in zip(batch[text], labels)
        ]

    kept = split.filter(keep, batched=True)
    dropped = len(split) - len(kept)
    if dropped and args.empty_text == "error":
        raise UsageError(
            f"the {name} split has {dropped} rows with empty or missing text or label. Clean the data, or pass "
            "--empty_text drop to skip them."
        )
    return kept, dropped


def column_values(split: Dataset, column: str) -> list:
    """A column as a Python list, in one Arrow read. (`list(split[column])` reads row by row in datasets 5:
    about 60 s for 650,000 reviews.)"""
    return split[column][:] if len(split) else []


def _read_numbers_as_text(split: Dataset, column: str, name: str, where: str | None = None) -> Dataset:
    """The split with `column` as strings (9 as "9", 3.5 as "3.5"); None stays None, an empty row.

    datasets reads a text column of numbers as numbers (int64, or float64 when a cell is empty), and a JSON
    column of numbers and texts as mixed values; a review "9" is still a review, not an empty row.
    """
    feature = split.features[column]
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
        return split
    values = column_values(split, column)
    numbers = [value for value in values if value is not None and not isinstance(value, str)]
    if not numbers:
        return split
    if any(isinstance(value, str) for value in values):
        held = f"{len(numbers)} number{'s' if len(numbers) > 1 else ''} among its texts"
    else:
        held = "only numbers"
    examples = ", ".join(list(dict.fromkeys(_as_text(value) for value in numbers))[:3])
    prefix, described = _column_of(column, name, where)
    logger.warning(
        "%s%s holds %s (e.g. %s): read them as text. If the reviews are in another column, pass its name with "
        "--text_column_name", prefix, described, held, examples,
    )
    texts = [value if value is None or isinstance(value, str) else _as_text(value) for value in values]
    return split.remove_columns(column).add_column(column, texts, feature=Value("string"))


def _as_text(value) -> str:
    return _number_name(value) if _is_number(value) else str(value)


HIDDEN_LABEL = -1  # how Hub datasets (GLUE, SST-2, ...) publish a test split whose labels are secret


def hidden_label_mask(split: Dataset, column: str, label_names: list[str]) -> list[bool]:
    """Which rows' labels are hidden: missing, ClassLabel -1, or a numeric -1 that is not one of train's labels."""
    feature = split.features[column]
    minus_one_is_hidden = str(HIDDEN_LABEL) not in label_names

    def hidden(value) -> bool:
        if value is None or str(value).strip() == "":
            return True
        if isinstance(feature, ClassLabel):
            return value < 0
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return minus_one_is_hidden and is_number and value == HIDDEN_LABEL

    return [hidden(value) for value in column_values(split, column)]


def drop_hidden_labels(split: Dataset, args: ReviewSource, name: str, hidden_mask: list[bool]) -> tuple[Dataset, int]:
    """Drop (and count) the rows of a partly labelled split whose label is hidden, or refuse them under
    --empty_text error. (A split whose labels are all hidden is predicted, not scored: the caller's case.)"""
    count = sum(hidden_mask)
    if not count:
        return split, 0
    if args.empty_text == "error":
        raise UsageError(
            f"the {name} split has {count} of {len(hidden_mask)} rows with a hidden label (-1 or "
            "missing). Remove them, or pass --empty_text drop to drop and count them."
        )
    return split.select([i for i, is_hidden in enumerate(hidden_mask) if not is_hidden]), count


def label_names_of(train: Dataset, column: str, where: str | None = None) -> list[str]:
    """ClassLabel names when the data has them, else the sorted set of train's labels (numbers sort as numbers).

    Raises UsageError when train's labels cannot make a classifier (see check_labels_teachable); `where`
    (`--train_file PATH`) names train's file in the message.
    """
    feature = train.features[column]
    values = column_values(train, column)
    numeric = not isinstance(feature, ClassLabel) and all(_is_number(v) for v in values)
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        labels = [names[v] for v in values if 0 <= v < len(names)]
    elif numeric:
        _refuse_continuous(values, column, where)
        names = [_number_name(v) for v in sorted(set(values))]
        labels = [_number_name(v) for v in values]
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
        examples = ", ".join(_number_name(v) for v in fractional[:3])
        how_many = f"{distinct} distinct numbers" + (
            " with fractions" if len(fractional) == distinct else f", {len(fractional)} of them with fractions"
        )
        prefix, described = _column_of(column, "train", where)
        raise UsageError(
            f"{prefix}{described} holds {how_many} (e.g. {examples}): this looks like a regression target, "
            "not classes. Train a rating model with --problem_type regression, or bin the values into classes (e.g. "
            "whole stars, or low/medium/high) in a new column and pass its name with --label_column_name."
        )


def check_labels_teachable(labels: list[str], column: str, numeric: bool = False, where: str | None = None) -> None:
    """Refuse more distinct labels than half the rows (fewer than 2 examples a class); warn about single examples."""
    prefix, described = _column_of(column, "train", where)
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


def encode_labels(split: Dataset, args: DataArguments, label_names: list[str], name: str) -> Dataset:
    """Keep two columns, `text` and `label` (ClassLabel over label_names).

    Column operations and a batched `map`: a split read from files stays memory-mapped (no copy of its
    texts in memory) and keeps a deterministic fingerprint, which the tokenization cache is keyed on.
    """
    text, label = args.text_column_name, args.label_column_name
    feature = split.features[label]
    if isinstance(feature, ClassLabel):
        if list(feature.names) != label_names:
            raise UsageError(f"the {name} split's label names {feature.names} differ from train's {label_names}.")
        clean = split.select_columns([text, label])
    else:
        index = {label_name: i for i, label_name in enumerate(label_names)}
        keys = label_keys(split, label)
        unseen = sorted(set(keys) - set(index))
        if unseen:
            raise UsageError(
                f"the {name} split has labels that train lacks: {', '.join(unseen[:10])}. A model cannot learn "
                "them: add such reviews to train, or remove them from this split."
            )
        features = Features({text: split.features[text], label: ClassLabel(names=label_names)})
        clean = split.select_columns([text, label]).map(
            _label_ids, batched=True, fn_kwargs={"column": label, "index": index}, features=features,
            desc=f"Encoding {name} labels")
    if text != "text":
        clean = clean.rename_column(text, "text")
    if label != "label":
        clean = clean.rename_column(label, "label")
    clean = clean.select_columns(["text", "label"])
    if clean.features["text"] != Value("string"):  # e.g. Parquet's large_string: the one text type downstream
        clean = clean.cast_column("text", Value("string"))
    return clean


def _label_ids(batch: dict, column: str, index: dict[str, int]) -> dict:
    return {column: [index[_number_name(v) if _is_number(v) else str(v)] for v in batch[column]]}


def label_keys(split: Dataset, column: str) -> list[str]:
    """Each row's label as a name: a ClassLabel's name, a number as train names it ("4", "3.5"), or the text."""
    feature = split.features[column]
    values = column_values(split, column)
    if isinstance(feature, ClassLabel):
        return [feature.names[v] for v in values]
    return [_number_name(v) if _is_number(v) else str(v) for v in values]


def model_label_ids(split: Dataset, column: str, model_labels: list[str], label_map: dict[str, str],
                    name: str) -> list[int]:
    """The model's class id of each row's label, after `label_map` (data name -> model name).

    A label the model does not know is refused with both sets of names: scoring it would count every
    such review as wrong, and a different name for the same class (positive vs fresh) is the usual cause.
    """
    index = {label: i for i, label in enumerate(model_labels)}
    # a spelling that differs from the model's label only by case, spaces or number form is that label, as
    # training merged them (merge_label_spellings)
    spelled = {audit.canonical_label(label): label for label in model_labels}
    keys = [label_map.get(key, key) for key in label_keys(split, column)]
    keys = [key if key in index else spelled.get(audit.canonical_label(key), key) for key in keys]
    unknown = sorted(set(keys) - set(index))
    if unknown:
        data_labels = sorted(set(label_keys(split, column)))
        raise UsageError(
            f"the {name} data has labels the model does not know: {', '.join(unknown[:10])}. The data's labels "
            f"(column '{column}'): {', '.join(data_labels[:20])}; the model's: {', '.join(model_labels)}. If they "
            "name the same classes differently, map each data label to a model label with --label_map "
            f"DATA=MODEL,... (e.g. --label_map {data_labels[0]}={model_labels[0]},...); otherwise this model "
            "cannot be scored on this data."
        )
    return [index[key] for key in keys]


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Seeded, stratified hold-out; plain random when a class is too rare to stratify.

    The rows of `train.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")`, with the
    labels read in one Arrow read (datasets reads them row by row there: about 3 minutes for 650,000 rows).
    """
    n_test = math.ceil(fraction * len(train))
    generator = np.random.default_rng(seed)
    labels = np.asarray(train.with_format("numpy")["label"][:])
    try:
        kept, held = next(stratified_shuffle_split_generate_indices(labels, len(train) - n_test, n_test,
                                                                    rng=generator))
    except ValueError as err:
        if str(err) == "Minimum class count error":  # worded as train_test_split words it
            err = ValueError("The least populated class in label column has only 1 member, which is too few. "
                             "The minimum number of groups for any class cannot be less than 2.")
        logger.warning("validation split not stratified (%s)", err)
        parts = train.train_test_split(test_size=fraction, seed=seed)
        return parts["train"], parts["test"]
    return train.select(kept), train.select(held)


def take_subset(split: Dataset, limit: int, seed: int) -> Dataset:
    """A seeded random subset, like the tutorial's `shuffle(seed=42).select(range(1000))`."""
    if limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


LENGTH_COLUMN = "length"  # TrainingArguments' default length_column_name
# Part of every tokenization cache key: change it when tokenize_splits writes something else, and no run
# reuses a cache written by the older code.
TOKENIZED_FORMAT = 2
PARALLEL_FROM_ROWS = 20_000  # fewer reviews tokenize in about the time worker processes take to start


def tokenize_splits(splits: DatasetDict, tokenizer, max_length: int, pad_to_max_length: bool,
                    num_proc: int | None = None, overwrite_cache: bool = False, truncation: str = "head",
                    pairing: str = "join") -> DatasetDict:
    """Token ids per review, truncated, and each review's token count (column `length`: the length-grouped
    sampler and sort_by_length read it instead of every row); padding is left to the collator unless
    pad_to_max_length. A review longer than max_length keeps the part `truncation` says (finetune/truncation.py).

    Cached by `datasets`: a split is tokenized once per data, tokenizer and settings (the key is
    tokenization_fingerprint's), in `num_proc` processes (default: preprocessing_workers'), and read back from
    the cache files on the next run; the log says which. overwrite_cache tokenizes afresh.
    """
    settings = tokenizer_fingerprint(tokenizer, max_length, pad_to_max_length, truncation, pairing)
    return DatasetDict({
        name: _tokenize_split(split, name, tokenizer, settings, max_length, pad_to_max_length, num_proc,
                              overwrite_cache, truncation, pairing)
        for name, split in splits.items()
    })


def _tokenize_split(split: Dataset, name: str, tokenizer, settings: str, max_length: int, pad: bool,
                    num_proc: int | None, overwrite_cache: bool, truncation: str, pairing: str = "join") -> Dataset:
    fingerprint = _digest(data_fingerprint(split), settings)
    workers = preprocessing_workers(len(split), num_proc)
    cache_file = _tokenized_cache_file(split, fingerprint)
    started = time.time()
    tokenized = split.map(
        _tokenize_batch, batched=True, remove_columns=["text"], num_proc=workers if workers > 1 else None,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "pad": pad, "strategy": truncation,
                   "pairing": pairing},
        new_fingerprint=fingerprint, cache_file_name=cache_file, load_from_cache_file=not overwrite_cache,
        desc=f"Tokenizing {name}",
    )
    files = [entry["filename"] for entry in tokenized.cache_files]
    if cache_file is None:
        how = "tokenized afresh (caching is disabled)"
    elif files and all(os.path.getmtime(path) < started for path in files):
        how = "reused the cache"
    else:
        how = f"tokenized afresh in {workers} process{'es' if workers > 1 else ''}"
    logger.info("tokenized %s: %s (%d reviews, %.1f s; %s)", name, how, len(tokenized), time.time() - started,
                Path(files[0]).parent if files else "in memory")
    return tokenized


def _tokenize_batch(batch: dict, tokenizer, max_length: int, pad: bool, strategy: str, pairing: str = "join") -> dict:
    encoded, _ = truncation.encode(tokenizer, batch["text"], max_length, strategy, pad)
    if pairing == "pair":
        encoded = text_fields.mark_pairs(encoded, tokenizer)
    return {**encoded, LENGTH_COLUMN: [len(ids) for ids in encoded["input_ids"]]}


def preprocessing_workers(rows: int, requested: int | None = None) -> int:
    """Processes that tokenize a split: `requested`, or every core this process may use when the split is
    large enough to repay their start-up (PARALLEL_FROM_ROWS), else 1."""
    if requested is not None:
        return max(1, min(requested, rows))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if rows >= PARALLEL_FROM_ROWS else 1


def tokenizer_fingerprint(tokenizer, max_length: int, pad_to_max_length: bool, strategy: str = "head",
                          pairing: str = "join") -> str:
    """What decides the token ids: the tokenizer's own definition (its vocabulary, normalizer, special tokens;
    not where it was loaded from), the settings, the libraries' versions and TOKENIZED_FORMAT."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        for state in ("truncation", "padding"):  # set by the last call, not part of the definition
            definition.pop(state, None)
    else:  # a Python tokenizer
        definition = {"vocab": tokenizer.get_vocab()}
    described = {
        "definition": definition,
        "class": type(tokenizer).__name__,
        "inputs": list(tokenizer.model_input_names),
        "special": {key: str(value) for key, value in tokenizer.special_tokens_map.items()},
        "sides": [getattr(tokenizer, "padding_side", None), getattr(tokenizer, "truncation_side", None)],
        "max_length": max_length,
        "pad_to_max_length": pad_to_max_length,
        # head (the only way before the option) adds no key: the caches written before it stay valid
        **({"truncation": strategy} if strategy != "head" else {}),
        **({"pairing": pairing} if pairing != "join" else {}),
        "versions": [_version("transformers"), _version("tokenizers"), datasets.__version__],
        "format": TOKENIZED_FORMAT,
    }
    return _digest(json.dumps(described, sort_keys=True, default=str))


def data_fingerprint(split: Dataset) -> str:
    """A split read from files has datasets' own fingerprint, derived from the files and the steps applied to
    them (the same in every run). A split built in memory (the embedded reviews) gets a random one: hash
    its rows instead, so that its tokenization is cached as well."""
    if split.cache_files:
        return split._fingerprint
    digest = hashlib.sha256()
    for batch in split.with_format("arrow").iter(batch_size=10_000):
        for column in batch.columns:
            for chunk in getattr(column, "chunks", [column]):
                for buffer in chunk.buffers():
                    if buffer is not None:
                        digest.update(buffer)
    digest.update(repr(split.features).encode())
    return digest.hexdigest()[:32]


def _tokenized_cache_file(split: Dataset, fingerprint: str) -> str | None:
    """Next to the split's own cache files, or under HF_DATASETS_CACHE for a split built in memory."""
    if not datasets.is_caching_enabled():
        return None
    if split.cache_files:
        return split._get_cache_file_path(fingerprint)
    folder = Path(datasets.config.HF_DATASETS_CACHE) / "finetune-tokenized"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"cache-{fingerprint}.arrow")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sort_by_length(split: Dataset) -> tuple[Dataset, np.ndarray]:
    """The split in length order, longest first, and the order (row i of the result is row order[i]).

    Evaluation batches then pad to similar lengths, as the serving path's do (random batches pad
    to their longest review). Longest first: a batch too big for memory fails at once, not at the end.
    """
    if LENGTH_COLUMN in split.column_names:  # written by tokenize_splits: no read of every review's ids
        lengths = np.asarray(split.with_format("numpy")[LENGTH_COLUMN][:] if len(split) else [], dtype=np.int64)
    else:
        lengths = np.fromiter((len(ids) for ids in split["input_ids"]), dtype=np.int64, count=len(split))
    order = np.argsort(-lengths, kind="stable")
    return split.select(order).flatten_indices(), order


def restore_order(rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Undo sort_by_length on per-row results: result[order[i]] = rows[i]."""
    restored = np.empty_like(rows)
    restored[order] = rows
    return restored


def _number_name(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
