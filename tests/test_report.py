"""A finished run's files (finetune/report.py): the per-review predictions, the hyperparameters and framework
versions the card and run_config report."""

import csv
import importlib.metadata
import io

import transformers

from finetune import artifacts, report
from finetune.report import framework_versions, hyperparameters, write_predictions
from finetune.train import parse_run


def _rows(path):
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


# --- write_predictions ----------------------------------------------------------------------------


def test_predictions_file_is_valid_csv_for_texts_with_commas_quotes_and_newlines(tmp_path):
    from finetune.report import write_predictions

    texts = ['Great, "really" great', "line one\nline two"]
    write_predictions(tmp_path, "test", texts, [[0.2, 0.8], [0.9, 0.1]], ["neg", "pos"])
    rows = list(csv.reader(io.StringIO((tmp_path / "predictions_test.csv").read_text())))
    assert rows == [["text", "predicted_label", "p(neg)", "p(pos)"], [texts[0], "pos", "0.200000", "0.800000"],
                    [texts[1], "neg", "0.900000", "0.100000"]]


def test_write_predictions_with_labels_puts_the_true_label_after_the_text(tmp_path):
    path = write_predictions(tmp_path, "validation", ["loved it", "so so", "hated it"],
                             [[0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.8, 0.15, 0.05]], ["bad", "mixed", "good"],
                             labels=["good", "good", "bad"])
    assert path == tmp_path / artifacts.predictions_file("validation") == tmp_path / "predictions_validation.csv"
    assert _rows(path) == [
        ["text", "label", "predicted_label", "p(bad)", "p(mixed)", "p(good)"],
        ["loved it", "good", "good", "0.100000", "0.200000", "0.700000"],
        ["so so", "good", "mixed", "0.300000", "0.400000", "0.300000"],
        ["hated it", "bad", "bad", "0.800000", "0.150000", "0.050000"],
    ]


def test_write_predictions_without_labels_has_no_label_column(tmp_path):
    path = write_predictions(tmp_path, "test", ("fine",), [[0.25, 0.75]], ["negative", "positive"])
    assert _rows(path) == [["text", "predicted_label", "p(negative)", "p(positive)"],
                           ["fine", "positive", "0.250000", "0.750000"]]


def test_write_predictions_writes_six_decimals_of_every_probability(tmp_path):
    path = write_predictions(tmp_path, "test", ["a", "b"], [[1 / 3, 2 / 3], [1.0, 1e-7]], ["x", "y"])
    assert [row[2:] for row in _rows(path)[1:]] == [["0.333333", "0.666667"], ["1.000000", "0.000000"]]


def test_write_predictions_gives_a_tie_to_the_first_label(tmp_path):
    path = write_predictions(tmp_path, "test", ["even"], [[0.5, 0.5]], ["negative", "positive"])
    assert _rows(path)[1][1] == "negative"


def test_write_predictions_of_no_reviews_writes_the_header(tmp_path):
    path = write_predictions(tmp_path, "test", [], [], ["negative", "positive"], labels=[])
    assert _rows(path) == [["text", "label", "predicted_label", "p(negative)", "p(positive)"]]


