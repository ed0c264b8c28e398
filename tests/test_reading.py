"""finetune/reading.py: how a model reads a review, saved once with the model and read back once."""

import json

from transformers import BertConfig

from finetune import reading, tasks
from finetune.reading import ReviewReading


def test_reading_saved_on_a_config_reads_back_the_same():
    config = BertConfig(num_labels=2, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    saved = ReviewReading(tasks.Task(tasks.SINGLE_LABEL, ["bad", "good"]), ["title", "body"], " [SEP] ", "pair",
                          "tail", 128)
    saved.save(config)
    back = reading.of_model(BertConfig.from_dict(json.loads(config.to_json_string())))
    assert (back.text_fields, back.separator, back.pairing, back.truncation, back.max_length) == (
        ["title", "body"], " [SEP] ", "pair", "tail", 128)
    assert back.task.problem_type == tasks.SINGLE_LABEL and back.task.label_names == ["bad", "good"]


def test_reading_of_a_model_saved_before_it_existed_keeps_the_old_keys_and_defaults():
    # config.json of a model trained before review_max_length: the keys train.py wrote one by one
    config = BertConfig(num_labels=2, review_truncation="head_tail", review_text_fields=["title", "text"],
                        review_text_separator=" [SEP] ")
    old = reading.of_model(config)
    assert (old.text_fields, old.separator, old.pairing, old.truncation, old.max_length) == (
        ["title", "text"], " [SEP] ", "join", "head_tail", None)
    plain = reading.of_model(BertConfig(num_labels=2))  # a model of another project
    assert (plain.text_fields, plain.separator, plain.pairing, plain.truncation) == (["text"], " ", "join", "head")


class _Tokenizer:
    model_max_length = 512


def test_reading_cut_length_is_the_trained_length_within_the_model_limit():
    config = BertConfig(max_position_embeddings=64)
    assert ReviewReading(max_length=32).cut_length(_Tokenizer(), config) == 32
    assert ReviewReading(max_length=32).cut_length(_Tokenizer(), config, 48) == 48  # asked for: wins
    assert ReviewReading().cut_length(_Tokenizer(), config) == 64  # saved before it was recorded: the model's rule
    assert ReviewReading().cut_length(_Tokenizer(), config, 1000) == 64  # more than it takes: clamped
