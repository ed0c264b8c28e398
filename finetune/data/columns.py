"""How to read a split's columns (`Reading`, fixed once from the flags) and the steps on its rows: the columns
checked, several text fields joined, 0/1 label columns gathered, numbers read as text, empty and hidden rows
dropped and counted."""

import logging
import math
from dataclasses import dataclass, field

from datasets import ClassLabel, Dataset, Sequence, Value

from finetune import tasks, text_fields
from finetune.config import ReviewSource, column_list
from finetune.errors import UsageError

logger = logging.getLogger(__name__)

HIDDEN_LABEL = -1  # how Hub datasets (GLUE, SST-2, ...) publish a test split whose labels are secret


def label_columns(args: ReviewSource) -> list[str]:
    """The columns the labels come from: --label_column_names, or the one --label_column_name (none: unlabelled)."""
    names = column_list(args.label_column_names)
    if names:
        return names
    return [args.label_column_name] if args.label_column_name else []


@dataclass(frozen=True)
class Reading:
    """How a split of reviews is read: its columns, what a label is, what an empty row means. Built once from the
    flags (training's or finetune.score's); nothing downstream rewrites them."""

    problem_type: str
    text_columns: tuple[str, ...]
    label_sources: tuple[str, ...] = ()  # the label column, or the 0/1 columns of --label_column_names; (): none
    label_flag_columns: bool = False  # label_sources are --label_column_names (one 0/1 column per label)
    delimiter: str | None = None  # --label_delimiter
    separator: str = " "  # joins several text fields (the tokenizer's separator token)
    empty_text: str = "drop"
    files: dict[str, str] = field(default_factory=dict)  # split -> `--train_file PATH`: its file, for messages
    rating_need: str = "--problem_type regression needs"  # who needs numbers, in a rating column's message

    @classmethod
    def of(cls, args: ReviewSource, problem_type: str, separator: str = " ") -> "Reading":
        files = {flag.removesuffix("_file"): f"--{flag} {path}" for flag, path in args.data_files().items()}
        return cls(problem_type, tuple(args.text_columns()), tuple(label_columns(args)),
                   bool(args.label_column_names), args.label_delimiter, separator, args.empty_text, files)

    @property
    def labelled(self) -> bool:
        return bool(self.label_sources)

    @property
    def text_column(self) -> str:
        """The column of the text once several fields are joined (join_fields)."""
        return "text" if len(self.text_columns) > 1 else self.text_columns[0]

    @property
    def label_column(self) -> str | None:
        """The column of the label once 0/1 columns are gathered (join_fields)."""
        if self.label_flag_columns:
            return "label"
        return self.label_sources[0] if self.label_sources else None

    def where(self, split: str) -> str | None:
        """`--train_file PATH` for a split read from a file (as the file's read errors name it); None for a Hub
        dataset or the embedded data, whose splits are named by their split name."""
        return self.files.get(split)


def column_of(column: str, name: str, where: str | None) -> tuple[str, str]:
    """A message's start and its words for a column of split `name`: `--train_file scores.csv: ` and
    `column 'label'` for a split read from a file; no start and `column 'label' of train` for other data."""
    return (f"{where}: ", f"column '{column}'") if where else ("", f"column '{column}' of {name}")


