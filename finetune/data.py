"""Review data: load (Hub, local files or the embedded default), clean, label, split, tokenize.

`load_raw_splits` is the edge that reads data; everything after it is pure and
works on `datasets` objects, so tests feed it small in-memory datasets.
"""

import logging
import random
from dataclasses import dataclass, field

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset

from finetune import embedded
from finetune.config import DataArguments, data_file_format
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


def load_review_data(args: DataArguments, seed: int) -> ReviewData:
    raw = load_raw_splits(args)
    if args.uses_embedded_data:
        name, hub_id = embedded.DATA_NAME, None
    elif args.dataset_name:
        name = args.dataset_name + (f" ({args.dataset_config_name})" if args.dataset_config_name else "")
        hub_id = args.dataset_name
    else:
        name, hub_id = args.train_file, None
    return prepare_splits(raw, args, seed, dataset_name=name, dataset_id=hub_id)


# --- the edge: reading data ---------------------------------------------------------------


def load_raw_splits(args: DataArguments) -> DatasetDict:
    if args.uses_embedded_data:
        return load_embedded_reviews()
    if args.dataset_name:
        try:
            return load_dataset(args.dataset_name, args.dataset_config_name)
        except Exception as err:  # datasets raises many types here: not found, offline, bad config
            raise UsageError(
                f"--dataset_name {args.dataset_name}: could not load it ({type(err).__name__}: {err}). Check the "
                "id on huggingface.co/datasets, your network (or HF_HUB_OFFLINE), or pass local files with "
                "--train_file instead."
            ) from err
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    splits = {}
    for split, path in files.items():
        if path is None:
            continue
        try:
            splits[split] = load_dataset(data_file_format(path), data_files=path, split="train")
        except Exception as err:
            raise UsageError(f"--{split}_file {path}: could not read it ({type(err).__name__}: {err}).") from err
    return DatasetDict(splits)


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
    raw: DatasetDict, args: DataArguments, seed: int, dataset_name: str, dataset_id: str | None = None
) -> ReviewData:
    if "train" not in raw:
        raise UsageError(f"the data has no 'train' split (it has: {', '.join(raw) or 'none'}). Pass --train_file.")
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    test = raw.get("test")
    splits = {"train": train, "validation": validation, "test": test}
    splits = {name: split for name, split in splits.items() if split is not None}

    for name, split in splits.items():
        _check_columns(split, name, args)

    dropped = {}
    for name in list(splits):
        splits[name], dropped[name] = drop_empty_rows(splits[name], args, name)
        if len(splits[name]) == 0:
            raise UsageError(
                f"the {name} split is empty after dropping rows without text or label. Check "
                f"--text_column_name {args.text_column_name} and --label_column_name {args.label_column_name}."
            )

    label_names = label_names_of(splits["train"], args.label_column_name)
    if len(label_names) < 2:
        raise UsageError(
            f"column '{args.label_column_name}' of train holds a single label ({label_names}): a classifier needs 2+."
        )
    for name in list(splits):
        splits[name] = encode_labels(splits[name], args, label_names, name)

    if "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(
            splits["train"], args.validation_split_percentage / 100, seed
        )
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_test_samples}
    for name, limit in limits.items():
        if name in splits and limit is not None:
            splits[name] = take_subset(splits[name], limit, seed)

    for name, count in dropped.items():
        if count:
            logger.warning("dropped %d %s rows with empty or missing text or label", count, name)
    return ReviewData(
        splits=DatasetDict(splits),
        label_names=label_names,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        dropped=dropped,
    )


def _check_columns(split: Dataset, name: str, args: DataArguments) -> None:
    for flag, column in (("text_column_name", args.text_column_name), ("label_column_name", args.label_column_name)):
        if column not in split.column_names:
            raise UsageError(
                f"the {name} split has no column '{column}' (it has: {', '.join(split.column_names)}). "
                f"Pass --{flag} with one of those."
            )


def drop_empty_rows(split: Dataset, args: DataArguments, name: str) -> tuple[Dataset, int]:
    text, label = args.text_column_name, args.label_column_name

    def keep(batch):
        return [
            isinstance(t, str) and t.strip() != "" and lab is not None and str(lab).strip() != ""
            for t, lab in zip(batch[text], batch[label])
        ]

    kept = split.filter(keep, batched=True)
    dropped = len(split) - len(kept)
    if dropped and args.empty_text == "error":
        raise UsageError(
            f"the {name} split has {dropped} rows with empty or missing text or label. Clean the data, or pass "
            "--empty_text drop to skip them."
        )
    return kept, dropped


def label_names_of(train: Dataset, column: str) -> list[str]:
    """ClassLabel names when the data has them, else the sorted set of train's labels (numbers sort as numbers)."""
    feature = train.features[column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = set(train[column])
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [_number_name(v) for v in sorted(values)]
    return sorted(str(v) for v in values)


def encode_labels(split: Dataset, args: DataArguments, label_names: list[str], name: str) -> Dataset:
    """Keep two columns, `text` and `label` (ClassLabel over label_names)."""
    text, label = args.text_column_name, args.label_column_name
    feature = split.features[label]
    if isinstance(feature, ClassLabel):
        if list(feature.names) != label_names:
            raise UsageError(f"the {name} split's label names {feature.names} differ from train's {label_names}.")
        ids = list(split[label])
    else:
        index = {label_name: i for i, label_name in enumerate(label_names)}
        keys = [_number_name(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v) for v in split[label]]
        unseen = sorted(set(keys) - set(index))
        if unseen:
            raise UsageError(
                f"the {name} split has labels that train lacks: {', '.join(unseen[:10])}. A model cannot learn "
                "them: add such reviews to train, or remove them from this split."
            )
        ids = [index[k] for k in keys]
    clean = Dataset.from_dict(
        {"text": list(split[text]), "label": ids},
        features=None,
    )
    return clean.cast_column("label", ClassLabel(names=label_names))


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Seeded, stratified hold-out; plain random when a class is too rare to stratify."""
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
    except ValueError as err:
        logger.warning("validation split not stratified (%s)", err)
        parts = train.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]


def take_subset(split: Dataset, limit: int, seed: int) -> Dataset:
    """A seeded random subset, like the tutorial's `shuffle(seed=42).select(range(1000))`."""
    if limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


def tokenize_splits(splits: DatasetDict, tokenizer, max_length: int, pad_to_max_length: bool) -> DatasetDict:
    """Token ids per review, truncated; padding is left to the collator unless pad_to_max_length."""

    def tokenize(batch):
        return tokenizer(
            batch["text"],
            truncation=True,
            max_length=max_length,
            padding="max_length" if pad_to_max_length else False,
        )

    return splits.map(tokenize, batched=True, remove_columns=["text"], desc="Tokenizing")


def _number_name(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
