"""python -m finetune.example_data: the files README's commands for ratings, aspects and titled reviews train on, and
one run of each with the real embedded MiniLM on a few dozen reviews."""

import csv
import json

import pytest

from finetune import artifacts
from finetune.example_data import aspects_of, main, movie_stars
from finetune.score import main as score_main
from finetune.train import main as train_main


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    assert main([str(folder)]) == 0
    return folder


def test_example_files_hold_the_embedded_splits_in_three_shapes(examples):
    with open(examples / "ratings_train.csv", newline="") as handle:
        ratings = list(csv.DictReader(handle))
    with open(examples / "titled_test.csv", newline="") as handle:
        titled = list(csv.DictReader(handle))
    aspects = [json.loads(line) for line in (examples / "aspects_train.jsonl").read_text().splitlines()]
    assert list(ratings[0]) == ["text", "movie_stars"] and {r["movie_stars"] for r in ratings} == {"1", "2", "3", "4", "5"}
    assert len(aspects) == len(ratings) and [a["text"] for a in aspects] == [r["text"] for r in ratings]
    assert list(titled[0]) == ["title", "text", "label"] and {r["label"] for r in titled} == {"fresh", "rotten"}
    assert any(a["aspects"] == [] for a in aspects) and any(len(a["aspects"]) > 1 for a in aspects)


def test_example_workbooks_hold_the_splits_on_their_second_sheet(examples):
    from finetune.config import DataArguments
    from finetune.data import load_raw_splits
    from finetune.sheets import read_sheet

    assert read_sheet(examples / "critics_test.xlsx").name == "About"
    split = load_raw_splits(DataArguments(train_file=str(examples / "critics_train.xlsx"), sheet="Reviews"))["train"]
    with open(examples / "titled_train.csv", newline="") as handle:
        titled = list(csv.DictReader(handle))
    assert split.column_names == ["text", "label", "movie"]
    assert list(split["text"]) == [r["text"] for r in titled] and list(split["movie"]) == [r["title"] for r in titled]


def test_aspects_and_stars_follow_their_rules():
    import pandas as pd

    assert aspects_of("The acting is fine but the plot is a mess; not funny.") == ["acting", "story", "humour"]
    assert aspects_of("A factual account.") == []  # 'act' inside a word is not acting
    frame = pd.DataFrame({"movie_name": ["a", "a", "a", "a", "b"], "label": ["fresh", "fresh", "fresh", "rotten", "rotten"]})
    assert movie_stars(frame).tolist() == [4, 4, 4, 4, 1]


SMALL = ["--max_train_samples", "40", "--max_eval_samples", "20", "--max_test_samples", "20", "--num_train_epochs", "1",
         "--disable_tqdm", "true", "--dataloader_pin_memory", "false", "--export_onnx", "false"]


@pytest.mark.parametrize("kind, flags, metric", [
    ("ratings", ["--problem_type", "regression", "--label_column_name", "movie_stars"], "mae"),
    ("aspects", ["--problem_type", "multi_label_classification", "--label_column_name", "aspects"], "f1_micro"),
    ("titled", ["--text_column_names", "title,text"], "f1"),
])
def test_embedded_minilm_trains_and_scores_each_shape(examples, tmp_path, kind, flags, metric):
    extension = "jsonl" if kind == "aspects" else "csv"
    out = tmp_path / kind
    files = {split: str(examples / f"{kind}_{split}.{extension}") for split in ("train", "validation", "test")}
    assert train_main(["--train_file", files["train"], "--validation_file", files["validation"], "--test_file",
                       files["test"], "--output_dir", str(out), *flags, *SMALL]) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["split_sizes"] == {"train": 40, "validation": 20, "test": 20}
    assert metric in results["scores"]["test"] and (out / "predictions_test.csv").is_file()
    scored = tmp_path / f"{kind}-score"
    # a rating model finds its own column (movie_stars) without the flag; the aspects need it
    argv = [str(out), "--test_file", files["test"], "--max_test_samples", "20", "--output_dir", str(scored),
            *(["--label_column_name", "aspects"] if kind == "aspects" else [])]
    assert score_main(argv) == 0
    assert metric in artifacts.read_json(scored, "evaluation.json")["scores"]
