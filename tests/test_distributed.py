"""Two real processes under `accelerate launch` on CPU (gloo), against one process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, assert_predictions_belong_to_their_reviews, tiny_run_args

from finetune import artifacts
from finetune.train import main

ACCELERATE = Path(sys.executable).parent / "accelerate"


def _train_two_processes(tiny_bert, review_files, output_dir, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2 finetune/train.py ...`: two CPU processes (gloo)."""
    command = [str(ACCELERATE) if ACCELERATE.exists() else shutil.which("accelerate"), "launch", "--multi_gpu",
               "--num_processes", "2", "--main_process_port", "0",
               "finetune/train.py", *tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs",
                                                   str(epochs), "--per_device_train_batch_size", "8", *extra)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_match_one_process(tiny_bert, many_review_files, tmp_path):
    review_files = many_review_files  # evaluation splits larger than one length-grouped megabatch
    two = tmp_path / "two"
    # 6 epochs: at 3 the tiny BERT often has not left chance yet, and a comparison of two coin flips says
    # nothing (CI once saw one run at 0.5 and the other at 0.91).
    # Batches over 40 tokens run in pieces, in different numbers on the two processes: each must still
    # synchronise gradients once per batch (a mismatch would hang, and the timeout would fail the test).
    result = _train_two_processes(tiny_bert, review_files, two, 6, "--max_train_batch_tokens", "40")
    assert "2 process(es) on this machine" in result.stderr
    assert artifacts.read_json(two, artifacts.RESULTS_FILE)["batches_in_pieces"] > 0
    assert result.stdout.count("Model folder:") == 1  # only the main process writes and reports
    for split in ("validation", "test"):  # the processes' predictions, gathered, are in the reviews' order
        assert_predictions_belong_to_their_reviews(two, split)

    one = tmp_path / "one"
    assert main(tiny_run_args(tiny_bert, review_files, one, "--num_train_epochs", "6",
                              "--per_device_train_batch_size", "16")) == 0

    two_history = artifacts.read_json(two, artifacts.HISTORY_FILE)
    one_history = artifacts.read_json(one, artifacts.HISTORY_FILE)
    assert [row["step"] for row in two_history] == [row["step"] for row in one_history] == [6, 12, 18, 24, 30, 36]
    two_scores = artifacts.read_json(two, artifacts.RESULTS_FILE)["scores"]["validation"]
    one_scores = artifacts.read_json(one, artifacts.RESULTS_FILE)["scores"]["validation"]
    # Same total batch, different sample order: both learn the task, equal within the noise of 96 training reviews.
    assert min(two_scores["accuracy"], one_scores["accuracy"]) >= 0.8
    assert abs(two_scores["accuracy"] - one_scores["accuracy"]) <= 0.16
    # Losses are not multiplied by the process count (transformers' average_tokens_across_devices).
    assert two_history[-1]["train_loss"] == pytest.approx(one_history[-1]["train_loss"], rel=0.5)
    assert two_history[-1]["eval_loss"] == pytest.approx(one_history[-1]["eval_loss"], rel=0.5)


def test_two_process_eval_loss_equals_one_process_reevaluation(tiny_bert, review_files, tmp_path):
    """The loss the 2-process run reports for its saved model is what one process measures for it."""
    two = tmp_path / "two"
    _train_two_processes(tiny_bert, review_files, two, epochs=1)
    reported = artifacts.read_json(two, artifacts.RESULTS_FILE)["scores"]["validation"]["loss"]

    again = tmp_path / "again"
    # One process, zero training steps, starting from the saved model: its validation loss.
    assert main(tiny_run_args(two, review_files, again, "--max_steps", "0", "--num_train_epochs", "0",
                              "--learning_rate", "0")) == 0
    measured = artifacts.read_json(again, artifacts.RESULTS_FILE)["scores"]["validation"]["loss"]
    assert reported == pytest.approx(measured, rel=1e-4)


def test_search_under_two_processes_samples_once_and_trains_the_best(tiny_bert, review_files, tmp_path):
    """Only the main process samples trials: the other follows each trial and stops with it (pruning included)."""
    output_dir = tmp_path / "search"
    space = '{"learning_rate": {"type": "float", "low": 1e-4, "high": 5e-3, "log": true}}'
    command = [str(ACCELERATE) if ACCELERATE.exists() else shutil.which("accelerate"), "launch", "--multi_gpu",
               "--num_processes", "2", "--main_process_port", "0", "finetune/train.py",
               *tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "2",
                              "--per_device_train_batch_size", "8", "--hp_search_trials", "3",
                              "--hp_search_space", space)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Model folder:") == 1
    search = artifacts.read_json(output_dir, artifacts.SEARCH_FILE)
    assert [t["number"] for t in search["trials"]] == [0, 1, 2]
    assert {t["state"] for t in search["trials"]} <= {"complete", "pruned"}
    assert len({t["params"]["learning_rate"] for t in search["trials"]}) == 3  # sampled, not repeated
    run_config = (output_dir / artifacts.CONFIG_FILE).read_text()
    assert f"learning_rate: {search['best_params']['learning_rate']}" in run_config
