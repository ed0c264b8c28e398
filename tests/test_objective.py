"""finetune/objective.py: class-weighted loss and layer-wise learning rates, and the flags that turn them on."""

import math

import pytest
import torch
from conftest import tiny_run_args

from finetune import objective
from finetune.errors import UsageError


def test_balanced_weights_make_each_class_count_alike():
    weights = objective.balanced_weights([0, 0, 0, 1], 2)
    assert weights == pytest.approx([4 / 6, 2.0])
    assert 3 * weights[0] == pytest.approx(1 * weights[1])  # each class's total weight is the same
    assert objective.balanced_weights([0, 0, 2], 3) == [0.75, 0.0, 1.5]  # a class train lacks: weight 0


def test_weighted_cross_entropy_is_the_row_mean_of_weighted_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    loss = objective.weighted_cross_entropy([0.5, 2.0])({"logits": logits}, labels)
    assert float(loss) == pytest.approx(float((0.5 * per_row[0] + 2 * per_row[1] + 2 * per_row[2]) / 3))
    plain = objective.weighted_cross_entropy([1.0, 1.0])({"logits": logits}, labels)
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)))


def test_layerwise_groups_give_each_layer_its_rate_and_cover_every_parameter_once(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    decay_names = {n for n, _ in model.named_parameters() if "bias" not in n and "LayerNorm" not in n}
    groups = objective.layerwise_groups(model, 1e-3, 0.5, 0.01, decay_names)
    by_parameter = {id(p): g for g in groups for p in g["params"]}
    assert len(by_parameter) == sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    rate = {name: by_parameter[id(p)]["lr"] for name, p in model.named_parameters()}
    assert rate["classifier.weight"] == rate["bert.pooler.dense.weight"] == 1e-3  # the head: the base rate
    assert rate["bert.encoder.layer.1.attention.self.query.weight"] == pytest.approx(1e-3 * 0.5)  # top layer
    assert rate["bert.encoder.layer.0.output.dense.bias"] == pytest.approx(1e-3 * 0.25)
    assert rate["bert.embeddings.word_embeddings.weight"] == pytest.approx(1e-3 * 0.125)
    decay = {name: by_parameter[id(p)]["weight_decay"] for name, p in model.named_parameters()}
    assert decay["classifier.weight"] == 0.01 and decay["classifier.bias"] == 0.0
    assert groups[0]["lr"] == 1e-3  # the Trainer logs the first group's rate: the base schedule
    assert objective.describe_rates(groups) == "embeddings 0.000125, layer 0 0.00025, layer 1 0.0005, head 0.001"


def test_a_run_with_both_options_trains_with_them_and_says_so(tiny_bert, review_files, tmp_path, capsys):
    from finetune.train import main

    output_dir = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "1",
                              "--layerwise_lr_decay", "0.5", "--class_weights", "balanced")) == 0
    log = capsys.readouterr().err
    assert "layer-wise learning rates (--layerwise_lr_decay 0.5): embeddings 0.00037" in log  # 3e-3 x 0.5^3
    assert "class weights (--class_weights balanced): negative 1.000, positive 1.000" in log  # 48 / 48 in train
    card = (output_dir / "README.md").read_text()
    assert "- layerwise_lr_decay: 0.5 per layer, from the head down" in card
    assert "- class_weights: balanced: negative 1.000, positive 1.000" in card


def test_class_weights_change_the_training_loss_on_imbalanced_data(tiny_bert, review_files, tmp_path):
    """On 3:1 data the weighted loss differs from the plain one: the option is not ignored."""
    import json

    from conftest import make_reviews, write_csv

    from finetune.train import main

    rows = [r for r in make_reviews(160, seed=5) if r["label"] == "positive"][:72] + \
        [r for r in make_reviews(160, seed=5) if r["label"] == "negative"][:24]
    files = {**review_files, "train": write_csv(tmp_path / "imbalanced.csv", rows)}
    losses = {}
    for weights in ("none", "balanced"):
        out = tmp_path / weights
        assert main(tiny_run_args(tiny_bert, files, out, "--num_train_epochs", "1", "--class_weights", weights)) == 0
        history = json.loads((out / "epoch_history.json").read_text())
        losses[weights] = history[-1]["train_loss"]
    assert not math.isclose(losses["none"], losses["balanced"], rel_tol=1e-4)


@pytest.mark.parametrize(("argv", "message"), [
    (["--layerwise_lr_decay", "0"], "--layerwise_lr_decay 0.0: must be in \\(0, 1\\]"),
    (["--layerwise_lr_decay", "1.5"], "--layerwise_lr_decay 1.5: must be in \\(0, 1\\]"),
    (["--class_weights", "inverse"], "--class_weights inverse: choose one of none, balanced"),
])
def test_bad_values_are_refused_before_any_work(argv, message):
    from finetune.train import parse_run

    with pytest.raises(UsageError, match=message):
        parse_run(argv)


def test_the_search_may_try_layerwise_decay_and_the_final_run_gets_the_best():
    from finetune.config import RunArguments
    from finetune.search import apply_params, parse_space, search_arguments
    from finetune.train import parse_run

    space = parse_space("layerwise_lr_decay: {type: float, low: 0.8, high: 1.0}")
    assert space["layerwise_lr_decay"]["low"] == 0.8
    config = parse_run(["--layerwise_lr_decay", "0.9"])
    assert search_arguments(config.training, config.run).layerwise_lr_decay == 0.9  # a trial starts from the run's
    run = RunArguments()
    apply_params(config.training, {"layerwise_lr_decay": "0.85", "learning_rate": 1e-4}, run)
    assert run.layerwise_lr_decay == 0.85 and config.training.learning_rate == 1e-4
