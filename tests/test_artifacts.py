"""A run's folder (finetune/artifacts.py): what belongs to a run, claiming an output folder, picking the checkpoint
to resume, setting an earlier run aside, atomic writes, reading a run's files back."""

import json
import logging
import shutil

import pytest

from finetune import artifacts
from finetune.errors import UsageError


def _model(folder):
    """The files save_pretrained leaves (weights as placeholder bytes: nothing here loads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 8)
    return folder


def _checkpoint(folder, step, state='{"global_step": 1}'):
    """A checkpoint-<step> folder as the Trainer writes it; state None: killed before trainer_state.json."""
    checkpoint = _model(folder / f"checkpoint-{step}")
    if state is not None:
        (checkpoint / "trainer_state.json").write_text(state)
    return checkpoint


def _run(folder):
    """A finished run's folder: model, tokenizer, run files, checkpoints."""
    _model(folder)
    for name in ("tokenizer.json", "vocab.txt", artifacts.CONFIG_FILE, artifacts.RESULTS_FILE, artifacts.CARD_FILE):
        (folder / name).write_text("x")
    _checkpoint(folder, 6)
    return folder


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


# --- what a folder holds --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["README.md", "results.json", "epoch_history.json", "run_config.yaml",
                                  "hp_search.json", "predictions_test.csv", "model.safetensors",
                                  "model-00001-of-00002.safetensors", "tokenizer.json", "vocab.txt", "spiece.model",
                                  "onnx/model.onnx", "onnx/model_quantized.onnx"])
def test_is_pushed_takes_the_files_that_belong_to_the_model(name):
    assert artifacts.is_pushed(name) and artifacts.is_run_output(name)


@pytest.mark.parametrize("name", ["checkpoint-12", "training_args.bin", "runs", "pytorch_model.bin", "previous-run",
                                  "results.json.partial", "onnx"])
def test_is_run_output_takes_what_a_run_keeps_at_home(name):
    assert artifacts.is_run_output(name) and not artifacts.is_pushed(name)


@pytest.mark.parametrize("name", [".env", ".venv", "notes.txt", "data.csv", "README.txt", "onnx/other.onnx",
                                  "Model.safetensors"])
def test_is_run_output_refuses_what_no_run_writes(name):
    assert not artifacts.is_run_output(name) and not artifacts.is_pushed(name)


def test_foreign_entries_of_a_missing_or_empty_folder_are_none(tmp_path):
    assert artifacts.foreign_entries(tmp_path / "missing") == []
    assert artifacts.foreign_entries(tmp_path) == []


def test_foreign_entries_names_what_a_run_folder_holds_besides_the_run(tmp_path):
    folder = _run(tmp_path / "run")
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "notes").mkdir()
    assert artifacts.foreign_entries(folder) == [".env", "notes"]


@pytest.mark.parametrize("marker", [artifacts.CONFIG_FILE, "checkpoint-3"])
def test_foreign_entries_take_a_readme_beside_a_runs_own_files(tmp_path, marker):
    (tmp_path / "README.md").write_text("# a card\n")
    if marker.startswith("checkpoint-"):
        (tmp_path / marker).mkdir()
    else:
        (tmp_path / marker).write_text("x")
    assert artifacts.foreign_entries(tmp_path) == []


def test_foreign_entries_count_everything_in_a_folder_no_run_made(tmp_path):
    (tmp_path / "README.md").write_text("# My project\n")
    (tmp_path / "results.json").write_text("{}")
    assert artifacts.foreign_entries(tmp_path) == ["README.md", "results.json"]


def test_foreign_entries_count_a_projects_readme_and_config_json(tmp_path):
    (tmp_path / "README.md").write_text("# My project\n")
    (tmp_path / "config.json").write_text('{"name": "my-project"}')
    assert artifacts.foreign_entries(tmp_path) == ["README.md", "config.json"]


def test_checkpoints_are_ordered_by_step_number(tmp_path):
    for step in (10, 9, 100, 2):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-best").mkdir()  # not a step
    (tmp_path / "checkpoint-50").write_text("a file, not a checkpoint")
    assert [p.name for p in artifacts.checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-9", "checkpoint-10",
                                                                 "checkpoint-100"]
    assert artifacts.checkpoints(tmp_path / "missing") == []


