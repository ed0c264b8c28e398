"""Push a finished model folder (weights, tokenizer, card, metrics) to the Hugging Face Hub.

    python -m finetune.push outputs/all-minilm-l6-v2-rotten-tomatoes --repo me/minilm-reviews [--private]
    python -m finetune.push outputs/all-minilm-l6-v2-rotten-tomatoes/checkpoint-180 --repo me/minilm-reviews \
        --path_in_repo last-checkpoint    # a checkpoint, to resume from with --resume_from_checkpoint hub

The token comes from HF_TOKEN or `hf auth login`. A model folder's push leaves out checkpoints,
optimizer states and pickles; a checkpoint's push (--path_in_repo) keeps its optimizer state
for resuming, in that folder of the repo only. Pushing again updates the repo with a new commit.
"""

import argparse
import sys
from pathlib import Path

from finetune import artifacts, errors, hub
from finetune.errors import UsageError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m finetune.push", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("folder", type=Path,
                        help="a model folder written by finetune/train.py (with --path_in_repo: a checkpoint-* in it)")
    parser.add_argument("--repo", "--hub_model_id", dest="repo", required=True,
                        help="Hub repo id, e.g. me/minilm-reviews (created if missing; --hub_model_id, as in training, too)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--message", help="commit message (default: names the folder and its test score)")
    parser.add_argument("--path_in_repo", help="push a checkpoint-* folder into this folder of the repo instead "
                        "(last-checkpoint: the one --resume_from_checkpoint hub resumes from), replacing what it held")
    return parser.parse_args(argv)


def check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder (relative to {Path.cwd()}). Pass the run's --output_dir.")
    missing = [name for name in ("config.json", artifacts.CARD_FILE, artifacts.RESULTS_FILE) if not (folder / name).exists()]
    if not folder.is_dir() or not artifacts.holds_model(folder) or missing:
        raise UsageError(
            f"{folder} is not a finished model folder (missing: {', '.join(missing) or 'model weights'}). "
            "Train first with `accelerate launch finetune/train.py`, or pass the run's --output_dir."
        )


def check_checkpoint(folder: Path) -> None:
    if not artifacts.is_complete_checkpoint(folder):
        raise UsageError(f"{folder} is not a complete checkpoint folder (no readable trainer_state.json or no "
                         "weights): --path_in_repo pushes a checkpoint-* folder of a run's --output_dir.")


def push_checkpoint(folder: Path, repo_id: str, token: str, path_in_repo: str) -> str:
    from finetune import hub_checkpoints  # noqa: PLC0415  (imports transformers)

    try:
        return hub_checkpoints.push_checkpoint(folder, repo_id, token, path_in_repo.strip("/"))
    except Exception as err:
        raise hub.PushError(f"pushing {folder} to {repo_id}/{path_in_repo} failed ({type(err).__name__}: {err}). "
                            f"Run the same command again.") from err


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.path_in_repo:
            check_checkpoint(args.folder)
        else:
            check_folder(args.folder)
        token = hub.require_token()
        repo_id = hub.prepare_repo(args.repo, token, args.private or None)
        if args.path_in_repo:
            url = push_checkpoint(args.folder, repo_id, token, args.path_in_repo)
        else:
            url = hub.push_folder(args.folder, repo_id, token, args.private or None, args.message)
    except UsageError as err:
        return errors.report(err, errors.EXIT_USAGE)
    except hub.PushError as err:
        return errors.report(err, errors.EXIT_HUB_FAILED)
    print(f"Pushed {args.folder} to {repo_id}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
