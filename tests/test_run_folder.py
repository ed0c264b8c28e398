"""What a run does with its output folder: nothing trained is lost, nothing foreign is touched,
two runs never mix, hidden test labels are predicted rather than scored."""

import csv
import io
import logging
import shlex
import shutil

import pytest
import torch
from conftest import make_reviews, tiny_run_args
from datasets import ClassLabel, Dataset, Features, Value
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from finetune import artifacts, train
from finetune.errors import UsageError
from finetune.train import EXIT_FINISH_FAILED, EXIT_USAGE, main


def _copy_run(trained_run, tmp_path, name="copy"):
    return shutil.copytree(trained_run, tmp_path / name)


def _state(folder):
    """Every file of a folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- hidden test labels -------------------------------------------------------------------------


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
    assert list(rows[0]) == ["text", "predicted_label", "p(negative)", "p(positive)"]
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


# --- nothing after training loses the model -----------------------------------------------------


def test_main_saves_the_model_before_a_failure_after_training_and_says_how_to_finish(
        tiny_bert, review_files, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "out"
    argv = tiny_run_args(tiny_bert, review_files, output_dir)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(train, "write_run_files", disk_full)
        assert main(argv) == EXIT_FINISH_FAILED
    err = capsys.readouterr().err
    assert "the model is trained and saved in" in err and "No space left on device" in err
    model = AutoModelForSequenceClassification.from_pretrained(output_dir)  # loadable as it stands
    assert model.config.id2label == {0: "negative", 1: "positive"}
    saved = load_file(output_dir / "model.safetensors")

    command = shlex.split(err.strip().splitlines()[-1])
    assert command[:2] == [train.sys.executable, str(train.Path(train.__file__).resolve())]
    assert command[-2:] == ["--resume_from_checkpoint", "true"]
    assert main(command[2:]) == 0  # the printed command finishes the run without training again
    assert [row["step"] for row in artifacts.read_json(output_dir, artifacts.HISTORY_FILE)] == [6, 12]
    assert (output_dir / "README.md").exists() and (output_dir / "results.json").exists()
    again = load_file(output_dir / "model.safetensors")
    assert all(torch.equal(saved[name], again[name]) for name in saved)


# --- the output folder --------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--overwrite_output_dir"]])
def test_main_refuses_a_folder_with_files_no_run_writes(tiny_bert, review_files, tmp_path, capsys, extra):
    project = tmp_path / "project"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / "README.md").write_text("# My project\n")
    (project / ".env").write_text("HF_TOKEN=hf_secret\n")
    before = _state(project)
    assert main(tiny_run_args(tiny_bert, review_files, project, *extra)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds files that a training run does not write (.env, .venv, README.md)" in err
    assert "--output_dir" in err and _state(project) == before


def test_main_refuses_a_folder_holding_only_a_readme_of_its_own(tiny_bert, review_files, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("# Notes\n")
    assert main(tiny_run_args(tiny_bert, review_files, folder)) == EXIT_USAGE
    assert "README.md" in capsys.readouterr().err and (folder / "README.md").read_text() == "# Notes\n"


@pytest.mark.parametrize("flags, messages", [
    (["--text_column_name", "txet"], ["no column 'txet'"]),
    # The Trainer itself would find an unknown metric only after the first epoch.
    (["--metric_for_best_model", "acc"], ["--metric_for_best_model acc: not a metric of this run", "f1_positive"]),
])
def test_overwrite_deletes_nothing_when_a_pre_training_check_fails(flags, messages, trained_run, tiny_bert,
                                                                     review_files, tmp_path, capsys):
    folder = _copy_run(trained_run, tmp_path)
    before = _state(folder)
    code = main(tiny_run_args(tiny_bert, review_files, folder, "--overwrite_output_dir", *flags))
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    for message in messages:
        assert message in err
    assert _state(folder) == before


def test_overwrite_never_leaves_the_old_runs_files_beside_new_weights(trained_run, tiny_bert, review_files,
                                                                      tmp_path, monkeypatch):
    folder = _copy_run(trained_run, tmp_path)
    (folder / "predictions_test.csv").write_text("text,predicted_label\nold,positive\n")  # an old run's file
    old_card = (folder / "README.md").read_bytes()
    monkeypatch.setattr(train, "write_run_files", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("died")))
    assert main(tiny_run_args(tiny_bert, review_files, folder, "--overwrite_output_dir",
                              "--num_train_epochs", "1")) == EXIT_FINISH_FAILED
    names = {p.name for p in folder.iterdir()}
    # The run died after training: its own weights and config are there, none of the old run's files.
    assert {"model.safetensors", "run_config.yaml"} <= names
    assert not names & {"README.md", "results.json", "epoch_history.json", "predictions_test.csv"}
    assert [c.name for c in artifacts.checkpoints(folder)] == ["checkpoint-6"]
    assert old_card != b""


def test_resume_true_skips_an_incomplete_checkpoint_and_says_so(trained_run, tmp_path, caplog):
    folder = _copy_run(trained_run, tmp_path)
    partial = folder / "checkpoint-18"  # a kill during the save: weights half there, no trainer_state.json
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    cut = folder / "checkpoint-24"  # killed while writing trainer_state.json
    shutil.copytree(folder / "checkpoint-12", cut)
    (cut / "trainer_state.json").write_text('{"best_global_step": 1')
    with caplog.at_level(logging.WARNING, logger="finetune.artifacts"):
        assert artifacts.check_output_dir(folder, "true", overwrite=False) == str(folder / "checkpoint-12")
    assert "skipping checkpoint-18, checkpoint-24: incomplete" in caplog.text
    with pytest.raises(UsageError, match="not a complete checkpoint folder"):
        artifacts.check_output_dir(folder, str(partial), overwrite=False)


def test_writes_are_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    artifacts.write_json(tmp_path, "results.json", {"accuracy": 0.5})

    def crash(*args):
        raise OSError("killed during the rename")

    monkeypatch.setattr(artifacts.os, "replace", crash)
    with pytest.raises(OSError):
        artifacts.write_json(tmp_path, "results.json", {"accuracy": 0.9})
    assert artifacts.read_json(tmp_path, "results.json") == {"accuracy": 0.5}


def test_predictions_file_is_valid_csv_for_texts_with_commas_quotes_and_newlines(tmp_path):
    from finetune.report import write_predictions

    texts = ['Great, "really" great', "line one\nline two"]
    write_predictions(tmp_path, "test", texts, [[0.2, 0.8], [0.9, 0.1]], ["neg", "pos"])
    rows = list(csv.reader(io.StringIO((tmp_path / "predictions_test.csv").read_text())))
    assert rows == [["text", "predicted_label", "p(neg)", "p(pos)"], [texts[0], "pos", "0.200000", "0.800000"],
                    [texts[1], "neg", "0.900000", "0.100000"]]


# --- the token ----------------------------------------------------------------------------------


def test_main_refuses_a_token_on_the_command_line_without_echoing_it(tiny_bert, review_files, tmp_path, capsys):
    secret = "hf_doNotPrintMe0123456789"
    code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--push_to_hub", "--hub_token", secret))
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert "--hub_token" in captured.err and "HF_TOKEN" in captured.err and "hf auth login" in captured.err
    assert secret not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_overwrite_keeps_the_previous_run_until_the_new_model_is_saved(trained_run, tiny_bert, review_files,
                                                                       tmp_path, monkeypatch, capsys):
    from transformers import TrainerCallback

    folder = _copy_run(trained_run, tmp_path)
    old_weights = (folder / "model.safetensors").read_bytes()

    class PowerCut(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt("the machine went away")

    monkeypatch.setattr(train, "early_stopping", lambda config: [PowerCut()])
    with pytest.raises(KeyboardInterrupt):
        main(tiny_run_args(tiny_bert, review_files, folder, "--overwrite_output_dir"))
    assert f"is kept in {folder / 'previous-run'}" in capsys.readouterr().err
    assert (folder / "previous-run" / "model.safetensors").read_bytes() == old_weights
    assert not {"model.safetensors", "README.md", "results.json"} & {p.name for p in folder.iterdir()}

    monkeypatch.undo()  # the next overwrite finishes: the waiting run goes once the new model is saved
    assert main(tiny_run_args(tiny_bert, review_files, folder, "--overwrite_output_dir",
                              "--num_train_epochs", "1")) == 0
    assert not (folder / "previous-run").exists() and (folder / "model.safetensors").exists()


@pytest.mark.parametrize("flags, message", [
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be at least 1"),
    (["--learning_rate=-1e-5"], "--learning_rate -1e-05: must not be negative"),
    (["--max_predict_samples", "10"], "--max_predict_samples: use --max_test_samples"),
    (["--do_regression"], "regression is not supported"),
    (["--token", "hf_doNotPrintMe0123"], "--token: pass no token on the command line"),
    (["--hub_tokn", "hf_doNotPrintMe0123"], "unrecognized arguments: --hub_tokn hf_***"),
    (["--enable_jit_checkpoint", "true"], "--enable_jit_checkpoint: not supported"),
])
def test_main_answers_flags_that_would_fail_late_or_that_other_tools_taught(tiny_bert, review_files, tmp_path,
                                                                           capsys, flags, message):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "hf_doNotPrintMe0123" not in err
    assert err.strip().splitlines()[-1].startswith("error: ") and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()
