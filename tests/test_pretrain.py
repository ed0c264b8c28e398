"""finetune/pretrain.py: masked-LM training on the training split's texts, then fine-tuning from it."""

import json

import pytest
from conftest import make_reviews, tiny_run_args, write_csv

from finetune import pretrain


def _args(tiny_bert, review_files, output_dir, *extra):
    return ["--model_name_or_path", str(tiny_bert), "--train_file", str(review_files["train"]),
            "--validation_file", str(review_files["validation"]), "--test_file", str(review_files["test"]),
            "--output_dir", str(output_dir), "--cpu_threads", "1", "--max_seq_length", "32", *extra]


def test_pretraining_reads_the_training_split_and_the_unlabelled_file_never_validation_or_test(
        tiny_bert, review_files, tmp_path):
    import csv

    extra = write_csv(tmp_path / "more.csv", [{"text": "quite a story", "label": ""}, {"text": "", "label": ""}])
    model, data, run = pretrain.parse_args(_args(tiny_bert, review_files, tmp_path / "out", "--unlabelled_file",
                                                 str(extra)))
    texts, _ = pretrain.pretraining_texts(data, run)
    with open(review_files["train"]) as handle:
        train = [row["text"] for row in csv.DictReader(handle)]
    assert sorted(texts) == sorted([*train, "quite a story"])  # the empty row is left out
    held_out = set()
    for split in ("validation", "test"):
        with open(review_files[split]) as handle:
            held_out |= {row["text"] for row in csv.DictReader(handle)}
    assert not (held_out - set(train)) & set(texts)


def test_a_model_without_a_masked_lm_head_gets_one_learns_and_fine_tunes_from_the_result(
        tiny_bert, review_files, tmp_path, capsys):
    from finetune.train import main as train

    rows = make_reviews(400, seed=9)
    unlabelled = write_csv(tmp_path / "unlabelled.csv", rows, columns=("text",))
    output_dir = tmp_path / "mlm"
    assert pretrain.main(_args(tiny_bert, review_files, output_dir, "--unlabelled_file", str(unlabelled),
                               "--num_train_epochs", "3", "--learning_rate", "1e-3")) == 0
    result = json.loads((output_dir / pretrain.RESULT_FILE).read_text())
    assert result["texts"] + result["held_out_texts"] == 96 + 400
    assert result["settings"]["unlabelled_file"] == "unlabelled.csv"  # its name, not where it lies on this disk
    assert result["held_out_mlm_loss"]["after"] < result["held_out_mlm_loss"]["before"] - 0.5
    assert "trained alone first (encoder frozen)" in capsys.readouterr().err  # tiny_bert has no head: a new one
    saved = json.loads((output_dir / "config.json").read_text())
    assert saved["architectures"] == ["BertModel"]  # the encoder, with the base model's pooler
    run = tmp_path / "run"
    assert train(tiny_run_args(output_dir, review_files, run, "--num_train_epochs", "1")) == 0
    assert json.loads((run / "results.json").read_text())["scores"]["test"]["accuracy"] >= 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--mlm_probability", "1.5"], "--mlm_probability 1.5: must be in \\(0, 1\\)"),
    (["--num_train_epochs", "0"], "--num_train_epochs 0.0: must be a positive number"),
    (["--unlabelled_file", "nowhere.csv"], "--unlabelled_file nowhere.csv: no such file"),
])
def test_bad_flags_get_an_error_line_before_any_work(tiny_bert, review_files, tmp_path, capsys, extra, message):
    import re

    assert pretrain.main(_args(tiny_bert, review_files, tmp_path / "out", *extra)) == pretrain.EXIT_USAGE
    assert re.search(f"error: {message}", capsys.readouterr().err)
