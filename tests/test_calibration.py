"""finetune/calibration.py: temperature scaling, calibration error, and the confidence above which a model answers."""

import numpy as np
import pytest

from finetune.calibration import (
    abstention_threshold,
    expected_calibration_error,
    fit_label_temperatures,
    fit_temperature,
    reliability_table,
)
from finetune.tasks import SINGLE_LABEL, Task


def simulated_reviews(n: int, sharpen: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes whose true probabilities are softmax(z); the model says `sharpen` * z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (n, 3))
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > true.cumsum(axis=1)).sum(axis=1)
    return sharpen * z, labels


def top_confidence(logits, labels, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    probabilities = Task(SINGLE_LABEL, ["a", "b", "c"]).outputs(logits / temperature)
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == labels).astype(np.float64)


def test_fit_temperature_softens_an_over_confident_model_and_its_calibration_error_falls():
    logits, labels = simulated_reviews(4000, sharpen=3.0)
    fit = fit_temperature(logits, labels)
    assert fit.fitted and fit.temperature == pytest.approx(3.0, rel=0.1)
    assert fit.nll_after < fit.nll_before
    before = expected_calibration_error(*top_confidence(logits, labels))
    after = expected_calibration_error(*top_confidence(logits, labels, fit.temperature))
    assert before > 0.1 and after < 0.03


def test_fit_temperature_of_a_calibrated_model_is_about_one():
    fit = fit_temperature(*simulated_reviews(4000, sharpen=1.0, seed=1))
    assert fit.temperature == pytest.approx(1.0, abs=0.1) and fit.reason == ""


def test_fit_temperature_keeps_one_with_too_few_reviews_or_one_class():
    few = fit_temperature(*simulated_reviews(10, sharpen=3.0))
    assert (few.temperature, few.fitted) == (1.0, False) and "10 validation reviews" in few.reason
    one_class = fit_temperature(np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50, int))
    assert (one_class.temperature, one_class.fitted) == (1.0, False) and "one class" in one_class.reason
    with pytest.raises(ValueError, match="class ids"):
        fit_temperature(np.zeros((30, 2)), np.full(30, 2))


def test_fit_temperature_of_separated_reviews_keeps_the_logits_and_says_why():
    # Every review right: the NLL falls as T shrinks, without a minimum. A temperature at the search's bound (0.05)
    # would make every test confidence extreme on the strength of nothing.
    labels = np.arange(40) % 2
    fit = fit_temperature(np.stack([1.0 - labels, labels.astype(float)], axis=1), labels)
    assert fit.temperature == 1.0 and not fit.fitted and "no minimum" in fit.reason


def test_fit_label_temperatures_fits_each_label_on_its_own():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, (4000, 3))
    targets = (rng.random((4000, 3)) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    targets[:, 2] = 0  # a label nobody has in validation
    fits = fit_label_temperatures(z * np.array([3.0, 1.0, 1.0]), targets)
    assert fits[0].temperature == pytest.approx(3.0, rel=0.1)
    assert fits[1].temperature == pytest.approx(1.0, abs=0.1)
    assert (fits[2].temperature, fits[2].fitted) == (1.0, False)


def test_expected_calibration_error_of_calibrated_confidences_is_sampling_noise():
    rng = np.random.default_rng(3)
    confidences = rng.uniform(0.5, 1.0, 20_000)
    assert expected_calibration_error(confidences, rng.random(20_000) < confidences) < 0.015


def test_expected_calibration_error_weights_each_bins_gap_by_its_reviews():
    # Bin (0.8, 0.9]: 3 reviews at 0.85, 1 right -> gap 0.85 - 1/3. Bin (0.9, 1]: 1 review at 1.0, right -> 0.
    confidences, correct = [0.85, 0.85, 0.85, 1.0], [1, 0, 0, 1]
    assert expected_calibration_error(confidences, correct, bins=10) == pytest.approx(3 / 4 * (0.85 - 1 / 3))
    assert np.isnan(expected_calibration_error([], []))


def test_reliability_table_lists_every_bin_with_its_means():
    table = reliability_table([0.0, 0.1, 0.15, 0.95], [0, 0, 1, 1], bins=4)
    assert [(row["low"], row["high"], row["count"]) for row in table] == [
        (0.0, 0.25, 3), (0.25, 0.5, 0), (0.5, 0.75, 0), (0.75, 1.0, 1)]
    assert table[0]["confidence"] == pytest.approx(0.25 / 3) and table[0]["accuracy"] == pytest.approx(1 / 3)
    assert table[1]["confidence"] is None and table[3]["accuracy"] == 1.0


def test_abstention_threshold_reaches_its_precision_on_the_reviews_it_was_fit_on():
    confidences, correct = top_confidence(*simulated_reviews(3000, sharpen=1.0, seed=2))
    threshold, precision, coverage = abstention_threshold(confidences, correct, min_precision=0.9)
    answered = confidences >= threshold
    assert precision == pytest.approx(correct[answered].mean()) and precision >= 0.9
    assert coverage == pytest.approx(answered.mean()) and 0.0 < coverage < 1.0
    # The lowest such threshold: one confidence lower, precision falls below 0.9.
    assert correct[confidences >= confidences[~answered].max()].mean() < 0.9


def test_abstention_threshold_answers_every_review_tied_at_the_threshold():
    confidences = np.array([0.99] * 10 + [0.9] * 10 + [0.6] * 5)
    correct = np.array([1] * 10 + [1] * 9 + [0] + [0] * 5)
    assert abstention_threshold(confidences, correct, min_precision=0.95) == (0.9, 19 / 20, 20 / 25)


def test_abstention_threshold_is_none_when_even_the_surest_reviews_miss_and_says_what_they_reach():
    confidences = np.linspace(1.0, 0.5, 40)
    correct = np.array([1] * 8 + [0, 1] + [0, 1] * 15)  # the top 10 reach 0.9, every larger set less
    assert abstention_threshold(confidences, correct, min_precision=0.95) == (None, 0.9, 10 / 40)


def test_abstention_threshold_needs_more_than_one_lucky_review():
    confidences = np.array([0.99] + [0.9] * 30)
    correct = np.array([1] + [1, 0] * 15)
    assert abstention_threshold(confidences, correct, min_precision=0.95)[0] is None
    assert abstention_threshold(confidences, correct, min_precision=0.95, min_answered=1)[0] == 0.99
    assert abstention_threshold([0.9] * 5, [1] * 5) == (None, pytest.approx(np.nan, nan_ok=True), 0.0)
