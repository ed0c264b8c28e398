import pytest

from finetune.metrics import load_metric


def test_classification_scores_match_hand_computed_values():
    # true:      0 0 0 1 1 2
    # predicted: 0 0 1 1 2 2
    scores = load_metric().compute(predictions=[0, 0, 1, 1, 2, 2], references=[0, 0, 0, 1, 1, 2],
                                   label_names=["neg", "neu", "pos"])
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["precision_neg"] == pytest.approx(1.0)
    assert scores["recall_neg"] == pytest.approx(2 / 3)
    assert scores["precision_neu"] == pytest.approx(0.5) and scores["recall_neu"] == pytest.approx(0.5)
    assert scores["precision_pos"] == pytest.approx(0.5) and scores["recall_pos"] == pytest.approx(1.0)
    assert scores["f1_pos"] == pytest.approx(2 / 3)
    assert scores["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert scores["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_classification_scores_give_zero_for_a_class_never_predicted():
    scores = load_metric().compute(predictions=[0, 0, 0], references=[0, 1, 0], label_names=["a", "b"])
    assert scores["precision_b"] == 0.0 and scores["recall_b"] == 0.0 and scores["f1_b"] == 0.0


def test_confusion_matrix_rows_are_true_labels():
    scores = load_metric().compute(predictions=[0, 1, 1, 1], references=[0, 0, 1, 1], label_names=["a", "b"],
                                   confusion_matrix=True)
    assert scores["confusion_matrix"] == [[1, 1], [0, 2]]