def column_values(split: Dataset, column: str) -> list:
    """A column as a Python list, in one Arrow read. (`list(split[column])` reads row by row in datasets 5:
    about 60 s for 650,000 reviews.)"""
    return split[column][:] if len(split) else []


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_name(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def as_text(value) -> str:
    return number_name(value) if is_number(value) else str(value)


def rating_value(value) -> float | None:
    """A rating as a float; None for a missing one (or text that is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    if is_number(value):
        return None if math.isnan(value) else float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return None if math.isnan(number) else number


# --- columns ---------------------------------------------------------------------------------------------------


def check_source_columns(split: Dataset, name: str, reading: Reading) -> None:
    """Every text column and label column the flags name is in the split."""
    text_flag = "text_column_names" if len(reading.text_columns) > 1 else "text_column_name"
    label_flag = "label_column_names" if reading.label_flag_columns else "label_column_name"
    wanted = [(c, text_flag) for c in reading.text_columns] + [(c, label_flag) for c in reading.label_sources]
    for column, flag in wanted:
        if column not in split.column_names:
            raise UsageError(
                f"the {name} split has no column '{column}' (it has: {', '.join(split.column_names)}). "
                f"Pass --{flag} with " + ("columns among those." if flag.endswith("names") else "one of those.")
            )


def join_fields(split: Dataset, name: str, reading: Reading) -> Dataset:
    """Several text columns joined into one column `text`, and several 0/1 label columns gathered into one column
    `label` of label names per review (Reading.text_column and label_column name them afterwards)."""
    if len(reading.text_columns) > 1:
        split = join_text_fields(split, list(reading.text_columns), reading.separator)
    if reading.label_flag_columns:
        split = labels_from_columns(split, list(reading.label_sources), name, reading.where(name))
    return split


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
            prefix, described = column_of(column, name, where)
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
    if is_number(value) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False, "yes": True,
            "no": False}.get(text)


# --- rows ------------------------------------------------------------------------------------------------------


def drop_empty_rows(split: Dataset, reading: Reading, name: str, check_label: bool = True) -> tuple[Dataset, int]:
    """Drop rows without text, and (when `check_label`: train) rows without a usable label, ClassLabel's hidden -1
    included. A text column of numbers is read as text first (see read_numbers_as_text)."""
    text, label = reading.text_column, reading.label_column
    split = read_numbers_as_text(split, text, name, reading.where(name))
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
    if dropped and reading.empty_text == "error":
        raise UsageError(
            f"the {name} split has {dropped} rows with empty or missing text or label. Clean the data, or pass "
            "--empty_text drop to skip them."
        )
    return kept, dropped


def read_numbers_as_text(split: Dataset, column: str, name: str, where: str | None = None) -> Dataset:
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
    examples = ", ".join(list(dict.fromkeys(as_text(value) for value in numbers))[:3])
    prefix, described = column_of(column, name, where)
    logger.warning(
        "%s%s holds %s (e.g. %s): read them as text. If the reviews are in another column, pass its name with "
        "--text_column_name", prefix, described, held, examples,
    )
    texts = [value if value is None or isinstance(value, str) else as_text(value) for value in values]
    return split.remove_columns(column).add_column(column, texts, feature=Value("string"))


def missing_label_mask(split: Dataset, column: str, problem_type: str, label_names: list[str] | None = None) -> list[bool]:
    """Which rows' labels are missing or hidden, by what a label is: a class's (empty, a ClassLabel -1, or a
    numeric -1 that is not one of train's labels), a rating that is not a number; several labels: none, since an
    empty cell is a review with none of the labels (what an empty list says; a CSV cannot write one, and the
    predictions files write "no labels" so)."""
    values = column_values(split, column)
    if problem_type == tasks.REGRESSION:
        return [rating_value(value) is None for value in values]
    if problem_type == tasks.MULTI_LABEL:
        return [False] * len(split)
    feature = split.features[column]
    minus_one_is_hidden = str(HIDDEN_LABEL) not in (label_names or [])

    def hidden(value) -> bool:
        if value is None or str(value).strip() == "":
            return True
        if isinstance(feature, ClassLabel):
            return value < 0
        return minus_one_is_hidden and is_number(value) and value == HIDDEN_LABEL

    return [hidden(value) for value in values]


def drop_hidden_labels(split: Dataset, reading: Reading, name: str, hidden_mask: list[bool]) -> tuple[Dataset, int]:
    """Drop (and count) the rows of a partly labelled split whose label is hidden, or refuse them under
    --empty_text error. (A split whose labels are all hidden is predicted, not scored: the caller's case.)"""
    count = sum(hidden_mask)
    if not count:
        return split, 0
    if reading.empty_text == "error":
        raise UsageError(
            f"the {name} split has {count} of {len(hidden_mask)} rows with a hidden label (-1 or "
            "missing). Remove them, or pass --empty_text drop to drop and count them."
        )
    return split.select([i for i, is_hidden in enumerate(hidden_mask) if not is_hidden]), count


def take_subset(split: Dataset, limit: int, seed: int) -> Dataset:
    """A seeded random subset, like the tutorial's `shuffle(seed=42).select(range(1000))`."""
    if limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))
