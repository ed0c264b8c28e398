"""Issue 25's recipe levers: frozen word embeddings (a faster step) and fewer epochs on larger data (fewer steps)."""

import json

import torch
from conftest import build_tiny, make_reviews, tiny_run_args, write_csv
from safetensors.torch import load_file

from finetune import artifacts
from finetune.config import FEWER_EPOCHS, FEWER_EPOCHS_FROM, PROJECT_DEFAULTS
from finetune.modeling import load_pretrained_config
from finetune.train import apply_family, main, parse_run, plan_epochs

WORDS = "embeddings.word_embeddings.weight"


def _weights(folder) -> dict[str, torch.Tensor]:
    """The encoder's weights by name without the `bert.` prefix (the pretrained folder holds a bare BertModel)."""
    return {name.removeprefix("bert."): tensor for name, tensor in load_file(str(folder / "model.safetensors")).items()}


def test_frozen_word_embeddings_keep_their_pretrained_values_while_the_rest_trains(tiny_bert, review_files, tmp_path):
    frozen, trained = tmp_path / "frozen", tmp_path / "trained"
    assert main(tiny_run_args(tiny_bert, review_files, frozen, "--freeze_word_embeddings", "true")) == 0
    assert main(tiny_run_args(tiny_bert, review_files, trained, "--freeze_word_embeddings", "false")) == 0
    pretrained, after_frozen, after_trained = _weights(tiny_bert), _weights(frozen), _weights(trained)
    assert torch.equal(after_frozen[WORDS], pretrained[WORDS])
    assert not torch.equal(after_trained[WORDS], pretrained[WORDS])  # the same run, unfrozen, moves them
    layer = "encoder.layer.0.attention.self.query.weight"
    for after in (after_frozen, after_trained):  # the encoder trains either way
        assert not torch.equal(after[layer], pretrained[layer])
        assert not torch.equal(after["embeddings.position_embeddings.weight"],
                               pretrained["embeddings.position_embeddings.weight"])
    # no optimizer state for the frozen matrix: one tensor fewer in the checkpoint's AdamW state
    states = {}
    for name, folder in (("frozen", frozen), ("trained", trained)):
        checkpoint = artifacts.checkpoints(folder)[-1]
        states[name] = len(torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"])
    assert states["frozen"] == states["trained"] - 1
    card = (frozen / "README.md").read_text()
    assert "- word_embeddings: frozen" in card
    assert "- word_embeddings: trained" in (trained / "README.md").read_text()


def _config(tiny_bert, tmp_path, *flags):
    config = parse_run(["--model_name_or_path", str(tiny_bert), "--output_dir", str(tmp_path / "out"), *flags])
    apply_family(config, load_pretrained_config(config.model))
    return config


def test_the_default_epochs_drop_from_a_training_size_on_and_say_so(tiny_bert, tmp_path):
    small = _config(tiny_bert, tmp_path)
    plan_epochs(small, FEWER_EPOCHS_FROM - 1)
    assert small.training.num_train_epochs == PROJECT_DEFAULTS["num_train_epochs"] and small.epochs_rule == ""
    large = _config(tiny_bert, tmp_path)
    plan_epochs(large, FEWER_EPOCHS_FROM)
    assert large.training.num_train_epochs == FEWER_EPOCHS
    assert f"{FEWER_EPOCHS_FROM:,} training reviews" in large.epochs_rule


def test_epochs_given_by_the_user_or_a_recipe_file_are_kept_on_any_size(tiny_bert, tmp_path):
    given = _config(tiny_bert, tmp_path, "--num_train_epochs", "3")
    plan_epochs(given, 10 * FEWER_EPOCHS_FROM)
    assert (given.training.num_train_epochs, given.epochs_rule) == (3, "")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epochs: 4\n")
    from_file = _config(tiny_bert, tmp_path, "--config", str(recipe))
    plan_epochs(from_file, 10 * FEWER_EPOCHS_FROM)
    assert (from_file.training.num_train_epochs, from_file.epochs_rule) == (4, "")
    steps = _config(tiny_bert, tmp_path, "--max_steps", "50")
    plan_epochs(steps, 10 * FEWER_EPOCHS_FROM)
    assert steps.epochs_rule == ""


def test_a_model_familys_epochs_are_not_replaced_by_the_size_rule(tmp_path):
    config = _config(build_tiny("modernbert", tmp_path / "modernbert"), tmp_path)
    assert "num_train_epochs" in config.family_recipe
    plan_epochs(config, 10 * FEWER_EPOCHS_FROM)
    assert config.epochs_rule == ""


def test_a_run_on_enough_reviews_trains_the_fewer_epochs_and_its_files_say_why(tiny_bert, tmp_path, monkeypatch):
    """The whole path: the rule's epochs reach the Trainer, the history, run_config.yaml and the card."""
    import finetune.train as train

    monkeypatch.setattr(train, "FEWER_EPOCHS_FROM", 96)  # the tiny training file's size: a run of seconds
    files = {"train": write_csv(tmp_path / "train.csv", make_reviews(96, seed=1)),
             "validation": write_csv(tmp_path / "validation.csv", make_reviews(32, seed=2))}
    args = tiny_run_args(tiny_bert, files, tmp_path / "out")
    at = args.index("--num_train_epochs")
    del args[at:at + 2]  # the default's epochs
    assert main(args) == 0
    out = tmp_path / "out"
    history = artifacts.read_json(out, artifacts.HISTORY_FILE)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert "num_train_epochs: 2" in (out / "run_config.yaml").read_text()
    card = (out / "README.md").read_text()
    assert "- epochs: 2 epochs, the default for 96 training reviews or more (3 below); this run has 96" in card
    assert json.loads((out / "results.json").read_text())["scores"]
