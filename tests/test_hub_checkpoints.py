"""Checkpoints pushed to the Hub while training, and a run resumed from them on another machine.

All through the real huggingface_hub client and real HTTP, against the fake Hub (LFS uploads
included), with the tiny BERT.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, TOKEN, make_reviews, tiny_run_args, write_csv
from fake_hub import FakeHub

from finetune import artifacts
from finetune.hub import api as hub_api
from finetune.hub_checkpoints import download_checkpoint
from finetune.push import main as push_main
from finetune.train import EXIT_USAGE, main

CHECKPOINT_STATE = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json")
NEVER_PUSHED = ("training_args.bin",)
STEPS_PER_EPOCH = 6  # 96 training reviews, batches of 16


def _train(tiny_bert, review_files, output_dir, repo_id, *extra):
    return main(tiny_run_args(tiny_bert, review_files, output_dir, "--push_to_hub", "--hub_model_id", repo_id,
                              *extra))


@pytest.fixture(scope="module")
def checkpoint_run(fake_hub, tiny_bert, review_files, tmp_path_factory):
    """Two epochs with --hub_strategy checkpoint."""
    output_dir = tmp_path_factory.mktemp("ckpt") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        code = _train(tiny_bert, review_files, output_dir, "me/ckpt", "--hub_strategy", "checkpoint")
    assert code == 0
    return fake_hub.repo("me/ckpt"), output_dir


def test_checkpoint_strategy_commits_each_save_then_the_finished_model(checkpoint_run):
    repo, _ = checkpoint_run
    summaries = [c["summary"] for c in repo.commits]
    assert summaries[:2] == ["Training in progress, epoch 1", "Training in progress, epoch 2"]
    assert len(summaries) == 3 and summaries[2].startswith("Fine-tuned on")
    for commit in repo.commits[:2]:
        assert {"model.safetensors", "config.json", "tokenizer.json", "last-checkpoint/optimizer.pt"} <= set(
            commit["paths"])
    assert {"README.md", "results.json", "epoch_history.json"} <= set(repo.files)


def test_checkpoint_strategy_keeps_optimizer_states_out_of_the_models_main_files(checkpoint_run):
    repo, _ = checkpoint_run
    root = {name for name in repo.files if "/" not in name}
    assert not root & {*CHECKPOINT_STATE, *NEVER_PUSHED}
    assert {f"last-checkpoint/{name}" for name in CHECKPOINT_STATE} <= set(repo.files)
    assert "last-checkpoint/model.safetensors" in repo.files
    assert not [name for name in repo.files if name.endswith(NEVER_PUSHED)]
    assert not [name for name in repo.files if name.startswith("checkpoint-")]


def test_checkpoint_on_the_hub_is_the_last_one_and_names_no_local_path(checkpoint_run):
    repo, output_dir = checkpoint_run
    state = json.loads(repo.files["last-checkpoint/trainer_state.json"])
    assert state["global_step"] == 2 * STEPS_PER_EPOCH
    assert state["best_model_checkpoint"] in ("checkpoint-6", "checkpoint-12")
    local = str(output_dir.parent).encode()
    assert not [name for name, data in repo.files.items() if local in data]
    local_state = artifacts.read_json(output_dir / "checkpoint-12", "trainer_state.json")
    assert {k: v for k, v in state.items() if k != "best_model_checkpoint"} == {
        k: v for k, v in local_state.items() if k != "best_model_checkpoint"}


def test_checkpoint_weights_and_optimizer_travel_through_lfs_without_the_token(checkpoint_run, fake_hub):
    repo, output_dir = checkpoint_run
    first = repo.commits[0]
    assert {"model.safetensors", "last-checkpoint/optimizer.pt", "last-checkpoint/rng_state.pth"} <= set(
        first["lfs_paths"])
    assert "last-checkpoint/trainer_state.json" not in first["lfs_paths"]
    optimizer = (output_dir / "checkpoint-12" / "optimizer.pt").read_bytes()
    assert repo.files["last-checkpoint/optimizer.pt"] == optimizer
    uploads = {u["oid"]: u for u in fake_hub.lfs_uploads}
    assert uploads[hashlib.sha256(optimizer).hexdigest()]["size"] == len(optimizer)
    assert not [u for u in fake_hub.lfs_uploads if u["authorized"]], "the token went to the LFS storage"
    assert not [body for body in fake_hub.bodies if TOKEN.encode() in body]


def test_checkpoint_staging_leaves_nothing_in_the_output_folder(checkpoint_run):
    _, output_dir = checkpoint_run
    assert not [p.name for p in output_dir.iterdir() if p.name.endswith(artifacts.TEMPORARY_SUFFIX)]


@pytest.mark.parametrize("strategy, folders", [("every_save", set()),
                                               ("all_checkpoints", {"checkpoint-6", "checkpoint-12"})])
def test_hub_strategy_pushes_what_transformers_means_by_it(strategy, folders, fake_hub, tiny_bert, review_files,
                                                           token, tmp_path):
    repo_id = f"me/{strategy.replace('_', '-')}"
    assert _train(tiny_bert, review_files, tmp_path / "out", repo_id, "--hub_strategy", strategy) == 0
    repo = fake_hub.repo(repo_id)
    assert len(repo.commits) == 3
    assert {name.split("/")[0] for name in repo.files if "/" in name} == folders
    assert "model.safetensors" in repo.commits[0]["lfs_paths"]
    for folder in folders:
        assert {f"{folder}/{name}" for name in CHECKPOINT_STATE} <= set(repo.files)
    assert not {name for name in repo.files if "/" not in name} & {*CHECKPOINT_STATE, *NEVER_PUSHED}


def test_training_does_not_wait_for_a_slow_hub(fake_hub, tiny_bert, review_files, token, tmp_path, capsys):
    """Each commit takes 0.8 s; a save every 2 steps. Training goes on; a checkpoint still queued when a newer
    one is saved is skipped; the end waits for the last one."""
    fault = fake_hub.inject("POST", r"^/api/models/me/slow/commit/", delay=0.8)
    try:
        code = _train(tiny_bert, review_files, tmp_path / "out", "me/slow", "--hub_strategy", "checkpoint",
                      "--save_strategy", "steps", "--save_steps", "2", "--load_best_model_at_end", "false")
    finally:
        fake_hub.faults.remove(fault)
    assert code == 0
    out = capsys.readouterr().out
    summary = re.search(r"(\d+) checkpoint push\(es\) to me/slow, (\d+) skipped for a newer one; training waited "
                        r"([\d.]+) s for them \(uploads took [\d.]+ s in the background\), its end ([\d.]+) s", out)
    assert summary, out
    pushed, skipped, stalled, waited = int(summary[1]), int(summary[2]), float(summary[3]), float(summary[4])
    assert pushed + skipped == 2 * STEPS_PER_EPOCH // 2 and skipped >= 1
    assert stalled < 0.5 and waited > 0.3
    repo = fake_hub.repo("me/slow")
    assert json.loads(repo.files["last-checkpoint/trainer_state.json"])["global_step"] == 2 * STEPS_PER_EPOCH


def test_hub_always_push_pushes_every_checkpoint(fake_hub, tiny_bert, review_files, token, tmp_path):
    fault = fake_hub.inject("POST", r"^/api/models/me/always/commit/", delay=0.3)
    try:
        code = _train(tiny_bert, review_files, tmp_path / "out", "me/always", "--hub_strategy", "checkpoint",
                      "--save_strategy", "steps", "--save_steps", "2", "--load_best_model_at_end", "false",
                      "--hub_always_push", "true")
    finally:
        fake_hub.faults.remove(fault)
    assert code == 0
    summaries = [c["summary"] for c in fake_hub.repo("me/always").commits]
    assert summaries[:-1] == [f"Training in progress, step {step}" for step in range(2, 13, 2)]


def test_failed_checkpoint_push_is_reported_with_a_command_that_redoes_it(fake_hub, tiny_bert, review_files, token,
                                                                         tmp_path, capsys):
    fault = fake_hub.inject("POST", r"^/api/models/me/flaky/commit/", status=403, times=2)  # both checkpoints
    output_dir = tmp_path / "out"
    code = _train(tiny_bert, review_files, output_dir, "me/flaky", "--hub_strategy", "checkpoint")
    fake_hub.faults.remove(fault)
    assert code == 0  # the finished model was pushed: the run did its job
    err = capsys.readouterr().err
    assert "warning: pushing checkpoint-6 to me/flaky failed" in err and "a later push replaced it" in err
    retry = f"{sys.executable} -m finetune.push {output_dir / 'checkpoint-12'} --repo me/flaky --path_in_repo " \
            "last-checkpoint"
    assert "warning: pushing checkpoint-12 to me/flaky failed" in err and retry in err
    assert TOKEN not in err
    repo = fake_hub.repo("me/flaky")
    assert not [name for name in repo.files if name.startswith("last-checkpoint/")]

    assert push_main(retry.split()[3:]) == 0
    state = json.loads(repo.files["last-checkpoint/trainer_state.json"])
    assert state["global_step"] == 2 * STEPS_PER_EPOCH and state["best_model_checkpoint"].startswith("checkpoint-")
    assert "last-checkpoint/training_args.bin" not in repo.files
    assert "README.md" in repo.files and repo.commits[-1]["paths"] == sorted(repo.commits[-1]["paths"])


@pytest.mark.parametrize("flags, message", [
    (["--hub_strategy", "checkpoint"], "--hub_strategy checkpoint pushes to the Hub while training: add --push_to_hub"),
    (["--push_to_hub", "--hub_strategy", "every_save", "--save_strategy", "no", "--load_best_model_at_end", "false"],
     "--save_strategy no saves none"),
    (["--push_to_hub", "--hub_always_push", "true"], "--hub_always_push applies to pushes while training"),
    (["--push_to_hub", "--hub_revision", "dev"], "--hub_revision: this project pushes to the repo's main branch"),
    (["--resume_from_checkpoint", "hub"], "pass --hub_model_id me/name"),
    (["--resume_from_checkpoint", "hub:a/b/c"], "after hub: give a Hub repo id"),
])
def test_hub_flags_that_cannot_work_are_refused_before_training(flags, message, tiny_bert, review_files, tmp_path,
                                                               capsys):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_from_a_repo_without_checkpoints_says_how_to_get_them(fake_hub, tiny_bert, review_files, token,
                                                                    tmp_path, capsys):
    hub_api(TOKEN).create_repo("me/no-checkpoints")
    code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--resume_from_checkpoint",
                              "hub:me/no-checkpoints"))
    assert code == EXIT_USAGE
    assert "me/no-checkpoints holds no checkpoint" in capsys.readouterr().err


def test_resume_from_a_private_repo_without_its_token_is_refused(checkpoint_run, tiny_bert, review_files, tmp_path,
                                                                 capsys):
    hub_api(TOKEN).update_repo_settings("me/ckpt", private=True)
    try:
        code = main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", "--resume_from_checkpoint", "hub:me/ckpt"))
    finally:
        hub_api(TOKEN).update_repo_settings("me/ckpt", private=False)
    assert code == EXIT_USAGE
    assert "no Hub repo me/ckpt that this token can read" in capsys.readouterr().err


def test_download_of_all_checkpoints_brings_the_best_one_too(fake_hub, tiny_bert, review_files, token, tmp_path):
    assert _train(tiny_bert, review_files, tmp_path / "first", "me/keep-all", "--hub_strategy", "all_checkpoints") == 0
    state = json.loads(fake_hub.repo("me/keep-all").files["checkpoint-12/trainer_state.json"])
    elsewhere = tmp_path / "elsewhere"
    assert download_checkpoint("me/keep-all", TOKEN, elsewhere) == elsewhere / "checkpoint-12"
    best = elsewhere / f"checkpoint-{state['best_global_step']}"
    assert artifacts.is_complete_checkpoint(best)
    assert artifacts.read_json(elsewhere / "checkpoint-12", "trainer_state.json")["best_model_checkpoint"] == str(best)
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted({"checkpoint-12", best.name})


def _train_command(tiny_bert, review_files, output_dir, *extra):
    return [sys.executable, str(REPO_ROOT / "finetune" / "train.py"),
            *tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "3", *extra)]


def _has_checkpoint(hub: FakeHub, repo_id: str) -> bool:
    repo = hub.repos.get(("model", repo_id))
    return repo is not None and any("last-checkpoint/trainer_state.json" in c["paths"] for c in repo.commits)


def test_resume_from_hub_after_kill_on_another_machine_finishes_with_the_same_history(
        fake_hub, tiny_bert, review_files, tmp_path):
    # 960 reviews, 60 steps an epoch: long enough that a kill lands inside an epoch.
    files = {**review_files, "train": write_csv(tmp_path / "train.csv", make_reviews(960, seed=5))}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_TOKEN": TOKEN}
    hub_flags = ["--push_to_hub", "--hub_model_id", "me/vanishing", "--hub_private_repo", "true",
                 "--hub_strategy", "checkpoint"]

    killed = tmp_path / "first-machine" / "run"
    process = subprocess.Popen(_train_command(tiny_bert, files, killed, *hub_flags), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not _has_checkpoint(fake_hub, "me/vanishing"):
        assert process.poll() is None and time.time() < deadline, "run ended before its first checkpoint push"
        time.sleep(0.01)
    process.kill()
    process.wait()
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"
    repo = fake_hub.repo("me/vanishing")
    assert repo.private
    assert json.loads(repo.files["last-checkpoint/trainer_state.json"])["global_step"] == 60

    # Another machine: an empty output folder and an empty Hugging Face cache.
    elsewhere = tmp_path / "second-machine"
    resumed = subprocess.run(
        _train_command(tiny_bert, files, elsewhere / "run", *hub_flags, "--resume_from_checkpoint", "hub"),
        env={**env, "HF_HOME": str(elsewhere / "hf-home")}, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "downloaded me/vanishing/last-checkpoint (step 60)" in resumed.stderr

    straight = tmp_path / "straight"
    subprocess.run(_train_command(tiny_bert, files, straight), check=True, env=env, capture_output=True)
    expected = artifacts.read_json(straight, artifacts.HISTORY_FILE)
    got = artifacts.read_json(elsewhere / "run", artifacts.HISTORY_FILE)
    assert [(r["epoch"], r["step"]) for r in got] == [(1.0, 60), (2.0, 120), (3.0, 180)]
    for want, row in zip(expected, got):
        for key in ("eval_loss", "accuracy", "f1", "train_loss"):
            assert row[key] == pytest.approx(want[key], abs=1e-4), (row["epoch"], key)
    # The resumed run trained epochs 2 and 3 only, pushing as it went.
    assert [c["summary"] for c in repo.commits[:-1]] == [f"Training in progress, epoch {n}" for n in (1, 2, 3)]
    assert json.loads(repo.files["last-checkpoint/trainer_state.json"])["global_step"] == 180
    assert repo.commits[-1]["summary"].startswith("Fine-tuned on") and repo.private
    assert repo.files["model.safetensors"] == (elsewhere / "run" / "model.safetensors").read_bytes()
