"""Review data: where it comes from (sources), how a split is read into clean rows for any task (reading, with
columns and labels), and its tokens (tokens).

    sources.py   Hub datasets, local files, the embedded reviews: the edge that reads data
    columns.py   `Reading` (how the flags say to read a split) and the steps on its columns and rows
    labels.py    labels found in train or a model's, and the one encoder of every split's labels
    reading.py   read_splits, the one pipeline (training and finetune.score); training's validation carve
    tokens.py    tokenization, its cache keys, length order

The names other modules import are re-exported here.
"""

from finetune.data.columns import Reading, label_columns, take_subset
from finetune.data.labels import Labels, model_labels
from finetune.data.reading import (
    ReviewData,
    Rows,
    carve_validation,
    load_review_data,
    prepare_splits,
    read_splits,
)
from finetune.data.sources import (
    VALIDATION_SPLIT_NAMES,
    assign_groups,
    dataset_identity,
    load_embedded_reviews,
    load_hub_dataset,
    load_raw_splits,
    load_split,
    source_identity,
)
from finetune.data.tokens import (
    LENGTH_COLUMN,
    TOKENIZED_FORMAT,
    preprocessing_workers,
    restore_order,
    sort_by_length,
    tokenize_splits,
    tokenizer_fingerprint,
)

__all__ = [
    "LENGTH_COLUMN", "TOKENIZED_FORMAT", "VALIDATION_SPLIT_NAMES", "Labels", "Reading", "ReviewData", "Rows",
    "assign_groups", "carve_validation", "dataset_identity", "label_columns", "load_embedded_reviews",
    "load_hub_dataset", "load_raw_splits", "load_review_data", "load_split", "model_labels", "prepare_splits",
    "preprocessing_workers", "read_splits", "restore_order", "sort_by_length", "source_identity", "take_subset",
    "tokenize_splits", "tokenizer_fingerprint",
]
