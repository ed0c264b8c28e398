"""Push a finished model folder (weights, tokenizer, card, metrics) to the Hugging Face Hub.

    python -m finetune.push outputs/all-minilm-l6-v2-rotten-tomatoes --repo me/minilm-reviews [--private]

The token comes from HF_TOKEN or `hf auth login`. Checkpoints, optimizer states and
pickles are not pushed. Pushing again updates the repo with a new commit.
"""

import argparse
import sys
from pathlib import Path

from finetune import artifacts, hub
from finetune.errors import UsageError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m finetune.push", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a model folder written by finetune/train.py")
    parser.add_argument("--repo", required=True, help="Hub repo id, e.g. me/minilm-reviews (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--message", help="commit message (default: names the folder and its test score)")
    return parser.parse_args(argv)


def check_folder(folder: Path) -> None:
    missing = [name for name in ("config.json", artifacts.CARD_FILE, artifacts.RESULTS_FILE) if not (folder / name).exists()]
    if not folder.is_dir() or not artifacts.holds_model(folder) or missing:
        raise UsageError(
            f"{folder} is not a finished model folder (missing: {', '.join(missing) or 'model weights'}). "
            "Train first with `accelerate launch finetune/train.py`, or pass the run's --output_dir."
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_folder(args.folder)
        token = hub.require_token()
        repo_id = hub.prepare_repo(args.repo, token, args.private or None)
        url = hub.push_folder(args.folder, repo_id, token, args.private or None, args.message)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except hub.PushError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    print(f"Pushed {args.folder} to {repo_id}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
