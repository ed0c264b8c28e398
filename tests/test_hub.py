"""Pushing to the Hub through the real huggingface_hub client and real HTTP, against a fake Hub."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, TOKEN, free_port, tiny_run_args
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from finetune import artifacts
from finetune.hub import api as hub_api
from finetune.hub import push_folder as hub_push_folder
from finetune.push import main as push_main
from finetune.space import main as space_main
from finetune.train import EXIT_PUSH_FAILED, EXIT_USAGE, main

ACCELERATE = Path(sys.executable).parent / "accelerate"


@pytest.fixture(scope="module")
def pushed_run(fake_hub, tiny_bert, review_files, tmp_path_factory):
    """One training run with --push_to_hub against the fake Hub."""
    output_dir = tmp_path_factory.mktemp("pushed") / "tiny-reviews"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        code = main(tiny_run_args(tiny_bert, review_files, output_dir, "--push_to_hub",
                                  "--hub_model_id", "me/tiny-reviews"))
    return fake_hub, output_dir, code


def _predict(model_ref, texts):
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    model = AutoModelForSequenceClassification.from_pretrained(model_ref).eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_push_uploads_model_card_and_metrics_in_one_commit(pushed_run):
    hub, output_dir, code = pushed_run
    assert code == 0
    repo = hub.repo("me/tiny-reviews")
    assert len(repo.commits) == 1
    assert "accuracy" in repo.commits[0]["summary"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "epoch_history.json",
            "results.json", "run_config.yaml"} <= set(repo.files)
    assert not [name for name in repo.files if name.startswith("checkpoint-") or name.endswith((".bin", ".pt"))]
    assert repo.files["README.md"] == (output_dir / "README.md").read_bytes()
    assert b'model="me/tiny-reviews"' in repo.files["README.md"]


def test_weights_travel_through_lfs_and_text_files_inline(pushed_run):
    hub, output_dir, _ = pushed_run
    commit = hub.repo("me/tiny-reviews").commits[0]
    assert "model.safetensors" in commit["lfs_paths"]
    assert not {"README.md", "config.json", "tokenizer.json", "results.json"} & set(commit["lfs_paths"])
    weights = (output_dir / "model.safetensors").read_bytes()
    uploads = [u for u in hub.lfs_uploads if u["oid"] == hashlib.sha256(weights).hexdigest()]
    assert uploads and uploads[0]["size"] == len(weights)
    assert not uploads[0]["authorized"], "the token went to the LFS storage"
    assert ("POST", "/me/tiny-reviews.git/info/lfs/objects/batch") in hub.requests


def test_pushed_card_passed_yaml_validation_and_links_base_model(pushed_run):
    hub, _, _ = pushed_run
    assert hub.yaml_validated, "the client did not ask the Hub to validate the card"
    metadata = hub.yaml_validated[-1]
    assert metadata["model-index"][0]["results"][0]["task"]["type"] == "text-classification"
    assert metadata["pipeline_tag"] == "text-classification"


def test_model_loads_back_by_repo_id_with_same_predictions(pushed_run):
    _, output_dir, _ = pushed_run
    texts = ["the film was great and loved it", "awful boring plot", "the cast was quite dull"]
    local = _predict(str(output_dir), texts)
    remote = _predict("me/tiny-reviews", texts)
    assert torch.allclose(local, remote)
    config = AutoModelForSequenceClassification.from_pretrained("me/tiny-reviews").config
    assert config.id2label == {0: "negative", 1: "positive"}


def test_card_loads_back_by_repo_id_with_same_eval_results(pushed_run):
    _, output_dir, _ = pushed_run
    remote = ModelCard.load("me/tiny-reviews")
    local = ModelCard.load(output_dir / "README.md")
    assert remote.data.eval_results == local.data.eval_results
    assert len(remote.data.eval_results) == 8


def test_token_is_in_no_pushed_or_saved_byte(pushed_run):
    hub, output_dir, _ = pushed_run
    secret = TOKEN.encode()
    assert not [i for i, body in enumerate(hub.bodies) if secret in body]
    leaks = [p for p in output_dir.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert leaks == []


def test_push_command_pushes_existing_folder_and_a_second_push_updates(pushed_run, token, capsys):
    hub, output_dir, _ = pushed_run
    assert push_main([str(output_dir), "--repo", "me/other-name"]) == 0
    repo = hub.repo("me/other-name")
    assert len(repo.commits) == 1 and "model.safetensors" in repo.files
    history = json.loads(repo.files["epoch_history.json"])
    (output_dir / artifacts.HISTORY_FILE).write_text(json.dumps(history[:1]))
    assert push_main([str(output_dir), "--repo", "me/other-name", "--message", "second push"]) == 0
    assert [c["summary"] for c in repo.commits][-1] == "second push"
    assert len(json.loads(repo.files["epoch_history.json"])) == 1
    assert "Pushed" in capsys.readouterr().out


def test_push_without_token_stops_before_training(tiny_bert, review_files, tmp_path, fake_hub, capsys):
    code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--push_to_hub",
                              "--hub_model_id", "me/x"))
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "needs a Hugging Face token" in err and "hf auth login" in err and "HF_TOKEN" in err
    assert not (tmp_path / "out").exists()


def test_push_with_refused_token_stops_before_training(tiny_bert, review_files, tmp_path, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--push_to_hub", "--hub_model_id", "me/x"))
    assert code == EXIT_USAGE
    assert "token was refused (401)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_push_with_hub_down_keeps_folder_and_prints_retry(fake_hub, tiny_bert, review_files, tmp_path, token,
                                                          monkeypatch, capsys):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the Hub is down
    monkeypatch.setenv("HF_ENDPOINT", down)
    output_dir = tmp_path / "down"
    code = main(tiny_run_args(tiny_bert, review_files, output_dir, "--push_to_hub", "--hub_model_id", "me/down"))
    assert code == EXIT_PUSH_FAILED
    err = capsys.readouterr().err
    retry = f"{sys.executable} -m finetune.push {output_dir} --repo me/down"
    assert retry in err and "The model folder is complete" in err
    assert artifacts.holds_model(output_dir) and (output_dir / "README.md").exists()
    assert token not in err

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)  # the Hub is back: the printed command pushes
    result = subprocess.run(retry.split(), cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "model.safetensors" in fake_hub.repo("me/down").files


def test_push_command_refuses_a_folder_without_a_model(tmp_path, token, capsys):
    assert push_main([str(tmp_path), "--repo", "me/x"]) == 2
    assert "not a finished model folder" in capsys.readouterr().err


def test_unknown_hub_dataset_fails_before_training(fake_hub, tiny_bert, tmp_path, capsys):
    code = main(["--model_name_or_path", str(tiny_bert), "--dataset_name", "nobody/no-such-reviews",
                 "--output_dir", str(tmp_path / "out")])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--dataset_name nobody/no-such-reviews: could not load it" in err and "--train_file" in err


def test_unknown_hub_model_fails_before_reading_data(fake_hub, review_files, tmp_path, capsys):
    code = main(["--model_name_or_path", "nobody/no-such-model", "--train_file", str(review_files["train"]),
                 "--output_dir", str(tmp_path / "out")])
    assert code == EXIT_USAGE
    assert "--model_name_or_path nobody/no-such-model: not a model folder and not loadable from the Hub" in \
        capsys.readouterr().err


def test_push_uploads_only_the_runs_own_files_from_a_folder_that_holds_more(pushed_run, token, tmp_path):
    hub, output_dir, _ = pushed_run
    folder = shutil.copytree(output_dir, tmp_path / "crowded")
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "credentials.json").write_text("{}")
    (folder / "notes.txt").write_text("private notes")
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "python").write_text("")
    assert push_main([str(folder), "--repo", "me/crowded"]) == 0
    expected = {p.name for p in output_dir.iterdir() if p.is_file() and p.name != "training_args.bin"}
    assert set(hub.repo("me/crowded").files) == expected


@pytest.mark.parametrize("command", ["push", "train", "space"])
def test_private_flag_makes_an_existing_public_repo_private(pushed_run, tiny_bert, review_files, token, tmp_path,
                                                            command):
    hub, output_dir, _ = pushed_run
    repo_type = "space" if command == "space" else "model"
    repo_id = f"me/public-{command}"
    hub_api(TOKEN).create_repo(repo_id, repo_type=repo_type, private=False, **(
        {"space_sdk": "gradio"} if repo_type == "space" else {}))
    assert not hub.repo(repo_id, repo_type).private
    if command == "push":
        assert push_main([str(output_dir), "--repo", repo_id, "--private"]) == 0
    elif command == "space":
        assert space_main(["--space", repo_id, "--model_id", "me/tiny-reviews", "--private", "--timeout", "0"]) == 0
    else:
        # Made private before training starts: a bad column then stops the run, the repo is private already.
        code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--push_to_hub", "--hub_model_id",
                                  repo_id, "--hub_private_repo", "true", "--text_column_name", "nope"))
        assert code == EXIT_USAGE
    assert hub.repo(repo_id, repo_type).private


def test_pushed_files_carry_no_local_path(pushed_run, review_files):
    hub, output_dir, _ = pushed_run
    local_paths = {str(review_files["train"].parent), str(output_dir.parent)}
    leaks = {name: path for name, data in hub.repo("me/tiny-reviews").files.items() for path in local_paths
             if path.encode() in data}
    assert leaks == {}
    card = ModelCard.load("me/tiny-reviews")
    assert {r.dataset_type for r in card.data.eval_results} == {"train.csv"}
    assert {r.dataset_name for r in card.data.eval_results} == {"train.csv"}


def test_push_of_a_bare_name_goes_to_the_users_namespace(pushed_run, token):
    """When the Hub was down before training, the repo id is still a bare name at push time."""
    hub, output_dir, _ = pushed_run
    url = hub_push_folder(output_dir, "bare-name", TOKEN)
    assert "me/bare-name" in url and "model.safetensors" in hub.repo("me/bare-name").files


def test_only_the_main_process_talks_to_the_hub(fake_hub, tiny_bert, review_files, tmp_path):
    before = len(fake_hub.requests)
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
               "finetune/train.py", *tiny_run_args(tiny_bert, review_files, tmp_path / "two", "--num_train_epochs",
                                                   "1", "--per_device_train_batch_size", "8", "--push_to_hub",
                                                   "--hub_model_id", "me/two-processes", "--hub_strategy",
                                                   "checkpoint")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_TOKEN": TOKEN}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    requests = fake_hub.requests[before:]
    assert requests.count(("GET", "/api/whoami-v2")) == 1
    repo = fake_hub.repo("me/two-processes")
    assert [c["summary"] for c in repo.commits][0] == "Training in progress, epoch 1" and len(repo.commits) == 2
    # the checkpoint pushed once both processes had written it: each one's RNG state is there
    assert {"last-checkpoint/rng_state_0.pth", "last-checkpoint/rng_state_1.pth"} <= set(repo.files)
