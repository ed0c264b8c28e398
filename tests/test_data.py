import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from finetune import artifacts, embedded
from finetune.config import DataArguments
from finetune.data import (
    assign_groups,
    carve_validation,
    load_embedded_reviews,
    prepare_splits,
    restore_order,
    sort_by_length,
    take_subset,
    tokenize_splits,
)
from finetune.errors import UsageError


def _split(texts, labels, **features):
    return Dataset.from_dict({"text": texts, "label": labels}, features=Features(features) if features else None)


def _prepare(raw, **args):
    return prepare_splits(DatasetDict(raw), DataArguments(**args), seed=0, dataset_name="test")


def test_prepare_splits_uses_classlabel_names():
    features = {"text": Value("string"), "label": ClassLabel(names=["1 star", "2 stars", "3 stars"])}
    train = _split(["a", "b", "c", "d", "e", "f"] * 4, [0, 1, 2, 0, 1, 2] * 4, **features)
    data = _prepare({"train": train, "validation": train})
    assert data.label_names == ["1 star", "2 stars", "3 stars"]
    assert data.splits["train"].features["label"].names == ["1 star", "2 stars", "3 stars"]


def test_prepare_splits_sorts_string_labels_and_maps_every_split():
    train = _split(["a", "b", "c", "d"] * 5, ["pos", "neg", "neutral", "pos"] * 5)
    validation = _split(["x", "y"], ["neutral", "neg"])
    data = _prepare({"train": train, "validation": validation})
    assert data.label_names == ["neg", "neutral", "pos"]
    assert list(data.splits["validation"]["label"]) == [1, 0]


def test_prepare_splits_sorts_numeric_labels_as_numbers():
    train = _split(["a"] * 6, [10, 2, 1, 2, 10, 1])
    data = _prepare({"train": train, "validation": train})
    assert data.label_names == ["1", "2", "10"]


def test_prepare_splits_refuses_labels_that_train_lacks():
    train = _split(["a", "b"] * 5, ["pos", "neg"] * 5)
    test = _split(["c", "d"], ["pos", "meh"])
    with pytest.raises(UsageError, match="test split has labels that train lacks: meh"):
        _prepare({"train": train, "validation": train, "test": test})


def test_prepare_splits_refuses_continuous_labels_as_a_regression_target():
    scores = [round(1.01 + i / 20, 2) for i in range(79)] + [1.01]  # 80 rows, 79 distinct values
    with pytest.raises(UsageError) as caught:
        _prepare({"train": _split([f"review {i}" for i in range(80)], scores)})
    message = str(caught.value)
    assert "column 'label' of train holds 79 distinct numbers with fractions (e.g. 1.01, 1.06, 1.11)" in message
    assert "--problem_type regression" in message and "bin the values into classes" in message


def test_prepare_splits_keeps_whole_and_half_number_labels():
    data = _prepare({"train": _split(["a"] * 12, [1.0, 2.0, 3.0] * 4)})
    assert data.label_names == ["1", "2", "3"]
    data = _prepare({"train": _split(["a"] * 12, [3.5, 4.0, 4.5] * 4)})
    assert data.label_names == ["3.5", "4", "4.5"]


def test_prepare_splits_refuses_more_classes_than_the_rows_can_teach():
    train = _split([f"review {i}" for i in range(30)], [f"user{i % 20}" for i in range(30)])
    with pytest.raises(UsageError, match=r"holds 20 distinct labels in 30 rows \(e.g. user0, user1, user2\): fewer "
                       r"than 2 examples a class.*--label_column_name"):
        _prepare({"train": train})
    with pytest.raises(UsageError, match="train a rating model with --problem_type regression"):
        _prepare({"train": _split(["a"] * 10, list(range(8)) + [1, 2])})


def test_prepare_splits_warns_about_classes_with_a_single_example(caplog):
    train = _split([f"review {i}" for i in range(21)], ["pos", "neg"] * 10 + ["meh"])
    data = _prepare({"train": train, "validation": train})
    assert data.label_names == ["meh", "neg", "pos"]
    assert "1 of 3 labels in column 'label' of train have a single example (meh)" in caplog.text


def test_prepare_splits_names_missing_column_and_lists_existing():
    train = Dataset.from_dict({"review": ["a", "b"], "stars": [1, 2]})
    with pytest.raises(UsageError, match=r"no column 'text' \(it has: review, stars\).*--text_column_name"):
        _prepare({"train": train})
    data = _prepare({"train": Dataset.from_dict({"review": ["a", "b"] * 10, "stars": [1, 2] * 10})},
                    text_column_name="review", label_column_name="stars")
    assert data.label_names == ["1", "2"]


