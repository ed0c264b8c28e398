from pathlib import Path

import pytest
import yaml

from finetune import artifacts, precision
from finetune.config import PROJECT_DEFAULTS, default_output_dir
from finetune.errors import UsageError
from finetune.train import parse_run

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_parse_config_applies_project_defaults():
    config = parse_run([])
    assert config.training.eval_strategy.value == "epoch"
    assert config.training.metric_for_best_model == "f1"
    assert config.training.load_best_model_at_end is True
    assert config.training.average_tokens_across_devices is False
    assert config.training.train_sampling_strategy == "group_by_length"
    assert config.training.per_device_train_batch_size == PROJECT_DEFAULTS["per_device_train_batch_size"]
    assert config.model.model_name_or_path is None and config.data.uses_embedded_data
    assert config.training.output_dir == artifacts.DEFAULT_OUTPUT_DIR  # where the demo looks


def test_parse_config_command_line_wins_over_recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epochs: 7\nlearning_rate: 1.0e-4\nmax_train_samples: 50\n")
    config = parse_run(["--config", str(recipe), "--num_train_epochs", "2"])
    assert config.training.num_train_epochs == 2
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.data.max_train_samples == 50
    assert config.run.config == str(recipe)


def test_parse_config_rejects_unknown_recipe_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epoch: 3\n")
    with pytest.raises(UsageError, match="unknown key.*num_train_epoch"):
        parse_run(["--config", str(recipe)])


def test_parse_config_rejects_missing_recipe():
    with pytest.raises(UsageError, match="--config nowhere.yaml: no such file"):
        parse_run(["--config", "nowhere.yaml"])


@pytest.mark.parametrize("recipe", sorted((REPO_ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses(recipe):
    config = parse_run(["--config", str(recipe)])
    assert config.training.output_dir.startswith("outputs/")


def test_recipe_for_tutorial_matches_the_tutorial():
    config = parse_run(["--config", str(REPO_ROOT / "recipes" / "bert-base-cased-yelp.yaml")])
    assert config.model.model_name_or_path == "google-bert/bert-base-cased"
    assert config.data.dataset_name == "yelp_review_full"
    assert config.data.max_train_samples == 1000 and config.data.max_eval_samples == 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--train_file", "missing.csv"], "--train_file missing.csv: no such file"),
        (["--model_name_or_path", "./no/such/model"], "--model_name_or_path ./no/such/model: no such folder"),
        (["--max_train_samples", "0"], "--max_train_samples 0: must be a positive"),
        (["--validation_split_percentage", "100"], "--validation_split_percentage"),
        (["--empty_text", "keep"], "--empty_text keep"),
        (["--attention_dropout", "1.5"], "--attention_dropout"),
        (["--dataset_name", "yelp_review_full", "--train_file", __file__], "pass one source"),
    ],
)
def test_parse_config_bad_values_name_the_flag(argv, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("/", "/")):
        parse_run(argv)


def test_parse_config_rejects_unsupported_file_type(tmp_path):
    path = tmp_path / "reviews.docx"
    path.write_text("x")
    with pytest.raises(UsageError, match="unsupported file type"):
        parse_run(["--train_file", str(path)])


def test_default_output_dir_names_model_and_data():
    name = default_output_dir("google-bert/bert-base-cased", "yelp_review_full", None)
    assert name == "outputs/bert-base-cased-yelp_review_full"
    assert default_output_dir("/models/tiny/", None, "data/My Reviews.csv") == "outputs/tiny-my-reviews"


def test_parse_config_refuses_a_token_flag_without_repeating_it(tmp_path):
    with pytest.raises(UsageError, match="HF_TOKEN") as refused:
        parse_run(["--hub_token", "hf_secret_value"])
    assert "hf_secret_value" not in str(refused.value)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("hub_token: hf_secret_value\n")
    with pytest.raises(UsageError, match="--hub_token") as refused:
        parse_run(["--config", str(recipe)])
    assert "hf_secret_value" not in str(refused.value)


def test_saved_run_config_keeps_file_names_not_local_paths(tmp_path):
    from finetune import artifacts

    data = tmp_path / "confidential" / "reviews.csv"
    data.parent.mkdir()
    data.write_text("text,label\ngood,pos\n")
    config = parse_run(["--train_file", str(data), "--output_dir", str(tmp_path / "out" / "run")])
    artifacts.write_run_config(tmp_path, config.to_dict())
    saved = yaml.safe_load((tmp_path / artifacts.CONFIG_FILE).read_text())
    assert str(tmp_path) not in str(saved)
    assert saved["data"]["train_file"] == "reviews.csv" and saved["training"]["output_dir"] == "run"


def test_mixed_precision_from_accelerate_launch_reaches_the_card(monkeypatch):
    """`accelerate launch --config_file accelerate_configs/single_gpu.yaml` sets bf16 through the environment."""
    from finetune.report import hyperparameters

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    config = parse_run([])
    assert hyperparameters(config, max_seq_length=128, world_size=1)["mixed_precision"] == "bf16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert hyperparameters(parse_run(["--bf16", "false"]), max_seq_length=128, world_size=1)["mixed_precision"] == "no"
    # Unset on a CPU: the probe in train.py's prepare() decides (tests/test_bf16.py), and the card says which.
    config = parse_run([])
    precision.apply(config.training, True)
    assert hyperparameters(config, max_seq_length=128, world_size=1)["mixed_precision"] == "bf16"


@pytest.mark.parametrize("name", ["single_gpu.yaml", "multi_gpu.yaml", "multi_node.yaml", "cpu_2_processes.yaml"])
def test_accelerate_configs_are_valid_yaml_for_accelerate(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO_ROOT / "accelerate_configs" / name))  # what `accelerate launch` does
    assert config.num_processes >= 1
    if name != "cpu_2_processes.yaml":
        assert config.mixed_precision == "bf16"


def test_default_output_dir_is_where_the_demo_looks_and_score_names_folders_alike():
    from finetune import artifacts
    from finetune.config import default_output_dir, slug

    # artifacts keeps the default run's folder as a constant (the demo imports it, not this module): the same one
    assert default_output_dir(None, None, None) == artifacts.DEFAULT_OUTPUT_DIR
    assert slug("All-MiniLM-L6-v2 / Rotten Tomatoes!") == "all-minilm-l6-v2-rotten-tomatoes"


def test_the_default_recipe_is_the_one_the_quality_suite_chose():
    """README and bench/README.md say the default is bench/quality.py's recipe `previous` with --truncation tail."""
    import importlib.util

    from finetune.config import DataArguments

    spec = importlib.util.spec_from_file_location("quality", REPO_ROOT / "bench" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    flags = quality.RECIPES["previous"]
    chosen = {flags[i].removeprefix("--"): flags[i + 1] for i in range(0, len(flags), 2)}
    assert chosen.pop("truncation") == "head"  # pinned: the suite's rows ran before tail became the default
    assert {name: float(value) for name, value in chosen.items()} == {name: float(PROJECT_DEFAULTS[name]) for name in chosen}
    assert DataArguments().truncation == "tail" and quality.RECIPES["previous_tail"][-1] == "tail"


def test_a_flag_spelt_as_the_start_of_another_is_refused_not_taken_for_it():
    # argparse would read `--num_train_epoch 1` as --num_train_epochs 1 without a word
    with pytest.raises(UsageError, match="num_train_epoch"):
        parse_run(["--num_train_epoch", "1", "--bf16", "false"])
