"""The files a run leaves next to its model, and the code that reads and writes them.

The demo imports this module to show a run, so it imports nothing heavy.
"""

import fnmatch
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from finetune.errors import UsageError

logger = logging.getLogger(__name__)

HISTORY_FILE = "epoch_history.json"  # one row per epoch: finetune/tasks.py Task.history_columns, then the rest
RESULTS_FILE = "results.json"  # final validation/test scores, confusion matrices, data sizes
CONFIG_FILE = "run_config.yaml"  # the resolved configuration of the run, written before training starts
CARD_FILE = "README.md"  # the model card
SEARCH_FILE = "hp_search.json"  # the hyperparameter search's trials, when the run searched
AUDIT_FILE = "audit.json"  # the data audit before training: duplicates, leaked reviews, label conflicts (finetune/audit.py)
SUSPECTS_FILE = "suspect_labels.csv"  # reviews whose label is probably wrong, most suspect first (finetune/suspects.py)
RUN_FILES = (HISTORY_FILE, RESULTS_FILE, CONFIG_FILE, CARD_FILE, SEARCH_FILE, AUDIT_FILE, SUSPECTS_FILE)
PREDICTIONS_PATTERN = "predictions_*.csv"  # splits whose labels are hidden: predicted, not scored


def predictions_file(split: str) -> str:
    return PREDICTIONS_PATTERN.replace("*", split)


# A model is its weights: a folder with only a config.json (a project's own, say) holds none.
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

# The model's ONNX copy (finetune/onnx_export.py), where transformers.js and Optimum look for it.
ONNX_DIR = "onnx"
ONNX_MODEL_FILE = "onnx/model.onnx"  # fp32
ONNX_QUANTIZED_FILE = "onnx/model_quantized.onnx"  # int8
ONNX_FILES = (ONNX_MODEL_FILE, ONNX_QUANTIZED_FILE)

# TensorBoard's event files (--report_to tensorboard): transformers writes runs/<date>_<host>/events.out.tfevents.*,
# one folder per training run. Pushed with the model: the Hub shows them in its Training metrics tab.
TENSORBOARD_DIR = "runs"
TENSORBOARD_PATTERN = "runs/*/events.out.tfevents.*"

# Everything a run writes that belongs to the model, and so the only files a push uploads (an
# allow-list: a folder may also hold a virtual environment, .env or credentials, which must stay home).
PUSHED_PATTERNS = (
    *RUN_FILES,
    PREDICTIONS_PATTERN,
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    # tokenizers of the BERT family and its relatives (WordPiece, BPE, SentencePiece)
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    # In a subfolder: exact paths, and nothing else of that folder (hub.pushed_files)
    *ONNX_FILES,
)
# What a run writes that stays local: checkpoints hold optimizer states, training_args.bin is a
# pickle of every setting; of runs/, only the event files (TENSORBOARD_PATTERN) are pushed.
PREVIOUS_RUN_DIR = "previous-run"  # an overwritten run waits here until the new run has saved its model
LOCAL_ONLY_PATTERNS = ("checkpoint-*", "training_args.bin", "runs", "pytorch_model.bin", PREVIOUS_RUN_DIR)
TEMPORARY_SUFFIX = ".partial"  # atomic writes go through NAME.partial, then a rename
# `--resume_from_checkpoint hub` (the repo of --hub_model_id) or `hub:owner/name`: the last checkpoint
# pushed there with --hub_strategy checkpoint, downloaded into the output folder (finetune/hub_checkpoints.py).
HUB_RESUME = "hub"

# Where `accelerate launch finetune/train.py` (no flags) writes, and where the demo looks by default.
DEFAULT_OUTPUT_DIR = "outputs/all-minilm-l6-v2-rotten-tomatoes"


# --- writing: every file lands whole or not at all ------------------------------------------------


