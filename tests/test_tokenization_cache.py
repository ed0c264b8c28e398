"""Tokenization at scale: cached between runs (and refreshed when anything that decides the tokens changes),
a `length` column for the length-grouped sampler and for sorting, no row-by-row reads."""

import logging
import shutil

import datasets
import numpy as np
import pytest
from conftest import build_tiny_bert, make_reviews, write_csv
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from finetune.config import DataArguments
from finetune.data import load_review_data, sort_by_length, tokenize_splits
from finetune.errors import UsageError
from finetune.train import parse_run


@pytest.fixture
def files(tmp_path):
    return {"train": write_csv(tmp_path / "train.csv", make_reviews(60, seed=21)),
            "validation": write_csv(tmp_path / "validation.csv", make_reviews(20, seed=22))}


def _tokenize(files, tokenizer_dir, caplog, max_length=32, **options):
    """Load the files as a run does, tokenize them, and say per split what the log said about the cache."""
    args = DataArguments(train_file=str(files["train"]), validation_file=str(files["validation"]))
    data = load_review_data(args, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="finetune.data"):
        tokenized = tokenize_splits(data.splits, tokenizer, max_length, False, **options)
    said = {}
    for record in caplog.records:
        if record.getMessage().startswith("tokenized "):
            split, how = record.getMessage().removeprefix("tokenized ").split(": ", 1)
            said[split] = "reused" if how.startswith("reused the cache") else "afresh"
    return tokenized, said


def test_tokenize_splits_reuses_the_cache_of_the_same_files_unless_overwrite_cache(files, tiny_bert, caplog):
    first, said = _tokenize(files, tiny_bert, caplog)
    assert said == {"train": "afresh", "validation": "afresh"}
    again, said = _tokenize(files, tiny_bert, caplog)
    assert said == {"train": "reused", "validation": "reused"}
    assert again["train"]["input_ids"][:] == first["train"]["input_ids"][:]
    assert [entry["filename"] for entry in again["train"].cache_files] == \
        [entry["filename"] for entry in first["train"].cache_files]
    _, said = _tokenize(files, tiny_bert, caplog, overwrite_cache=True)
    assert said == {"train": "afresh", "validation": "afresh"}


def test_tokenize_splits_cache_follows_the_files_the_tokenizer_and_max_seq_length(files, tiny_bert, tmp_path, caplog):
    _tokenize(files, tiny_bert, caplog)
    _, said = _tokenize(files, tiny_bert, caplog, max_length=16)
    assert said == {"train": "afresh", "validation": "afresh"}

    other = build_tiny_bert(tmp_path / "other-bert")  # the same words, and one more token
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["extraordinary"])
    tokenizer.save_pretrained(other)
    _, said = _tokenize(files, other, caplog)
    assert said == {"train": "afresh", "validation": "afresh"}

    copy = shutil.copytree(tiny_bert, tmp_path / "same-bert-elsewhere")  # the same tokenizer in another folder
    _, said = _tokenize(files, copy, caplog)
    assert said == {"train": "reused", "validation": "reused"}

    write_csv(files["validation"], make_reviews(20, seed=99))  # a changed file
    changed, said = _tokenize(files, tiny_bert, caplog)
    assert said == {"train": "reused", "validation": "afresh"}
    assert len(changed["validation"]) == 20


def test_tokenize_splits_caches_data_built_in_memory_by_its_rows(tiny_bert, tmp_path, monkeypatch, caplog):
    """The embedded reviews come from pandas, with no file behind them: their rows are the cache key."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)

    def tokenize(texts):
        splits = DatasetDict({"train": Dataset.from_dict({"text": texts, "label": [0, 1] * (len(texts) // 2)})})
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="finetune.data"):
            tokenized = tokenize_splits(splits, tokenizer, 32, False)
        return tokenized["train"], caplog.records[-1].getMessage()

    texts = [row["text"] for row in make_reviews(40, seed=5)]
    first, said = tokenize(texts)
    assert "tokenized afresh" in said
    again, said = tokenize(texts)
    assert "reused the cache" in said and again["input_ids"][:] == first["input_ids"][:]
    _, said = tokenize(texts[:-2] + ["great film", "dull movie"])
    assert "tokenized afresh" in said


def test_tokenize_splits_in_two_processes_gives_the_same_tokens_and_lengths(files, tiny_bert, caplog):
    one, _ = _tokenize(files, tiny_bert, caplog, num_proc=1)
    two, said = _tokenize(files, tiny_bert, caplog, num_proc=2, overwrite_cache=True)
    assert said["train"] == "afresh"
    assert two["train"]["input_ids"][:] == one["train"]["input_ids"][:]
    assert two["train"]["length"][:] == [len(ids) for ids in one["train"]["input_ids"][:]]


def test_sort_by_length_gives_the_same_order_from_the_length_column(tiny_bert):
    rng = np.random.default_rng(0)
    ids = [[1] * int(n) for n in rng.integers(1, 30, 500)]  # many ties: the stable order must hold too
    with_column = Dataset.from_dict({"input_ids": ids, "length": [len(row) for row in ids]})
    sorted_split, order = sort_by_length(with_column)
    _, order_from_ids = sort_by_length(with_column.remove_columns("length"))
    assert (order == order_from_ids).all()
    assert (order == np.argsort(-np.array([len(row) for row in ids]), kind="stable")).all()
    assert sorted_split["length"][:] == sorted(with_column["length"][:], reverse=True)


def test_review_trainer_sampler_reads_the_length_column_not_the_rows(tiny_bert, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForSequenceClassification

    from finetune.batching import ReviewTrainer

    rng = np.random.default_rng(1)
    ids = [[2] + [7] * int(n) + [3] for n in rng.integers(1, 40, 300)]
    true_lengths = [len(row) for row in ids]
    train = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * n for n in true_lengths],
                               "label": [i % 2 for i in range(300)], "length": true_lengths})
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=4,
                             train_sampling_strategy="group_by_length", report_to=[], seed=0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    trainer = ReviewTrainer(model=model, args=args, train_dataset=train,
                            processing_class=AutoTokenizer.from_pretrained(tiny_bert))

    def no_row_reads(self):
        raise AssertionError("the sampler read the dataset row by row")

    monkeypatch.setattr(Dataset, "__iter__", no_row_reads)
    # What the Trainer hands it: the dataset without the columns the model does not take (length among them).
    sampler = trainer._get_train_sampler(trainer._remove_unused_columns(train, description="training"))
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == true_lengths and isinstance(sampler.lengths, list)
    monkeypatch.undo()
    # The same batches as transformers' own sampler, which reads every row's input_ids to learn the lengths.
    own = LengthGroupedSampler(4, dataset=train.remove_columns("length"))
    torch.manual_seed(0)
    ours = list(sampler)
    torch.manual_seed(0)
    assert ours == list(own)


def test_parse_config_takes_the_cache_flags_and_refuses_zero_workers():
    config = parse_run(["--overwrite_cache", "true", "--preprocessing_num_workers", "3"])
    assert config.data.overwrite_cache is True and config.data.preprocessing_num_workers == 3
    assert parse_run([]).data.overwrite_cache is False
    with pytest.raises(UsageError, match="--preprocessing_num_workers 0: must be at least 1"):
        parse_run(["--preprocessing_num_workers", "0"])