def test_write_predictions_replaces_an_earlier_file_whole(tmp_path):
    (tmp_path / "predictions_test.csv").write_text("text,predicted_label\nold,positive\nolder,negative\n")
    write_predictions(tmp_path, "test", ["new"], [[0.9, 0.1]], ["negative", "positive"])
    assert _rows(tmp_path / "predictions_test.csv")[1:] == [["new", "negative", "0.900000", "0.100000"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions_test.csv"]


# --- hyperparameters ------------------------------------------------------------------------------


def test_hyperparameters_report_the_settings_a_run_trained_with():
    config = parse_run(["--learning_rate", "2e-5", "--per_device_train_batch_size", "8",
                           "--gradient_accumulation_steps", "4", "--num_train_epochs", "3", "--seed", "7",
                           "--lr_scheduler_type", "cosine", "--warmup_steps", "0.1", "--weight_decay", "0.01",
                           "--bf16", "false", "--metric_for_best_model", "accuracy", "--attention_dropout", "0.1",
                        "--freeze_word_embeddings", "true"])
    found = hyperparameters(config, max_seq_length=128, world_size=2)
    assert list(found) == ["learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "processes",
                           "total_train_batch_size", "num_train_epochs", "lr_scheduler_type", "warmup_steps",
                           "weight_decay", "optimizer", "adam_betas", "adam_epsilon", "seed", "max_seq_length",
                           "truncation", "layerwise_lr_decay",
                           "class_weights", "padding", "train_sampling_strategy", "attention_dropout", "word_embeddings",
                           "mixed_precision", "metric_for_best_model", "early_stopping"]
    assert {k: v for k, v in found.items() if k != "optimizer"} == {
        "learning_rate": 2e-5, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4, "processes": 2,
        "total_train_batch_size": 64,  # 8 reviews x 4 accumulated batches x 2 processes
        "num_train_epochs": 3, "lr_scheduler_type": "cosine",
        "warmup_steps": "0.1 (10% of the steps)", "weight_decay": 0.01, "seed": 7,
        "adam_betas": "(0.9, 0.999)", "adam_epsilon": 1e-8,
        "max_seq_length": 128, "truncation": "tail (the last word pieces)", "layerwise_lr_decay": "off (one rate)",
        "class_weights": "none", "padding": "dynamic (per batch)", "train_sampling_strategy": "group_by_length",
        "attention_dropout": 0.1, "word_embeddings": "frozen (the pretrained vectors, not trained)",
        "mixed_precision": "no", "metric_for_best_model": "accuracy", "early_stopping": "off",
    }
    # Enums are written as their plain values (the card and run_config.yaml show text, not a class name).
    assert type(found["lr_scheduler_type"]) is str and found["optimizer"] == config.training.optim.value


def test_hyperparameters_say_how_a_run_pads_stops_early_and_keeps_dropout():
    config = parse_run(["--pad_to_max_length", "true", "--early_stopping_patience", "2",
                           "--early_stopping_threshold", "0.01", "--bf16", "false"])
    config.model.attention_dropout = None  # the model's own dropout, as its config.json says
    found = hyperparameters(config, max_seq_length=64, world_size=1)
    assert found["padding"] == "max_length" and found["max_seq_length"] == 64
    assert found["early_stopping"] == "patience 2 evaluations, threshold 0.01"
    assert found["attention_dropout"] == "model default"
    assert found["processes"] == 1 and found["total_train_batch_size"] == found["per_device_train_batch_size"]
    bucketed = hyperparameters(parse_run(["--pad_to_multiple_of", "16", "--bf16", "false"]), 64, 1)
    assert bucketed["padding"] == "dynamic (per batch, rounded up to a multiple of 16 tokens)"


# --- framework_versions ---------------------------------------------------------------------------


def test_framework_versions_are_the_installed_ones_in_a_fixed_order():
    versions = framework_versions()
    assert versions["transformers"] == transformers.__version__
    assert list(versions) == [name for name in report.FRAMEWORKS if name in versions]
    assert {"transformers", "torch", "datasets", "huggingface-hub", "tokenizers"} <= set(versions)
    for name, version in versions.items():
        assert version == importlib.metadata.version(name)


def test_framework_versions_leave_out_a_package_that_is_not_installed(monkeypatch):
    monkeypatch.setattr(report, "FRAMEWORKS", ("transformers", "no-such-package-for-this-test"))
    assert framework_versions() == {"transformers": transformers.__version__}


def test_the_card_states_the_seed_spread_of_the_default_recipe_only():
    from finetune.report import DEFAULT_RECIPE_SPREAD

    assert hyperparameters(parse_run([]), max_seq_length=128, world_size=1)["seed spread of this recipe"] == \
        DEFAULT_RECIPE_SPREAD
    for flags in (["--num_train_epochs", "2"], ["--truncation", "head"], ["--class_weights", "balanced"]):
        assert "seed spread of this recipe" not in hyperparameters(parse_run(flags), max_seq_length=128, world_size=1)
