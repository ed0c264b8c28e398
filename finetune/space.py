"""Create or update a Hugging Face Space that serves a model with this project's demo (app.py).

    python -m finetune.space --space me/reviews-demo --model_id me/minilm-reviews
    READ_TOKEN=hf_... python -m finetune.space --space me/reviews-demo --model_id me/private-model \\
        --space_token_env READ_TOKEN

It creates the Space (Gradio SDK) if needed and uploads what the demo imports, nothing else:
app.py, the modules of the finetune package that app.py reaches through its imports, a
requirements.txt of the packages they import, and `mcp` for gradio's MCP server (pinned as in this
repository's requirements.txt; on CPU hardware, PyTorch's CPU build) and a README.md whose front matter configures the Space.
Files of an earlier deploy that no longer belong are deleted in the same commit. It sets the
variables MODEL_ID and MODEL_REVISION (the model repo's commit now, unless --model_revision says
otherwise: the Space serves that commit until the next deploy) and, with --space_token_env, the
secret HF_TOKEN. Then it waits for the Space to build and start, and prints its stage, its URL or
the build error. The deploying token comes from HF_TOKEN or `hf auth login`.
"""

import argparse
import ast
import importlib.metadata
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from finetune import errors, hub
from finetune.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_FILE = "app.py"
PACKAGE = "finetune"
PYTHON_VERSION = "3.11"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's CPU builds: no CUDA libraries to download
TOKEN_HELP = ("a read-only token (huggingface.co/settings/tokens: a 'Read' token, or a fine-grained one with read "
              "access to the model) is enough, and all a Space should hold")

# finetune/errors.py: the codes every command shares
EXIT_USAGE, EXIT_DEPLOY_FAILED, EXIT_SPACE_FAILED, EXIT_TIMEOUT = (errors.EXIT_USAGE, errors.EXIT_HUB_FAILED,
                                                            errors.EXIT_SPACE_FAILED, errors.EXIT_TIMEOUT)
BUILD_STAGES = {"BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING"}
FAILED_STAGES = {"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE", "PAUSED", "STOPPED", "DELETING"}
# Right after a deploy the Hub may still report the previous version's stage: a final stage counts once a
# build was seen, or once it has held for this many polls (nothing changed, so the Hub rebuilt nothing).
SETTLE_POLLS = 6
# What the demo needs without importing it: gradio's MCP server (on in a Space, finetune/agent_tools.py) imports mcp.
NEEDED_UNIMPORTED = {"mcp"}


