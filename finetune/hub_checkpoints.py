"""Checkpoints to the Hub while training, and resuming from them on another machine.

    accelerate launch finetune/train.py --push_to_hub --hub_model_id me/minilm-reviews --hub_strategy checkpoint
    # the machine vanished: on any machine, in a new or empty output folder
    accelerate launch finetune/train.py --push_to_hub --hub_model_id me/minilm-reviews --hub_strategy checkpoint \
        --resume_from_checkpoint hub

`--hub_strategy` keeps transformers' meanings. On each save, the main process uploads:

| strategy          | the model files (repo root) | the whole checkpoint, optimizer included |
|-------------------|-----------------------------|------------------------------------------|
| `end` (default)   | -                           | -                                        |
| `every_save`      | yes                         | -                                        |
| `checkpoint`      | yes                         | under `last-checkpoint/`, replaced       |
| `all_checkpoints` | yes                         | under `checkpoint-<step>/`               |

and the run ends with the usual push of the finished model folder and its card.

Why not the Trainer's own push (`Trainer(push_to_hub=True)`, `_push_from_checkpoint`): it creates
the repo in `__init__` (no token check, and an existing public repo stays public when private
is asked), copies the checkpoint's weights and `training_args.bin` into the output folder, then
uploads that folder minus `checkpoint-*` and `_*` (a deny-list: a `.env` or notes beside the
model would go too), and it waits for pending uploads without looking at their result, so a
failed upload goes unnoticed. This callback keeps the project's rules: the root gets the
allow-listed model files only (artifacts.PUSHED_PATTERNS, never optimizer states), a checkpoint
goes to its own folder without `training_args.bin` (a pickle of every setting, with local paths)
and with no local path in `trainer_state.json`, only the main process uploads, the token stays
in memory, and the end of the run waits for the uploads and reports any that failed, with the
command that retries them.

Training does not wait for the Hub: on a save the callback hard-links the checkpoint's files
into a staging folder (milliseconds; the Trainer may delete the checkpoint meanwhile, see
save_total_limit) and hands the upload to `HfApi.run_as_future`, which runs uploads one at a
time, in order, in a background thread. A save that comes while an upload is still queued
replaces it (the newer checkpoint makes it moot) unless `--hub_always_push`.
"""

import json
import logging
import os
import shutil
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from transformers import TrainerCallback
from transformers.trainer_utils import HubStrategy, SaveStrategy

from finetune import artifacts, hub
from finetune.errors import UsageError

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last-checkpoint"  # transformers' folder name for hub_strategy="checkpoint"
STATE_FILE = "trainer_state.json"
# Written into each checkpoint by the Trainer, never uploaded: a pickle of every setting (local paths
# included) that resuming does not read.
NOT_UPLOADED = ("training_args.bin",)
STAGING_PREFIX = "hub-upload-"  # staging folders inside the output folder: NAME.partial, a run's own temporary
DOWNLOAD_FOLDER = "hub-download" + artifacts.TEMPORARY_SUFFIX


# --- what a push holds --------------------------------------------------------------------------


def checkpoint_folder_in_repo(strategy: str, checkpoint_name: str) -> str | None:
    """Where a strategy keeps the whole checkpoint in the repo (None: it does not keep it)."""
    if strategy == HubStrategy.CHECKPOINT:
        return LAST_CHECKPOINT
    if strategy == HubStrategy.ALL_CHECKPOINTS:
        return checkpoint_name
    return None


def layout(checkpoint: Path, model_at_root: bool, folder_in_repo: str | None) -> dict[str, Path]:
    """Repo path -> local file of one push: the allow-listed model files at the root, and/or every file of
    the checkpoint (optimizer, scheduler, RNG states, trainer state) under `folder_in_repo`."""
    files = sorted(p for p in Path(checkpoint).iterdir() if p.is_file())
    planned = {}
    if model_at_root:
        planned.update({p.name: p for p in files if artifacts.is_pushed(p.name)})
    if folder_in_repo:
        planned.update({f"{folder_in_repo}/{p.name}": p for p in files if p.name not in NOT_UPLOADED})
    return planned


def stage(planned: dict[str, Path], staging: Path, link: bool = True) -> None:
    """Lay out a push's files in `staging`: hard links (instant, and they outlive the Trainer deleting the
    checkpoint), or copies where the filesystem has no hard links. trainer_state.json is rewritten so that
    it names the best checkpoint by folder name, not by this machine's path."""
    for path_in_repo, source in planned.items():
        target = staging / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name == STATE_FILE:
            state = portable_state(json.loads(source.read_text()))
            artifacts.write_text(target, json.dumps(state, indent=2, sort_keys=True) + "\n")
        elif link:
            os.link(source, target)
        else:
            shutil.copy2(source, target)


