"""Creating and updating a Space with the real huggingface_hub client, against the fake Hub; and the
staged Space started on its own."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import gradio
import pytest
import yaml
from conftest import READ_TOKEN, REPO_ROOT, TOKEN, free_port
from gradio_client import Client

from finetune import hub, space
from finetune.errors import UsageError
from finetune.space import main as space_main

FAST = ["--poll_seconds", "0.01"]


@pytest.fixture
def fake_hub(fresh_fake_hub, token):
    """An empty fake Hub for each test, `me` logged in."""
    return fresh_fake_hub


def _push(run_folder: Path, repo_id: str, private: bool = False) -> str:
    """Push a model folder to the fake Hub; return the repo's commit."""
    hub.push_folder(run_folder, repo_id, TOKEN, private=private or None)
    return hub.api(TOKEN).model_info(repo_id).sha


def test_space_command_creates_a_gradio_space_with_app_and_model_variable(fake_hub, trained_run, capsys):
    commit = _push(trained_run, "me/minilm-reviews")
    assert space_main(["--space", "me/reviews-demo", "--model_id", "me/minilm-reviews", *FAST]) == 0
    space = fake_hub.repo("me/reviews-demo", repo_type="space")
    assert space.sdk == "gradio"
    assert {"app.py", "requirements.txt", "README.md", "finetune/inference.py", "finetune/artifacts.py"} <= set(space.files)
    assert not [name for name in space.files if name.startswith(("tests/", "outputs/")) or "__pycache__" in name]
    front_matter = yaml.safe_load(space.files["README.md"].decode().split("---")[1])
    assert front_matter["sdk"] == "gradio"
    assert front_matter["sdk_version"] == gradio.__version__
    assert front_matter["app_file"] == "app.py" and front_matter["python_version"] == "3.11"
    assert f"gradio=={gradio.__version__}" in space.files["requirements.txt"].decode()
    assert space.variables == {"MODEL_ID": "me/minilm-reviews", "MODEL_REVISION": commit}
    assert space.secrets == {}
    out = capsys.readouterr().out
    assert "Space updated" in out and f"at {commit}" in out
    assert "BUILDING" in out and "The Space is running: " + fake_hub.url + "/spaces/me/reviews-demo" in out


def test_space_command_updates_an_existing_space(fake_hub, trained_run):
    _push(trained_run, "me/first")
    second = _push(trained_run, "me/second")
    assert space_main(["--space", "me/demo", "--model_id", "me/first", *FAST]) == 0
    assert space_main(["--space", "me/demo", "--model_id", "me/second", *FAST]) == 0
    space = fake_hub.repo("me/demo", repo_type="space")
    assert len(space.commits) == 2
    assert space.variables["MODEL_ID"] == "me/second" and space.variables["MODEL_REVISION"] == second


