"""The README's commands are real: the test command is CI's, and every command line in README.md and
Spaces.md parses."""

import re
import shlex
from pathlib import Path

import pytest

from finetune.train import parse_run

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text()
# The README and the pages it links to: every command in them is parsed below, every file they name exists.
PAGES = ("README.md", "Spaces.md", "docs/reliability.md", "bench/README.md")
DOCS = "\n".join((REPO_ROOT / page).read_text() for page in PAGES)
CODE = "\n".join(re.findall(r"```bash\n(.*?)```", DOCS, flags=re.S))


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1).splitlines()
    setup_and_train, setup_and_test = (line.split("#")[0].strip() for line in first_block[:2])
    assert setup_and_train == "./setup.sh && .venv/bin/accelerate launch finetune/train.py"
    assert setup_and_test == "./setup.sh --dev && .venv/bin/python -m pytest"
    assert setup_and_test in (REPO_ROOT / ".ci" / "run").read_text()


def _train_lines():
    for line in CODE.splitlines():
        if "finetune/train.py" in line and "..." not in line:
            yield line.split("#")[0].strip()


@pytest.fixture(scope="session")
def example_files(tmp_path_factory):
    """What README's `python -m finetune.example_data examples/` writes, for the commands that read it."""
    from finetune.example_data import main as write_examples

    folder = tmp_path_factory.mktemp("readme") / "examples"
    assert write_examples([str(folder)]) == 0
    return folder


@pytest.mark.parametrize("line", list(_train_lines()))
def test_readme_train_command_parses(line, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(REPO_ROOT / "recipes")
    if "examples/" in line:
        (tmp_path / "examples").symlink_to(request.getfixturevalue("example_files"))
    (tmp_path / "reviews.csv").write_text("review,stars\ngood,5\n")
    (tmp_path / "outputs" / "minilm-mlm").mkdir(parents=True)  # what the README's finetune.pretrain line makes
    words = shlex.split(line.replace("[", "").replace("]", ""))
    flags = words[words.index("finetune/train.py") + 1:]
    config = parse_run(flags)
    assert config.training.output_dir


def test_readme_names_files_that_exist():
    for path in re.findall(r"`((?:finetune|bench|recipes|accelerate_configs|tests)/[\w./-]+\.(?:py|yaml|md))`", DOCS):
        assert (REPO_ROOT / path).exists(), path


@pytest.mark.parametrize("page", PAGES)
def test_readme_and_its_pages_link_to_files_that_exist(page):
    folder = (REPO_ROOT / page).parent
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (REPO_ROOT / page).read_text()):
        assert (folder / target).exists(), f"{page} links to {target}"


def test_readme_first_screen_holds_the_two_commands_and_the_map_is_on_the_first_page():
    lines = README.splitlines()
    assert any("./setup.sh && .venv/bin/accelerate launch finetune/train.py" in line for line in lines[:20])
    assert README.index("## Layout") < README.index("## Your own data and models")
    layout = README[README.index("## Layout"):README.index("## Where to go next")]
    mapped = {m.group(1) for m in re.finditer(r"^finetune/(\w+)\.py", layout, flags=re.M)}
    mapped |= {name for line in layout.splitlines() if line.startswith("finetune/")
               for name in re.findall(r"(\w+)\.py", line.split("  ")[0])}
    modules = {p.stem for p in (REPO_ROOT / "finetune").glob("*.py") if p.stem != "__init__"}
    assert mapped == modules  # the map matches the tree: every module, and no module that is gone


def _module_lines(module: str):
    for line in CODE.splitlines():
        if f"-m {module} " in line and "..." not in line:
            yield line.split("#")[0].strip()


@pytest.mark.parametrize("line", list(_module_lines("finetune.score")))
def test_readme_score_command_parses(line, tmp_path, monkeypatch):
    from finetune.score import parse_args

    monkeypatch.chdir(tmp_path)
    words = shlex.split(line)
    flags = words[words.index("finetune.score") + 1:]
    for word in flags:
        (tmp_path / word).parent.mkdir(parents=True, exist_ok=True)
        if word.endswith((".csv", ".jsonl")):
            (tmp_path / word).write_text("text,label\ngood,positive\n")
        elif word.endswith(".xlsx"):
            (tmp_path / word).write_bytes(b"PK\x03\x04")  # parsing checks the name and the flags, not the sheet
    model, args = parse_args(flags)
    assert model and args.split


@pytest.mark.parametrize("line", list(_module_lines("finetune.space")))
def test_readme_space_command_parses(line):
    from finetune.space import parse_args

    words = shlex.split(line)
    args = parse_args(words[words.index("finetune.space") + 1:])
    assert args.space and args.model_id


@pytest.mark.parametrize("line", list(_module_lines("finetune.pretrain")))
def test_readme_pretrain_command_parses(line):
    from finetune.pretrain import parse_args

    words = shlex.split(line)
    model, data, run = parse_args(words[words.index("finetune.pretrain") + 1:])
    assert run.output_dir and run.num_train_epochs > 0
