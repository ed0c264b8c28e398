"""The Hugging Face Hub edge: credentials, repo creation and pushing a model folder.

Everything goes through the real `huggingface_hub` client; tests point it at a local
fake Hub with HF_ENDPOINT.
"""

import logging
import os
import shlex
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from finetune import artifacts
from finetune.artifacts import CARD_FILE
from finetune.errors import UsageError
from finetune.model_card import with_repo_id

logger = logging.getLogger(__name__)

LOGIN_HELP = (
    "Log in once with `hf auth login`, or export HF_TOKEN=hf_... "
    "(a token with write access, from https://huggingface.co/settings/tokens)."
)


class PushError(RuntimeError):
    """The push failed; the local folder is intact and the message says how to retry."""


def api(token: str | None = None) -> HfApi:
    # The endpoint is read here, not at import time, so HF_ENDPOINT set later (tests) is honoured.
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)


def full_repo_id(repo_id: str, user: str | None = None, client: HfApi | None = None) -> str:
    """`owner/name` for a bare `name`: the token's user's (asked of the Hub unless `user` is known)."""
    if "/" in repo_id:
        return repo_id
    return f"{user or client.whoami()['name']}/{repo_id}"


def require_token(explicit: str | None = None, purpose: str = "--push_to_hub") -> str:
    token = explicit or get_token()
    if not token:
        raise UsageError(f"{purpose} needs a Hugging Face token and none was found. {LOGIN_HELP}")
    return token


def read_token() -> str | None:
    """The user's token if there is one (HF_TOKEN or `hf auth login`): reading a private repo needs it."""
    return get_token()


def prepare_repo(repo_id: str, token: str, private: bool | None, repo_type: str = "model") -> str:
    """Check the token and create the repo before any long work; return the full repo id.

    A Hub that cannot be reached now only warns: the push at the end may still work (push_folder
    resolves a bare name to <user>/<name> then), and if it does not, the folder stays and the
    retry command is printed.
    """
    client = api(token)
    try:
        user = client.whoami()["name"]
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise UsageError(f"the Hugging Face token was refused ({status}). {LOGIN_HELP}") from err
        logger.warning("could not check the Hub token now (%s); the push at the end will try again", err)
        return repo_id
    except Exception as err:  # connection errors (httpx2) are not OSError
        logger.warning("the Hub is not reachable now (%s: %s); the repo is checked again when the files are pushed",
                       type(err).__name__, err)
        return repo_id
    full_id = full_repo_id(repo_id, user)
    try:
        ensure_repo(client, full_id, private, repo_type)
    except HfHubHTTPError as err:
        raise UsageError(f"could not create the Hub repo {full_id}: {err}. Check --hub_model_id and the token's "
                         "write access.") from err
    return full_id


def ensure_repo(client: HfApi, repo_id: str, private: bool | None, repo_type: str = "model", **create) -> None:
    """Create the repo if needed; when `private` is asked, make an existing public repo private.

    (`create_repo(exist_ok=True)` leaves an existing repo's visibility as it is: asked for a private
    repo, it would push into a public one without a word.)
    """
    client.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type, **create)
    if private and not client.repo_info(repo_id, repo_type=repo_type).private:
        client.update_repo_settings(repo_id, private=True, repo_type=repo_type)
        logger.warning("the %s repo %s existed as public: it is now private, as asked", repo_type, repo_id)


def pushed_files(folder: Path) -> list[str]:
    """The files of a run folder that a push uploads: an allow-list (artifacts.PUSHED_PATTERNS), as paths
    relative to the folder. Top-level files match its patterns; in a subfolder (onnx/), only its exact paths;
    and TensorBoard's event files under runs/ (artifacts.TENSORBOARD_PATTERN), for the Hub's Training metrics tab."""
    folder = Path(folder)
    top_level = [p.name for p in folder.iterdir() if p.is_file() and artifacts.is_pushed(p.name)]
    nested = [path for path in artifacts.PUSHED_PATTERNS if "/" in path and (folder / path).is_file()]
    return sorted(top_level + nested + artifacts.tensorboard_files(folder))


def push_folder(folder: Path, repo_id: str, token: str, private: bool | None = None,
                commit_message: str | None = None) -> str:
    """Upload a finished model folder's own files in one commit: the model, its tokenizer and the run's
    files, nothing else the folder may hold (checkpoints, pickles, a .env, a virtual environment)."""
    folder = Path(folder)
    client = api(token)
    try:
        repo_id = full_repo_id(repo_id, client=client)  # the Hub was unreachable before training: resolve it now
        point_card_at(folder, repo_id)
        ensure_repo(client, repo_id, private)
        commit = client.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload fine-tuned model from {folder.name}",
            allow_patterns=pushed_files(folder),
        )
    except Exception as err:
        raise PushError(
            f"pushing {folder} to {repo_id} failed ({type(err).__name__}: {err}). The model folder is complete "
            f"and unchanged. Retry without retraining:\n  {retry_command(folder, repo_id, private)}"
        ) from err
    return commit.commit_url


def point_card_at(folder: Path, repo_id: str) -> None:
    """Make the card's usage snippets name the repo the folder is pushed to (model_card.with_repo_id)."""
    card = Path(folder) / CARD_FILE
    if card.exists():
        text = card.read_text(encoding="utf-8")
        updated = with_repo_id(text, repo_id)
        if updated != text:
            artifacts.write_text(card, updated)


def retry_command(folder: Path, repo_id: str, private: bool | None = None) -> str:
    # The interpreter that ran this process: the command works as printed, virtual environment or not.
    # An absolute folder: the command works from any directory.
    folder = shlex.quote(str(Path(folder).resolve()))
    command = f"{shlex.quote(sys.executable)} -m finetune.push {folder} --repo {shlex.quote(repo_id)}"
    return command + (" --private" if private else "")


def update_card(repo_id: str, edit, token: str, commit_message: str) -> str:
    """Push a model repo's card alone, changed by `edit` (its text, or None without one -> the new text), in
    one commit on top of the commit it was read from: a card changed meanwhile fails the commit instead of
    being overwritten. Returns the commit's URL."""
    from huggingface_hub.errors import EntryNotFoundError

    client = api(token)
    head = client.model_info(repo_id).sha
    try:
        text = Path(client.hf_hub_download(repo_id, CARD_FILE, revision=head)).read_text(encoding="utf-8")
    except EntryNotFoundError:
        text = None
    commit = client.upload_file(path_or_fileobj=edit(text).encode("utf-8"), path_in_repo=CARD_FILE,
                                repo_id=repo_id, commit_message=commit_message, parent_commit=head)
    return commit.commit_url
