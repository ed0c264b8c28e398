"""Tokenization of clean splits and its cache keys, and the length order evaluation batches are read in."""

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import datasets
import numpy as np
from datasets import Dataset, DatasetDict

from finetune import text_fields, truncation

logger = logging.getLogger(__name__)

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
