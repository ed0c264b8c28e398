"""The fake Hub answers the real huggingface_hub client the way the Hub does where the project depends on it:
LFS storage, private repos, visibility, and Spaces (secrets, variables, runtime stages)."""

import pytest
from conftest import OTHER_TOKEN as OTHER
from conftest import TOKEN
from huggingface_hub import CommitOperationAdd, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from finetune.hub import api


def test_fake_hub_stores_binary_files_through_lfs_and_serves_them_back(fresh_fake_hub, tmp_path):
    client = api(TOKEN)
    client.create_repo("me/weights")
    weights, notes = bytes(range(256)) * 40, b"plain text notes\n"
    client.create_commit("me/weights", [CommitOperationAdd("model.safetensors", weights),
                                        CommitOperationAdd("notes.md", notes)], commit_message="add")
    repo = fresh_fake_hub.repo("me/weights")
    assert repo.lfs_paths == {"model.safetensors"} and repo.commits[0]["lfs_paths"] == ["model.safetensors"]
    assert [u["size"] for u in fresh_fake_hub.lfs_uploads] == [len(weights)]
    path = hf_hub_download("me/weights", "model.safetensors", token=TOKEN, cache_dir=tmp_path)
    assert open(path, "rb").read() == weights


def test_fake_hub_hides_private_repos_from_other_users_and_refuses_their_writes(fresh_fake_hub):
    api(TOKEN).create_repo("me/secret", private=True)
    for token in (None, OTHER):
        with pytest.raises(RepositoryNotFoundError):
            api(token).repo_info("me/secret")
    api(TOKEN).create_repo("me/open")
    with pytest.raises(HfHubHTTPError) as refused:
        api(OTHER).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="me/open")
    assert refused.value.response.status_code == 403


def test_fake_hub_changes_visibility(fresh_fake_hub):
    client = api(TOKEN)
    client.create_repo("me/flip")
    client.update_repo_settings("me/flip", private=True)
    assert fresh_fake_hub.repo("me/flip").private and client.repo_info("me/flip").private
    client.update_repo_settings("me/flip", private=False)
    assert api(None).repo_info("me/flip").private is False


def test_fake_hub_space_secrets_are_write_only_and_variables_readable(fresh_fake_hub):
    client = api(TOKEN)
    client.create_repo("me/demo", repo_type="space", space_sdk="gradio")
    client.add_space_secret("me/demo", "HF_TOKEN", "hf_value", description="reads the private model")
    client.add_space_variable("me/demo", "MODEL_ID", "me/model")
    space = fresh_fake_hub.repo("me/demo", "space")
    assert space.secrets == {"HF_TOKEN": {"value": "hf_value", "description": "reads the private model"}}
    listed = client.get_space_secrets("me/demo")
    assert set(listed) == {"HF_TOKEN"} and listed["HF_TOKEN"].description == "reads the private model"
    assert client.get_space_variables("me/demo")["MODEL_ID"].value == "me/model"
    client.delete_space_secret("me/demo", "HF_TOKEN")
    client.delete_space_variable("me/demo", "MODEL_ID")
    assert space.secrets == {} and space.variables == {}


def test_fake_hub_space_runtime_steps_through_its_build_stages(fresh_fake_hub):
    client = api(TOKEN)
    client.create_repo("me/app", repo_type="space", space_sdk="gradio")
    assert client.get_space_runtime("me/app").stage == "NO_APP_FILE"
    client.upload_file(path_or_fileobj=b"print('hi')\n", path_in_repo="app.py", repo_id="me/app", repo_type="space")
    assert [client.get_space_runtime("me/app").stage for _ in range(3)] == ["BUILDING", "RUNNING", "RUNNING"]
    assert client.get_space_runtime("me/app").hardware == "cpu-basic"

    fresh_fake_hub.space_build_stages = ["BUILDING", "BUILD_ERROR"]
    client.add_space_variable("me/app", "MODEL_ID", "me/broken")
    assert [client.get_space_runtime("me/app").stage for _ in range(2)] == ["BUILDING", "BUILD_ERROR"]
    assert client.pause_space("me/app").stage == "PAUSED"