def test_space_command_without_token_explains_login(fake_hub, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert space_main(["--space", "me/demo", "--model_id", "me/m"]) == 2
    assert "hf auth login" in capsys.readouterr().err


# --- what the Space ships ------------------------------------------------------------------------


def test_space_stages_only_what_the_demo_imports(tmp_path):
    files = space.stage_space(tmp_path, "me/demo", "me/model")
    modules = [f for f in files if f.startswith("finetune/")]
    assert {"app.py", "requirements.txt", "README.md", "finetune/__init__.py", "finetune/artifacts.py",
            "finetune/inference.py"} <= set(files)
    # training, data, metrics, the Hub push and this command are not the demo's
    assert not {"finetune/train.py", "finetune/data/__init__.py", "finetune/config.py", "finetune/space.py",
                "finetune/score.py", "finetune/hub.py"} & set(modules)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == files
    requirements = (tmp_path / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert pins[0] == f"--extra-index-url {space.TORCH_CPU_INDEX}"
    torch_pin = next(line for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
                     if line.startswith("torch=="))
    assert f"{torch_pin}+cpu" in pins and f"gradio=={gradio.__version__}" in pins
    assert not [p for p in pins if p.split("=")[0].split(">")[0] in ("datasets", "evaluate", "accelerate", "optuna")]
    assert {"openpyxl==3.1.5", "mcp==1.30.0"} <= set(pins)  # .xlsx uploads; the MCP server, which app.py never imports
    assert "finetune/sheets.py" in files and "finetune/data_files.py" not in files


def test_space_requirements_for_gpu_hardware_keep_the_default_torch(tmp_path):
    space.stage_space(tmp_path, "me/demo", "me/model", hardware="t4-small")
    requirements = (tmp_path / "requirements.txt").read_text()
    assert "--extra-index-url" not in requirements and "+cpu" not in requirements and "\ntorch==" in requirements


def test_space_requirements_refuse_an_import_nothing_pins():
    with pytest.raises(UsageError, match="the demo imports gradio, which requirements.txt does not pin"):
        space.space_requirements({"gradio", "yaml"}, "pyyaml>=6.0\n", cpu=True)
    # numpy is no pin of its own: the pinned pandas brings it
    assert space.space_requirements({"numpy", "pandas"}, "pandas==2.2.3  # tables\n", cpu=True).endswith(
        "pandas==2.2.3\n")


def test_space_redeploy_deletes_files_that_no_longer_belong(fake_hub, trained_run):
    _push(trained_run, "me/m")
    client = hub.api(TOKEN)
    client.create_repo("me/old-demo", repo_type="space", space_sdk="gradio")
    for name in ("finetune/train.py", "notes.txt", ".gitattributes"):  # an older deploy, and git's own file
        client.upload_file(path_or_fileobj=b"old\n", path_in_repo=name, repo_id="me/old-demo", repo_type="space")
    assert space_main(["--space", "me/old-demo", "--model_id", "me/m", "--timeout", "0"]) == 0
    files = set(fake_hub.repo("me/old-demo", "space").files)
    assert "finetune/train.py" not in files and "notes.txt" not in files
    assert ".gitattributes" in files and "app.py" in files


# --- private models: the token the Space holds ---------------------------------------------------


def test_space_private_model_without_a_token_option_is_refused_before_deploying(fake_hub, trained_run, capsys):
    _push(trained_run, "me/private-model", private=True)
    assert space_main(["--space", "me/demo", "--model_id", "me/private-model", *FAST]) == space.EXIT_USAGE
    err = capsys.readouterr().err
    assert "is private" in err and "--space_token_env" in err and "read" in err
    assert ("space", "me/demo") not in fake_hub.repos


def test_space_token_goes_to_a_secret_only_and_is_never_printed(fake_hub, trained_run, monkeypatch, capsys):
    _push(trained_run, "me/private-model", private=True)
    monkeypatch.setenv("READ_TOKEN", READ_TOKEN)
    assert space_main(["--space", "me/demo", "--model_id", "me/private-model", "--space_token_env", "READ_TOKEN",
                       "--private", *FAST]) == 0
    demo = fake_hub.repo("me/demo", "space")
    assert demo.secrets["HF_TOKEN"]["value"] == READ_TOKEN
    assert READ_TOKEN not in json.dumps(demo.variables)
    assert not [name for name, data in demo.files.items() if READ_TOKEN.encode() in data]
    captured = capsys.readouterr()
    assert READ_TOKEN not in captured.out + captured.err


@pytest.mark.parametrize("value, message", [
    (READ_TOKEN, "takes the NAME of an environment variable"),
    ("UNSET_VARIABLE", "the environment variable UNSET_VARIABLE is not set"),
])
def test_space_token_option_refuses_a_token_or_an_unset_variable(fake_hub, trained_run, capsys, value, message):
    _push(trained_run, "me/m")
    assert space_main(["--space", "me/demo", "--model_id", "me/m", "--space_token_env", value]) == space.EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.err and READ_TOKEN not in captured.out + captured.err
    assert ("space", "me/demo") not in fake_hub.repos


def test_space_token_that_cannot_read_the_model_is_refused(fake_hub, trained_run, monkeypatch, capsys):
    _push(trained_run, "me/private-model", private=True)
    monkeypatch.setenv("READ_TOKEN", "hf_someoneElsesTokenNotKnownHere0")
    assert space_main(["--space", "me/demo", "--model_id", "me/private-model",
                       "--space_token_env", "READ_TOKEN"]) == space.EXIT_USAGE
    assert "the token of --space_token_env cannot read this private model" in capsys.readouterr().err


# --- waiting for the build ------------------------------------------------------------------------


def test_space_command_reports_a_build_error(fake_hub, trained_run, capsys):
    _push(trained_run, "me/m")
    assert space_main(["--space", "me/demo", "--model_id", "me/m", "--timeout", "0"]) == 0
    fake_hub.space_build_stages = ["BUILDING", "BUILDING", "BUILD_ERROR"]
    fake_hub.repo("me/demo", "space").error_message = "ERROR: No matching distribution found for torch==9.9+cpu"
    assert space_main(["--space", "me/demo", "--model_id", "me/m", *FAST]) == space.EXIT_SPACE_FAILED
    out = capsys.readouterr().out
    assert "BUILD_ERROR: ERROR: No matching distribution found for torch==9.9+cpu" in out
    assert f"{fake_hub.url}/spaces/me/demo?logs=build" in out


def test_space_wait_does_not_take_the_previous_version_for_the_new_one(fake_hub, trained_run):
    _push(trained_run, "me/m")
    assert space_main(["--space", "me/demo", "--model_id", "me/m", "--timeout", "0"]) == 0
    demo = fake_hub.repo("me/demo", "space")
    # the old version still runs for two polls, then the new one builds and starts
    demo.stage_queue = ["RUNNING", "RUNNING", "BUILDING", "APP_STARTING", "RUNNING"]
    lines = []
    assert space.wait_for_space("me/demo", TOKEN, timeout=30, poll_seconds=0.01, out=lines.append) == 0
    assert [line.split()[-1] for line in lines[1:-1]] == ["RUNNING", "BUILDING", "APP_STARTING", "RUNNING"]
    assert demo.stage_queue == []
    demo.stage_queue = ["BUILDING"] * 1000
    lines = []
    assert space.wait_for_space("me/demo", TOKEN, timeout=0.2, poll_seconds=0.01, out=lines.append) == \
        space.EXIT_TIMEOUT
    assert "still BUILDING after" in lines[-1]


# --- the staged Space, started on its own -------------------------------------------------------


def test_staged_space_runs_alone_and_serves_the_pinned_private_model(fake_hub, trained_run, tmp_path, monkeypatch):
    """Deploy a private model, then move its repo on: the Space's files, started by themselves (no repository
    importable: the interpreter gets only site-packages, without this project's editable install), with the
    Space's variables and secret, answer through gradio_client with the commit that was deployed."""
    deployed = _push(trained_run, "me/private-model", private=True)
    monkeypatch.setenv("READ_TOKEN", READ_TOKEN)
    assert space_main(["--space", "me/demo", "--model_id", "me/private-model", "--space_token_env", "READ_TOKEN",
                       "--private", *FAST]) == 0
    moved = Path(shutil.copytree(trained_run, tmp_path / "v2"))  # a new version with other label names
    config = json.loads((moved / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "bad", "1": "good"}, {"bad": 0, "good": 1}
    (moved / "config.json").write_text(json.dumps(config))
    assert _push(moved, "me/private-model") != deployed

    demo = fake_hub.repo("me/demo", "space")
    folder = tmp_path / "space"
    for name, data in demo.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(demo.variables, HF_TOKEN=demo.secrets["HF_TOKEN"]["value"], GRADIO_SERVER_PORT=str(port),
               PYTHONPATH=sysconfig.get_paths()["purelib"])  # site-packages only: no .pth, no editable install
    process = subprocess.Popen([sys.executable, "-S", "app.py"], cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                assert time.time() < deadline, "the staged Space did not start in 120 s"
                time.sleep(0.5)
        answer = client.predict("great wonderful film", api_name="/classify")
        assert {c["label"] for c in answer[0]["confidences"]} == {"negative", "positive"}  # the deployed commit
        evaluations, mistakes, note = client.predict(api_name="/evaluations")
        assert {row[1] for row in evaluations["data"]} == {"validation", "test"}
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "No model could be loaded" not in output


def _start_staged(folder: Path, env_extra: dict) -> tuple[subprocess.Popen, Client]:
    """The staged files started by themselves, as a Space starts them (site-packages only, no repository)."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON") and key != "MODEL_ID"}
    env.update(env_extra, GRADIO_SERVER_PORT=str(port), PYTHONPATH=sysconfig.get_paths()["purelib"])
    process = subprocess.Popen([sys.executable, "-S", "app.py"], cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            return process, Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            assert time.time() < deadline, "the staged Space did not start in 120 s"
            time.sleep(0.5)


def test_space_stage_dir_writes_the_files_without_the_hub(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)  # no token, and nothing listens at HF_ENDPOINT: no Hub at all
    folder = tmp_path / "staged"
    assert space_main(["--model_id", "me/minilm-reviews", "--stage_dir", str(folder)]) == 0
    out = capsys.readouterr().out
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == space.stage_space(tmp_path / "again", "me/reviews-demo", "me/minilm-reviews")
    assert {"finetune/run_views.py", "finetune/serving.py", "finetune/attribution.py"} <= set(files)
    assert f"cd {folder} && MODEL_ID=me/minilm-reviews python app.py" in out
    # a folder that holds anything is left alone
    assert space_main(["--model_id", "me/minilm-reviews", "--stage_dir", str(folder)]) == space.EXIT_USAGE
    assert "the folder is not empty" in capsys.readouterr().err


def test_staged_space_without_model_id_speaks_to_its_owner_and_logs_mistakes_in_one_line(tmp_path):
    folder = tmp_path / "staged"
    assert space_main(["--model_id", "me/minilm-reviews", "--stage_dir", str(folder)]) == 0
    process, client = _start_staged(folder, {"SPACE_ID": "me/reviews-demo"})  # a Space, MODEL_ID not set
    try:
        *_, summary = client.predict(api_name="/metrics")
        assert "Settings → Variables and secrets" in summary and "`MODEL_ID`" in summary
        assert "setup.sh" not in summary
        with pytest.raises(Exception, match="This Space serves no model yet"):
            client.predict("great film", api_name="/classify")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert output.count("request refused: This Space serves no model yet") == 1
    assert "Traceback" not in output
