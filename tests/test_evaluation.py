"""Evaluation in length-sorted batches, early stopping, hyperparameter search."""

import json

import numpy as np
import pytest
import yaml
from conftest import tiny_run_args
from datasets import Dataset

from finetune import artifacts, run_views
from finetune.data import restore_order, sort_by_length
from finetune.train import EXIT_USAGE, main


def test_sort_by_length_puts_longest_first_and_restore_order_undoes_it():
    split = Dataset.from_dict({"input_ids": [[1] * n for n in (3, 9, 1, 9, 5)], "label": [0, 1, 2, 3, 4]})
    ordered, order = sort_by_length(split)
    assert [len(ids) for ids in ordered["input_ids"]] == [9, 9, 5, 3, 1]
    assert list(ordered["label"]) == [1, 3, 4, 0, 2]  # ties keep their order
    rows = np.array(ordered["label"])[:, None] * np.ones((1, 2))
    assert restore_order(rows, order)[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_sorted_evaluation_gives_the_same_metrics_and_predictions_as_unsorted(trained_run, review_files, tmp_path):
    """The restored model, scored on test in file order and in length order: the same numbers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from finetune.metrics import make_compute_metrics

    tokenizer = AutoTokenizer.from_pretrained(trained_run)
    model = AutoModelForSequenceClassification.from_pretrained(trained_run)
    rows = Dataset.from_csv(str(review_files["test"]))
    labels = ["negative", "positive"]
    encoded = Dataset.from_dict({**tokenizer(list(rows["text"])), "labels": [labels.index(x) for x in rows["label"]]})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, use_cpu=True,
                             report_to=[], disable_tqdm=True)
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, compute_metrics=make_compute_metrics(labels))
    plain = trainer.predict(encoded)
    ordered, order = sort_by_length(encoded)
    assert order.tolist() != list(range(len(order)))  # the test really reorders
    sorted_run = trainer.predict(ordered)
    for key in ("test_accuracy", "test_f1", "test_precision", "test_recall"):
        assert sorted_run.metrics[key] == pytest.approx(plain.metrics[key], abs=1e-9)
    assert sorted_run.metrics["test_loss"] == pytest.approx(plain.metrics["test_loss"], rel=1e-5)
    assert torch.allclose(torch.from_numpy(restore_order(sorted_run.predictions, order)),
                          torch.from_numpy(plain.predictions), atol=1e-5)
    # The training run scored test this way: its confusion matrix adds up to the same predictions.
    predicted, truth = plain.predictions.argmax(-1), np.array(encoded["labels"])
    expected = [[int(((truth == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    assert artifacts.read_json(trained_run, artifacts.RESULTS_FILE)["confusion_matrices"]["test"] == expected


def test_early_stopping_stops_when_the_metric_stops_improving(tiny_bert, review_files, tmp_path):
    # A learning rate of 0 never improves anything: patience 1 stops after the second evaluation.
    output_dir = tmp_path / "stopped"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "5",
                              "--learning_rate", "0", "--early_stopping_patience", "1")) == 0
    history = artifacts.read_json(output_dir, artifacts.HISTORY_FILE)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert "patience 1" in (output_dir / "README.md").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--early_stopping_patience", "0"], "--early_stopping_patience 0: must be at least 1"),
    (["--early_stopping_threshold", "0.01"], "--early_stopping_threshold needs --early_stopping_patience"),
    (["--early_stopping_patience", "2", "--eval_strategy", "no", "--save_strategy", "no",
      "--load_best_model_at_end", "false"], "--early_stopping_patience needs evaluations"),
])
def test_early_stopping_flags_that_cannot_work_are_refused(tiny_bert, review_files, tmp_path, capsys, flags, message):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    assert message in capsys.readouterr().err


# --- hyperparameter search ----------------------------------------------------------------------

SEARCH_SPACE = ('{"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-3, "log": true}, '
                '"num_train_epochs": {"type": "int", "low": 1, "high": 2}}')


def test_search_runs_trials_then_trains_the_best_and_records_them(tiny_bert, review_files, tmp_path):
    output_dir = tmp_path / "searched"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--hp_search_trials", "2",
                              "--hp_search_space", SEARCH_SPACE, "--hp_search_train_samples", "48")) == 0
    search = artifacts.read_json(output_dir, artifacts.SEARCH_FILE)
    assert [t["number"] for t in search["trials"]] == [0, 1] and search["train_samples"] == 48
    assert search["metric"] == "f1" and search["direction"] == "maximize"
    for trial in search["trials"]:
        assert trial["state"] == "complete" and 1e-3 <= trial["params"]["learning_rate"] <= 5e-3
        assert trial["seconds"] > 0 and len(trial["epoch_values"]) == trial["params"]["num_train_epochs"]
        assert trial["value"] == max(trial["epoch_values"])
    best = max(search["trials"], key=lambda t: t["value"])
    assert search["best_params"] == best["params"]
    # The final model trained on all 96 reviews with the best trial's settings.
    config = yaml.safe_load((output_dir / artifacts.CONFIG_FILE).read_text())
    assert config["training"]["learning_rate"] == pytest.approx(best["params"]["learning_rate"])
    history = artifacts.read_json(output_dir, artifacts.HISTORY_FILE)
    assert len(history) == best["params"]["num_train_epochs"] and history[-1]["step"] % 6 == 0
    card = (output_dir / "README.md").read_text()
    assert "## Hyperparameter search" in card and "The test split was not used" in card


def test_search_monitor_stops_a_trial_below_the_median_of_earlier_ones():
    from finetune.search import TrialMonitor

    monitor = TrialMonitor("eval_f1", maximize=True)
    monitor.history = {0: [0.6, 0.7], 1: [0.5, 0.8]}
    monitor.values = [0.55]
    assert not monitor._hopeless()  # the first epoch is never judged
    monitor.values = [0.55, 0.6]
    assert monitor._hopeless()  # below the median 0.75 of the earlier trials' second epochs
    monitor.values = [0.55, 0.76]
    assert not monitor._hopeless()


@pytest.mark.parametrize("flags, message", [
    (["--hp_search_trials", "2", "--hp_search_space", '{"no_such_setting": {"type": "float", "low": 0, "high": 1}}'],
     "not a TrainingArguments setting"),
    (["--hp_search_trials", "2", "--hp_search_space", '{"learning_rate": {"type": "float", "low": 0, "high": 1, '
      '"log": true}}'], "a log range needs low > 0"),
    (["--hp_search_train_samples", "10"], "need --hp_search_trials"),
    (["--hp_search_trials", "2", "--resume_from_checkpoint", "true"], "a resumed run keeps the settings"),
])
def test_search_flags_that_cannot_work_are_refused(tiny_bert, review_files, tmp_path, capsys, flags, message):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_search_space_comes_from_a_recipe_mapping(tmp_path):
    from finetune.config import parse_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("hp_search_trials: 3\nhp_search_space:\n  weight_decay: {type: float, low: 0.0, high: 0.3}\n")
    config = parse_config(["--config", str(recipe)])
    assert json.loads(config.run.hp_search_space) == {"weight_decay": {"type": "float", "low": 0.0, "high": 0.3}}


def test_search_trials_reach_the_demo(tiny_bert, review_files, tmp_path):
    from conftest import free_port
    from gradio_client import Client

    import app

    output_dir = tmp_path / "searched"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--hp_search_trials", "2",
                              "--hp_search_space", SEARCH_SPACE, "--num_train_epochs", "1")) == 0
    search = artifacts.read_json(output_dir, artifacts.SEARCH_FILE)
    demo = app.build_demo(run_views.load_served_model(str(output_dir)))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        table, plot, note = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/hp_search")
    finally:
        demo.close()
    assert [row[0] for row in table["data"]] == [0, 1]
    assert table["headers"][:4] == ["trial", "state", "f1", "seconds"]
    assert [round(row[1], 4) for row in plot["data"]] == [round(t["value"], 4) for t in search["trials"]]
    assert "2 trials on 96 training reviews" in note


def test_search_view_without_a_search_says_so(trained_run):

    table, plot, note = run_views.search_view(run_views.load_served_model(str(trained_run)))
    assert table.empty and plot.empty and "did not search" in note