def write_text(path: Path, text: str) -> Path:
    """Write through a temporary file and a rename, so a crash never leaves a half-written file."""
    path = Path(path)
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def write_json(folder: Path, name: str, payload: Any) -> Path:
    return write_text(Path(folder) / name, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_yaml(folder: Path, name: str, payload: Any) -> Path:
    return write_text(Path(folder) / name, yaml.safe_dump(payload, sort_keys=False, allow_unicode=True))


def read_json(folder: Path, name: str) -> Any:
    return json.loads((Path(folder) / name).read_text())


def update_json(folder: Path, name: str, **keys: Any) -> Path:
    """Set top-level keys of a JSON object file, atomically."""
    return write_json(folder, name, {**read_json(folder, name), **keys})


# --- what a folder holds --------------------------------------------------------------------------


def write_run_config(folder: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """run_config.yaml, as published with the model: every local path reduced to its last part."""
    public = {name: {key: public_value(value) for key, value in values.items()} for name, values in sections.items()}
    return write_yaml(folder, CONFIG_FILE, public)


def public_value(value: Any) -> Any:
    """A local path becomes its file or folder name (`/home/me/private/reviews.csv` -> `reviews.csv`): the run
    files are published with the model, and a reader needs the name, not where it lay on your disk."""
    if isinstance(value, str) and is_local_path(value):
        return Path(value.rstrip("/")).name or value
    return value


def is_local_path(value: str) -> bool:
    """The one rule for "a path on this machine": what the run files publish of a value (its last part only),
    and whether a model name is a folder or a Hub id. A Hub id is `name` or `owner/name`; anything else
    (./x, ../x, /x, ~/x, a/b/c), or a name that exists here, is a path."""
    if not value or "\n" in value or "://" in value:
        return False
    return value.startswith((".", "/", "~")) or value.count("/") > 1 or Path(value).expanduser().exists()


def holds_model(folder: Path) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in MODEL_FILES)


def is_pushed(name: str) -> bool:
    """Whether a top-level entry of a run folder is one a push uploads."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PUSHED_PATTERNS)


def tensorboard_files(folder: Path) -> list[str]:
    """The TensorBoard event files of a run folder, as paths relative to it."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob(TENSORBOARD_PATTERN) if p.is_file())


def tidy_tensorboard_logs(folder: Path, host: str | None = None) -> list[str]:
    """Take this machine's name out of the TensorBoard folder and file names (runs/Dec07_10-00-00_HOST/
    events.out.tfevents.TIME.HOST.PID.N): they are published with the model, and TensorBoard reads any
    *tfevents* file. Returns the event files, relative to `folder`."""
    import socket

    host = host or socket.gethostname()
    runs = Path(folder) / TENSORBOARD_DIR
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:
        for event_file in run.glob(f"events.out.tfevents.*.{host}.*"):
            event_file.rename(event_file.with_name(event_file.name.replace(f".{host}.", ".", 1)))
        if run.name.endswith(f"_{host}") and not run.with_name(run.name.removesuffix(f"_{host}")).exists():
            run.rename(run.with_name(run.name.removesuffix(f"_{host}")))
    return tensorboard_files(folder)


def is_hub_resume(resume: str | None) -> bool:
    return resume is not None and (resume == HUB_RESUME or resume.startswith(HUB_RESUME + ":"))


def is_run_output(name: str) -> bool:
    """Whether a top-level entry of a folder is something a run writes."""
    return (is_pushed(name) or any(fnmatch.fnmatchcase(name, p) for p in LOCAL_ONLY_PATTERNS)
            or name.endswith(TEMPORARY_SUFFIX) or name == ONNX_DIR)


def foreign_entries(folder: Path) -> list[str]:
    """Entries of `folder` that no run writes (a README.md counts only beside a run's own files)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    foreign = [name for name in names if not is_run_output(name)]
    made_by_a_run = holds_model(folder) or CONFIG_FILE in names or any(n.startswith("checkpoint-") for n in names)
    if not made_by_a_run:  # e.g. a project folder with its own README.md and config.json
        foreign = names
    return foreign


def checkpoints(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )


def is_complete_checkpoint(checkpoint: Path) -> bool:
    """The Trainer writes a checkpoint in place and trainer_state.json last: a kill during a save
    leaves a folder without it (or with it cut short), and no weights load from such a folder."""
    try:
        json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return holds_model(checkpoint)


# --- claiming an output folder before training ----------------------------------------------------


def check_output_dir(folder: Path, resume: str | None, overwrite: bool) -> str | None:
    """Decide what a run may do with its output folder; return the checkpoint to resume from.

    Only checks: nothing is deleted here (that waits until every pre-training check has passed,
    see set_aside_previous_run). A folder with files no run writes is refused whatever the flags say,
    and another run's model or checkpoints are refused unless the user asks to resume or overwrite.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output_dir {folder} is a file. Pass a folder (a new one is created).")
    foreign = foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise UsageError(
            f"--output_dir {folder} holds files that a training run does not write ({shown}). A run writes "
            "its model card (README.md) and files there, and a push uploads them: pass a new or empty folder, "
            "e.g. --output_dir outputs/my-run."
        )
    if is_hub_resume(resume):
        return resume  # downloaded later, by the main process alone (hub_checkpoints.download_checkpoint)
    if resume is not None:
        return resolve_resume(folder, resume)
    if (holds_model(folder) or checkpoints(folder)) and not overwrite:
        raise UsageError(
            f"--output_dir {folder} already holds a model or checkpoints from another run. Pass "
            "--resume_from_checkpoint true to continue it, --overwrite_output_dir to replace it, or "
            "another --output_dir."
        )
    return None


def resolve_resume(folder: Path, resume: str) -> str:
    if resume.lower() != "true":
        if not is_complete_checkpoint(Path(resume)):
            raise UsageError(
                f"--resume_from_checkpoint {resume}: not a complete checkpoint folder (no readable "
                f"trainer_state.json or no weights). Pass a checkpoint-* folder, or true for the last complete "
                f"one in {folder}."
            )
        return resume
    found = checkpoints(folder)
    complete = [c for c in found if is_complete_checkpoint(c)]
    if not complete:
        what = f"only incomplete ones ({', '.join(c.name for c in found)}: a save was cut short)" if found else ""
        raise UsageError(
            f"--resume_from_checkpoint true: no checkpoint-* folder in {folder} that can be resumed{what and ', '}"
            f"{what}. Pass the path of a checkpoint or the --output_dir of the run to resume, or start again "
            "with --overwrite_output_dir instead of --resume_from_checkpoint."
        )
    skipped = [c.name for c in found if int(c.name.split("-")[-1]) > int(complete[-1].name.split("-")[-1])]
    if skipped:
        logger.warning("skipping %s: incomplete (the run was stopped while saving it); resuming from %s",
                       ", ".join(skipped), complete[-1].name)
    return str(complete[-1])


def set_aside_previous_run(folder: Path) -> list[str]:
    """Move an earlier run's outputs into previous-run/ (after every check has passed), so that the
    folder never mixes two runs and the earlier model survives until the new one is saved (see
    drop_previous_run). Returns what was moved. A previous-run/ left by a run that died is kept
    when the folder holds no finished model (it then holds that dead run's partial files, dropped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    aside = folder / PREVIOUS_RUN_DIR
    entries = [e for e in sorted(folder.iterdir()) if is_run_output(e.name) and e.name != PREVIOUS_RUN_DIR]
    if aside.exists() and not holds_model(folder):
        for entry in entries:
            _remove(entry)
        return []
    _remove(aside)
    aside.mkdir()
    for entry in entries:
        entry.rename(aside / entry.name)
    return [e.name for e in entries]


def drop_previous_run(folder: Path) -> None:
    _remove(Path(folder) / PREVIOUS_RUN_DIR)


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def fetch_run_files(model_ref: str, token: str | None = None, names: tuple[str, ...] = RUN_FILES,
                    revision: str | None = None) -> dict[str, Path | None]:
    """Local paths of a run's files (`names`, default RUN_FILES), from a model folder or downloaded from a
    Hub repo at `revision` (None: main).

    A file the run does not have maps to None.
    """
    folder = Path(model_ref).expanduser()
    if folder.is_dir():
        return {name: (folder / name if (folder / name).is_file() else None) for name in names}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found: dict[str, Path | None] = {}
    for name in names:
        try:
            found[name] = Path(hf_hub_download(model_ref, name, token=token, revision=revision))
        except EntryNotFoundError:
            found[name] = None
    return found
