"""Word attributions by occlusion: on a lexicon classifier whose answer is known word by word, and on a tiny
BERT through the serving path."""

import pytest
from conftest import NEGATIVE, POSITIVE

from finetune.attribution import occlusion, word_spans
from finetune.inference import Prediction, ReviewClassifier


class LexiconClassifier:
    """p(positive) = 0.5 + 0.1 x (positive words - negative words), within [0.05, 0.95]: each word's effect is
    known, so the attributions are too. Counts the model calls (occlusion makes one)."""

    label_names = ["negative", "positive"]

    def __init__(self):
        self.calls = []

    def predict(self, texts, batch_size=32):
        self.calls.append((len(texts), batch_size))
        out = []
        for text in texts:
            words = text.split()
            p = min(0.95, max(0.05, 0.5 + 0.1 * (sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words))))
            scores = {"negative": 1 - p, "positive": p}
            out.append(Prediction(scores, max(scores, key=scores.get), len(words), False))
        return out


def test_occlusion_signs_and_sum_on_an_additive_model():
    classifier = LexiconClassifier()
    attribution = occlusion(classifier, "great film but dull plot and wonderful loved cast")
    assert attribution.label == "positive" and attribution.probability == pytest.approx(0.7)
    drops = dict(attribution.spans)
    assert drops["great"] == pytest.approx(0.1) and drops["wonderful"] == pytest.approx(0.1)
    assert drops["dull"] == pytest.approx(-0.1)  # it pulled away from the prediction
    assert all(drops[w] == 0 for w in ("film", "but", "plot", "and", "cast"))
    # Additive model: the drops add up to the prediction's distance from the empty review's (0.5).
    assert sum(drops.values()) == pytest.approx(attribution.probability - 0.5)
    assert classifier.calls == [(10, 10)]  # the review and its 9 variants in one batched call
    raised, lowered = attribution.strongest(2)
    assert [w for w, _ in raised] == ["great", "wonderful"] and lowered == [("dull", pytest.approx(-0.1))]


def test_occlusion_of_a_negative_review_credits_its_negative_words():
    attribution = occlusion(LexiconClassifier(), "awful terrible film")
    assert attribution.label == "negative"
    assert dict(attribution.spans) == {"awful": pytest.approx(0.1), "terrible": pytest.approx(0.1), "film": 0}


@pytest.fixture(scope="module")
def classifier(learnt_run):
    return ReviewClassifier(learnt_run)  # PyTorch: this run has no ONNX copy (occlusion only calls predict)


def test_occlusion_drops_are_the_probability_change_when_the_word_is_left_out(classifier):
    text = "awful terrible the acting and story"
    attribution = occlusion(classifier, text)
    whole = classifier.predict_one(text).scores[attribution.label]
    words = text.split()
    for i, (word, drop) in enumerate(attribution.spans):
        assert word == words[i]
        without = " ".join(words[:i] + words[i + 1:])
        assert drop == pytest.approx(whole - classifier.predict_one(without).scores[attribution.label], abs=1e-5)


def test_segments_rebuild_the_review_and_scale_into_minus_one_to_one(classifier):
    text = "the film was great and loved"
    segments = occlusion(classifier, text).segments()
    assert "".join(piece for piece, _ in segments) == text
    values = [value for _, value in segments if value is not None]
    assert max(abs(v) for v in values) == pytest.approx(1.0) and all(-1 <= v <= 1 for v in values)


def test_word_spans_bound_the_variants_of_a_long_review():
    text = " ".join(f"w{i}" for i in range(100))
    spans, per_span = word_spans(text, max_spans=48)
    assert per_span == 3 and len(spans) == 34
    assert " ".join(text[s:e] for s, e in spans) == text
    assert word_spans("", 48) == ([], 1)