def test_is_complete_checkpoint_needs_a_readable_trainer_state_and_weights(tmp_path):
    assert artifacts.is_complete_checkpoint(_checkpoint(tmp_path, 1))
    assert not artifacts.is_complete_checkpoint(_checkpoint(tmp_path, 2, state=None))
    assert not artifacts.is_complete_checkpoint(_checkpoint(tmp_path, 3, state='{"global_step": '))  # cut short
    no_weights = tmp_path / "checkpoint-4"
    no_weights.mkdir()
    (no_weights / "trainer_state.json").write_text("{}")
    assert not artifacts.is_complete_checkpoint(no_weights)
    assert not artifacts.is_complete_checkpoint(tmp_path / "checkpoint-5")  # not there at all


# --- claiming an output folder --------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_check_output_dir_accepts_a_new_or_empty_folder(tmp_path, overwrite):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert artifacts.check_output_dir(tmp_path / "new", None, overwrite) is None
    assert artifacts.check_output_dir(empty, None, overwrite) is None
    assert not (tmp_path / "new").exists()  # only checks: nothing created


def test_check_output_dir_refuses_a_file(tmp_path):
    path = tmp_path / "out"
    path.write_text("x")
    with pytest.raises(UsageError, match=f"--output_dir {path} is a file. Pass a folder"):
        artifacts.check_output_dir(path, None, overwrite=True)


@pytest.mark.parametrize("resume, overwrite", [(None, False), (None, True), ("true", False), ("hub", False)])
def test_check_output_dir_refuses_foreign_files_whatever_the_flags(tmp_path, resume, overwrite):
    folder = _run(tmp_path / "run")
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    before = _names(folder)
    with pytest.raises(UsageError, match=r"holds files that a training run does not write \(\.env\)"):
        artifacts.check_output_dir(folder, resume, overwrite)
    assert _names(folder) == before


def test_check_output_dir_lists_eight_foreign_files_and_counts_the_rest(tmp_path):
    for i in range(11):
        (tmp_path / f"notes-{i:02}.txt").write_text("x")
    with pytest.raises(UsageError) as refused:
        artifacts.check_output_dir(tmp_path, None, overwrite=False)
    shown = ", ".join(f"notes-{i:02}.txt" for i in range(8))
    assert f"does not write ({shown} and 3 more)" in str(refused.value)


@pytest.mark.parametrize("what", ["model", "checkpoint"])
def test_check_output_dir_refuses_another_runs_model_unless_told(tmp_path, what):
    if what == "model":
        _model(tmp_path)
    else:
        _checkpoint(tmp_path, 6)
    with pytest.raises(UsageError) as refused:
        artifacts.check_output_dir(tmp_path, None, overwrite=False)
    message = str(refused.value)
    assert "already holds a model or checkpoints from another run" in message
    assert "--resume_from_checkpoint true" in message and "--overwrite_output_dir" in message
    assert artifacts.check_output_dir(tmp_path, None, overwrite=True) is None


def test_check_output_dir_resumes_true_from_the_last_complete_checkpoint(tmp_path):
    folder = _run(tmp_path / "run")
    _checkpoint(folder, 12)
    assert artifacts.check_output_dir(folder, "true", overwrite=False) == str(folder / "checkpoint-12")
    assert artifacts.check_output_dir(folder, "True", overwrite=False) == str(folder / "checkpoint-12")


@pytest.mark.parametrize("resume", ["hub", "hub:someone/their-run"])
def test_check_output_dir_leaves_a_hub_resume_for_later(tmp_path, resume):
    folder = _run(tmp_path / "run")
    assert artifacts.check_output_dir(folder, resume, overwrite=False) == resume
    assert artifacts.check_output_dir(tmp_path / "new", resume, overwrite=False) == resume


