"""The serving path: batched, length-sorted prediction, truncation, optional int8 (ONNX Runtime serves the
trained run, which has an ONNX copy; tests/test_onnx_export.py compares the engines)."""

import pytest
import torch

from finetune.inference import ReviewClassifier


def test_predict_keeps_input_order_and_matches_one_by_one(trained_run):
    classifier = ReviewClassifier(trained_run)
    texts = ["great", "the movie was really quite boring and dull and messy", "awful film", "brilliant cast"]
    batched = classifier.predict(texts, batch_size=2)
    for text, prediction in zip(texts, batched):
        alone = classifier.predict_one(text)
        assert prediction.tokens == alone.tokens
        for name in classifier.label_names:
            assert prediction.scores[name] == pytest.approx(alone.scores[name], abs=1e-5)
    assert [p.tokens for p in batched] == [3, 12, 4, 4]


def test_predict_truncates_long_reviews_and_says_so(trained_run):
    classifier = ReviewClassifier(trained_run)
    long, short = classifier.predict(["great " * 200, "great film"])
    assert long.truncated and long.tokens == classifier.max_length == 64
    assert not short.truncated
    assert sum(long.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_quantized_classifier_keeps_head_and_ffn_output_in_fp32(trained_run):
    classifier = ReviewClassifier(trained_run, quantize=True, engine="pytorch")
    assert classifier.engine == "pytorch int8"
    modules = dict(classifier.model.named_modules())
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert isinstance(modules["bert.encoder.layer.0.attention.self.query"], dynamic)
    assert isinstance(modules["bert.encoder.layer.0.intermediate.dense"], dynamic)
    assert type(modules["bert.encoder.layer.0.output.dense"]) is torch.nn.Linear
    assert type(modules["classifier"]) is torch.nn.Linear
    fp32 = ReviewClassifier(trained_run, engine="pytorch").predict(["great film", "awful plot"])
    int8 = classifier.predict(["great film", "awful plot"])
    for a, b in zip(fp32, int8):
        assert sum(b.scores.values()) == pytest.approx(1.0, abs=1e-5)
        for name in a.scores:
            assert b.scores[name] == pytest.approx(a.scores[name], abs=0.05)
