"""Where reviews come from: a Hub dataset (or a local dataset folder), local files, or the embedded Rotten
Tomatoes reviews. The edge that reads data; everything after it works on `datasets` objects."""

import random
from pathlib import Path

import pandas as pd
from datasets import Dataset, DatasetDict, load_dataset

from finetune import embedded
from finetune.artifacts import public_value
from finetune.config import DataArguments, ReviewSource
from finetune.data.columns import label_columns
from finetune.data_files import read_data_file
from finetune.errors import UsageError

VALIDATION_SPLIT_NAMES = ("validation", "valid", "dev")


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


def load_split(args: ReviewSource, split: str, columns: tuple[str, ...]) -> Dataset:
    """One split to score (finetune.score): --test_file, or the split of a Hub dataset or of the embedded reviews.
    `columns` are the columns a file's reader keeps as text."""
    if args.test_file:
        return read_data_file(args.test_file, "test_file", args.file_encoding, args.csv_delimiter, columns, args.sheet)
    splits = load_hub_dataset(args.dataset_name, args.dataset_config_name, other_source="--test_file") \
        if args.dataset_name else load_embedded_reviews()
    if split not in splits:
        raise UsageError(f"--split {split}: the dataset has no such split (it has: {', '.join(splits)}).")
    return splits[split]


def source_identity(args: ReviewSource) -> tuple[str, str | None]:
    """The data's name for people (the card, the logs) and its Hub id to link (None: not a Hub dataset)."""
    if args.uses_embedded_data:
        return embedded.DATA_NAME, None
    if args.dataset_name:
        return dataset_identity(args.dataset_name, args.dataset_config_name)
    return public_value(next(iter(args.data_files().values()))), None


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
