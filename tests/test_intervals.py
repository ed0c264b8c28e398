"""finetune/intervals.py: bootstrap intervals that cover the truth at their nominal rate, fast enough for 10,000 reviews."""

import time
from functools import partial

import numpy as np
import pytest

from finetune.intervals import accuracy, bootstrap_interval, interval_metrics, macro_f1, mean_absolute_error, micro_f1


def test_bootstrap_interval_covers_the_true_accuracy_about_95_times_in_100():
    rng = np.random.default_rng(7)
    covered = 0
    for dataset in range(200):
        correct = (rng.random(400) < 0.8).astype(np.float64)
        low, high = bootstrap_interval(accuracy, correct, resamples=500, seed=dataset)
        covered += low <= 0.8 <= high
    assert 0.90 <= covered / 200 <= 0.99


def test_bootstrap_interval_is_about_3_5_points_either_side_at_400_reviews():
    correct = (np.random.default_rng(3).random(400) < 0.85).astype(np.float64)
    low, high = bootstrap_interval(accuracy, correct)
    # The normal approximation: 1.96 * sqrt(0.85 * 0.15 / 400) = 0.035.
    assert (high - low) / 2 == pytest.approx(0.035, abs=0.006)
    assert low < correct.mean() < high


def test_bootstrap_interval_is_the_same_for_the_same_seed_and_moves_with_another():
    errors = np.random.default_rng(0).exponential(1.0, 300)  # continuous: a new seed shows in the quantiles
    assert bootstrap_interval(mean_absolute_error, errors, seed=4) == bootstrap_interval(mean_absolute_error, errors, seed=4)
    assert bootstrap_interval(mean_absolute_error, errors, seed=4) != bootstrap_interval(mean_absolute_error, errors, seed=5)


def test_bootstrap_interval_of_no_rows_is_none_and_of_one_row_is_the_point():
    assert bootstrap_interval(accuracy, np.array([])) is None
    assert bootstrap_interval(accuracy, np.array([1.0])) == (1.0, 1.0)
    with pytest.raises(ValueError, match="must match"):
        bootstrap_interval(micro_f1, np.ones(3), np.ones(4))


def test_bootstrap_interval_resamples_the_arrays_by_the_same_rows():
    # Each row's labels marked (predicted + true) are twice its hits; shuffled apart, F1 would not stay 1.
    hits = np.arange(1, 50)
    assert bootstrap_interval(micro_f1, hits, 2 * hits) == (1.0, 1.0)


def test_macro_f1_matches_the_per_class_f1_average_of_a_hand_counted_matrix():
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    # Class 0: TP 1, predicted 3, true 2 -> 2/5. Class 1: TP 2, predicted 3, true 2 -> 4/5. Class 2: 0.
    f1 = macro_f1((truth * 3 + predicted)[None], num_classes=3)
    assert f1 == pytest.approx([(0.4 + 0.8 + 0.0) / 3])


def test_interval_metrics_brackets_each_kind_of_tasks_scores():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 600)
    probabilities = np.full((600, 3), 0.1)
    probabilities[np.arange(600), np.where(rng.random(600) < 0.8, labels, (labels + 1) % 3)] = 0.8
    single = interval_metrics("single_label", probabilities, labels, resamples=300)
    assert set(single) == {"accuracy", "f1"}
    assert single["accuracy"][0] < (probabilities.argmax(1) == labels).mean() < single["accuracy"][1]

    values = rng.normal(3.0, 1.0, 500)
    rating = interval_metrics("regression", (values + 0.5)[:, None], values, resamples=300)
    assert rating["mae"] == pytest.approx((0.5, 0.5))

    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 50)
    outputs = np.array([[0.7, 0.2], [0.1, 0.45], [0.9, 0.6], [0.3, 0.1]] * 50)
    # At 0.4 every decision is right (F1 1); at 0.5 review 2's label 1 (0.45) is missed: F1 = 2*3/(3+4) = 6/7.
    assert interval_metrics("multi_label", outputs, targets, threshold=0.4)["f1_micro"] == (1.0, 1.0)
    assert interval_metrics("multi_label", outputs, targets)["f1_micro"][0] < 6 / 7 < 1.0
    assert interval_metrics("single_label", np.zeros((0, 3)), np.array([], int)) == {"accuracy": None, "f1": None}


def test_interval_metrics_of_one_class_only_is_the_point():
    labels = np.zeros(50, int)
    probabilities = np.tile([0.9, 0.1], (50, 1))
    assert interval_metrics("single_label", probabilities, labels) == {"accuracy": (1.0, 1.0), "f1": (0.5, 0.5)}


def test_bootstrap_interval_takes_well_under_a_second_for_10000_reviews():
    rng = np.random.default_rng(2)
    truth, predicted = rng.integers(0, 5, 10_000), rng.integers(0, 5, 10_000)
    start = time.perf_counter()
    bootstrap_interval(accuracy, (truth == predicted).astype(np.float64))
    bootstrap_interval(partial(macro_f1, num_classes=5), truth * 5 + predicted)
    # ~0.2 s on a laptop core for both; the bound leaves room for a busy CI machine.
    assert time.perf_counter() - start < 1.5
