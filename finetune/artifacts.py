"""The files a run leaves next to its model, and the code that reads and writes them.

The demo imports this module to show a run, so it imports nothing heavy.
"""

import json
import shutil
from pathlib import Path
from typing import Any

from finetune.errors import UsageError

HISTORY_FILE = "epoch_history.json"  # one row per epoch
RESULTS_FILE = "results.json"  # final validation/test scores, confusion matrices, data sizes
CONFIG_FILE = "run_config.yaml"  # the resolved configuration of the run
CARD_FILE = "README.md"  # the model card
RUN_FILES = (HISTORY_FILE, RESULTS_FILE, CONFIG_FILE, CARD_FILE)

# Files in an output folder that are not the model: never pushed (checkpoints hold optimizer
# states; training_args.bin is a pickle of every setting).
NOT_PUSHED = ("checkpoint-*", "checkpoint-*/**", "runs/**", "*.bin", "*.pt", "*.pth", ".cache/**", "**/.cache/**")

MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")

# Where `accelerate launch finetune/train.py` (no flags) writes, and where the demo looks by default.
DEFAULT_OUTPUT_DIR = "outputs/all-minilm-l6-v2-rotten-tomatoes"


def write_json(folder: Path, name: str, payload: Any) -> Path:
    path = Path(folder) / name
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path


def read_json(folder: Path, name: str) -> Any:
    return json.loads((Path(folder) / name).read_text())


def holds_model(folder: Path) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in MODEL_FILES)


def checkpoints(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )


def claim_output_dir(folder: Path, resume: str | None, overwrite: bool) -> str | None:
    """Decide what to do with an output folder before training; return the checkpoint to resume from.

    A folder that holds another run's model or checkpoints is refused unless the user asks to
    resume it or to overwrite it: nothing trained is lost by accident.
    """
    folder = Path(folder)
    found = checkpoints(folder)
    if resume is not None:
        if resume.lower() == "true":
            if not found:
                raise UsageError(
                    f"--resume_from_checkpoint true: no checkpoint-* folder in {folder}. Pass the path of a "
                    "checkpoint, or the --output_dir of the run to resume."
                )
            return str(found[-1])
        if not (Path(resume) / "trainer_state.json").is_file():
            raise UsageError(
                f"--resume_from_checkpoint {resume}: not a checkpoint folder (no trainer_state.json). Pass a "
                f"checkpoint-* folder, or true for the last one in {folder}."
            )
        return resume
    if holds_model(folder) or found:
        if not overwrite:
            raise UsageError(
                f"--output_dir {folder} already holds a model or checkpoints from another run. Pass "
                "--resume_from_checkpoint true to continue it, --overwrite_output_dir to replace it, or "
                "another --output_dir."
            )
        for checkpoint in found:  # a new run's checkpoint-N must not mix with the old run's
            shutil.rmtree(checkpoint, ignore_errors=True)  # every launched process gets here
    return None


def fetch_run_files(model_ref: str, token: str | None = None) -> dict[str, Path | None]:
    """Local paths of a run's files (RUN_FILES), from a model folder or downloaded from a Hub repo.

    A file the run does not have maps to None.
    """
    folder = Path(model_ref).expanduser()
    if folder.is_dir():
        return {name: (folder / name if (folder / name).is_file() else None) for name in RUN_FILES}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found: dict[str, Path | None] = {}
    for name in RUN_FILES:
        try:
            found[name] = Path(hf_hub_download(model_ref, name, token=token))
        except EntryNotFoundError:
            found[name] = None
    return found
