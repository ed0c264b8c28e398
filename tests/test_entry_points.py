"""Every command's --help prints its usage and exits 0 (a `%` in a help text once made one a traceback)."""

import importlib

import pytest
from conftest import REPO_ROOT

ENTRY_POINTS = ["finetune.train", "finetune.score", "finetune.push", "finetune.onnx_export", "finetune.space",
                "finetune.example_data", "finetune.pretrain"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_command_prints_its_help(module, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out


def test_the_demo_prints_its_help(capsys):
    import runpy
    import sys

    with pytest.raises(SystemExit) as stopped:
        sys.argv = ["app.py", "--help"]
        runpy.run_path(str(REPO_ROOT / "app.py"), run_name="__main__")
    assert stopped.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out
