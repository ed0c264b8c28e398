"""Creating and updating a Space with the real huggingface_hub client, against the fake Hub."""

import gradio
import pytest
import yaml
from conftest import FAKE_HUB_PORT
from fake_hub import FakeHub

from finetune.space import main as space_main

TOKEN = "hf_fakeTokenForSpaceTests012345"


@pytest.fixture
def fake_hub(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub(FAKE_HUB_PORT, tokens={TOKEN}).start()
    yield hub
    hub.stop()


def test_space_command_creates_a_gradio_space_with_app_and_model_variable(fake_hub, capsys):
    assert space_main(["--space", "me/reviews-demo", "--model_id", "me/minilm-reviews"]) == 0
    space = fake_hub.repo("me/reviews-demo", repo_type="space")
    assert space.sdk == "gradio"
    assert {"app.py", "requirements.txt", "README.md", "finetune/inference.py", "finetune/artifacts.py"} <= set(space.files)
    assert not [name for name in space.files if name.startswith(("tests/", "outputs/")) or "__pycache__" in name]
    front_matter = yaml.safe_load(space.files["README.md"].decode().split("---")[1])
    assert front_matter["sdk"] == "gradio"
    assert front_matter["sdk_version"] == gradio.__version__
    assert front_matter["app_file"] == "app.py" and front_matter["python_version"] == "3.11"
    assert f"gradio=={gradio.__version__}" in space.files["requirements.txt"].decode()
    assert space.variables == {"MODEL_ID": "me/minilm-reviews"}
    assert "Space updated" in capsys.readouterr().out


def test_space_command_updates_an_existing_space(fake_hub):
    assert space_main(["--space", "me/demo", "--model_id", "me/first"]) == 0
    assert space_main(["--space", "me/demo", "--model_id", "me/second"]) == 0
    space = fake_hub.repo("me/demo", repo_type="space")
    assert len(space.commits) == 2
    assert space.variables["MODEL_ID"] == "me/second"


def test_space_command_without_token_explains_login(fake_hub, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert space_main(["--space", "me/demo", "--model_id", "me/m"]) == 2
    assert "hf auth login" in capsys.readouterr().err
