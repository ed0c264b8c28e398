"""The demo's views of a run, without Gradio: the header, the examples, the mistakes table."""

import dataclasses

from conftest import read_predictions

from finetune import artifacts
from finetune.run_views import MACRO_NOTE, card_link, example_reviews, header_markdown, load_served_model


def test_header_says_what_the_model_classifies_and_how_well(learnt_run):
    served = load_served_model(str(learnt_run))
    header = header_markdown(served)
    results = artifacts.read_json(learnt_run, artifacts.RESULTS_FILE)
    assert "Sorts a review into one of 2 classes: **negative**, **positive**" in header
    assert "trained on *train.csv* (96 training reviews)" in header  # the data file, named without its path
    test = results["scores"]["test"]
    assert f"**Test accuracy {test['accuracy']:.1%}**, macro F1 {test['f1']:.1%} on 32 test reviews" in header
    assert "base model `tiny-bert0`" in header  # a local base folder is named, not its path
    assert "model card below" in header and card_link(served) is None  # a local folder: the page renders its card
    assert served.card_text.startswith("# tiny") and "model-index" not in served.card_text
    assert "served by pytorch fp32" in header


def test_header_explains_the_labels_when_the_run_says_what_they_mean(learnt_run):
    served = load_served_model(str(learnt_run))
    served.results = {**served.results, "label_descriptions": {"negative": "the reviewer disliked it"}}
    assert "**negative**: the reviewer disliked it" in header_markdown(served)


def test_header_of_a_hub_repo_links_its_card(learnt_run):
    served = dataclasses.replace(load_served_model(str(learnt_run)), model_id="me/tiny-reviews")
    assert card_link(served).endswith("/me/tiny-reviews")
    assert f"[model card]({card_link(served)})" in header_markdown(served)


def test_header_survives_a_results_file_of_the_wrong_shape(learnt_run):
    served = load_served_model(str(learnt_run))
    served.results = {"scores": {"test": {"accuracy": "n/a"}}, "split_sizes": {}}
    assert header_markdown(served).startswith("Model: `")


def test_examples_are_one_short_correctly_predicted_validation_review_per_class(learnt_run):
    served = load_served_model(str(learnt_run))
    examples = example_reviews(served, fallback=["unused"])
    rows = {row["text"]: row for row in read_predictions(learnt_run, "validation")}
    assert len(examples) == 2
    assert [rows[text]["label"] for text in examples] == ["negative", "positive"]
    assert all(rows[text]["predicted_label"] == rows[text]["label"] for text in examples)
    assert all(6 <= len(text.split()) <= 40 for text in examples)


def test_examples_fall_back_when_the_run_stored_no_predictions(learnt_run):
    served = load_served_model(str(learnt_run))
    served.validation_predictions = served.test_predictions = []
    assert example_reviews(served, fallback=["a review"]) == ["a review"]


def test_macro_note_says_what_macro_means():
    assert "per class" in MACRO_NOTE and "equal weight" in MACRO_NOTE