def portable_state(state: dict) -> dict:
    best = state.get("best_model_checkpoint")
    if best:
        state["best_model_checkpoint"] = Path(best).name
    return state


def commit_message(args, state) -> str:
    """transformers' wording, so that a repo's history reads the same whoever pushed."""
    if args.save_strategy == SaveStrategy.STEPS:
        return f"Training in progress, step {state.global_step}"
    return f"Training in progress, epoch {int(state.epoch)}"


# --- pushing while training ---------------------------------------------------------------------


@dataclass
class Upload:
    checkpoint: Path
    future: futures.Future
    staging: Path
    superseded: bool = False  # cancelled before it started: a newer checkpoint took its place

    @property
    def error(self) -> BaseException | None:
        if self.superseded or not self.future.done():
            return None
        return self.future.exception()


@dataclass
class CheckpointPusher(TrainerCallback):
    """Push each checkpoint to the Hub in the background (see the module docstring).

    Every process gets one, so that all of them finish writing a checkpoint (each writes its own RNG
    state) before the main process uploads it; only the one given a repo_id and token uploads.
    """

    strategy: str
    repo_id: str | None = None
    token: str | None = field(default=None, repr=False)
    private: bool | None = None
    always_push: bool = False
    uploads: list[Upload] = field(default_factory=list)
    stalled: float = 0.0  # seconds training spent in this callback: the cost of pushing while training
    waited: float = 0.0  # seconds the end of training waited for pending uploads
    uploading: float = 0.0  # seconds the uploads took, in the background
    client: object = field(default=None, repr=False)  # one HfApi: its one background thread keeps pushes in order

    @property
    def uploader(self) -> bool:
        return self.repo_id is not None

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every process's files of this checkpoint are written
        if not self.uploader:
            return
        started = time.perf_counter()
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.submit(checkpoint, commit_message(args, state))
        self.stalled += time.perf_counter() - started

    def submit(self, checkpoint: Path, message: str) -> Upload:
        if not self.always_push:
            for queued in self.uploads:
                if queued.future.cancel():  # not started yet: the newer checkpoint makes it moot
                    queued.superseded = True
                    shutil.rmtree(queued.staging, ignore_errors=True)
        folder_in_repo = checkpoint_folder_in_repo(self.strategy, checkpoint.name)
        planned = layout(checkpoint, model_at_root=True, folder_in_repo=folder_in_repo)
        staging = checkpoint.parent / f"{STAGING_PREFIX}{checkpoint.name}{artifacts.TEMPORARY_SUFFIX}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            stage(planned, staging)
            linked = True
        except OSError:  # no hard links here (some network drives): copy in the background instead
            linked = False
        delete = [f"{LAST_CHECKPOINT}/*"] if folder_in_repo == LAST_CHECKPOINT else None
        client = self.client = self.client or hub.api(self.token)

        def push() -> str:
            started = time.perf_counter()
            try:
                if "/" not in self.repo_id:  # the Hub was unreachable before training: resolve and create it now
                    self.repo_id = hub.full_repo_id(self.repo_id, client=client)
                    hub.ensure_repo(client, self.repo_id, self.private)
                if not linked:
                    shutil.rmtree(staging, ignore_errors=True)
                    staging.mkdir()
                    stage(planned, staging, link=False)
                return client.upload_folder(repo_id=self.repo_id, folder_path=staging, commit_message=message,
                                            delete_patterns=delete).commit_url
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                self.uploading += time.perf_counter() - started

        upload = Upload(checkpoint, client.run_as_future(push), staging)
        self.uploads.append(upload)
        logger.info("pushing %s to %s in the background", checkpoint.name, self.repo_id)
        return upload

    def on_train_end(self, args, state, control, **kwargs):
        self.wait()

    def wait(self) -> None:
        pending = [u.future for u in self.uploads if not u.superseded and not u.future.done()]
        if pending:
            logger.info("waiting for %d checkpoint push(es) to %s to finish", len(pending), self.repo_id)
        started = time.perf_counter()
        futures.wait(pending)
        self.waited += time.perf_counter() - started

    def report(self, output_dir: Path) -> list[str]:
        """Warnings for the uploads that failed and still matter, each with the command that redoes it."""
        failed = [u for u in self.uploads if u.error is not None]
        if not failed:
            return []
        lines = []
        last = [u for u in self.uploads if not u.superseded][-1]
        for upload in failed:
            why = f"{type(upload.error).__name__}: {upload.error}"
            folder_in_repo = checkpoint_folder_in_repo(self.strategy, upload.checkpoint.name)
            if folder_in_repo is None:
                lines.append(f"pushing {upload.checkpoint.name} to {self.repo_id} failed ({why}); the push of the "
                             "finished model replaces it, nothing to redo.")
            elif folder_in_repo == LAST_CHECKPOINT and upload is not last:
                lines.append(f"pushing {upload.checkpoint.name} to {self.repo_id} failed ({why}); a later push "
                             "replaced it, nothing to redo.")
            elif artifacts.is_complete_checkpoint(upload.checkpoint):
                lines.append(f"pushing {upload.checkpoint.name} to {self.repo_id} failed ({why}). To resume from it "
                             f"on another machine, push it now:\n  "
                             f"{retry_command(upload.checkpoint, self.repo_id, folder_in_repo)}")
            else:
                lines.append(f"pushing {upload.checkpoint.name} to {self.repo_id} failed ({why}), and the Trainer has "
                             f"deleted it since (save_total_limit): the Hub's {folder_in_repo}/ may be older than "
                             "this run's last checkpoint.")
        return lines

    def summary(self) -> str:
        pushed = [u for u in self.uploads if not u.superseded and u.error is None and u.future.done()]
        skipped = sum(u.superseded for u in self.uploads)
        return (f"{len(pushed)} checkpoint push(es) to {self.repo_id}"
                + (f", {skipped} skipped for a newer one" if skipped else "")
                + f"; training waited {self.stalled:.2f} s for them (uploads took {self.uploading:.1f} s in the "
                f"background), its end {self.waited:.1f} s")