def test_prepare_splits_drops_and_counts_empty_rows():
    train = _split(["good", "", None, "  ", "bad", "fine"] * 4, ["p", "n", "p", "n", "n", None] * 4)
    data = _prepare({"train": train, "validation": _split(["ok", "meh"], ["p", "n"])})
    assert data.dropped == {"train": 16, "validation": 0}
    assert len(data.splits["train"]) == 8
    with pytest.raises(UsageError, match="--empty_text drop"):
        _prepare({"train": train}, empty_text="error")


def test_prepare_splits_reads_a_text_column_of_numbers_as_text(caplog):
    train = _split([9, 2, 7, 9] * 50, ["pos", "neg"] * 100)
    data = _prepare({"train": train}, empty_text="error")
    assert data.dropped == {"train": 0}
    assert set(data.splits["train"]["text"]) | set(data.splits["validation"]["text"]) == {"9", "2", "7"}
    assert ("column 'text' of train holds only numbers (e.g. 9, 2, 7): read them as text. If the reviews are "
            "in another column, pass its name with --text_column_name") in caplog.text


def test_prepare_splits_reads_numbers_with_gaps_as_text_and_gaps_as_empty():
    train = _split([9.0, None, 3.5, 12.0] * 10, ["pos", "neg"] * 20)  # a CSV column of numbers with an empty cell
    validation = _split([1.0, 2.0], ["pos", "neg"])
    data = _prepare({"train": train, "validation": validation})
    assert data.dropped == {"train": 10, "validation": 0}
    assert set(data.splits["train"]["text"]) == {"9", "3.5", "12"}
    assert list(data.splits["validation"]["text"]) == ["1", "2"]


def test_prepare_splits_refuses_data_that_is_empty_after_filtering():
    train = _split(["", None, " "], ["p", "n", "p"])
    with pytest.raises(UsageError, match="train split is empty"):
        _prepare({"train": train})


def test_prepare_splits_carves_stratified_validation_and_seeded_subsets():
    train = _split([f"review {i}" for i in range(200)], ["pos"] * 150 + ["neg"] * 50)
    data = _prepare({"train": train}, validation_split_percentage=20, max_train_samples=40)
    validation = data.splits["validation"]
    assert len(validation) == 40
    assert sorted(validation["label"]).count(0) == 10  # neg keeps its 25% share
    assert len(data.splits["train"]) == 40
    again = _prepare({"train": train}, validation_split_percentage=20, max_train_samples=40)
    assert list(again.splits["train"]["text"]) == list(data.splits["train"]["text"])
    assert not set(validation["text"]) & set(data.splits["train"]["text"])


def test_take_subset_returns_whole_split_when_limit_is_larger():
    split = _split(["a", "b"], [0, 1])
    assert len(take_subset(split, 10, seed=0)) == 2


def test_carve_validation_falls_back_when_a_class_is_too_rare():
    train = _split([f"r{i}" for i in range(20)], [0] * 19 + [1]).cast_column("label", ClassLabel(names=["a", "b"]))
    kept, held = carve_validation(train, 0.2, seed=0)
    assert len(kept) + len(held) == 20


def test_assign_groups_keeps_each_group_in_one_split_near_its_fraction():
    groups = [f"movie{i % 300}" for i in range(3000)]
    assignment = assign_groups(groups, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=3)
    counts = {name: sum(assignment[g] == name for g in groups) for name in ("train", "validation", "test")}
    assert abs(counts["train"] - 2400) <= 20 and abs(counts["validation"] - 300) <= 20
    assert assignment == assign_groups(groups, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=3)


def test_embedded_test_split_does_not_depend_on_the_training_seed():
    from finetune.data import load_review_data

    first = load_review_data(DataArguments(), seed=1).splits
    second = load_review_data(DataArguments(), seed=2).splits
    assert list(first["test"]["text"]) == list(second["test"]["text"])
    assert list(first["validation"]["text"]) == list(second["validation"]["text"])


def test_embedded_reviews_are_split_by_movie_without_leaks():
    splits = load_embedded_reviews()
    movies = {name: set(split[embedded.GROUP_COLUMN]) for name, split in splits.items()}
    assert not movies["train"] & movies["validation"]
    assert not movies["train"] & movies["test"]
    assert not movies["validation"] & movies["test"]
    total = sum(len(split) for split in splits.values())
    assert 12_700 <= total <= 12_808  # fresh + rotten, repeats removed
    assert set(splits["train"]["label"]) == {"fresh", "rotten"}
    assert 0.75 < len(splits["train"]) / total < 0.85


