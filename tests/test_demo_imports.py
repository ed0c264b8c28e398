"""What a Space runs (app.py and the modules it imports) stays clear of the training side: a Space installs
only what the demo imports (finetune/space.py), so a training import there would fail, or pull in datasets,
accelerate and the Trainer for nothing."""

import json
import subprocess
import sys

from conftest import REPO_ROOT

from finetune import space

# Modules of the training side, each with its submodules (finetune/data may be a package).
TRAINING_SIDE = ("finetune.train", "finetune.data", "finetune.search", "finetune.pretrain", "transformers.trainer",
                 "datasets")

# Serve a model as `python app.py` does, answer each kind of request, then list every module imported.
SERVE_AND_LIST_MODULES = """
import json, sys, tempfile
from pathlib import Path

import app
from finetune import agent_tools, attribution, demo_page, inference, run_views, serving  # noqa: F401

for engine in ("auto", "pytorch"):  # the run's ONNX copy, and PyTorch
    served = run_views.load_served_model(sys.argv[1], engine=engine)
    assert served.classifier is not None, served.problem
    app.build_demo(served)
    app.classify(served, "a great film")
    app.explain(served, "a great film")
    reviews = Path(tempfile.mkdtemp()) / "reviews.txt"
    reviews.write_text("a great film\\nan awful film\\n")
    app.classify_batch(served, str(reviews), None, str(reviews.parent / "cache"))
print(json.dumps(sorted(sys.modules)))
"""


def _training_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == side or m.startswith(side + ".") for side in TRAINING_SIDE)]


def test_demo_serves_without_importing_the_training_side(trained_run):
    done = subprocess.run([sys.executable, "-c", SERVE_AND_LIST_MODULES, str(trained_run)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "app" in modules and "finetune.inference" in modules and "onnxruntime" in modules
    assert _training_modules(modules) == []
    # and the Space ships every module of the package that the demo ran
    staged, _ = space.demo_files()
    ran = {m.replace(".", "/") + ".py" for m in modules if m.startswith("finetune.")}
    ran = {path if (REPO_ROOT / path).is_file() else path[:-3] + "/__init__.py" for path in ran}
    assert ran | {"finetune/__init__.py"} <= set(staged)


def test_training_modules_are_recognised_with_their_submodules():
    assert _training_modules(["finetune.data.sources", "finetune.data", "datasets.arrow_dataset",
                              "transformers.trainer", "transformers.trainer_utils", "finetune.dataset_cards",
                              "finetune.run_views"]) == ["finetune.data.sources", "finetune.data",
                                                        "datasets.arrow_dataset", "transformers.trainer"]
