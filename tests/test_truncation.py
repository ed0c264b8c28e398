"""finetune/truncation.py: which part of a long review is read, the same way in training, scoring and the demo."""

import json

import pytest
from conftest import FILLER, tiny_run_args

from finetune import truncation
from finetune.errors import UsageError
from finetune.inference import ReviewClassifier


def test_keep_takes_the_papers_128_and_382_at_512():
    ids = list(range(1000))
    head_tail = truncation.keep(ids, 510, "head_tail")
    assert head_tail == ids[:128] + ids[-382:]
    assert truncation.keep(ids, 510, "head") == ids[:510]
    assert truncation.keep(ids, 510, "tail") == ids[-510:]
    assert truncation.keep(ids[:300], 510, "head_tail") == ids[:300]  # a short review is whole
    assert truncation.keep(ids, 62, "head_tail") == ids[:15] + ids[-47:]  # a short room: a quarter for the head


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def _words(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=True).split()


def test_encode_keeps_the_part_each_strategy_names(tokenizer):
    long_review = " ".join(FILLER[i % len(FILLER)] for i in range(40))
    words = long_review.split()
    short = " ".join(words[:5])
    for strategy, expected in (("head", words[:14]), ("tail", words[-14:]), ("head_tail", words[:3] + words[-11:])):
        encoded, cut = truncation.encode(tokenizer, [long_review, short], 16, strategy)
        assert _words(tokenizer, encoded["input_ids"][0]) == expected, strategy
        assert encoded["input_ids"][0][0] == tokenizer.cls_token_id and encoded["input_ids"][0][-1] == tokenizer.sep_token_id
        assert _words(tokenizer, encoded["input_ids"][1]) == words[:5] and cut == [True, False]
        assert set(encoded) >= {"input_ids", "attention_mask"} and len(encoded["attention_mask"][0]) == 16
    head, _ = truncation.encode(tokenizer, [long_review], 16, "head")
    assert head["input_ids"] == tokenizer([long_review], truncation=True, max_length=16)["input_ids"]
    tokenizer.truncation_side = "left"  # a tail model's saved tokenizer: its own truncation cuts, the same ids
    try:
        fast, fast_cut = truncation.encode(tokenizer, [long_review, short], 16, "tail")
    finally:
        tokenizer.truncation_side = "right"
    slow, slow_cut = truncation.encode(tokenizer, [long_review, short], 16, "tail")
    assert fast["input_ids"] == slow["input_ids"] and fast["attention_mask"] == slow["attention_mask"]
    assert fast_cut == slow_cut == [True, False]
    padded, _ = truncation.encode(tokenizer, [short], 16, "tail", pad=True)
    assert len(padded["input_ids"][0]) == 16 and sum(padded["attention_mask"][0]) == 7


def test_head_is_read_from_the_head_even_by_a_tokenizer_that_truncates_on_the_left(tokenizer):
    long_review = " ".join(FILLER[i % len(FILLER)] for i in range(40))
    tokenizer.truncation_side = "left"
    try:
        encoded, _ = truncation.encode(tokenizer, [long_review], 16, "head")
    finally:
        tokenizer.truncation_side = "right"
    assert _words(tokenizer, encoded["input_ids"][0]) == long_review.split()[:14]


@pytest.mark.parametrize("strategy", ["tail", "head_tail"])
def test_a_run_saves_its_truncation_and_the_serving_path_reads_reviews_the_same_way(
        strategy, tiny_bert, review_files, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune.train import main

    output_dir = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "1",
                              "--truncation", strategy, "--max_seq_length", "16")) == 0
    saved = json.loads((output_dir / "config.json").read_text())
    assert saved["review_truncation"] == strategy
    tokenizer_config = json.loads((output_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config.get("truncation_side", "right") == ("left" if strategy == "tail" else "right")
    assert f"- truncation: {strategy}" in (output_dir / "README.md").read_text()
    classifier = ReviewClassifier(output_dir, engine="pytorch", max_length=16)
    assert classifier.truncation == strategy
    review = " ".join(FILLER[i % len(FILLER)] for i in range(30)) + " great wonderful"
    prediction = classifier.predict_one(review)
    assert prediction.truncated and prediction.tokens == 16
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    encoded, _ = truncation.encode(tokenizer, [review], 16, strategy)
    model = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    with torch.no_grad():
        logits = model(**{k: torch.tensor(v) for k, v in encoded.items()}).logits
    # served calibrated: divided by the temperature fitted on validation (config.json), as every serving path does
    expected = (logits / saved.get("review_temperature", 1.0)).softmax(-1)[0].tolist()
    assert list(prediction.scores.values()) == pytest.approx(expected, abs=1e-5)
    head = ReviewClassifier(output_dir, engine="pytorch", max_length=16, truncation="head").predict_one(review)
    assert head.scores != pytest.approx(prediction.scores, abs=1e-6)  # the flag is not ignored

    from finetune.score import main as score

    for flags, expected in (([], strategy), (["--truncation", "head"], "head")):
        out = tmp_path / f"score-{expected}"
        assert score([str(output_dir), "--test_file", str(review_files["test"]), "--output_dir", str(out), *flags]) == 0
        assert json.loads((out / "evaluation.json").read_text())["truncation"] == expected


def test_a_bad_truncation_is_refused_before_any_work():
    from finetune.errors import UsageError
    from finetune.train import parse_run

    with pytest.raises(UsageError, match="--truncation middle: choose one of head, tail, head_tail"):
        parse_run(["--truncation", "middle"])


def test_the_strategies_are_the_ones_config_offers():
    from finetune.config import TRUNCATION_STRATEGIES

    assert truncation.STRATEGIES == TRUNCATION_STRATEGIES


# --- the one maximum-length rule (issue 27) -------------------------------------------------------------


class _Tokenizer:
    def __init__(self, model_max_length):
        self.model_max_length = model_max_length


def test_model_limit_is_the_smaller_of_the_tokenizer_and_the_position_embeddings():
    from transformers import BertConfig, RobertaConfig

    bert = BertConfig(max_position_embeddings=64)
    assert truncation.model_limit(_Tokenizer(512), bert) == 64  # positions bound a tokenizer that says more
    assert truncation.model_limit(_Tokenizer(32), bert) == 32
    assert truncation.model_limit(_Tokenizer(int(1e30)), bert) == 64  # a tokenizer saved without a limit
    # RoBERTa's positions start after its padding id: 514 positions hold 512 tokens.
    assert truncation.model_limit(_Tokenizer(int(1e30)), RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512


def test_max_length_defaults_to_512_within_the_limit_and_refuses_more_than_the_model_takes():
    from transformers import BertConfig

    assert truncation.max_length(_Tokenizer(8192), BertConfig(max_position_embeddings=8192)) == 512
    assert truncation.max_length(_Tokenizer(8192), BertConfig(max_position_embeddings=8192), 2048) == 2048
    assert truncation.max_length(_Tokenizer(512), BertConfig(max_position_embeddings=64)) == 64
    with pytest.raises(UsageError, match="--max_seq_length 128: this model takes at most 64 tokens"):
        truncation.max_length(_Tokenizer(512), BertConfig(max_position_embeddings=64), 128)