# --- what the Space ships: the demo's import closure ---------------------------------------------


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (functions too), as dotted names; `from a import b` gives
    both a and a.b (b may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _package_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def demo_files(root: Path = REPO_ROOT) -> tuple[list[str], set[str]]:
    """The files the demo runs (app.py and the package modules it reaches, with their packages' __init__),
    as paths relative to `root`, and the top-level names of the other modules they import."""
    todo, seen, outside = [root / APP_FILE], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top != PACKAGE:
                outside.add(top)
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                found = _package_file(root, ".".join(parts[:depth]))
                if found is not None:
                    todo.append(found)
    return sorted(str(p.relative_to(root)) for p in seen), outside - set(sys.stdlib_module_names) - {"__future__"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dependencies(distribution: str) -> set[str]:
    """A distribution's installed requirements (no extras), recursively, normalized names."""
    from packaging.requirements import Requirement

    found, todo = set(), [distribution]
    while todo:
        name = todo.pop()
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = _normalize(requirement.name)
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def space_requirements(imported: set[str], requirements_text: str, cpu: bool) -> str:
    """requirements.txt for the Space: the lines of the project's requirements.txt that pin a package the
    demo imports, or one those depend on. Every import must be installed by them. On CPU, torch's CPU build."""
    from packaging.requirements import Requirement

    pinned = {}
    for line in requirements_text.splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec and not spec.startswith("-"):
            pinned[_normalize(Requirement(spec).name)] = spec
    modules = importlib.metadata.packages_distributions()
    distributions = {module: {_normalize(d) for d in modules.get(module, [module])} for module in imported}
    direct = {d for found in distributions.values() for d in found if d in pinned}
    installed = direct | {dep for name in direct for dep in _dependencies(name)}  # what pip brings along
    uncovered = sorted(module for module, found in distributions.items() if not found & installed)
    if uncovered:
        raise UsageError(f"the demo imports {', '.join(uncovered)}, which requirements.txt does not pin (nor does "
                         "any package it pins depend on it): add it there, so that the Space installs it.")
    lines = [pinned[name] for name in sorted(installed & set(pinned))]
    header = ["# Written by `python -m finetune.space`: what the demo imports, pinned as in the project's",
              "# requirements.txt (training needs more)."]
    if cpu and "torch" in installed & set(pinned):
        header += ["# CPU hardware: PyTorch's CPU build, without the CUDA libraries of the default wheel.",
                   f"--extra-index-url {TORCH_CPU_INDEX}"]
        lines = [_cpu_torch(line) if _normalize(Requirement(line).name) == "torch" else line for line in lines]
    return "\n".join(header + lines) + "\n"


def _cpu_torch(line: str) -> str:
    match = re.fullmatch(r"torch\s*==\s*([\w.]+)", line)
    return f"torch=={match.group(1)}+cpu" if match else line


def is_cpu_hardware(hardware: str | None) -> bool:
    return hardware is None or hardware.startswith("cpu")


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
app_file: {APP_FILE}
pinned: false
models:
- {model_id}
---

# {title}

Review classifier demo for [`{model_id}`](https://huggingface.co/{model_id}): classify one review or a
file of reviews, and see how the model trained, how it scored and where it is most confidently wrong.
The Space variables `MODEL_ID` and `MODEL_REVISION` say which model and which of its commits it serves.
"""


def stage_space(folder: Path, space_id: str, model_id: str, hardware: str | None = None,
                root: Path = REPO_ROOT) -> list[str]:
    """Write the Space's files into `folder`; return their paths. Nothing else of the repository goes."""
    files, imported = demo_files(root)
    for name in files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((root / name).read_bytes())
    requirements = space_requirements(imported | NEEDED_UNIMPORTED, (root / "requirements.txt").read_text(),
                                      is_cpu_hardware(hardware))
    (folder / "requirements.txt").write_text(requirements)
    (folder / "README.md").write_text(space_readme(space_id, model_id))
    return sorted([*files, "requirements.txt", "README.md"])


# --- the deploy -----------------------------------------------------------------------------------


def read_space_token(variable: str | None) -> str | None:
    """The token for the Space's HF_TOKEN secret, from the environment variable the user names: never from
    the command line (visible to `ps`, kept in shell history). Its value is never printed."""
    if variable is None:
        return None
    if variable.startswith("hf_") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise UsageError(
            "--space_token_env takes the NAME of an environment variable that holds the token (e.g. READ_TOKEN), "
            "not a token: a token on the command line is visible to every user of this machine and stays in your "
            "shell history. If you typed a real token, revoke it at https://huggingface.co/settings/tokens."
        )
    token = os.environ.get(variable, "").strip()
    if not token:
        raise UsageError(f"--space_token_env {variable}: the environment variable {variable} is not set (or is empty). "
                         f"export {variable}=hf_... first; {TOKEN_HELP}.")
    return token


@dataclass
class ModelCheck:
    commit: str  # the model repo's commit at the revision asked for
    private: bool


def check_model(model_id: str, revision: str | None, space_token: str | None, token: str) -> ModelCheck:
    """Can the Space read the model with the token it will hold (or none)? Which commit is it at? A Space
    that cannot read its model would only fail after its build: say so now, and what to pass."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    where = f"--model_id {model_id}" + (f" --model_revision {revision}" if revision else "")
    try:
        info = hub.api(space_token or False).model_info(model_id, revision=revision)  # False: anonymous
        return ModelCheck(info.sha, bool(info.private))
    except RevisionNotFoundError as err:
        raise UsageError(f"{where}: the model repo has no such branch, tag or commit.") from err
    except RepositoryNotFoundError:
        pass
    try:
        hub.api(token).model_info(model_id, revision=revision)
    except RepositoryNotFoundError as err:
        raise UsageError(f"{where}: no such model repo, or your token cannot see it. Push the model first "
                         "(`python -m finetune.push`).") from err
    if space_token:
        raise UsageError(f"{where}: the token of --space_token_env cannot read this private model. Give it read "
                         "access to the model's repo (or its owner's).")
    raise UsageError(f"{where} is private: the Space can read it only with a token. Export a read token in a "
                     "variable of your choice and name it: --space_token_env READ_TOKEN (stored as the Space's "
                     f"secret HF_TOKEN); {TOKEN_HELP}.")


def deploy_space(space_id: str, model_id: str, token: str, private: bool | None = None,
                 hardware: str | None = None, model_revision: str | None = None,
                 space_token: str | None = None) -> str:
    """Settings first (secret, variables), then one commit of the staged files, whose build then has
    them all; files of earlier deploys that are not staged now are deleted in that commit."""
    client = hub.api(token)
    hub.ensure_repo(client, space_id, private, "space", space_sdk="gradio", space_hardware=hardware)
    if space_token:
        client.add_space_secret(space_id, "HF_TOKEN", space_token,
                                description="read token for the model (python -m finetune.space --space_token_env)")
    client.add_space_variable(space_id, "MODEL_ID", model_id, description="Hub model repo the demo serves")
    if model_revision:
        client.add_space_variable(space_id, "MODEL_REVISION", model_revision,
                                  description="the model's commit (or branch/tag) the demo serves")
    with tempfile.TemporaryDirectory(prefix="space-") as tmp:
        stage_space(Path(tmp), space_id, model_id, hardware)
        # delete_patterns="*": every file of the Space that is not staged now goes (.gitattributes stays)
        commit = client.upload_folder(repo_id=space_id, repo_type="space", folder_path=tmp, delete_patterns="*",
                                      commit_message=f"Deploy the review classifier demo for {model_id}"
                                      + (f" at {model_revision[:12]}" if model_revision else ""))
    return commit.commit_url


def wait_for_space(space_id: str, token: str, timeout: float, poll_seconds: float, out=print) -> int:
    """Follow the Space's runtime stage until it runs, fails or `timeout` passes; print each stage."""
    client = hub.api(token)
    page = f"{client.endpoint}/spaces/{space_id}"
    start, last, built, held = time.monotonic(), None, False, 0
    out(f"Waiting for the Space to build and start (at most {timeout:.0f} s; stages: BUILDING, APP_STARTING, "
        "RUNNING)...")
    while True:
        runtime = client.get_space_runtime(space_id)
        stage, elapsed = str(runtime.stage), time.monotonic() - start
        if stage != last:
            out(f"  {elapsed:6.0f} s  {stage}")
            last, held = stage, 0
        held += 1
        if stage in BUILD_STAGES:
            built = True
        elif stage == "RUNNING" and (built or held >= SETTLE_POLLS):
            domains = [d.get("domain") for d in runtime.raw.get("domains") or [] if d.get("domain")]
            out(f"The Space is running: {page}" + (f" (app: https://{domains[0]})" if domains else ""))
            return 0
        elif stage in FAILED_STAGES and (built or held >= SETTLE_POLLS):
            message = runtime.raw.get("errorMessage") or {
                "NO_APP_FILE": "the Space has no app file", "PAUSED": "the Space is paused: restart it in its settings",
                "STOPPED": "the Space is stopped: restart it in its settings"}.get(stage, "no message")
            out(f"The Space did not start: {stage}: {message}\n  Logs: {page}?logs=build")
            return EXIT_SPACE_FAILED
        if elapsed >= timeout:
            out(f"The Space is still {stage} after {elapsed:.0f} s; it may yet start. Watch it at {page}")
            return EXIT_TIMEOUT
        time.sleep(poll_seconds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m finetune.space", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--space", default=None, help="Space repo id, e.g. me/reviews-demo (required unless --stage_dir)")
    parser.add_argument("--model_id", required=True, help="Hub model repo the Space serves, e.g. me/minilm-reviews")
    parser.add_argument("--model_revision", default=None,
                        help="branch, tag or commit of the model to serve (variable MODEL_REVISION). Default: the "
                        "repo's current commit, so that the Space keeps serving it when the repo moves on; deploy "
                        "again to move it. `main` makes the Space follow the branch at each restart.")
    parser.add_argument("--space_token_env", default=None, metavar="VARIABLE",
                        help="for a private model: the NAME of an environment variable holding a token, stored as "
                        f"the Space's secret HF_TOKEN (a secret, never a variable or a file); {TOKEN_HELP}")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--hardware", default=None,
                        help="e.g. cpu-basic (the free 2 vCPU / 16 GB tier, default) or t4-small; CPU hardware gets "
                        "PyTorch's CPU build")
    parser.add_argument("--timeout", type=float, default=1200,
                        help="seconds to wait for the Space to build and start (0: do not wait)")
    parser.add_argument("--poll_seconds", type=float, default=5, help="how often to ask the Hub for the stage")
    parser.add_argument("--stage_dir", default=None, metavar="DIR",
                        help="write the Space's files into DIR (new or empty) and stop: no Hub, no token. Look at "
                        "them, or run them (`cd DIR && MODEL_ID=... python app.py`), before you deploy")
    args = parser.parse_args(argv)
    if args.space is None and args.stage_dir is None:
        parser.error("--space is required (the Space repo id, e.g. me/reviews-demo), unless --stage_dir DIR only "
                     "writes the files")
    if args.timeout < 0 or args.poll_seconds <= 0:
        parser.error("--timeout must be 0 or more and --poll_seconds more than 0")
    return args


def stage_only(folder: Path, space_id: str, model_id: str, hardware: str | None) -> int:
    """--stage_dir: the Space's files in a folder of the user's, and how to run them; nothing is uploaded."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        return errors.report(f"--stage_dir {folder}: {'not a folder' if not folder.is_dir() else 'the folder is not empty'}; "
                             "name a new or empty folder (nothing in it is overwritten).", EXIT_USAGE)
    folder.mkdir(parents=True, exist_ok=True)
    files = stage_space(folder, space_id, model_id, hardware)
    print(f"Staged the Space's {len(files)} files in {folder}:\n" + "\n".join(f"  {name}" for name in files))
    print(f"Run them as the Space will:\n  cd {folder} && MODEL_ID={model_id} python app.py\n"
          "Deploy them with this command again, without --stage_dir (it stages the same files).")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage_dir is not None:
        return stage_only(Path(args.stage_dir).expanduser(), args.space or "me/reviews-demo", args.model_id,
                          args.hardware)
    try:
        token = hub.require_token(purpose="python -m finetune.space")
        space_token = read_space_token(args.space_token_env)
        space_id = hub.full_repo_id(args.space, client=hub.api(token))
        model = check_model(args.model_id, args.model_revision, space_token, token)
        revision = args.model_revision or model.commit
        url = deploy_space(space_id, args.model_id, token, args.private or None, args.hardware, revision, space_token)
    except UsageError as err:
        return errors.report(err, EXIT_USAGE)
    except Exception as err:  # the Hub said no, or could not be reached: nothing local to lose
        return errors.report(f"deploying the Space failed ({type(err).__name__}: {err}). Run the same command again.",
                             EXIT_DEPLOY_FAILED)
    print(f"Space updated: {url}\n  serves {args.model_id} at {revision}")
    if model.private and not args.private:
        print("  note: the model is private and the Space public: anyone can query the model through it "
              "(not download it). Add --private to keep the Space to yourself.")
    if args.timeout == 0:
        return 0
    try:
        return wait_for_space(space_id, token, args.timeout, args.poll_seconds)
    except Exception as err:
        return errors.report(f"could not follow the Space's build ({type(err).__name__}: {err}); see {space_id}'s page.",
                             EXIT_DEPLOY_FAILED)


if __name__ == "__main__":
    sys.exit(main())