def test_tokenize_splits_pads_dynamically_unless_asked(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    splits = DatasetDict({"train": _split(["great film", "the movie was really quite boring and dull"], [0, 1])})
    dynamic = tokenize_splits(splits, tokenizer, max_length=8, pad_to_max_length=False)["train"]
    assert [len(ids) for ids in dynamic["input_ids"]] == [4, 8]  # truncated at 8
    padded = tokenize_splits(splits, tokenizer, max_length=8, pad_to_max_length=True)["train"]
    assert [len(ids) for ids in padded["input_ids"]] == [8, 8]


def test_padding_to_max_length_gives_the_same_logits_as_dynamic_padding(tiny_bert):
    """Why the benchmarks may stand in dynamic padding for the tutorial's padding="max_length"."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()
    texts = ["great film", "the movie was really quite boring and dull"]
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        dynamic = model(**tokenizer(texts, padding=True, return_tensors="pt"), labels=labels)
        full = model(**tokenizer(texts, padding="max_length", max_length=64, return_tensors="pt"), labels=labels)
    assert torch.allclose(dynamic.logits, full.logits, atol=1e-5)
    assert dynamic.loss.item() == pytest.approx(full.loss.item(), abs=1e-6)


def test_prepare_splits_predicts_a_validation_split_without_labels_and_carves_one_from_train():
    features = {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}
    train = _split([f"review {i}" for i in range(40)], [i % 2 for i in range(40)], **features)
    hidden = _split(["a", "b", "c"], [-1, -1, -1], **features)
    data = _prepare({"train": train, "validation": hidden})
    assert list(data.unlabelled) == ["validation"] and list(data.unlabelled["validation"]["text"]) == ["a", "b", "c"]
    assert len(data.splits["validation"]) == 4 and len(data.splits["train"]) == 36  # 10% carved from train


def test_prepare_splits_keeps_minus_one_when_train_uses_it_as_a_label():
    train = _split([f"r{i}" for i in range(30)], [-1, 0, 1] * 10)
    test = _split(["x", "y"], [-1, 1])
    data = _prepare({"train": train, "validation": train, "test": test})
    assert data.label_names == ["-1", "0", "1"] and list(data.splits["test"]["label"]) == [0, 2]
    assert not data.unlabelled and not data.hidden_labels


def test_prepare_splits_refuses_partly_hidden_labels_when_told_to():
    features = {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}
    train = _split([f"r{i}" for i in range(20)], [i % 2 for i in range(20)], **features)
    test = _split(["x", "y", "z"], [0, -1, 1], **features)
    with pytest.raises(UsageError, match="1 of 3 rows with a hidden label"):
        _prepare({"train": train, "validation": train, "test": test}, empty_text="error")


# --- evaluation in length-sorted batches --------------------------------------------------------


def test_sort_by_length_puts_longest_first_and_restore_order_undoes_it():
    split = Dataset.from_dict({"input_ids": [[1] * n for n in (3, 9, 1, 9, 5)], "label": [0, 1, 2, 3, 4]})
    ordered, order = sort_by_length(split)
    assert [len(ids) for ids in ordered["input_ids"]] == [9, 9, 5, 3, 1]
    assert list(ordered["label"]) == [1, 3, 4, 0, 2]  # ties keep their order
    rows = np.array(ordered["label"])[:, None] * np.ones((1, 2))
    assert restore_order(rows, order)[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_sorted_evaluation_gives_the_same_metrics_and_predictions_as_unsorted(trained_run, review_files, tmp_path):
    """The restored model, scored on test in file order and in length order: the same numbers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from finetune.metrics import make_compute_metrics

    tokenizer = AutoTokenizer.from_pretrained(trained_run)
    model = AutoModelForSequenceClassification.from_pretrained(trained_run)
    rows = Dataset.from_csv(str(review_files["test"]))
    labels = ["negative", "positive"]
    encoded = Dataset.from_dict({**tokenizer(list(rows["text"])), "labels": [labels.index(x) for x in rows["label"]]})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, use_cpu=True,
                             report_to=[], disable_tqdm=True)
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, compute_metrics=make_compute_metrics(labels))
    plain = trainer.predict(encoded)
    ordered, order = sort_by_length(encoded)
    assert order.tolist() != list(range(len(order)))  # the test really reorders
    sorted_run = trainer.predict(ordered)
    for key in ("test_accuracy", "test_f1", "test_precision", "test_recall"):
        assert sorted_run.metrics[key] == pytest.approx(plain.metrics[key], abs=1e-9)
    assert sorted_run.metrics["test_loss"] == pytest.approx(plain.metrics["test_loss"], rel=1e-5)
    assert torch.allclose(torch.from_numpy(restore_order(sorted_run.predictions, order)),
                          torch.from_numpy(plain.predictions), atol=1e-5)
    # The training run scored test this way: its confusion matrix adds up to the same predictions.
    predicted, truth = plain.predictions.argmax(-1), np.array(encoded["labels"])
    expected = [[int(((truth == t) & (predicted == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    assert artifacts.read_json(trained_run, artifacts.RESULTS_FILE)["confusion_matrices"]["test"] == expected


# --- ratings and several labels per review (finetune/tasks.py) ---------------------------------------------


def test_prepare_splits_reads_ratings_as_floats_and_drops_missing_ones():
    train = _split([f"review {i}" for i in range(10)], [1.0, 2.5, float("nan"), 4.0, None, 5.0, 1.0, 2.5, 4.0, 5.0])
    validation = _split(["x", "y", "z"], [3.0, -1.0, None])  # -1 is a rating here, not a hidden label
    data = _prepare({"train": train, "validation": validation}, problem_type="regression")
    assert data.task.problem_type == "regression" and data.task.rating_values == [1.0, 2.5, 4.0, 5.0]
    assert data.label_names == ["label"] and data.dropped["train"] == 2
    assert data.splits["train"].features["label"] == Value("float32")
    assert list(data.splits["validation"]["label"]) == [3.0, -1.0] and data.hidden_labels == {"validation": 1}


def test_prepare_splits_reads_label_lists_of_every_shape():
    lists = [["food"], ["food", "service"], [], ["price"]] * 3
    data = _prepare({"train": _split([f"r{i}" for i in range(12)], lists)}, problem_type="multi_label")
    assert data.task.label_names == ["food", "price", "service"]
    rows = {tuple(r["label"]) for r in data.splits["train"]} | {tuple(r["label"]) for r in data.splits["validation"]}
    assert (0.0, 0.0, 0.0) in rows and (1.0, 0.0, 1.0) in rows  # no label; food and service
    as_json = [json_list for json_list in ('["food"]', '["food", "service"]', "[]", '["price"]')] * 3
    data = _prepare({"train": _split([f"r{i}" for i in range(12)], as_json)}, problem_type="multi_label")
    assert data.task.label_names == ["food", "price", "service"]
    delimited = ["food", "food;service", "", "price"] * 3  # an empty cell: none of the labels, as []
    data = _prepare({"train": _split([f"r{i}" for i in range(12)], delimited)}, problem_type="multi_label",
                    label_delimiter=";")
    assert data.task.label_names == ["food", "price", "service"] and data.dropped["train"] == 0
    rows = [tuple(r["label"]) for split in data.splits.values() for r in split]
    assert rows.count((0.0, 0.0, 0.0)) == 3


def test_a_class_label_column_rates_by_the_numbers_its_names_start_with():
    features = {"text": Value("string"), "label": ClassLabel(names=["1 star", "2 stars", "3 stars"])}
    train = _split([f"r{i}" for i in range(9)], [0, 1, 2] * 3, **features)
    data = _prepare({"train": train, "validation": train}, problem_type="regression")
    assert data.task.rating_values == [1.0, 2.0, 3.0] and sorted(set(data.splits["train"]["label"][:])) == [1.0, 2.0, 3.0]
    plain = {"text": Value("string"), "label": ClassLabel(names=["bad", "ok", "good"])}
    data = _prepare({"train": _split([f"r{i}" for i in range(9)], [0, 1, 2] * 3, **plain)}, problem_type="regression")
    assert data.task.rating_values == [0.0, 1.0, 2.0]  # names without numbers: the class ids


def test_read_splits_reads_a_split_as_a_models_labels_by_map_and_spelling():
    from finetune import tasks
    from finetune.data import Reading, model_labels, read_splits

    split = Dataset.from_dict({"review": ["a", "b", "c", "d", ""], "label": ["positive", "Fresh ", "rotten", None, "x"]})
    reading = Reading(tasks.SINGLE_LABEL, ("review",), ("label",))
    rows = read_splits({"test": split}, reading, model_labels(tasks.Task(tasks.SINGLE_LABEL, ["fresh", "rotten"]),
                                                              {"positive": "fresh"}))
    assert rows.labelled["test"]["text"][:] == ["a", "b", "c"] and rows.labelled["test"]["label"][:] == [0, 0, 1]
    assert rows.dropped == {"test": 1} and rows.hidden == {"test": 1} and not rows.unlabelled


def test_read_splits_keeps_a_split_without_a_label_column_to_predict():
    from finetune import tasks
    from finetune.data import Reading, model_labels, read_splits

    split = Dataset.from_dict({"text": ["a", " ", "c"]})
    rows = read_splits({"test": split}, Reading(tasks.SINGLE_LABEL, ("text",)),
                       model_labels(tasks.Task(tasks.SINGLE_LABEL, ["neg", "pos"]), {}))
    assert not rows.labelled and rows.unlabelled["test"]["text"][:] == ["a", "c"] and rows.dropped == {"test": 1}
