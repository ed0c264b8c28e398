"""The real training entry point, end to end, on a tiny BERT and small review files."""

import csv
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import (
    MANY_REVIEWS,
    REPO_ROOT,
    assert_predictions_belong_to_their_reviews,
    make_reviews,
    prediction_columns,
    read_predictions,
    tiny_run_args,
    write_csv,
)
from datasets import ClassLabel, Dataset, Features, Value
from huggingface_hub import ModelCard

from finetune import artifacts
from finetune.train import EXIT_USAGE, main


def test_main_writes_a_complete_model_folder(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "epoch_history.json",
            "results.json", "run_config.yaml"} <= names
    config = json.loads((trained_run / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    assert [p.name for p in artifacts.checkpoints(trained_run)] == ["checkpoint-6", "checkpoint-12"]


def test_main_history_has_one_row_per_epoch(trained_run):
    history = artifacts.read_json(trained_run, artifacts.HISTORY_FILE)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert [row["step"] for row in history] == [6, 12]
    for row in history:
        assert row["train_loss"] > 0 and row["eval_loss"] > 0
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1
        assert {"f1_negative", "f1_positive", "precision", "recall"} <= set(row)


def test_main_results_and_card_agree(trained_run):
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    assert set(results["scores"]) == {"validation", "test"}
    assert sum(map(sum, results["confusion_matrices"]["test"])) == 32
    card = ModelCard.load(trained_run / "README.md")
    from_card = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    for split in ("validation", "test"):
        for metric in ("accuracy", "precision", "recall", "f1"):
            assert from_card[(split, metric)] == round(results["scores"][split][metric], 4)
    assert card.data.base_model is None  # a local folder is not a Hub id
    assert "## Training history (one row per epoch)" in card.text


def test_main_restores_the_best_epoch(trained_run):
    history = artifacts.read_json(trained_run, artifacts.HISTORY_FILE)
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    best = max(history, key=lambda row: row["f1"])
    assert results["scores"]["validation"]["f1"] == pytest.approx(best["f1"], abs=1e-6)
    assert results["scores"]["validation"]["loss"] == pytest.approx(best["eval_loss"], abs=1e-5)


def test_main_refuses_output_dir_of_another_run(trained_run, tiny_bert, review_files, capsys):
    before = (trained_run / "model.safetensors").read_bytes()
    assert main(tiny_run_args(tiny_bert, review_files, trained_run)) == EXIT_USAGE
    assert "already holds a model" in capsys.readouterr().err
    assert (trained_run / "model.safetensors").read_bytes() == before


def test_main_overwrites_when_told(tiny_bert, review_files, tmp_path, capsys):
    output_dir = tmp_path / "again"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "1")) == 0
    out = capsys.readouterr().out
    assert f"Model folder: {output_dir.resolve()}" in out and "test       accuracy" in out
    assert f"MODEL_ID={output_dir} {sys.executable} app.py" in out  # the printed command serves it
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "1",
                              "--overwrite_output_dir")) == 0
    assert len(artifacts.read_json(output_dir, artifacts.HISTORY_FILE)) == 1


# --- early stopping -------------------------------------------------------------------------------


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


# --- input that cannot work --------------------------------------------------------------------------


def _bad_files(tmp_path):
    good = write_csv(tmp_path / "good.csv", make_reviews(20))
    return {
        "wrong_column": write_csv(tmp_path / "cols.csv", [{"review": "fine", "label": "positive"}], ("review", "label")),
        "empty": write_csv(tmp_path / "empty.csv", [{"text": "  ", "label": "positive"}, {"text": "", "label": "negative"}]),
        "unseen": write_csv(tmp_path / "unseen.csv", make_reviews(4) + [{"text": "so so", "label": "mixed"}]),
        "good": good,
    }


