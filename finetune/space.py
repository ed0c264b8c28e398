"""Create or update a Hugging Face Space that runs this project's demo (app.py) for a model.

    python -m finetune.space --space me/reviews-demo --model_id me/minilm-reviews [--private]

It creates the Space (Gradio SDK) if needed, uploads app.py, the finetune package,
requirements.txt and a README.md whose front matter configures the Space, and sets the
MODEL_ID variable. For a private model, add an HF_TOKEN secret in the Space's settings
(see Spaces.md). The token comes from HF_TOKEN or `hf auth login`.
"""

import argparse
import importlib.metadata
import shutil
import sys
import tempfile
from pathlib import Path

from finetune import hub
from finetune.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACE_FILES = ("app.py", "requirements.txt")
PYTHON_VERSION = "3.11"


def space_readme(space_id: str, model_id: str) -> str:
    title = space_id.split("/")[-1].replace("-", " ").title()
    return f"""---
title: {title}
emoji: 🎬
colorFrom: indigo
colorTo: blue
sdk: gradio
sdk_version: {importlib.metadata.version("gradio")}
python_version: "{PYTHON_VERSION}"
app_file: app.py
pinned: false
models:
- {model_id}
---

# {title}

Review classifier demo for [`{model_id}`](https://huggingface.co/{model_id}): classify one review or a
file of reviews, and see the model's per-epoch training metrics. The model is set by the Space
variable `MODEL_ID`.
"""


def stage_space(folder: Path, space_id: str, model_id: str) -> Path:
    """Lay out the files a Space needs in `folder` (no tests, recipes or outputs)."""
    for name in SPACE_FILES:
        shutil.copy2(REPO_ROOT / name, folder / name)
    shutil.copytree(REPO_ROOT / "finetune", folder / "finetune", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "README.md").write_text(space_readme(space_id, model_id))
    return folder


def deploy_space(space_id: str, model_id: str, token: str, private: bool | None = None,
                 hardware: str | None = None) -> str:
    client = hub.api(token)
    if "/" not in space_id:
        space_id = f"{client.whoami()['name']}/{space_id}"
    hub.ensure_repo(client, space_id, private, "space", space_sdk="gradio", space_hardware=hardware)
    with tempfile.TemporaryDirectory(prefix="space-") as tmp:
        stage_space(Path(tmp), space_id, model_id)
        commit = client.upload_folder(repo_id=space_id, repo_type="space", folder_path=tmp,
                                      commit_message=f"Deploy the review classifier demo for {model_id}")
    client.add_space_variable(space_id, "MODEL_ID", model_id, description="model folder or Hub repo the demo serves")
    return commit.commit_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.space", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", required=True, help="Space repo id, e.g. me/reviews-demo")
    parser.add_argument("--model_id", required=True, help="Hub model repo the Space serves, e.g. me/minilm-reviews")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--hardware", default=None, help="e.g. cpu-basic (the free 2 vCPU / 16 GB tier, default)")
    args = parser.parse_args(argv)
    try:
        token = hub.require_token()
        url = deploy_space(args.space, args.model_id, token, args.private or None, args.hardware)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the Hub said no, or could not be reached: nothing local to lose
        print(f"error: deploying the Space failed ({type(err).__name__}: {err}). Run the same command again.",
              file=sys.stderr)
        return 3
    print(f"Space updated: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
