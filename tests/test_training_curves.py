"""--report_to tensorboard and trackio, offline: the curves are written and readable, and TensorBoard's event files
are pushed with the model (the Hub's Training metrics tab reads them)."""

import socket

import pytest
from conftest import TOKEN, tiny_run_args

from finetune import artifacts, hub
from finetune.errors import UsageError
from finetune.train import main


@pytest.fixture(scope="module")
def tensorboard_run(fake_hub, tiny_bert, review_files, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("curves") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        code = main(tiny_run_args(tiny_bert, review_files, output_dir, "--report_to", "tensorboard",
                                  "--push_to_hub", "--hub_model_id", "me/tiny-curves"))
    assert code == 0
    return fake_hub, output_dir


def _scalars(event_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_file))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_events_hold_every_logged_loss_and_each_epochs_scores(tensorboard_run):
    _, output_dir = tensorboard_run
    files = artifacts.tensorboard_files(output_dir)
    assert len(files) == 1 and files[0].startswith("runs/")
    scalars = _scalars(output_dir / files[0])
    history = artifacts.read_json(output_dir, artifacts.HISTORY_FILE)
    assert len(scalars["eval/f1"]) == len(history) == 2  # one evaluation per epoch
    assert [value for _, value in scalars["eval/f1"]] == pytest.approx([row["f1"] for row in history])
    assert len(scalars["train/loss"]) >= 6  # --logging_steps 2 over 12 steps
    assert "train/learning_rate" in scalars


def test_tensorboard_file_names_leave_the_host_name_at_home(tensorboard_run):
    hub_, output_dir = tensorboard_run
    host = socket.gethostname()
    assert not [name for name in artifacts.tensorboard_files(output_dir) if host in name]
    assert not [name for name in hub_.repo("me/tiny-curves").files if host in name]


def test_tensorboard_events_are_pushed_with_the_model(tensorboard_run):
    hub_, output_dir = tensorboard_run
    events = artifacts.tensorboard_files(output_dir)
    assert set(events) <= set(hub.pushed_files(output_dir))
    repo = hub_.repo("me/tiny-curves")
    assert set(events) <= set(repo.files)
    for name in events:
        assert repo.files[name] == (output_dir / name).read_bytes()
    # and nothing else of runs/, nor the local-only files
    assert not [name for name in repo.files if name.startswith(("checkpoint-", "training_args"))]
    assert [name for name in repo.files if name.startswith("runs/")] == events
    assert "TensorBoard (runs/" in repo.files["README.md"].decode()


def test_tidy_tensorboard_logs_renames_the_folder_and_the_files(tmp_path):
    run = tmp_path / "runs" / "Dec07_10-00-00_myhost"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1796603134.myhost.10372.0").write_bytes(b"x")
    assert artifacts.tidy_tensorboard_logs(tmp_path, host="myhost") == [
        "runs/Dec07_10-00-00/events.out.tfevents.1796603134.10372.0"]


def test_trackio_logs_offline_into_its_local_database(tiny_bert, review_files, tmp_path, monkeypatch):
    import sys

    if "trackio" in sys.modules:
        pytest.skip("trackio was imported before this test: it read its folder (TRACKIO_DIR) then")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # read once, when trackio is imported
    storage = pytest.importorskip("trackio.sqlite_storage")
    output_dir = tmp_path / "out"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--report_to", "trackio",
                              "--project", "tiny-reviews", "--run_name", "first")) == 0
    logs = storage.SQLiteStorage.get_logs("tiny-reviews", "first")
    f1 = [row["eval/f1"] for row in logs if "eval/f1" in row]
    history = artifacts.read_json(output_dir, artifacts.HISTORY_FILE)
    assert f1[:2] == pytest.approx([row["f1"] for row in history])
    assert (tmp_path / "trackio" / "tiny-reviews.db").is_file()  # in the folder given, not the user's cache
    assert not artifacts.tensorboard_files(output_dir)  # trackio only
    assert "trackio (project tiny-reviews" in (output_dir / "README.md").read_text()


def test_report_to_takes_several_destinations_and_names_a_missing_package(monkeypatch):
    from finetune.config import report_destinations

    assert report_destinations("tensorboard,trackio") == ["tensorboard", "trackio"]
    assert report_destinations("none") == "none"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UsageError, match="--report_to tensorboard: the tensorboard package is not installed"):
        report_destinations("tensorboard")