@pytest.mark.parametrize(
    "case, message",
    [
        ("wrong_column", "no column 'text' (it has: review, label). Pass --text_column_name"),
        ("empty", "train split is empty after dropping rows"),
        ("unseen", "labels that train lacks: mixed"),
        ("no_model_files", "not a model folder"),
        ("missing_file", "--train_file"),
        ("no_checkpoint", "no checkpoint-* folder"),
    ],
)
def test_main_bad_input_fails_before_training_with_a_clear_message(case, message, tiny_bert, tmp_path, capsys):
    files = _bad_files(tmp_path)
    model = str(tiny_bert)
    args = ["--train_file", str(files["good"]), "--output_dir", str(tmp_path / "out"), "--disable_tqdm", "true"]
    if case in ("wrong_column", "empty"):
        args[1] = str(files[case])
    elif case == "unseen":
        args += ["--validation_file", str(files["unseen"])]
    elif case == "no_model_files":
        model = str(tmp_path)
    elif case == "missing_file":
        args[1] = str(tmp_path / "nope.csv")
    elif case == "no_checkpoint":
        args += ["--resume_from_checkpoint", "true"]
    assert main(["--model_name_or_path", model, *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and message in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_main_refuses_a_token_on_the_command_line_without_echoing_it(tiny_bert, review_files, tmp_path, capsys):
    secret = "hf_doNotPrintMe0123456789"
    code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--push_to_hub", "--hub_token", secret))
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert "--hub_token" in captured.err and "HF_TOKEN" in captured.err and "hf auth login" in captured.err
    assert secret not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be at least 1"),
    (["--learning_rate=-1e-5"], "--learning_rate -1e-05: must not be negative"),
    (["--max_predict_samples", "10"], "--max_predict_samples: use --max_test_samples"),
    (["--do_regression"], "--do_regression: use --problem_type regression"),
    (["--token", "hf_doNotPrintMe0123"], "--token: pass no token on the command line"),
    (["--hub_tokn", "hf_doNotPrintMe0123"], "unrecognized arguments: --hub_tokn hf_***"),
    (["--freeze_word_embedding", "true"], "unrecognized arguments: --freeze_word_embedding true. "
                                          "Did you mean --freeze_word_embeddings (not --freeze_word_embedding)?"),
    (["--freeze_word_embeddings", "maybe"], "1/0 (case insensitive). `python finetune/train.py --help` lists"),
    (["--enable_jit_checkpoint", "true"], "--enable_jit_checkpoint: not supported"),
])
def test_main_answers_flags_that_would_fail_late_or_that_other_tools_taught(tiny_bert, review_files, tmp_path,
                                                                           capsys, flags, message):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "hf_doNotPrintMe0123" not in err
    assert err.strip().splitlines()[-1].startswith("error: ") and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()


def _train_command(tiny_bert, review_files, output_dir, *extra):
    return [sys.executable, str(REPO_ROOT / "finetune" / "train.py"),
            *tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "3", *extra)]


