"""The one way a split of reviews is read into clean rows, for training (`load_review_data`) and for
finetune.score: `read_splits`. Then, for training, the validation carve and the --max_*_samples subsets."""

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from datasets import Dataset, DatasetDict
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from finetune import tasks
from finetune.config import DataArguments
from finetune.data.columns import (
    Reading,
    check_source_columns,
    column_values,
    drop_empty_rows,
    drop_hidden_labels,
    join_fields,
    missing_label_mask,
    take_subset,
)
from finetune.data.labels import Labels, check_ratings, discover_labels, encode_labels, ratings_of_class_names
from finetune.data.sources import VALIDATION_SPLIT_NAMES, load_raw_splits, source_identity
from finetune.errors import UsageError

logger = logging.getLogger(__name__)


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


@dataclass
class Rows:
    """Splits read by read_splits: labelled ones (`text`, `label` encoded), ones to predict only (`text`), the
    counts of rows dropped, and the labels they were read as."""

    labelled: dict[str, Dataset]
    unlabelled: dict[str, Dataset]
    dropped: dict[str, int]  # split -> rows without text (or, in train, without a label)
    hidden: dict[str, int]  # split -> rows of a partly labelled split dropped for a hidden label
    labels: Labels


def read_splits(raw: dict[str, Dataset], reading: Reading, labels: Labels | None = None,
                limits: dict[str, int] | None = None, seed: int = 0) -> Rows:
    """Clean rows for any task: the columns checked, text fields joined, empty rows dropped and counted; with
    `labels` None the labels are found in `raw["train"]` (training), else they are the model's (scoring). A split
    whose labels are all hidden (or that has none) is kept to predict, not score; a partly hidden one loses those
    rows. `limits` are seeded subsets taken before the labels are encoded (only scored reviews need known labels)."""
    splits = {name: read_columns(split, name, reading) for name, split in raw.items()}
    dropped, hidden, unlabelled = {}, {}, {}
    if labels is None:  # train must be labelled: a row without a label teaches nothing
        # several labels: an empty cell is a review with none of them (missing_label_mask), not a missing label
        splits["train"], dropped["train"] = drop_empty_rows(
            splits["train"], reading, "train", check_label=reading.problem_type != tasks.MULTI_LABEL)
        _require_rows(splits["train"], "train", reading)
        labels = discover_labels(splits["train"], reading)
    for name in [n for n in splits if n not in dropped]:
        split, dropped[name] = drop_empty_rows(splits[name], reading, name, check_label=False)
        mask = missing_label_mask(split, reading.label_column, labels.task.problem_type,
                                  labels.task.label_names) if reading.labelled else [True] * len(split)
        if len(split) and all(mask):
            if reading.labelled:
                logger.warning("the %s split's labels are all hidden (-1 or missing): its %d reviews will be "
                               "predicted, not scored", name, len(split))
            unlabelled[name] = Dataset.from_dict({"text": column_values(split, reading.text_column)})
            del splits[name]
            continue
        splits[name], hidden[name] = drop_hidden_labels(split, reading, name, mask)
    for name, split in splits.items():
        _require_rows(split, name, reading)
    take_subsets(limits or {}, seed, splits, unlabelled)
    encoded = {name: encode_labels(split, name, reading, labels) for name, split in splits.items()}
    return Rows(encoded, unlabelled, dropped, hidden, labels)


def read_columns(split: Dataset, name: str, reading: Reading) -> Dataset:
    """The columns the flags name, checked; ratings read as numbers; several text or 0/1 label columns joined."""
    check_source_columns(split, name, reading)
    if reading.labelled and reading.problem_type == tasks.REGRESSION:
        split = ratings_of_class_names(split, reading.label_column)
        check_ratings(split, reading.label_column, name, reading.where(name), reading.rating_need)
    return join_fields(split, name, reading)


def take_subsets(limits: dict[str, int | None], seed: int, *groups: dict[str, Dataset]) -> None:
    """Each split named in `limits` (labelled or not) cut to a seeded random subset of that many rows, in place."""
    for name, limit in limits.items():
        for group in groups:
            if name in group and limit is not None:
                group[name] = take_subset(group[name], limit, seed)


def _require_rows(split: Dataset, name: str, reading: Reading) -> None:
    if len(split) == 0:
        raise UsageError(
            f"the {name} split is empty after dropping rows without text or label. Check "
            f"--text_column_name {reading.text_column} and --label_column_name {reading.label_column}."
        )


# --- training's splits ------------------------------------------------------------------------------------------


def load_review_data(args: DataArguments, seed: int, separator: str = " ") -> ReviewData:
    """`separator` joins the texts of several --text_column_names (the tokenizer's separator token)."""
    name, hub_id = source_identity(args)
    return prepare_splits(load_raw_splits(args), args, seed, dataset_name=name, dataset_id=hub_id, separator=separator)


def prepare_splits(raw: DatasetDict, args: DataArguments, seed: int, dataset_name: str, dataset_id: str | None = None,
                   separator: str = " ") -> ReviewData:
    """Training's splits: train, validation (carved from train when the data has none with labels) and test, read
    by read_splits, then the subsets the --max_*_samples flags ask for."""
    if "train" not in raw:
        raise UsageError(f"the data has no 'train' split (it has: {', '.join(raw) or 'none'}). Pass --train_file.")
    named = {"train": raw["train"], "validation": next((raw[n] for n in VALIDATION_SPLIT_NAMES if n in raw), None),
             "test": raw.get("test")}
    rows = read_splits({name: split for name, split in named.items() if split is not None},
                       Reading.of(args, args.problem_type, separator))
    splits, unlabelled, task = rows.labelled, rows.unlabelled, rows.labels.task
    if "validation" not in splits:
        if "validation" in unlabelled:
            logger.warning("validation has no labels: carving a labelled validation split from train instead")
        splits["train"], splits["validation"] = carve_validation(
            splits["train"], args.validation_split_percentage / 100, seed,
            stratify=task.problem_type == tasks.SINGLE_LABEL)
    take_subsets({"train": args.max_train_samples, "validation": args.max_eval_samples,
                  "test": args.max_test_samples}, seed, splits, unlabelled)

    for name, count in rows.dropped.items():
        if count:
            logger.warning("dropped %d %s rows with empty or missing text or label", count, name)
    for name, count in rows.hidden.items():
        if count:
            logger.warning("dropped %d %s rows whose label is hidden (-1 or missing); %d remain", count, name,
                           len(splits[name]))
    return ReviewData(
        splits=DatasetDict(splits), label_names=task.label_names, dataset_name=dataset_name, dataset_id=dataset_id,
        dropped=rows.dropped, unlabelled=DatasetDict(unlabelled),
        hidden_labels={name: count for name, count in rows.hidden.items() if count}, task=task,
        label_variants=rows.labels.variants,
    )


def carve_validation(train: Dataset, fraction: float, seed: int, stratify: bool = True) -> tuple[Dataset, Dataset]:
    """Seeded hold-out, stratified by class (`stratify`: there are classes); plain random when a class is too rare
    to stratify, or for ratings and several labels.

    The rows of `train.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")`, with the
    labels read in one Arrow read (datasets reads them row by row there: about 3 minutes for 650,000 rows).
    """
    if stratify:
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
        else:
            return train.select(kept), train.select(held)
    parts = train.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]
