"""Ratings (regression), several labels per review (multi-label) and several text fields, end to end: training,
history, results, per-review predictions, the card, finetune.score, the push and the demo, on the tiny BERT.

Each model here learns its data (the labels follow from the sentiment words), so the per-review files are
checked against the run's own scores and against a baseline a scrambled file could not beat."""

import csv
import json
import random

import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, TOKEN, tiny_run_args, write_csv
from huggingface_hub import ModelCard

from finetune import artifacts
from finetune.score import EVALUATION_FILE
from finetune.score import main as score_main
from finetune.train import EXIT_USAGE, main


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def rated_reviews(n: int, seed: int) -> list[dict]:
    """Reviews of 1, 3 or 5 stars: two sentiment words, as many positive ones as the stars say (0, 1, 2)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 3
        words = rng.sample(POSITIVE, positive) + rng.sample(NEGATIVE, 2 - positive)
        rng.shuffle(words)
        rows.append({"text": " ".join(rng.sample(FILLER, 3) + words + rng.sample(FILLER, 2)), "stars": 1 + 2 * positive})
    return rows


def tagged_reviews(n: int, seed: int) -> list[dict]:
    """Reviews tagged praise (a positive word), complaint (a negative word), both or neither."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        praise, complaint = i % 3 == 0, i % 2 == 0
        words = rng.sample(POSITIVE, 2 * praise) + rng.sample(NEGATIVE, 2 * complaint)
        rng.shuffle(words)
        labels = [name for name, on in (("praise", praise), ("complaint", complaint)) if on]
        rows.append({"text": " ".join(rng.sample(FILLER, 4) + words), "labels": labels})
    return rows