def test_check_output_dir_resumes_from_a_checkpoint_path_and_refuses_an_incomplete_one(tmp_path):
    elsewhere = _checkpoint(tmp_path / "other-run", 30)
    assert artifacts.check_output_dir(tmp_path / "new", str(elsewhere), overwrite=False) == str(elsewhere)
    partial = _checkpoint(tmp_path / "other-run", 36, state=None)
    with pytest.raises(UsageError, match=f"--resume_from_checkpoint {partial}: not a complete checkpoint folder"):
        artifacts.check_output_dir(tmp_path / "new", str(partial), overwrite=False)


def test_resolve_resume_skips_incomplete_checkpoints_and_says_so(tmp_path, caplog):
    for step in (9, 10):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 11, state=None)
    _checkpoint(tmp_path, 12, state='{"global_')
    with caplog.at_level(logging.WARNING, logger="finetune.artifacts"):
        assert artifacts.resolve_resume(tmp_path, "true") == str(tmp_path / "checkpoint-10")
    assert "skipping checkpoint-11, checkpoint-12: incomplete" in caplog.text
    assert "resuming from checkpoint-10" in caplog.text


def test_resolve_resume_says_nothing_when_the_last_checkpoint_is_complete(tmp_path, caplog):
    _checkpoint(tmp_path, 3, state=None)  # an earlier incomplete one is not skipped over: nothing to say
    _checkpoint(tmp_path, 6)
    with caplog.at_level(logging.WARNING, logger="finetune.artifacts"):
        assert artifacts.resolve_resume(tmp_path, "true") == str(tmp_path / "checkpoint-6")
    assert caplog.text == ""


def test_resolve_resume_without_checkpoints_says_how_to_go_on(tmp_path):
    with pytest.raises(UsageError) as refused:
        artifacts.resolve_resume(tmp_path, "true")
    message = str(refused.value)
    assert f"--resume_from_checkpoint true: no checkpoint-* folder in {tmp_path} that can be resumed." in message
    assert "--overwrite_output_dir instead of --resume_from_checkpoint" in message


def test_resolve_resume_with_only_incomplete_checkpoints_names_them(tmp_path):
    _checkpoint(tmp_path, 6, state=None)
    _checkpoint(tmp_path, 12, state="{")
    with pytest.raises(UsageError, match=r"that can be resumed, only incomplete ones \(checkpoint-6, checkpoint-12: "
                                         r"a save was cut short\)\. Pass the path"):
        artifacts.resolve_resume(tmp_path, "true")


def test_resume_true_skips_an_incomplete_checkpoint_and_says_so(trained_run, tmp_path, caplog):
    folder = shutil.copytree(trained_run, tmp_path / "copy")
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


# --- an earlier run in the folder -----------------------------------------------------------------


def test_set_aside_previous_run_moves_the_runs_files_and_nothing_else(tmp_path):
    folder = _run(tmp_path / "run")
    (folder / "results.json.partial").write_text("{")
    run_files = _names(folder)
    (folder / "keep.txt").write_text("not a run's")  # check_output_dir refuses it first; never moved either
    moved = artifacts.set_aside_previous_run(folder)
    assert moved == run_files
    assert _names(folder) == ["keep.txt", artifacts.PREVIOUS_RUN_DIR]
    assert _names(folder / artifacts.PREVIOUS_RUN_DIR) == run_files
    assert (folder / artifacts.PREVIOUS_RUN_DIR / "checkpoint-6" / "trainer_state.json").is_file()


def test_set_aside_previous_run_replaces_an_older_previous_run(tmp_path):
    folder = _run(tmp_path / "run")
    older = folder / artifacts.PREVIOUS_RUN_DIR
    older.mkdir()
    (older / "model.safetensors").write_bytes(b"older")
    artifacts.set_aside_previous_run(folder)
    assert (older / "model.safetensors").read_bytes() == b"\0" * 8  # the latest finished run waits there now
    assert _names(folder) == [artifacts.PREVIOUS_RUN_DIR]