def retry_command(checkpoint: Path, repo_id: str, folder_in_repo: str) -> str:
    return hub.retry_command(checkpoint, repo_id) + f" --path_in_repo {folder_in_repo}"


def push_checkpoint(checkpoint: Path, repo_id: str, token: str, folder_in_repo: str = LAST_CHECKPOINT) -> str:
    """Upload one checkpoint folder under `folder_in_repo` now (what `python -m finetune.push CHECKPOINT
    --path_in_repo ...` does); the repo's root, the model users load, stays as it is."""
    client = hub.api(token)
    staging = Path(checkpoint).parent / f"{STAGING_PREFIX}{Path(checkpoint).name}{artifacts.TEMPORARY_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        stage(layout(checkpoint, model_at_root=False, folder_in_repo=folder_in_repo), staging, link=False)
        return client.upload_folder(repo_id=repo_id, folder_path=staging, delete_patterns=[f"{folder_in_repo}/*"],
                                    commit_message=f"Upload {Path(checkpoint).name} to {folder_in_repo}/").commit_url
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(output_dir: Path) -> None:
    """Staging folders that a killed run left behind."""
    for leftover in Path(output_dir).glob(f"{STAGING_PREFIX}*{artifacts.TEMPORARY_SUFFIX}"):
        shutil.rmtree(leftover, ignore_errors=True)


# --- resuming from the Hub ----------------------------------------------------------------------


def resume_repo(resume: str, hub_model_id: str | None) -> str:
    """The repo that `--resume_from_checkpoint hub` or `hub:owner/name` names; raises UsageError."""
    if resume == artifacts.HUB_RESUME:
        if not hub_model_id:
            raise UsageError(
                "--resume_from_checkpoint hub resumes from the last checkpoint pushed to --hub_model_id: pass "
                "--hub_model_id me/name (the repo the lost run pushed to), or --resume_from_checkpoint hub:me/name."
            )
        return hub_model_id
    repo_id = resume[len(artifacts.HUB_RESUME) + 1:]
    if not repo_id or repo_id.count("/") > 1 or repo_id.startswith(("/", ".", "~")):
        raise UsageError(f"--resume_from_checkpoint {resume}: after hub: give a Hub repo id, e.g. hub:me/minilm-reviews.")
    return repo_id


def latest_checkpoint_in_repo(files: list[str]) -> str | None:
    """`last-checkpoint` (hub_strategy checkpoint), else the highest `checkpoint-<step>` (all_checkpoints)."""
    if f"{LAST_CHECKPOINT}/{STATE_FILE}" in files:
        return LAST_CHECKPOINT
    steps = [int(name.split("/")[0].split("-")[1]) for name in files
             if name.endswith(f"/{STATE_FILE}") and name.count("/") == 1
             and name.startswith("checkpoint-") and name.split("/")[0].split("-")[1].isdigit()]
    return f"checkpoint-{max(steps)}" if steps else None


