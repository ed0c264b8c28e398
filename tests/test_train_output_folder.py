"""What train.main does with its output folder: nothing trained is lost, nothing foreign is touched, two runs
never mix. (The folder's rules themselves: tests/test_artifacts.py.)"""

import shlex
import shutil

import pytest
import torch
from conftest import tiny_run_args
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from finetune import artifacts, train
from finetune.train import EXIT_FINISH_FAILED, EXIT_USAGE, main


def _copy_run(trained_run, tmp_path, name="copy"):
    return shutil.copytree(trained_run, tmp_path / name)


def _state(folder):
    """Every file of a folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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