def test_set_aside_previous_run_keeps_the_waiting_run_when_a_dead_run_left_no_model(tmp_path):
    waiting = _model(tmp_path / artifacts.PREVIOUS_RUN_DIR)
    (waiting / artifacts.CARD_FILE).write_text("# the finished run\n")
    _checkpoint(tmp_path, 2)  # the dead run's partial files
    (tmp_path / artifacts.CONFIG_FILE).write_text("x")
    assert artifacts.set_aside_previous_run(tmp_path) == []
    assert _names(tmp_path) == [artifacts.PREVIOUS_RUN_DIR]
    assert (waiting / artifacts.CARD_FILE).read_text() == "# the finished run\n"


def test_set_aside_previous_run_of_a_missing_or_empty_folder_does_nothing(tmp_path):
    assert artifacts.set_aside_previous_run(tmp_path / "missing") == []
    assert artifacts.set_aside_previous_run(tmp_path) == [] and _names(tmp_path) == [artifacts.PREVIOUS_RUN_DIR]


def test_drop_previous_run_removes_the_waiting_run_only(tmp_path):
    _model(tmp_path / artifacts.PREVIOUS_RUN_DIR)
    _model(tmp_path)
    artifacts.drop_previous_run(tmp_path)
    assert _names(tmp_path) == ["config.json", "model.safetensors"]
    artifacts.drop_previous_run(tmp_path)  # nothing waiting: nothing to do
    assert _names(tmp_path) == ["config.json", "model.safetensors"]


# --- writing and reading --------------------------------------------------------------------------


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("old")
    assert artifacts.write_text(path, "néw\n") == path
    assert path.read_text(encoding="utf-8") == "néw\n" and _names(tmp_path) == ["README.md"]


def test_writes_are_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    artifacts.write_json(tmp_path, "results.json", {"accuracy": 0.5})

    def crash(*args):
        raise OSError("killed during the rename")

    monkeypatch.setattr(artifacts.os, "replace", crash)
    with pytest.raises(OSError):
        artifacts.write_json(tmp_path, "results.json", {"accuracy": 0.9})
    assert artifacts.read_json(tmp_path, "results.json") == {"accuracy": 0.5}


def test_write_json_and_write_yaml_keep_text_as_written(tmp_path):
    artifacts.write_json(tmp_path, "a.json", {"label": "très bien", "b": 1})
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == '{\n  "label": "très bien",\n  "b": 1\n}\n'
    artifacts.write_yaml(tmp_path, "a.yaml", {"z": 1, "a": "é"})
    assert (tmp_path / "a.yaml").read_text(encoding="utf-8") == "z: 1\na: é\n"  # keys in their order


def test_update_json_sets_top_level_keys_and_keeps_the_others(tmp_path):
    artifacts.write_json(tmp_path, "results.json", {"scores": {"test": {"f1": 0.5}}, "seconds": {"train": 3}})
    artifacts.update_json(tmp_path, "results.json", seconds={"train": 4}, repo_id="me/run")
    assert artifacts.read_json(tmp_path, "results.json") == {"scores": {"test": {"f1": 0.5}}, "seconds": {"train": 4},
                                                             "repo_id": "me/run"}
    assert _names(tmp_path) == ["results.json"]


def test_fetch_run_files_of_a_local_folder_maps_missing_files_to_none(tmp_path):
    artifacts.write_json(tmp_path, artifacts.RESULTS_FILE, {})
    (tmp_path / artifacts.CARD_FILE).write_text("# card\n")
    (tmp_path / artifacts.HISTORY_FILE).mkdir()  # a folder is not the file
    found = artifacts.fetch_run_files(str(tmp_path))
    assert found == {artifacts.HISTORY_FILE: None, artifacts.RESULTS_FILE: tmp_path / artifacts.RESULTS_FILE,
                     artifacts.CONFIG_FILE: None, artifacts.CARD_FILE: tmp_path / artifacts.CARD_FILE,
                     artifacts.SEARCH_FILE: None, artifacts.AUDIT_FILE: None, artifacts.SUSPECTS_FILE: None}
    assert list(found) == list(artifacts.RUN_FILES)
    assert artifacts.fetch_run_files(str(tmp_path), names=("predictions_test.csv",)) == {"predictions_test.csv": None}
    assert json.loads(found[artifacts.RESULTS_FILE].read_text()) == {}