def download_checkpoint(repo_id: str, token: str | None, output_dir: Path) -> Path:
    """Download a repo's last checkpoint into `output_dir/checkpoint-<step>` and return that folder.

    With all_checkpoints, the best checkpoint comes too when it is another one, so that the run can
    still restore the best model at its end. Raises UsageError with what to do.
    """
    output_dir = Path(output_dir)
    token = token or get_token()
    client = hub.api(token)
    try:
        if token:
            repo_id = hub.full_repo_id(repo_id, client=client)
        files = client.list_repo_files(repo_id)
    except RepositoryNotFoundError as err:
        raise UsageError(f"--resume_from_checkpoint: no Hub repo {repo_id} that this token can read. Check "
                         f"--hub_model_id, and log in (`hf auth login` or HF_TOKEN) for a private repo.") from err
    except (HfHubHTTPError, OSError) as err:
        raise UsageError(f"--resume_from_checkpoint: could not reach the Hub for {repo_id} ({err}).") from err
    except Exception as err:  # httpx2 connection errors are not OSError
        raise UsageError(f"--resume_from_checkpoint: could not reach the Hub for {repo_id} "
                         f"({type(err).__name__}: {err}).") from err
    folder = latest_checkpoint_in_repo(files)
    if folder is None:
        raise UsageError(
            f"--resume_from_checkpoint: {repo_id} holds no checkpoint ({LAST_CHECKPOINT}/ or checkpoint-<step>/). "
            "Only a run with --hub_strategy checkpoint (or all_checkpoints) pushes the checkpoints it resumes from."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = output_dir / DOWNLOAD_FOLDER
    try:
        shutil.rmtree(partial, ignore_errors=True)
        state = _fetch(client, repo_id, [f"{folder}/*"], partial)
        checkpoint = _place(partial / folder, output_dir / f"checkpoint-{state['global_step']}")
        best = state.get("best_global_step")
        if best and best != state["global_step"]:
            if f"checkpoint-{best}/{STATE_FILE}" in files:
                _fetch(client, repo_id, [f"checkpoint-{best}/*"], partial)
                _place(partial / f"checkpoint-{best}", output_dir / f"checkpoint-{best}")
            else:
                logger.warning(
                    "the best checkpoint so far (step %s) is not on the Hub (--hub_strategy checkpoint keeps the "
                    "last one only): unless a later epoch does better, the model kept at the end is the last one, "
                    "not the best. --hub_strategy all_checkpoints keeps every checkpoint.", best)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _point_state_at(checkpoint, output_dir)
    if not artifacts.is_complete_checkpoint(checkpoint):
        raise UsageError(f"--resume_from_checkpoint: {repo_id}/{folder} is not a complete checkpoint (no readable "
                         f"{STATE_FILE} or no weights). Push a complete one with python -m finetune.push.")
    logger.info("downloaded %s/%s (step %s) into %s", repo_id, folder, state["global_step"], checkpoint)
    return checkpoint


def _fetch(client, repo_id: str, patterns: list[str], partial: Path) -> dict:
    try:
        client.snapshot_download(repo_id, allow_patterns=patterns, local_dir=partial)
        folder = partial / patterns[0].split("/")[0]
        return json.loads((folder / STATE_FILE).read_text())
    except Exception as err:  # the network (httpx2 errors are not OSError), or a file cut short
        raise UsageError(f"--resume_from_checkpoint: downloading {patterns[0]} from {repo_id} failed "
                         f"({type(err).__name__}: {err}). Run the same command again.") from err


def _place(downloaded: Path, target: Path) -> Path:
    """Move a downloaded checkpoint into place; a complete local copy of the same step is kept instead."""
    if target.exists():
        if artifacts.is_complete_checkpoint(target):
            logger.info("%s is already here and complete: keeping it", target.name)
            return target
        shutil.rmtree(target)
    os.replace(downloaded, target)
    return target


def _point_state_at(checkpoint: Path, output_dir: Path) -> None:
    """Make trainer_state.json name the best checkpoint where it now is, so that the Trainer finds it."""
    state_file = checkpoint / STATE_FILE
    state = json.loads(state_file.read_text())
    best = state.get("best_model_checkpoint")
    if best and (output_dir / Path(best).name).is_dir():
        state["best_model_checkpoint"] = str(output_dir / Path(best).name)
        artifacts.write_text(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")
