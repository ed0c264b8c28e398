"""python -m finetune.score: any model on new reviews, with the training run's metrics and per-review results."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TOKEN, make_reviews, prediction_columns, write_csv
from huggingface_hub import ModelCard

from finetune import artifacts, hub
from finetune.score import EVALUATION_FILE, EXIT_USAGE, main


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _renamed_reviews(path: Path, n: int = 12) -> Path:
    """Reviews whose labels the model calls otherwise (good/bad for positive/negative), in other columns."""
    rows = [{"review": r["text"], "stars": {"positive": "good", "negative": "bad"}[r["label"]]}
            for r in make_reviews(n, seed=7)]
    return write_csv(path, rows, columns=("review", "stars"))


def test_training_run_keeps_per_review_predictions_of_its_scored_splits(trained_run):
    rows = _rows(trained_run / "predictions_test.csv")
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    # "unsure" is there when the model has an abstention threshold (validation reached --min_precision somewhere)
    abstains = results["calibration"]["abstention"]["threshold"] is not None
    assert list(rows[0]) == ["text", "label", "predicted_label", *(["unsure"] if abstains else []), "p(negative)",
                             "p(positive)"]
    if abstains:
        threshold = results["calibration"]["abstention"]["threshold"]
        assert all((r["unsure"] == "true") == (max(float(r["p(negative)"]), float(r["p(positive)"])) < threshold)
                   for r in rows)
    assert results["predictions"] == {"validation": "predictions_validation.csv", "test": "predictions_test.csv"}
    # the file is the confusion matrix, review by review
    names = results["label_names"]
    matrix = [[sum(r["label"] == t and r["predicted_label"] == p for r in rows) for p in names] for t in names]
    assert matrix == results["confusion_matrices"]["test"]
    assert "`predictions_test.csv`" in (trained_run / artifacts.CARD_FILE).read_text()


def test_score_load_reviews_leaves_the_arguments_as_given(trained_run, review_files):
    from finetune.inference import ReviewClassifier
    from finetune.score import ScoreArguments, load_reviews

    args = ScoreArguments(test_file=str(review_files["test"]), label_column_name=None, max_test_samples=5)
    before = repr(args)
    reviews = load_reviews(args, ReviewClassifier(str(trained_run)))
    assert repr(args) == before and args.label_column_name is None and args.text_column_names is None
    assert len(reviews.texts) == 5 and len(reviews.label_ids) == 5  # column `label` found in the data


def test_score_on_the_run_test_file_gives_the_run_results(trained_run, review_files, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main([str(trained_run), "--test_file", str(review_files["test"]), "--output_dir", str(out)]) == 0
    result = artifacts.read_json(out, EVALUATION_FILE)
    run = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    for metric in ("accuracy", "precision", "recall", "f1", "f1_negative", "f1_positive"):
        assert result["scores"][metric] == pytest.approx(run["scores"]["test"][metric], abs=1e-9)
    assert result["confusion_matrix"] == run["confusion_matrices"]["test"]
    assert result["reviews"] == 32 and result["dataset"] == {"name": "test.csv", "id": None, "config": None,
                                                            "split": "test"}
    # the serving path predicts what the Trainer predicted at the end of training, review by review
    scored, trained = _rows(out / "predictions_test.csv"), _rows(trained_run / "predictions_test.csv")
    assert [(r["text"], r["label"], r["predicted_label"]) for r in scored] == \
        [(r["text"], r["label"], r["predicted_label"]) for r in trained]
    for a, b in zip(scored, trained):  # (the serving path may be ONNX Runtime: the model has an ONNX copy)
        assert float(a["p(positive)"]) == pytest.approx(float(b["p(positive)"]), abs=2e-3)
    printed = capsys.readouterr().out
    assert f"accuracy {run['scores']['test']['accuracy']:.4f}" in printed and "predictions_test.csv" in printed


def test_score_maps_data_labels_or_refuses_them_listing_both_sets(trained_run, tmp_path, capsys):
    data = _renamed_reviews(tmp_path / "renamed.csv")
    flags = ["--test_file", str(data), "--text_column_name", "review", "--label_column_name", "stars",
             "--output_dir", str(tmp_path / "out")]
    assert main([str(trained_run), *flags]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "labels the model does not know: bad, good" in err
    assert "The data's labels (column 'stars'): bad, good; the model's: negative, positive" in err
    assert "--label_map" in err and not (tmp_path / "out").exists()

    assert main([str(trained_run), *flags, "--label_map", "good=positive,bad=negative"]) == 0
    result = artifacts.read_json(tmp_path / "out", EVALUATION_FILE)
    assert result["label_map"] == {"good": "positive", "bad": "negative"}
    assert sum(map(sum, result["confusion_matrix"])) == 12
    assert {r["label"] for r in _rows(tmp_path / "out" / "predictions_test.csv")} == {"positive", "negative"}


def test_score_without_labels_writes_predictions_only(trained_run, tmp_path, capsys):
    data = write_csv(tmp_path / "new.csv", [{"text": "great superb film"}, {"text": "awful dull plot"},
                                            {"text": ""}], columns=("text",))
    out = tmp_path / "out"
    assert main([str(trained_run), "--test_file", str(data), "--split", "new", "--output_dir", str(out)]) == 0
    rows = _rows(out / "predictions_new.csv")
    assert list(rows[0]) == prediction_columns(trained_run, "text", "predicted_label")
    assert [r["text"] for r in rows] == ["great superb film", "awful dull plot"]
    result = artifacts.read_json(out, EVALUATION_FILE)
    assert result["scores"] is None and result["dropped_rows"] == 1
    card = (trained_run / artifacts.CARD_FILE).read_text()
    assert main([str(trained_run), "--test_file", str(data), "--output_dir", str(out), "--add_to_card"]) == EXIT_USAGE
    assert "no labels" in capsys.readouterr().err
    assert (trained_run / artifacts.CARD_FILE).read_text() == card


def test_score_add_to_card_adds_one_entry_per_dataset_and_split(trained_run, tmp_path):
    folder = Path(shutil.copytree(trained_run, tmp_path / "model"))  # the shared run stays as it is
    data = _renamed_reviews(tmp_path / "critics.csv")
    flags = ["--test_file", str(data), "--text_column_name", "review", "--label_column_name", "stars",
             "--label_map", "good=positive,bad=negative", "--output_dir", str(tmp_path / "out"), "--add_to_card"]
    assert main([str(folder), *flags]) == 0
    assert main([str(folder), *flags]) == 0  # again: replaced, not repeated
    card = ModelCard.load(folder / artifacts.CARD_FILE)
    entries = {(r.dataset_name, r.dataset_split) for r in card.data.eval_results}
    assert entries == {("train.csv", "validation"), ("train.csv", "test"), ("critics.csv", "test")}
    assert len([r for r in card.data.eval_results if r.dataset_name == "critics.csv"]) == 4
    result = artifacts.read_json(tmp_path / "out", EVALUATION_FILE)
    accuracy = next(r.metric_value for r in card.data.eval_results
                    if r.dataset_name == "critics.csv" and r.metric_type == "accuracy")
    assert accuracy == round(result["scores"]["accuracy"], 4)
    assert card.text.count("## Evaluation on critics.csv, test split") == 1
    assert "`good` → `positive`" in card.text
    assert card.text.index("## Evaluation on critics.csv") < card.text.index("## Training data")
    assert str(tmp_path) not in card.content and "great" not in card.text.split("## Evaluation on")[1][:2000]


def test_score_add_to_card_of_a_hub_repo_pushes_the_card_alone(fake_hub, token, trained_run, tmp_path):
    hub.push_folder(trained_run, "me/scored", TOKEN)
    repo = fake_hub.repo("me/scored")
    scored_commit = repo.sha
    data = _renamed_reviews(tmp_path / "critics.csv")
    code = main(["me/scored", "--test_file", str(data), "--text_column_name", "review", "--label_column_name",
                 "stars", "--label_map", "good=positive,bad=negative", "--output_dir", str(tmp_path / "out"),
                 "--add_to_card"])
    assert code == 0
    assert len(repo.commits) == 2 and repo.commits[-1]["paths"] == ["README.md"]
    assert repo.commits[-1]["summary"].startswith("Evaluation on critics.csv, test: accuracy")
    card = ModelCard(repo.files["README.md"].decode())
    assert ("critics.csv", "test") in {(r.dataset_name, r.dataset_split) for r in card.data.eval_results}
    assert fake_hub.yaml_validated  # the Hub's metadata check passed
    result = artifacts.read_json(tmp_path / "out", EVALUATION_FILE)
    assert result["model"] == "me/scored" and result["model_revision"] == scored_commit


def test_score_card_push_without_a_token_fails_before_predicting(tmp_path, capsys):
    data = _renamed_reviews(tmp_path / "critics.csv")
    assert main(["me/anything", "--test_file", str(data), "--add_to_card"]) == EXIT_USAGE
    assert "--add_to_card needs a Hugging Face token" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--label_map", "good"], "--label_map good: write DATA=MODEL pairs"),
    (["--label_map", "a=b,a=c"], "mapped twice"),
    (["--test_file", "missing.csv"], "--test_file missing.csv: no such file"),
    (["--test_file", "REVIEWS", "--dataset_name", "imdb"], "--dataset_name and --test_file both given"),
    (["--test_file", "REVIEWS", "--text_column_name", "body"], "has no column 'body'"),
    (["--test_file", "REVIEWS", "--max_test_samples", "0"], "--max_test_samples 0: must be a positive number"),
    (["--split", "nope"], "--split nope: the dataset has no such split (it has: train, validation, test)"),
])
def test_score_bad_flags_fail_at_once_naming_the_flag(trained_run, review_files, tmp_path, capsys, flags, message):
    flags = [str(review_files["test"]) if f == "REVIEWS" else f for f in flags]
    assert main([str(trained_run), *flags, "--output_dir", str(tmp_path / "out")]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_score_unknown_model_says_what_to_pass(tmp_path, capsys):
    assert main([str(tmp_path / "no" / "such" / "model")]) == EXIT_USAGE
    assert "no such folder" in capsys.readouterr().err


def test_python_m_finetune_score_runs_with_a_progress_bar(trained_run, review_files, tmp_path):
    """The command as users type it, in its own process: the module's name shadows no library."""
    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    finished = subprocess.run([sys.executable, "-m", "finetune.score", str(trained_run), "--test_file",
                               str(review_files["test"]), "--max_test_samples", "10", "--output_dir", str(out)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "Predicting" in finished.stderr and "10/10" in finished.stderr
    assert json.loads((out / EVALUATION_FILE).read_text())["reviews"] == 10
