"""The data audit: exact leakage by row, duplicates, near-duplicates, conflicts, label spellings, numeric texts."""

import json

import numpy as np
import pytest

from finetune import audit
from finetune.audit import AuditReport, canonical_label, is_numeric_text, label_variants, normalize
from finetune.errors import UsageError

REVIEW = (
    "We came for the brisket and stayed for the pie. The brisket was smoky and tender, the sauce had a little "
    "vinegar bite, and the cornbread arrived warm in a cast iron pan. Our server knew the menu by heart and "
    "steered us toward the peach pie, which was the best thing we ate all week. Parking is tight on weekends."
)
OTHER_REVIEW = (
    "The hotel lobby smelled of fresh paint and the elevator took ages to arrive. Our room faced the highway, "
    "so we heard trucks until two in the morning. Breakfast was a tray of pastries and weak coffee. The front "
    "desk staff were friendly and let us check out late, but we will try somewhere else next time in town."
)


def one_word_changed(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "banana"
    return " ".join(words)


def test_normalize_treats_entities_tags_case_and_spacing_alike():
    assert normalize("  Great&amp;cheap<br />FOOD\n\tHere ") == "great&cheap food here"
    assert normalize("It&#39;s GOOD") == normalize("it's good")
    assert normalize("ｆｕｌｌ width") == "full width"  # NFKC
    assert normalize("STRASSE") == normalize("Straße")  # case folded, not just lowered
    assert normalize("3 < 5 and 6 > 4") == "3 < 5 and 6 > 4"  # not a tag
    assert normalize(None) == normalize("  ") == ""


def test_audit_finds_leaked_rows_exactly():
    train = ["The soup was cold.", "Fantastic service &amp; great wine!", "Never again.", "Loved it"]
    test = [
        "A genuinely different review.",
        "the SOUP   was cold.",  # case and spacing
        "Fantastic service & great wine!",  # the entity decoded
        "The soup was cold!",  # different punctuation: a different text
        "<p>never again.</p>",  # tags
        "",
    ]
    report = audit.audit({"train": train, "test": test}, near_duplicates=False)
    assert report.leaked == {"test": [1, 2, 4]}
    assert report.examples["leaked"][0] == {"split": "test", "row": 1, "text": "the SOUP   was cold.", "train_row": 0}


def test_audit_checks_later_evaluation_splits_against_earlier_ones():
    texts = {"train": ["one review here", "two"], "validation": ["three", "four"], "test": ["FOUR", "two", "five"]}
    report = audit.audit(texts, near_duplicates=False)
    assert report.leaked == {"validation": [], "test": [1]}
    assert report.overlap == {"test": {"validation": [0]}}
    assert "test: 1 of 3 reviews also in validation" in report.summary_lines()


def test_audit_counts_rows_that_repeat_an_earlier_train_row():
    train = ["Good food", "good  FOOD", "Bad food", "Good food", "", "", "Fine"]
    report = audit.audit({"train": train}, near_duplicates=False)
    assert report.duplicates_in_train == 2  # rows 1 and 3; empty texts repeat nothing
    assert report.examples["duplicates"][0] == {"row": 1, "same_as_row": 0, "text": "good  FOOD"}


def test_audit_finds_a_near_duplicate_but_not_an_unrelated_review():
    texts = {"train": [REVIEW, OTHER_REVIEW[:40]], "test": [one_word_changed(REVIEW), OTHER_REVIEW, REVIEW]}
    report = audit.audit(texts)
    assert report.near_duplicates == {"train": 0, "test": 1}
    assert report.leaked == {"test": [2]}  # the exact copy is a leak, and not counted again as near
    example = report.examples["near_duplicates"][0]
    assert (example["split"], example["row"], example["train_row"]) == ("test", 0, 0)
    assert 0.8 <= example["similarity"] < 1.0


def test_audit_finds_near_duplicates_within_train():
    report = audit.audit({"train": [OTHER_REVIEW, REVIEW, one_word_changed(REVIEW), REVIEW]})
    assert report.near_duplicates == {"train": 1}
    assert report.duplicates_in_train == 1


def test_audit_result_does_not_depend_on_chunking(monkeypatch):
    texts = {"train": [REVIEW, OTHER_REVIEW, "short one", "", "Short  ONE"] * 3,
             "test": [one_word_changed(REVIEW), "short one", OTHER_REVIEW.upper()]}
    whole = audit.audit(texts).to_json()
    monkeypatch.setattr(audit, "CHUNK_CHARS", 50)
    chunked = audit.audit(texts).to_json()
    whole.pop("seconds"), chunked.pop("seconds")
    assert chunked == whole
    assert whole["leaked"] == {"test": [1, 2]}


def test_hash_keys_agree_with_normalize_on_awkward_text():
    texts = ["", "   ", "a", "A  B", "\tA\nb\x1c", "a\x00 b\x07", "Ünïcode  Straße", "ﬁne  ｆｕｌｌ", "x&nbsp;y",
             "a\u2028b\u00a0c", "café", "cafe\u0301", " one two three four ", "good<br />bad"]
    keys, shingles, counts = audit._hash_texts([audit._prepare(text) for text in texts])
    from_normalized = audit._hash_texts([normalize(text) for text in texts])
    assert np.array_equal(keys, from_normalized[0])
    assert np.array_equal(shingles, from_normalized[1]) and np.array_equal(counts, from_normalized[2])
    same_text = {}
    for text, key in zip(texts, keys):
        same_text.setdefault(int(key), set()).add(normalize(text))
    assert all(len(normalized) == 1 for normalized in same_text.values())
    assert len(same_text) == len({normalize(text) for text in texts})


def test_minhash_signatures_equal_datasketch_affine32():
    datasketch = pytest.importorskip("datasketch")
    shingles = audit.shingle_hashes(REVIEW)
    assert len(shingles) == len(REVIEW.split()) - 2
    sketch = datasketch.MinHash(num_perm=audit.NUM_PERM, hashfunc=int)
    sketch.update_batch(shingles.tolist())
    ours = audit.minhash_signatures(shingles, np.array([len(shingles)]))
    assert np.array_equal(ours[0], sketch.hashvalues)


def test_audit_counts_texts_with_different_labels():
    texts = ["Tasty", "tasty", "Cold", "cold", "Slow", "slow ", "Fine", "fine"]
    labels = ["pos", "neg", "neg", "Neg", "neg", None, 5, 5.0]  # Neg is a spelling; None and 5.0 conflict with nothing
    report = audit.audit({"train": texts}, {"train": labels}, near_duplicates=False)
    assert report.conflicts == 1
    assert report.examples["conflicts"] == [{"row": 0, "text": "Tasty", "labels": ["pos", "neg"]}]


def test_audit_compares_several_labels_as_sets():
    texts = ["Great food, slow service", "great food, slow service", "Nice view", "nice view"]
    labels = [["food", "service"], ["service", "food"], ["view"], ["view", "price"]]
    report = audit.audit({"train": texts}, {"train": labels}, near_duplicates=False)
    assert report.conflicts == 1
    assert report.examples["conflicts"][0]["row"] == 2


def test_label_variants_groups_case_space_and_number_forms():
    assert label_variants(["pos", "Pos", "pos ", "neg"]) == {"pos": ["pos", "Pos", "pos "]}
    assert label_variants(["5", "5.0", "five", " 5"]) == {"5": ["5", "5.0", " 5"]}
    assert label_variants(["neg", "pos"]) == {}


def test_label_variants_name_a_group_by_its_most_frequent_spelling():
    assert label_variants(["Pos", "pos", "pos", "neg"]) == {"pos": ["Pos", "pos"]}
    assert label_variants(["Pos", "pos"]) == {"Pos": ["Pos", "pos"]}  # a tie: the first seen


def test_canonical_label_merges_number_forms_but_not_words():
    assert canonical_label(" Pos ") == "pos"
    assert canonical_label("5.0") == canonical_label(5) == canonical_label("+5") == "5"
    assert canonical_label("3.50") == "3.5"
    assert canonical_label("five") == "five"
    assert canonical_label("NaN") == "nan"


def test_audit_reports_label_variants_across_splits():
    report = audit.audit({"train": ["a", "b", "c"], "test": ["d"]},
                         {"train": ["pos", "pos", "neg"], "test": ["Pos "]}, near_duplicates=False)
    assert report.label_variants == {"pos": ["pos", "Pos "]}


def test_is_numeric_text_flags_a_column_of_numbers():
    assert is_numeric_text(["5", "4.0", " 3", "-1", "", None, "1e3", "2", "1", "5"])
    assert not is_numeric_text(["5", "4", "3", "great food", "2", "1", "5", "4", "bad", "3"])  # 80%
    assert not is_numeric_text(["", None])
    assert audit.audit({"train": ["5", "4", "3"]}, near_duplicates=False).numeric_text


def test_audit_needs_a_train_split():
    with pytest.raises(UsageError, match="needs a train split"):
        audit.audit({"test": ["a"]})
    with pytest.raises(UsageError, match="2 texts but 1 labels"):
        audit.audit({"train": ["a", "b"]}, {"train": ["pos"]})


def test_audit_report_round_trips_through_json():
    texts = {"train": [REVIEW, REVIEW.lower(), "Fine"], "test": [one_word_changed(REVIEW), "fine"]}
    report = audit.audit(texts, {"train": ["pos", "neg", "Pos"], "test": ["pos", "neg"]})
    again = AuditReport.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report
    assert again.leaked == {"test": [1]} and again.near_duplicates == {"train": 0, "test": 1}


def test_summary_lines_say_what_was_found():
    texts = {"train": ["Good", "good", "Bad"], "test": ["good", "Other"]}
    lines = audit.audit(texts, {"train": ["pos", "neg", "neg"], "test": ["pos", "neg"]}).summary_lines()
    assert lines[0].startswith("data audit of train 3, test 2 reviews took ")
    assert "train: 1 of 3 reviews repeat an earlier one (the same text after normalising case, spacing and HTML)" in lines
    assert "test: 1 of 2 reviews also in train (leaked)" in lines
    assert "train: texts with different labels (conflicts): 1" in lines
