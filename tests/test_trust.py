"""Numbers a user can trust (issue 24), end to end on the tiny BERT: the data audit before training (leaked test
reviews scored apart, label spellings merged, --audit_only), small validation, calibrated confidences applied
by the serving path, and the intervals on every figure."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import make_reviews, tiny_run_args, write_csv
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from finetune import artifacts
from finetune.inference import ReviewClassifier
from finetune.train import MIN_VALIDATION_REVIEWS, main


def _respelled(rows, spellings):
    """The rows with their labels written in the given spellings, in turn (`Positive`, `positive `, ...)."""
    out = []
    for i, row in enumerate(rows):
        if row["label"] in spellings:
            choices = spellings[row["label"]]
            row = {**row, "label": choices[i % len(choices)]}
        out.append(row)
    return out


@pytest.fixture(scope="module")
def leaky_files(tmp_path_factory):
    """Train with its positive label spelled three ways; a test file whose rows 0, 5 and 9 are train reviews
    (re-cased, re-spaced, with an HTML entity), the rest unseen."""
    folder = tmp_path_factory.mktemp("leaky")
    train = make_reviews(96, seed=1)
    unseen = make_reviews(30, seed=3)
    test = list(unseen)
    for row, source in ((0, train[4]), (5, train[17]), (9, train[30])):
        text = "  " + source["text"].upper().replace(" ", "  ", 1) + " "
        test.insert(row, {"text": text.replace("THE", "&#84;HE", 1), "label": source["label"]})
    spellings = {"positive": ["positive", "Positive", "positive "]}
    return {
        "train": write_csv(folder / "train.csv", _respelled(train, spellings)),
        "validation": write_csv(folder / "validation.csv", make_reviews(60, seed=2)),
        "test": write_csv(folder / "test.csv", test),
    }


def test_audit_only_prints_the_audit_and_trains_nothing(tiny_bert, leaky_files, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(tiny_run_args(tiny_bert, leaky_files, out, "--audit_only", "true")) == 0
    printed = capsys.readouterr().out
    assert "test: 3 of 33 reviews also in train (leaked)" in printed
    report = json.loads(printed[printed.index("{"):])
    assert report["leaked"]["test"] == [0, 5, 9]  # exactly the copied rows, whatever their case and spacing
    assert report["leaked"]["validation"] == []
    assert {name: sorted(spellings) for name, spellings in report["label_variants"].items()} == {
        "positive": ["Positive", "positive", "positive "]}  # train's most frequent spelling names them
    assert not out.exists()  # nothing written, no model loaded


def test_leaked_reviews_are_kept_and_scored_apart_and_label_spellings_merge(tiny_bert, leaky_files, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, leaky_files, out, "--num_train_epochs", "3")) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["label_names"] == ["negative", "positive"]  # three spellings, one class
    assert results["split_sizes"]["test"] == 33  # the leaked reviews are kept
    unseen = results["unseen_scores"]["test"]
    assert unseen["reviews"] == 30 and unseen["leaked"] == 3
    # the unseen score is the predictions file's agreement on the rows that are not leaked, exactly
    with open(out / "predictions_test.csv", newline="") as handle:
        import csv

        rows = list(csv.DictReader(handle))
    kept = [r for i, r in enumerate(rows) if i not in (0, 5, 9)]
    assert unseen["scores"]["accuracy"] == pytest.approx(
        sum(r["label"] == r["predicted_label"] for r in kept) / len(kept), abs=1e-9)
    audit = artifacts.read_json(out, artifacts.AUDIT_FILE)
    assert audit["leaked"]["test"] == [0, 5, 9]
    card = (out / artifacts.CARD_FILE).read_text()
    assert "## Data checks" in card
    assert "test reviews also in train (the same text after normalising case, spacing and HTML): 3 of 33" in card
    assert "**test, unseen reviews only** (30; 3 of the split's reviews" in card
    assert "Label spellings merged into `positive`" in card


def test_every_figure_has_its_interval_in_results_card_and_summary(trained_run):
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    for split in ("validation", "test"):
        bounds = results["intervals"][split]
        assert set(bounds) == {"accuracy", "f1"}
        low, high = bounds["accuracy"]
        assert low <= results["scores"][split]["accuracy"] <= high and low < high
    card = (trained_run / artifacts.CARD_FILE).read_text()
    low, high = results["intervals"]["test"]["accuracy"]
    assert f"(95% CI {low:.3f}-{high:.3f})" in card  # the headline
    assert f"{results['scores']['test']['accuracy']:.4f} ({low:.3f}-{high:.3f})" in card  # the results table


@pytest.fixture(scope="module")
def overconfident_run(tiny_bert, review_files, tmp_path_factory):
    """The tiny BERT trained 10 epochs on clean reviews (sure of itself: validation loss about 0.06 on clean data),
    validated on reviews of which one in six is labelled wrong: it is over-confident there, as fine-tuned models are
    on real data, and validation has a calibration to fit (a model that gets every validation review right has
    none: its NLL only falls as the temperature shrinks)."""
    folder = tmp_path_factory.mktemp("overconfident")
    rows = make_reviews(120, seed=31)
    rows = [{**r, "label": {"positive": "negative", "negative": "positive"}[r["label"]]} if i % 6 == 0 else r
            for i, r in enumerate(rows)]
    files = {**review_files, "validation": write_csv(folder / "validation.csv", rows)}
    out = folder / "run"
    assert main(tiny_run_args(tiny_bert, files, out, "--num_train_epochs", "10", "--load_best_model_at_end", "false",
                              "--export_onnx", "true")) == 0  # the last, surest epoch
    return out


def test_the_fitted_temperature_is_saved_and_applied_by_the_serving_path(overconfident_run):
    learnt_run = overconfident_run
    results = artifacts.read_json(learnt_run, artifacts.RESULTS_FILE)
    calibration = results["calibration"]
    temperature = calibration["temperature"]
    config = json.loads((learnt_run / "config.json").read_text())
    assert config["review_temperature"] == temperature and temperature > 1.0  # softened: it was over-confident
    # the learnt model is over-confident on validation; the temperature lowers its calibration error there
    assert calibration["ece_after"]["validation"] < calibration["ece_before"]["validation"]
    texts = ["great superb film really", "awful dull plot and the cast"]
    tokenizer = AutoTokenizer.from_pretrained(learnt_run)
    model = AutoModelForSequenceClassification.from_pretrained(learnt_run).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    expected = np.exp(logits / temperature) / np.exp(logits / temperature).sum(-1, keepdims=True)
    for engine in ("pytorch", "onnxruntime") if (learnt_run / artifacts.ONNX_MODEL_FILE).exists() else ("pytorch",):
        served = ReviewClassifier(learnt_run, engine=engine).predict(texts)
        got = np.array([[p.scores[n] for n in ("negative", "positive")] for p in served])
        assert got == pytest.approx(expected, abs=1e-4), engine
    abstention = calibration["abstention"]
    if abstention["threshold"] is not None:  # it meets its precision on validation, where it was chosen
        assert abstention["validation"]["precision"] >= abstention["min_precision"]
        assert config["review_min_confidence"] == abstention["threshold"]


def test_a_tiny_validation_split_picks_no_epoch_and_says_so(tiny_bert, tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", make_reviews(16, seed=4))
    out = tmp_path / "run"
    args = tiny_run_args(tiny_bert, {"train": train}, out, "--num_train_epochs", "3")
    assert main(args) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    reviews = results["split_sizes"]["validation"]
    assert reviews < MIN_VALIDATION_REVIEWS
    config = yaml.safe_load((out / artifacts.CONFIG_FILE).read_text())
    assert config["training"]["load_best_model_at_end"] is False  # the last epoch, not the luckiest on 2 reviews
    history = artifacts.read_json(out, artifacts.HISTORY_FILE)
    assert len(history) == 3
    card = (out / artifacts.CARD_FILE).read_text()
    assert f"Validation has {reviews} reviews, fewer than {MIN_VALIDATION_REVIEWS}" in card
    assert results["calibration"]["temperature"] == 1.0  # too few to fit a temperature on


def test_suspect_labels_find_flipped_training_labels_well_above_chance(tiny_bert, tmp_path):
    import csv
    import random

    rows = make_reviews(200, seed=21)
    flipped = set(random.Random(0).sample(range(len(rows)), 20))  # 10%: chance precision is 0.10
    for i in flipped:
        rows[i] = {**rows[i], "label": "negative" if rows[i]["label"] == "positive" else "positive"}
    files = {"train": write_csv(tmp_path / "train.csv", rows),
             "validation": write_csv(tmp_path / "validation.csv", make_reviews(60, seed=22))}
    out = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, files, out, "--num_train_epochs", "4")) == 0
    with open(out / artifacts.SUSPECTS_FILE, newline="") as handle:
        suspects = [r for r in csv.DictReader(handle) if r["split"] == "train"]
    assert len(suspects) == 200
    top = [int(r["row"]) for r in suspects[:20]]  # the file is most suspect first
    assert len(flipped.intersection(top)) / 20 >= 0.5, top
    for r in suspects:  # each row names its review and its (flipped or not) label as the training file has them
        assert r["text"] == rows[int(r["row"])]["text"] and r["label"] == rows[int(r["row"])]["label"]
    frozen = artifacts.read_json(out, artifacts.RESULTS_FILE)["frozen_baseline"]
    assert set(frozen["scores"]) == {"validation"} and frozen["train_reviews"] == 200
    assert "## What fine-tuning bought" in (out / artifacts.CARD_FILE).read_text()


def test_label_spellings_inside_lists_of_several_labels_are_one_label(tiny_bert, tmp_path, capsys):
    rows = [{"text": r["text"], "label": json.dumps(["Food", "service"] if i % 3 == 0 else
                                                    ["food "] if i % 3 == 1 else ["service"])}
            for i, r in enumerate(make_reviews(60, seed=23))]
    files = {"train": write_csv(tmp_path / "train.csv", rows)}
    assert main(tiny_run_args(tiny_bert, files, tmp_path / "never", "--problem_type", "multi_label",
                              "--audit_only", "true")) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"):])
    # (a list's labels lose their surrounding spaces as they are read); a tie goes to the spelling seen first
    assert report["label_variants"] == {"Food": ["Food", "food"]}


def test_the_cards_calibrated_snippet_runs_and_gives_the_served_confidence(overconfident_run, capsys):
    learnt_run = overconfident_run
    card = (learnt_run / artifacts.CARD_FILE).read_text()
    code = card.split("## How to use\n\n```python\n", 1)[1].split("\n```", 1)[0]
    assert "review_temperature" in code
    exec(compile(code, "card-snippet", "exec"), {})  # noqa: S102 - the card's own snippet, on the run's own folder
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    served = ReviewClassifier(learnt_run, engine="pytorch").predict_one("The food was great and the staff were lovely.")
    label, confidence = printed.split()
    assert label == ("unsure" if served.unsure else served.label)
    assert float(confidence) == pytest.approx(served.scores[served.label], abs=1e-3)


def test_the_review_at_the_threshold_is_answered_in_32_and_64_bits():
    from finetune import tasks

    threshold = 0.5141789447465878  # a float64 confidence that set the threshold on validation
    task = tasks.Task(tasks.SINGLE_LABEL, ["NEG", "Pos"], min_confidence=threshold)
    as_written = np.array([[threshold, 1 - threshold]], dtype=np.float32)  # a predictions file holds float32
    assert not task.unsure(as_written[0]) and not task.unsure(np.array([threshold, 1 - threshold]))
    assert task.unsure_mask(np.array([[0.5141, 0.4859], [0.9, 0.1]])).tolist() == [True, False]


def test_score_reads_label_spellings_as_training_merged_them(trained_run, tmp_path):
    from finetune.score import EVALUATION_FILE
    from finetune.score import main as score

    rows = [{**r, "label": {"positive": "Positive ", "negative": "NEGATIVE"}[r["label"]]}
            for r in make_reviews(20, seed=41)]
    data = write_csv(tmp_path / "spelled.csv", rows)
    assert score([str(trained_run), "--test_file", str(data), "--output_dir", str(tmp_path / "out")]) == 0
    result = artifacts.read_json(tmp_path / "out", EVALUATION_FILE)
    assert sum(map(sum, result["confusion_matrix"])) == 20  # every review scored, under the model's own names


def test_a_temperature_that_would_raise_validation_ece_is_not_kept():
    """Near-random logits on a small validation split: the NLL-optimal temperature can sharpen confidences past what
    they are worth (the new user's 20-review validation: ECE 0.041 -> 0.111). Such a fit is refused, never kept."""
    import numpy as np

    from finetune import calibration, tasks, trust

    refused = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        logits, labels = rng.normal(0, 0.3, (24, 2)), rng.integers(0, 2, 24)
        task = tasks.Task(tasks.SINGLE_LABEL, ["a", "b"])
        report = trust.calibrate(task, {"validation": logits}, {"validation": labels}, min_precision=0.0)
        assert report["ece_after"]["validation"] <= report["ece_before"]["validation"] + 1e-12, seed
        if not report["fitted"][0] and "would raise the validation ECE" in " ".join(report["notes"]):
            refused += 1
            assert task.temperature == 1.0
        elif report["fitted"][0]:
            assert calibration.fit_temperature(logits, labels).temperature == task.temperature
    assert refused >= 1  # the case occurs among these seeds: the check is exercised, not vacuous


def test_a_small_share_answered_is_not_printed_as_zero():
    from finetune import trust

    assert trust.share_text(3 / 1252) == "0.2%" and trust.share_text(0.0) == "0%"
    assert trust.share_text(0.093) == "9.3%" and trust.share_text(0.87) == "87%"
