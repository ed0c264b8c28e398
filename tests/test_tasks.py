"""finetune/tasks.py: what a label is, and the scores of each kind through the repo's `evaluate` modules."""

import numpy as np
import pytest

from finetune import tasks
from finetune.errors import UsageError
from finetune.metrics import score_task
from finetune.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, Task


def test_problem_types_resolve_by_their_transformers_names_and_short_ones():
    assert tasks.resolve("regression") == REGRESSION and tasks.resolve("multi-label") == MULTI_LABEL
    assert tasks.resolve("single_label_classification") == SINGLE_LABEL
    with pytest.raises(UsageError, match="--problem_type stars: choose one of"):
        tasks.resolve("stars")
    assert not tasks.greater_is_better("mae") and not tasks.greater_is_better("eval_loss")
    assert tasks.greater_is_better("f1_micro")


def test_rating_scores_round_to_the_ratings_seen_in_train():
    task = Task(REGRESSION, ["stars"], [1.0, 2.0, 3.0, 4.0, 5.0])
    outputs = task.outputs(np.array([[1.2], [4.6], [3.4], [2.5]]))
    scores, matrix = score_task(task, outputs, [1.0, 5.0, 4.0, 2.0], confusion_matrix=True)
    assert scores["mae"] == pytest.approx((0.2 + 0.4 + 0.6 + 0.5) / 4)
    assert scores["mse"] == pytest.approx((0.04 + 0.16 + 0.36 + 0.25) / 4)
    assert scores["accuracy"] == pytest.approx(3 / 4)  # 3.4 rounds to 3, not 4; 2.5 ties to the lower, 2
    assert scores["spearman"] == pytest.approx(1.0) and 0.9 < scores["pearson"] < 1.0  # same order, not a line
    assert sum(map(sum, matrix)) == 4 and matrix[3][2] == 1  # true 4, predicted 3
    assert task.rounded([4.6, 2.5, 0.2, 9.0]) == ["5", "2", "1", "5"]
    assert task.describe_value(4.26) == "4.3 out of 5"
    assert Task(REGRESSION, ["score"], [0.0, 0.5, 1.0]).describe_value(0.72) == "0.72 out of 1"
    assert Task(REGRESSION, ["score"], [-1.0, 1.0]).describe_value(0.5) == "0.5 on a scale of -1 to 1"


def test_a_correlation_of_a_constant_prediction_is_zero_not_nan():
    task = Task(REGRESSION, ["stars"], [1.0, 5.0])
    scores, _ = score_task(task, np.array([[3.0], [3.0], [3.0]]), [1.0, 5.0, 3.0])
    assert scores["pearson"] == 0.0 and scores["spearman"] == 0.0


def test_multi_label_scores_and_the_threshold_chosen_on_validation():
    task = Task(MULTI_LABEL, ["food", "service"])
    probabilities = np.array([[0.9, 0.35], [0.8, 0.1], [0.2, 0.4], [0.1, 0.05]])
    truth = [[1, 1], [1, 0], [0, 1], [0, 0]]
    scores, matrix = score_task(task, probabilities, truth)
    assert matrix is None and scores["accuracy"] == pytest.approx(2 / 4)  # rows 2 and 4 right at 0.5
    assert scores["precision_service"] == 0.0 and scores["f1_food"] == 1.0
    assert scores["f1_micro"] == pytest.approx(2 * 2 / (2 + 4))  # 2 hits, 2 predicted, 4 true
    threshold = task.choose_threshold(probabilities, truth)
    assert 0.2 < threshold <= 0.35  # every true label passes, nothing false does
    task.threshold = threshold
    assert score_task(task, probabilities, truth)[0]["accuracy"] == 1.0
    assert task.predicted_text(probabilities[0]) == "food;service" and task.predicted_text(probabilities[3]) == ""
    assert task.label_text([1.0, 0.0]) == "food"


def test_a_task_is_saved_on_the_model_config_and_read_back():
    from transformers import BertConfig

    config = BertConfig(num_labels=1, id2label={0: "stars"}, label2id={"stars": 0})
    Task(REGRESSION, ["stars"], [1.0, 3.0, 5.0]).save(config)
    read = Task.of_model(BertConfig.from_dict(config.to_dict()))
    assert (read.problem_type, read.label_names, read.rating_values) == (REGRESSION, ["stars"], [1.0, 3.0, 5.0])
    config = BertConfig(num_labels=2, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1})
    Task(MULTI_LABEL, ["a", "b"], threshold=0.35).save(config)
    assert Task.of_model(BertConfig.from_dict(config.to_dict())).threshold == 0.35
    plain = Task.of_model(BertConfig(num_labels=2))  # a model of another project: one class per review
    assert plain.problem_type == SINGLE_LABEL
