import pytest

from finetune.history import best_row, epoch_history


def test_epoch_history_has_one_row_per_epoch_with_step_weighted_train_loss():
    log = [
        {"loss": 0.9, "step": 4, "epoch": 0.4},
        {"loss": 0.7, "step": 10, "epoch": 1.0},
        {"eval_loss": 0.6, "eval_accuracy": 0.7, "eval_f1": 0.65, "eval_runtime": 1.0, "step": 10, "epoch": 1.0},
        {"loss": 0.5, "step": 20, "epoch": 2.0},
        {"eval_loss": 0.4, "eval_accuracy": 0.8, "eval_f1": 0.79, "eval_runtime": 1.0, "step": 20, "epoch": 2.0},
        {"eval_loss": 0.4, "eval_accuracy": 0.8, "eval_f1": 0.79, "step": 20, "epoch": 2.0},  # final evaluate()
        {"train_loss": 0.6, "train_runtime": 5.0, "step": 20, "epoch": 2.0},
    ]
    rows = epoch_history(log)
    assert [row["epoch"] for row in rows] == [1.0, 2.0]
    assert rows[0]["train_loss"] == pytest.approx((0.9 * 4 + 0.7 * 6) / 10)
    assert rows[1]["train_loss"] == pytest.approx(0.5)
    assert rows[1]["accuracy"] == 0.8 and rows[1]["eval_loss"] == 0.4
    assert "runtime" not in rows[0] and "eval_runtime" not in rows[0]
    assert best_row(rows, "eval_f1")["epoch"] == 2.0
    assert best_row(rows, "eval_loss", greater_is_better=False)["epoch"] == 2.0