def titled_reviews(n: int, seed: int) -> list[dict]:
    """The sentiment is in the title only: a model that reads the body alone cannot learn the label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        title = " ".join(rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2))
        rows.append({"title": title, "body": " ".join(rng.sample(FILLER, 6)), "label": label})
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def rating_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ratings")
    return {split: write_csv(folder / f"{split}.csv", rated_reviews(n, seed), columns=("text", "stars"))
            for split, n, seed in (("train", 150, 1), ("validation", 30, 2), ("test", 30, 3))}


@pytest.fixture(scope="module")
def rating_run(tiny_bert, rating_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("rating") / "stars"
    assert main(tiny_run_args(tiny_bert, rating_files, out, "--problem_type", "regression",
                              "--label_column_name", "stars", "--num_train_epochs", "8",
                              "--export_onnx", "true")) == 0
    return out


@pytest.fixture(scope="module")
def tag_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tags")
    return {split: _write_jsonl(folder / f"{split}.jsonl", tagged_reviews(n, seed))
            for split, n, seed in (("train", 150, 1), ("validation", 36, 2), ("test", 36, 3))}


@pytest.fixture(scope="module")
def tag_run(tiny_bert, tag_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("tags") / "tags"
    assert main(tiny_run_args(tiny_bert, tag_files, out, "--problem_type", "multi_label_classification",
                              "--label_column_name", "labels", "--num_train_epochs", "16", "--export_onnx", "true")) == 0
    return out


@pytest.fixture(scope="module")
def titled_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("titled")
    columns = ("title", "body", "label")
    return {split: write_csv(folder / f"{split}.csv", titled_reviews(n, seed), columns=columns)
            for split, n, seed in (("train", 96, 1), ("validation", 32, 2), ("test", 32, 3))}


@pytest.fixture(scope="module")
def titled_run(tiny_bert, titled_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("titled") / "titled"
    assert main(tiny_run_args(tiny_bert, titled_files, out, "--text_column_names", "title,body",
                              "--num_train_epochs", "3", "--learning_rate", "1e-2", "--export_onnx", "true")) == 0
    return out


# --- ratings -----------------------------------------------------------------------------------------


def test_rating_run_learns_and_its_files_say_so(rating_run):
    results = artifacts.read_json(rating_run, artifacts.RESULTS_FILE)
    assert results["problem_type"] == "regression" and results["rating_values"] == [1, 3, 5]
    test = results["scores"]["test"]
    assert {"mae", "mse", "pearson", "spearman", "accuracy", "loss"} <= set(test)
    config = json.loads((rating_run / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    assert config["id2label"] == {"0": "stars"} and config["review_rating_values"] == [1, 3, 5]
    history = artifacts.read_json(rating_run, artifacts.HISTORY_FILE)
    assert len(history) == 8 and all("mae" in row and "spearman" in row for row in history)
    # restored by the lowest validation MAE
    assert results["scores"]["validation"]["mae"] == pytest.approx(min(row["mae"] for row in history), abs=1e-6)

    rows = _rows(rating_run / "predictions_test.csv")
    assert list(rows[0]) == ["text", "label", "predicted_value", "predicted_label"]
    errors = [abs(float(r["predicted_value"]) - float(r["label"])) for r in rows]
    # the file is the run's MAE and rounded accuracy, review by review ...
    assert sum(errors) / len(errors) == pytest.approx(test["mae"], abs=1e-4)
    assert sum(r["label"] == r["predicted_label"] for r in rows) / len(rows) == pytest.approx(test["accuracy"])
    # ... of a model that learnt: far better than always predicting train's mean (3 stars: MAE 4/3)
    assert test["mae"] < 0.7 and test["spearman"] > 0.7


def test_rating_card_reads_the_value_and_lists_regression_metrics(rating_run):
    card = ModelCard.load(rating_run / artifacts.CARD_FILE)
    metrics = {(r.dataset_split, r.metric_type) for r in card.data.eval_results}
    assert {("test", "mae"), ("test", "mse"), ("test", "spearman"), ("validation", "mae")} <= metrics
    text = card.text
    assert 'function_to_apply="none"' in text and "predict a review's rating, `stars`" in text
    assert "| epoch | step | train_loss | eval_loss | mae | mse | pearson | spearman | accuracy |" in text
    assert "### Confusion matrix (test)" in text and "Per class" not in text


def test_rating_score_gives_the_run_results_and_rejects_text_ratings(rating_run, rating_files, tmp_path, capsys):
    out = tmp_path / "eval"
    assert score_main([str(rating_run), "--test_file", str(rating_files["test"]), "--label_column_name", "stars",
                       "--output_dir", str(out)]) == 0
    result = artifacts.read_json(out, EVALUATION_FILE)
    run = artifacts.read_json(rating_run, artifacts.RESULTS_FILE)["scores"]["test"]
    for metric in ("mae", "mse", "spearman", "accuracy"):  # through ONNX Runtime: the run wrote an ONNX copy
        assert result["scores"][metric] == pytest.approx(run[metric], abs=2e-3)
    assert "Furthest off" in capsys.readouterr().out
    bad = write_csv(tmp_path / "bad.csv", [{"text": "great film", "stars": 4}, {"text": "dull", "stars": "two"}],
                    columns=("text", "stars"))
    assert score_main([str(rating_run), "--test_file", str(bad), "--label_column_name", "stars"]) == 2
    message = capsys.readouterr().err
    assert "'two' in row 2" in message and "a number in every row" in message


def test_rating_onnx_copy_predicts_the_same_rounded_rating(rating_run):
    results = artifacts.read_json(rating_run, artifacts.RESULTS_FILE)
    assert results["onnx"]["int8_same_label"] <= results["onnx"]["reviews_checked"]
    assert results["onnx"]["max_logit_difference"] < 1e-3


def test_rating_demo_says_the_rating_out_of_the_scale(rating_run):
    import app
    from finetune.run_views import evaluations_view, load_served_model, metrics_view

    served = load_served_model(str(rating_run))
    value, note = app.classify(served, "the film was great and wonderful")
    assert value.endswith("out of 5") and "Predicted stars" in note
    low, _ = app.classify(served, "the film was awful and terrible")
    assert float(low.split()[0]) < float(value.split()[0])
    history, _, scores, confusion, summary = metrics_view(served)
    assert {"mae", "spearman"} <= set(history.columns) and set(scores["series"]) == {"mae", "mse"}
    assert list(confusion.columns) == ["true (test)", "predicted 1", "predicted 3", "predicted 5"]
    _, furthest, note = evaluations_view(served)
    assert list(furthest.columns) == ["true rating", "predicted", "error", "review"] and "furthest off" in note
    assert "Predicts a review's **stars**" in app.header_markdown(served)


def test_text_in_a_rating_column_is_refused_naming_the_row(tiny_bert, rating_files, tmp_path, capsys):
    rows = rated_reviews(20, seed=5)
    rows[6]["stars"] = "five"
    train = write_csv(tmp_path / "train.csv", rows, columns=("text", "stars"))
    code = main(tiny_run_args(tiny_bert, {"train": train}, tmp_path / "out", "--problem_type", "regression",
                              "--label_column_name", "stars"))
    assert code == EXIT_USAGE
    message = capsys.readouterr().err
    assert "'five' in row 7" in message and f"--train_file {train}" in message
    assert not (tmp_path / "out").exists()


def test_fractional_labels_point_at_regression(tiny_bert, tmp_path, capsys):
    rows = [{"text": r["text"], "stars": r["stars"] + 0.15 * (i % 3)} for i, r in enumerate(rated_reviews(30, 5))]
    train = write_csv(tmp_path / "train.csv", rows, columns=("text", "stars"))
    assert main(tiny_run_args(tiny_bert, {"train": train}, tmp_path / "out", "--label_column_name", "stars")) == 2
    assert "--problem_type regression" in capsys.readouterr().err


# --- several labels per review -------------------------------------------------------------------------


def test_multi_label_run_learns_chooses_a_threshold_and_saves_it(tag_run):
    results = artifacts.read_json(tag_run, artifacts.RESULTS_FILE)
    assert results["problem_type"] == "multi_label_classification"
    assert results["label_names"] == ["complaint", "praise"]
    config = json.loads((tag_run / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["review_threshold"] == results["threshold"] and 0.05 <= results["threshold"] <= 0.95
    test = results["scores"]["test"]
    assert {"f1_micro", "f1", "accuracy", "f1_praise", "precision_complaint", "recall_praise"} <= set(test)
    history = artifacts.read_json(tag_run, artifacts.HISTORY_FILE)
    assert all("f1_micro" in row for row in history)

    rows = _rows(tag_run / "predictions_test.csv")
    assert list(rows[0]) == ["text", "label", "predicted_labels", "p(complaint)", "p(praise)"]
    # the labels predicted are those at or above the saved threshold, and the file is the run's subset accuracy
    for row in rows:
        above = [n for n in ("complaint", "praise") if float(row[f"p({n})"]) >= results["threshold"]]
        assert row["predicted_labels"] == ";".join(above)
    assert sum(r["label"] == r["predicted_labels"] for r in rows) / len(rows) == pytest.approx(test["accuracy"])
    # each row's labels are its own review's (they follow from its words), and the model learnt them
    for row in rows:
        words = set(row["text"].split())
        assert row["label"] == ";".join(n for n, vocabulary in (("complaint", NEGATIVE), ("praise", POSITIVE))
                                        if words & set(vocabulary))
    assert any(r["label"] == "" for r in rows) and test["accuracy"] > 0.8 and test["f1_micro"] > 0.9


def test_multi_label_card_score_and_demo(tag_run, tag_files, tmp_path):
    import app
    from finetune.run_views import load_served_model

    card = ModelCard.load(tag_run / artifacts.CARD_FILE)
    assert {("test", "f1_micro"), ("test", "accuracy")} <= {(r.dataset_split, r.metric_type)
                                                           for r in card.data.eval_results}
    assert 'function_to_apply="sigmoid"' in card.text and "### Per label" in card.text

    out = tmp_path / "eval"
    assert score_main([str(tag_run), "--test_file", str(tag_files["test"]), "--label_column_name", "labels",
                       "--output_dir", str(out)]) == 0
    result = artifacts.read_json(out, EVALUATION_FILE)
    run = artifacts.read_json(tag_run, artifacts.RESULTS_FILE)
    assert result["threshold"] == run["threshold"]
    for metric in ("f1_micro", "f1", "accuracy"):
        assert result["scores"][metric] == pytest.approx(run["scores"]["test"][metric], abs=1e-6)

    served = load_served_model(str(tag_run))
    scores, note = app.classify(served, "the film was great and wonderful but dull and messy")
    assert set(scores) == {"complaint", "praise"} and f"threshold {run['threshold']:.2f}" in note
    assert "**praise**" in note and "**complaint**" in note


def test_multi_label_from_a_delimited_csv_column_and_from_0_1_columns(tiny_bert, tmp_path):
    rows = tagged_reviews(60, seed=4)
    delimited = write_csv(tmp_path / "tags.csv", [{"text": r["text"], "labels": ";".join(r["labels"])} for r in rows],
                          columns=("text", "labels"))
    out = tmp_path / "delimited"
    assert main(tiny_run_args(tiny_bert, {"train": delimited}, out, "--problem_type", "multi_label",
                              "--label_column_name", "labels", "--label_delimiter", ";",
                              "--num_train_epochs", "1")) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["label_names"] == ["complaint", "praise"]
    assert results["dropped_rows"]["train"] == 0  # an empty cell is a review with neither label, not a missing one
    columns = write_csv(tmp_path / "columns.csv", [{"text": r["text"], "praise": int("praise" in r["labels"]),
                                                    "complaint": int("complaint" in r["labels"])} for r in rows],
                        columns=("text", "praise", "complaint"))
    out = tmp_path / "columns"
    assert main(tiny_run_args(tiny_bert, {"train": columns}, out, "--label_column_names", "praise,complaint",
                              "--num_train_epochs", "1")) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["label_names"] == ["praise", "complaint"] and results["problem_type"] == "multi_label_classification"


@pytest.mark.parametrize("case, message", [
    ("unseen", "labels that train lacks: sarcasm"),
    ("no_delimiter", "holds one text per review (e.g. '"),
    ("bad_column", "holds 'maybe' in row 2"),
    ("no_labels", "no training review has any label"),
    ("weights", "--class_weights balanced weighs the classes of single-label data"),
])
def test_multi_label_bad_input_is_refused_before_training(case, message, tiny_bert, tmp_path, capsys):
    rows = tagged_reviews(30, seed=6)
    flags = ["--problem_type", "multi_label", "--label_column_name", "labels"]
    if case == "unseen":
        files = {"train": _write_jsonl(tmp_path / "train.jsonl", rows),
                 "validation": _write_jsonl(tmp_path / "val.jsonl", [{"text": "great", "labels": ["sarcasm"]}] * 3)}
    elif case == "no_delimiter":
        files = {"train": write_csv(tmp_path / "t.csv", [{"text": r["text"], "labels": ";".join(r["labels"])}
                                                          for r in rows], columns=("text", "labels"))}
    elif case == "bad_column":
        table = [{"text": r["text"], "praise": 1, "complaint": 0} for r in rows]
        table[1]["praise"] = "maybe"
        files = {"train": write_csv(tmp_path / "t.csv", table, columns=("text", "praise", "complaint"))}
        flags = ["--label_column_names", "praise,complaint"]
    elif case == "no_labels":
        files = {"train": _write_jsonl(tmp_path / "train.jsonl", [{**r, "labels": []} for r in rows])}
    else:
        files = {"train": _write_jsonl(tmp_path / "train.jsonl", rows)}
        flags += ["--class_weights", "balanced"]
    assert main(tiny_run_args(tiny_bert, files, tmp_path / "out", *flags)) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- several text fields ------------------------------------------------------------------------------------


def test_text_fields_are_joined_saved_and_learnt_from(titled_run):
    config = json.loads((titled_run / "config.json").read_text())
    assert config["review_text_fields"] == ["title", "body"] and config["review_text_separator"] == " [SEP] "
    results = artifacts.read_json(titled_run, artifacts.RESULTS_FILE)
    assert results["text_fields"] == ["title", "body"]
    assert results["scores"]["test"]["accuracy"] > 0.9  # the sentiment is in the title alone
    rows = _rows(titled_run / "predictions_test.csv")
    assert all(" [SEP] " in r["text"] for r in rows)
    assert "It reads `title` and `body`" in (titled_run / artifacts.CARD_FILE).read_text()


def test_score_reads_the_saved_fields_and_refuses_a_file_without_them(titled_run, titled_files, tmp_path, capsys):
    out = tmp_path / "eval"
    assert score_main([str(titled_run), "--test_file", str(titled_files["test"]), "--output_dir", str(out)]) == 0
    result = artifacts.read_json(out, EVALUATION_FILE)
    assert result["scores"]["accuracy"] == pytest.approx(
        artifacts.read_json(titled_run, artifacts.RESULTS_FILE)["scores"]["test"]["accuracy"])
    body_only = write_csv(tmp_path / "body.csv", [{"body": "the film", "label": "positive"}], columns=("body", "label"))
    assert score_main([str(titled_run), "--test_file", str(body_only)]) == 2
    assert "no column 'title'" in capsys.readouterr().err
    assert score_main([str(titled_run), "--test_file", str(body_only), "--text_column_name", "body"]) == 2
    assert "--text_column_names title,body" in capsys.readouterr().err


def test_demo_has_a_box_per_field_and_batch_files_need_every_field(titled_run, tmp_path):
    import app
    from finetune.run_views import load_served_model

    served = load_served_model(str(titled_run))
    scores, _ = app.classify(served, "great wonderful", "the film was")
    assert max(scores, key=scores.get) == "positive"
    demo = app.build_demo(served)
    labels = [block.label for block in demo.blocks.values() if type(block).__name__ == "Textbox"]
    assert labels[:2] == ["title", "body"]
    good = write_csv(tmp_path / "both.csv", [{"title": "awful dull", "body": "the plot"}], columns=("title", "body"))
    table, _, _ = app.classify_batch(served, str(good), None, str(tmp_path / "cache"))
    assert table["label"].tolist() == ["negative"]
    lacking = write_csv(tmp_path / "title.csv", [{"title": "awful dull"}], columns=("title",))
    with pytest.raises(Exception, match="lacks body"):
        app.classify_batch(served, str(lacking), None, str(tmp_path / "cache"))


def test_text_fields_flag_needs_two_columns_that_exist(tiny_bert, titled_files, tmp_path, capsys):
    assert main(tiny_run_args(tiny_bert, titled_files, tmp_path / "a", "--text_column_names", "title")) == 2
    assert "two or more columns" in capsys.readouterr().err
    assert main(tiny_run_args(tiny_bert, titled_files, tmp_path / "b", "--text_column_names", "title,summary")) == 2
    assert "no column 'summary'" in capsys.readouterr().err


# --- the push -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run, repo, metric", [("rating_run", "me/tiny-stars", "mae"),
                                               ("tag_run", "me/tiny-tags", "f1_micro"),
                                               ("titled_run", "me/tiny-titled", "f1")])
def test_each_kind_of_model_pushes_and_serves_by_repo_id(run, repo, metric, request, fresh_fake_hub, monkeypatch):
    import app
    from finetune.push import main as push_main
    from finetune.run_views import load_served_model

    folder = request.getfixturevalue(run)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert push_main([str(folder), "--hub_model_id", repo]) == 0
    served = load_served_model(repo)
    local = load_served_model(str(folder))
    assert served.classifier.engine.startswith("onnxruntime")  # the pushed ONNX copy serves
    task, fields = served.classifier.task, served.classifier.text_fields
    assert (task.problem_type, task.label_names, task.rating_values, task.threshold, fields) == (
        local.classifier.task.problem_type, local.classifier.task.label_names, local.classifier.task.rating_values,
        local.classifier.task.threshold, local.classifier.text_fields)
    review = ["great wonderful", "the film was"][:len(fields)]
    assert app.classify(served, *review)[0] == app.classify(local, *review)[0]
    card = ModelCard.load(repo)
    assert any(r.metric_type == metric for r in card.data.eval_results)


def test_text_pairing_marks_the_second_field_in_training_scoring_and_serving(tiny_bert, titled_files, tmp_path):
    from finetune.inference import ReviewClassifier
    from finetune.text_fields import segment_ids

    assert segment_ids([2, 7, 3, 8, 9, 3, 0], 3) == [0, 0, 0, 1, 1, 1, 0]  # [CLS] a [SEP] b b [SEP] [PAD]
    assert segment_ids([2, 7, 3], 3) == [0, 0, 0]  # one field: one segment
    out = tmp_path / "pair"
    assert main(tiny_run_args(tiny_bert, titled_files, out, "--text_column_names", "title,body", "--text_pairing", "pair",
                              "--num_train_epochs", "3", "--learning_rate", "1e-2")) == 0
    assert json.loads((out / "config.json").read_text())["review_text_pairing"] == "pair"
    classifier = ReviewClassifier(out, engine="pytorch")
    rows, _ = classifier._encode([classifier.compose({"title": "great", "body": "the film"})])
    assert rows[0]["token_type_ids"] == segment_ids(rows[0]["input_ids"], classifier.tokenizer.sep_token_id)
    assert 1 in rows[0]["token_type_ids"]
    scored = tmp_path / "eval"
    assert score_main([str(out), "--test_file", str(titled_files["test"]), "--output_dir", str(scored)]) == 0
    trained = _rows(out / "predictions_test.csv")
    assert [r["predicted_label"] for r in _rows(scored / "predictions_test.csv")] == [r["predicted_label"] for r in trained]


def test_pairing_needs_two_fields(tiny_bert, review_files, tmp_path, capsys):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "x", "--text_pairing", "pair")) == 2
    assert "--text_pairing pair marks the second of two text fields" in capsys.readouterr().err


def test_a_checkpoint_resumes_only_as_its_problem_type(rating_run, rating_files, tiny_bert, tmp_path, capsys):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(rating_run, folder)
    code = main(tiny_run_args(tiny_bert, rating_files, folder, "--label_column_name", "stars",
                              "--resume_from_checkpoint", "true"))
    assert code == EXIT_USAGE
    message = capsys.readouterr().err
    assert "is a regression model and this run asks for single_label_classification" in message
    assert "--problem_type regression" in message


def test_score_refuses_flags_of_another_problem_type(rating_run, titled_run, rating_files, titled_files, capsys):
    assert score_main([str(titled_run), "--test_file", str(titled_files["test"]), "--label_delimiter", ";"]) == 2
    assert "--label_delimiter splits a review's several labels" in capsys.readouterr().err
    assert score_main([str(rating_run), "--test_file", str(rating_files["test"]), "--label_column_names", "a,b"]) == 2
    assert "0/1 columns are the labels of a multi-label model" in capsys.readouterr().err


def test_the_bf16_probe_pads_tokens_not_a_multi_label_batchs_labels():
    import torch

    from finetune.precision import padded

    batch = {"input_ids": torch.ones(2, 5, dtype=torch.long), "labels": torch.zeros(2, 4)}
    longer = padded(batch, 3)
    assert longer["input_ids"].shape == (2, 8) and longer["labels"].shape == (2, 4)


# --- the demo's endpoints, as a client calls them ---------------------------------------------------------


def _served_client(model_ref):
    from conftest import free_port
    from gradio_client import Client

    import app
    from finetune import serving
    from finetune.run_views import load_served_model

    demo = app.build_demo(load_served_model(model_ref))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **serving.launch_settings())
    return demo, Client(f"http://127.0.0.1:{port}/", verbose=False)


def test_demo_endpoints_of_a_rating_model(rating_run, tmp_path):
    from gradio_client import handle_file

    demo, client = _served_client(str(rating_run))
    try:
        label, note = client.predict("the film was great and wonderful", api_name="/classify")
        assert label["label"].endswith("out of 5") and "Predicted stars" in note
        words, words_note = client.predict("the film was great and wonderful", api_name="/explain")
        assert "the predicted stars" in words_note
        reviews = write_csv(tmp_path / "r.csv", [{"id": 1, "review": "awful dull film"}], columns=("id", "review"))
        table, _, _ = client.predict(handle_file(str(reviews)), "review", api_name="/classify_batch")
        assert table["headers"] == ["id", "review", "stars", "rounded", "truncated"]
        history, *_rest, summary = client.predict(api_name="/metrics")
        assert "mae" in history["headers"] and "mae" in summary
    finally:
        demo.close()


def test_demo_endpoints_of_a_multi_label_and_a_two_field_model(tag_run, titled_run):
    demo, client = _served_client(str(tag_run))
    try:
        label, note = client.predict("great wonderful but dull messy", api_name="/classify")
        assert {c["label"] for c in label["confidences"]} == {"complaint", "praise"} and "threshold" in note
    finally:
        demo.close()
    demo, client = _served_client(str(titled_run))
    try:
        label, _ = client.predict("awful dull", "the film was", api_name="/classify")  # one input per field
        assert label["label"] == "negative"
    finally:
        demo.close()


@pytest.mark.parametrize("run", ["rating_run", "tag_run", "titled_run"])
def test_the_cards_onnx_snippet_reads_the_outputs_as_the_task_does(run, request, capsys):
    import contextlib
    import io
    import re

    folder = request.getfixturevalue(run)
    card = (folder / artifacts.CARD_FILE).read_text()
    start = card.index("```python\nimport os\n\nimport numpy as np")
    code = card[start + len("```python\n"):card.index("```", start + 10)]
    # the folder itself, whatever repo a push pointed the card at (REPO = "me/..." reads the Hub)
    code = re.sub(r'REPO = "[^"]*"', f"REPO = {str(folder)!r}", code)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "card-snippet", "exec"), {})
    out = printed.getvalue().strip()
    if run == "rating_run":
        assert 1.0 <= float(out.strip("[]")) <= 5.5  # the value, not the label's name
    elif run == "tag_run":
        assert out.startswith("[[") and "stars" not in out  # one list of labels per review
    else:
        assert out in ("['positive']", "['negative']") and '" [SEP] ".join(' in code


def test_explain_leaves_the_fields_separator_in_place_and_batch_keeps_every_column(titled_run, tmp_path):
    import app
    from finetune.attribution import word_spans
    from finetune.run_views import load_served_model

    text = "awful dull [SEP] the film was"
    spans, _ = word_spans(text, max_spans=2, skip=("[SEP]",))
    assert [text[s:e] for s, e in spans] == ["awful dull", "the film was"]  # no span reaches across [SEP]
    served = load_served_model(str(titled_run))
    segments, note = app.explain(served, "awful dull", "the film was")
    assert "".join(piece for piece, _ in segments) == text
    assert ("[SEP]", None) not in segments and (" [SEP] ", None) in segments and "“[SEP]”" not in note
    both = write_csv(tmp_path / "both.csv", [{"id": 7, "title": "awful dull", "body": "the plot"}],
                     columns=("id", "title", "body"))
    table, _, batch_note = app.classify_batch(served, str(both), None, str(tmp_path / "cache"))
    assert list(table.columns)[:4] == ["title", "id", "body", "review"] and "Read the columns title, body" in batch_note