def test_resume_after_kill_finishes_with_the_same_history(tiny_bert, review_files, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 960 reviews, 60 steps an epoch: long enough that a kill lands inside an epoch.
    files = {**review_files, "train": write_csv(tmp_path / "train.csv", make_reviews(960, seed=5))}
    straight = tmp_path / "straight"
    subprocess.run(_train_command(tiny_bert, files, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_command(tiny_bert, files, killed), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint-60" / "trainer_state.json").exists():
        assert process.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"
    assert [p.name for p in artifacts.checkpoints(killed)] == ["checkpoint-60"]

    resumed = subprocess.run(_train_command(tiny_bert, files, killed, "--resume_from_checkpoint", "true"),
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from checkpoint-60" in resumed.stderr + resumed.stdout  # the log says the run goes on
    expected = artifacts.read_json(straight, artifacts.HISTORY_FILE)
    got = artifacts.read_json(killed, artifacts.HISTORY_FILE)
    assert [(r["epoch"], r["step"]) for r in got] == [(1.0, 60), (2.0, 120), (3.0, 180)]
    for want, row in zip(expected, got):
        for key in ("eval_loss", "accuracy", "f1", "train_loss"):
            assert row[key] == pytest.approx(want[key], abs=1e-4), (row["epoch"], key)


def test_embedded_minilm_smoke_run(tmp_path):
    """The real embedded model and reviews, on a few dozen reviews."""
    output_dir = tmp_path / "minilm"
    code = main([
        "--output_dir", str(output_dir), "--max_train_samples", "48", "--max_eval_samples", "24",
        "--max_test_samples", "24", "--num_train_epochs", "1", "--per_device_train_batch_size", "16",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false",
    ])
    assert code == 0
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "fresh", "1": "rotten"} and config["model_type"] == "bert"
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.license == "apache-2.0"
    assert "split 80/10/10 by movie" in card.text
    results = artifacts.read_json(output_dir, artifacts.RESULTS_FILE)
    assert results["split_sizes"] == {"train": 48, "validation": 24, "test": 24}


# --- hidden test labels --------------------------------------------------------------------------


def _hub_style_dataset(folder, test_labels):
    """A dataset folder as Hub datasets publish them: parquet splits, label a ClassLabel, test labels hidden."""
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    folder.mkdir()
    train_rows = make_reviews(96, seed=1)
    Dataset.from_dict({"text": [r["text"] for r in train_rows],
                       "label": [1 if r["label"] == "positive" else 0 for r in train_rows]},
                      features=features).to_parquet(str(folder / "train.parquet"))
    test_rows = make_reviews(len(test_labels), seed=3)
    Dataset.from_dict({"text": [r["text"] for r in test_rows], "label": test_labels},
                      features=features).to_parquet(str(folder / "test.parquet"))
    return folder


def test_main_predicts_a_test_split_whose_labels_are_all_hidden(tiny_bert, tmp_path):
    dataset = _hub_style_dataset(tmp_path / "glue-like", test_labels=[-1] * 20)
    output_dir = tmp_path / "out"
    assert main(tiny_run_args(tiny_bert, {}, output_dir, "--dataset_name", str(dataset))) == 0

    with open(output_dir / "predictions_test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert list(rows[0]) == prediction_columns(output_dir, "text", "predicted_label")
    for row in rows:
        assert row["predicted_label"] in ("negative", "positive")
        assert float(row["p(negative)"]) + float(row["p(positive)"]) == pytest.approx(1.0, abs=1e-5)
    results = artifacts.read_json(output_dir, artifacts.RESULTS_FILE)
    assert set(results["scores"]) == {"validation"}
    assert results["unlabelled_splits"] == {"test": {"reviews": 20, "predictions": "predictions_test.csv"}}
    card = ModelCard.load(output_dir / "README.md")
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}
    assert "**test** split (20 reviews) has no labels" in card.text
    # A local dataset folder is named, not linked as a Hub dataset, and its path stays home.
    assert str(dataset) not in card.content and card.data.datasets is None


def test_main_drops_and_counts_partly_hidden_test_labels(tiny_bert, tmp_path):
    dataset = _hub_style_dataset(tmp_path / "partly", test_labels=[0, 1, -1, 1, 0, -1, 1, 0, 1, 0])
    output_dir = tmp_path / "out"
    assert main(tiny_run_args(tiny_bert, {}, output_dir, "--num_train_epochs", "1",
                              "--dataset_name", str(dataset))) == 0
    results = artifacts.read_json(output_dir, artifacts.RESULTS_FILE)
    assert results["split_sizes"]["test"] == 8 and results["hidden_label_rows_dropped"] == {"test": 2}
    assert sum(map(sum, results["confusion_matrices"]["test"])) == 8
    assert "hidden (-1): test 2" in (output_dir / "README.md").read_text()


# --- per-review predictions -----------------------------------------------------------------------

# At 2 epochs the tiny BERT is still near chance on these reviews; at 6 it has learnt them (a check of per-row
# order on a model that predicts ~0.5 everywhere would prove little).
LEARNS = ("--num_train_epochs", "6")


def test_main_predictions_files_belong_to_their_reviews_after_training_and_after_resuming(
        tiny_bert, many_review_files, tmp_path):
    output_dir = tmp_path / "many"
    assert main(tiny_run_args(tiny_bert, many_review_files, output_dir, *LEARNS)) == 0
    for split in ("validation", "test"):
        assert_predictions_belong_to_their_reviews(output_dir, split)
    # Resuming a finished run redoes only the evaluation and the files: they must match again.
    for split in ("validation", "test"):
        (output_dir / artifacts.predictions_file(split)).unlink()
    assert main(tiny_run_args(tiny_bert, many_review_files, output_dir, *LEARNS, "--resume_from_checkpoint", "true")) == 0
    for split in ("validation", "test"):
        assert_predictions_belong_to_their_reviews(output_dir, split)


def test_main_predictions_of_a_hidden_label_split_belong_to_their_reviews(tiny_bert, tmp_path):
    """A test split published with hidden labels (-1) is predicted only: each row still holds its own review's."""
    features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    folder = tmp_path / "hub-like"
    folder.mkdir()
    for split, rows, hidden in (("train", make_reviews(96, seed=1), False),
                                ("validation", make_reviews(MANY_REVIEWS, seed=12), False),
                                ("test", make_reviews(MANY_REVIEWS, seed=13), True)):
        labels = [-1 if hidden else int(r["label"] == "positive") for r in rows]
        Dataset.from_dict({"text": [r["text"] for r in rows], "label": labels},
                          features=features).to_parquet(str(folder / f"{split}.parquet"))
    output_dir = tmp_path / "out"
    assert main(tiny_run_args(tiny_bert, {}, output_dir, *LEARNS, "--dataset_name", str(folder))) == 0
    assert "label" not in read_predictions(output_dir, "test")[0]
    assert_predictions_belong_to_their_reviews(output_dir, "validation")
    assert_predictions_belong_to_their_reviews(output_dir, "test")


def test_main_predictions_files_belong_to_their_reviews_after_a_search(tiny_bert, many_review_files, tmp_path):
    output_dir = tmp_path / "searched"
    space = '{"learning_rate": {"type": "float", "low": 2e-3, "high": 4e-3}}'
    assert main(tiny_run_args(tiny_bert, many_review_files, output_dir, *LEARNS, "--hp_search_trials", "2",
                              "--hp_search_train_samples", "48", "--hp_search_space", space)) == 0
    assert_predictions_belong_to_their_reviews(output_dir, "test")


def test_main_results_and_card_record_the_run_cost(trained_run):
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    cost = results["cost"]
    assert 0 < cost["wall_seconds"] <= sum(results["seconds"].values()) + 30
    assert cost["energy_kwh"] > 0 and cost["energy_kwh"] == pytest.approx(sum(cost["energy_kwh_by_part"].values()))
    assert cost["co2_grams"] == pytest.approx(cost["energy_kwh"] * cost["carbon_intensity"])
    assert cost["cpu_seconds"] > 0 and cost["processes"] == 1 and "logical CPU" in cost["hardware"]
    # measuring costs far less than 2% of the run
    assert cost["metering_seconds"] < 0.02 * cost["wall_seconds"]
    card = ModelCard.load(trained_run / "README.md")
    assert card.data.co2_eq_emissions["emissions"] == round(cost["co2_grams"], 4)
    assert card.data.co2_eq_emissions["hardware_used"] == cost["hardware"]
    assert "## Training cost" in card.text and cost["method"] in card.text


def test_main_writes_run_config_once_with_the_plan_the_search_chose(tiny_bert, many_review_files, tmp_path,
                                                                     monkeypatch):
    import yaml

    writes = []
    real = artifacts.write_run_config
    monkeypatch.setattr(artifacts, "write_run_config", lambda folder, sections: writes.append(1) or real(folder, sections))
    output_dir = tmp_path / "planned"
    space = '{"learning_rate": {"type": "float", "low": 2e-3, "high": 4e-3}}'
    assert main(tiny_run_args(tiny_bert, many_review_files, output_dir, *LEARNS, "--hp_search_trials", "2",
                              "--hp_search_train_samples", "48", "--hp_search_space", space)) == 0
    assert len(writes) == 1
    saved = yaml.safe_load((output_dir / artifacts.CONFIG_FILE).read_text())
    searched = json.loads((output_dir / artifacts.SEARCH_FILE).read_text())
    assert saved["training"]["learning_rate"] == pytest.approx(searched["best_params"]["learning_rate"])
    assert saved["training"]["bf16"] is False and saved["training"]["push_to_hub"] is False
    assert "## Hyperparameter search" in (output_dir / "README.md").read_text()
