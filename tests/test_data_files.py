"""Bad local data files: each fails before training with one `error:` line that names the cause and the fix."""

import csv
import json
import logging

import pytest
from conftest import make_reviews, write_csv

from finetune.config import DataArguments
from finetune.data import load_raw_splits
from finetune.errors import UsageError
from finetune.train import EXIT_USAGE, main

CP1252_ROWS = "text,label\nthe film was great,positive\ncafé scene was awful,negative\n"


def _read(path, **args):
    return load_raw_splits(DataArguments(train_file=str(path), **args))["train"]


def _refusal(path, **args) -> str:
    with pytest.raises(UsageError) as caught:
        _read(path, **args)
    message = str(caught.value)
    assert message.startswith(f"--train_file {path}: ") and "\n" not in message
    return message


# --- encoding ---------------------------------------------------------------------------------


def test_load_raw_splits_names_the_byte_line_and_fix_of_a_cp1252_file(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(CP1252_ROWS.encode("cp1252"))
    message = _refusal(path)
    offset = CP1252_ROWS.encode("cp1252").index(b"\xe9")
    assert f"byte 0xe9 at offset {offset} (line 3" in message and "caf\\xe9 scene" in message
    assert "is not valid UTF-8" in message
    assert f"iconv -f cp1252 -t utf-8 {path} > {tmp_path / 'reviews-utf8.csv'}" in message
    assert "--file_encoding cp1252" in message


def test_load_raw_splits_reads_cp1252_csv_and_json_with_file_encoding(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_bytes(CP1252_ROWS.encode("cp1252"))
    assert list(_read(csv_path, file_encoding="cp1252")["text"])[1] == "café scene was awful"
    rows = [{"text": "café scene", "label": "negative"}, {"text": "great", "label": "positive"}]
    json_list = tmp_path / "reviews.json"
    json_list.write_bytes(json.dumps(rows, ensure_ascii=False).encode("cp1252"))
    assert list(_read(json_list, file_encoding="cp1252")["text"]) == ["café scene", "great"]
    json_lines = tmp_path / "reviews.jsonl"
    json_lines.write_bytes("\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("cp1252"))
    assert list(_read(json_lines, file_encoding="cp1252")["text"]) == ["café scene", "great"]


def test_load_raw_splits_names_the_byte_of_a_cp1252_json_lines_file(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_bytes('{"text": "fine", "label": 1}\n{"text": "café", "label": 0}\n'.encode("cp1252"))
    message = _refusal(path)
    assert "byte 0xe9" in message and "(line 2" in message and "--file_encoding cp1252" in message


def test_load_raw_splits_suggests_utf16_for_a_utf16_file(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\ngreat,positive\n".encode("utf-16"))
    message = _refusal(path)
    assert "probably utf-16" in message and "--file_encoding utf-16" in message
    assert "\x00" not in message


def test_load_raw_splits_accepts_a_utf8_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "text,label\ncafé,positive\nbad,negative\n".encode())
    split = _read(path)
    assert split.column_names == ["text", "label"] and list(split["text"]) == ["café", "bad"]


def test_data_arguments_checks_file_encoding_at_parse_time():
    assert DataArguments(file_encoding="cp1252").file_encoding == "cp1252"
    for bad in ("utf-9", "base64"):
        with pytest.raises(UsageError, match=f"--file_encoding {bad}: not a text encoding.*cp1252"):
            DataArguments(file_encoding=bad)


# --- empty files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("reviews.csv", "", "the file is empty (0 bytes)"),
        ("reviews.csv", " \n\n  \n", "the file holds only whitespace"),
        ("reviews.csv", "text,label\n", "the file has a header (text, label) but no rows"),
        ("reviews.tsv", "text\tlabel\n\n", "the file has a header (text, label) but no rows"),
        ("reviews.jsonl", "\n\n", "the file holds only whitespace"),
        ("reviews.json", "[]", "the file holds no rows"),
        ("reviews.parquet", "", "the file is empty (0 bytes)"),
    ],
)
def test_load_raw_splits_says_the_file_is_empty(name, content, message, tmp_path):
    path = tmp_path / name
    path.write_text(content)
    assert message in _refusal(path)


# --- CSV structure --------------------------------------------------------------------------------


def test_load_raw_splits_names_the_line_of_an_unterminated_quote(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\ngreat film,positive\n"awful, and boring,negative\nfine,positive\nmeh,negative\n')
    message = _refusal(path)
    assert "the quoted field that starts on line 3 is never closed" in message
    assert "(3 lines)" in message and 'write a " inside a quoted text as ""' in message


@pytest.mark.parametrize("ending", ["\n", ""])
def test_load_raw_splits_names_an_unterminated_quote_on_the_last_line(ending, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\ngreat film,positive\n"awful,negative' + ending)
    assert "the quoted field that starts on line 3 is never closed" in _refusal(path)


def test_load_raw_splits_keeps_quoted_texts_that_span_lines(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"great,\nreally ""great""",positive\nfine,negative\n"two\nlines",negative\n')
    assert list(_read(path)["text"]) == ['great,\nreally "great"', "fine", "two\nlines"]


def test_load_raw_splits_names_a_row_with_more_fields_than_the_header(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\ngreat,positive\nawful, just awful,negative\n")
    message = _refusal(path)
    assert "line 3 has 3 fields but the header has 2 (','-separated)" in message
    assert "double quotes" in message


def _fully_quoted(texts: list[str], labels: list[str]) -> list[str]:
    return ["text,label"] + [f'"{text}",{label}' for text, label in zip(texts, labels)]


@pytest.mark.parametrize("separator_in_texts", [True, False])
def test_load_raw_splits_names_a_quote_that_the_next_lines_quote_closes(separator_in_texts, tmp_path):
    texts = [f"review {i}, quite good" if separator_in_texts else f"review {i}" for i in range(60)]
    lines = _fully_quoted(texts, ["pos", "neg"] * 30)
    lines[41] = '"this one never closes,neg'  # line 42; line 43's opening quote closes it
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(lines) + "\n")
    message = _refusal(path)
    assert message.endswith(
        "the quote that starts on line 42 ('\"this one never closes,neg') is not closed on that line, so the quote "
        "that opens line 43 closes it instead and the quotes go out of step (lines 42-43 read as one row). Close "
        'the quote where the text on line 42 ends, or write a " inside a quoted text as "".'
    )
    assert "fields but the header" not in message and "never closed" not in message


def test_load_raw_splits_keeps_quoted_texts_whose_second_line_starts_with_a_quote(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"he said\n""wow"", twice",pos\n"it ends\n",neg\n"fine",pos\n')
    assert list(_read(path)["text"]) == ['he said\n"wow", twice', "it ends\n", "fine"]


# --- delimiters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter, shown", [(";", "';'"), ("\t", "tab"), ("|", "'|'"), (",", "','")])
def test_load_raw_splits_detects_the_delimiter_and_logs_it(delimiter, shown, tmp_path, caplog):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:  # quotes the texts that hold the delimiter
        csv.writer(handle, delimiter=delimiter).writerows(
            [["text", "label"], ["great, truly", "positive"], ["awful; really", "negative"]]
        )
    with caplog.at_level(logging.INFO, logger="finetune.data_files"):
        split = _read(path)
    assert split.column_names == ["text", "label"]
    assert list(split["text"]) == ["great, truly", "awful; really"]
    assert f"read reviews.csv as {shown}-separated (detected from the header" in caplog.text


def test_detect_delimiter_prefers_the_one_that_fits_the_rows():
    from finetune.data_files import detect_delimiter

    head = "text;label,x\ngreat;positive\nawful;negative\n"  # both split the header in two; only ';' fits the rows
    assert detect_delimiter(head) == ";"
    assert detect_delimiter("text,label;x\na;b,c\n") == ","  # a tie goes to the comma
    assert detect_delimiter("text;label\ngreat, truly;pos\n") == ";"
    assert detect_delimiter("review\nonly one column\n") == ","


def test_load_raw_splits_reads_tsv_files_as_tab_separated(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("text\tlabel\ngreat, truly\tpositive\nawful\tnegative\n")
    assert list(_read(path)["text"]) == ["great, truly", "awful"]


def test_csv_delimiter_flag_overrides_detection(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text:label\ngreat:positive\nawful:negative\n")
    message = _refusal(path)
    assert "its header 'text:label' is a single column, so there is no column 'text'" in message
    assert "pass it with --csv_delimiter" in message
    assert list(_read(path, csv_delimiter=":")["label"]) == ["positive", "negative"]


def test_csv_delimiter_flag_forced_wrong_suggests_the_flag(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text;label\ngreat;positive\nawful;negative\n")
    message = _refusal(path, csv_delimiter=",")
    assert "read as ','-separated, its header 'text;label' is a single column" in message


def test_data_arguments_normalises_csv_delimiter_and_refuses_bad_ones():
    assert DataArguments(csv_delimiter="tab").csv_delimiter == "\t"
    assert DataArguments(csv_delimiter="\\t").csv_delimiter == "\t"
    assert DataArguments(csv_delimiter=";").csv_delimiter == ";"
    for bad in (";;", '"', ""):
        with pytest.raises(UsageError, match="--csv_delimiter .*: pass one character"):
            DataArguments(csv_delimiter=bad)


# --- JSON and Parquet -----------------------------------------------------------------------------


def test_load_raw_splits_names_the_line_of_malformed_json_lines(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "great", "label": 1}\n\n{"text": "awful", label: 0}\n')
    message = _refusal(path)
    assert "line 3 is not valid JSON: Expecting property name enclosed in double quotes (column 19)" in message
    assert "DatasetGenerationError" not in message


def test_load_raw_splits_names_the_place_of_malformed_json(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text('[\n  {"text": "great", "label": 1},\n  {"text": "awful" "label": 0}\n]\n')
    message = _refusal(path)
    assert "not valid JSON: Expecting ',' delimiter (line 3, column 20)" in message


@pytest.mark.parametrize(
    "document, keys",
    [({"data": [{"text": "great", "label": 1}], "version": 2}, "data, version"),
     ({"text": ["great", "awful"], "label": [1, 0]}, "text, label")],
)
def test_load_raw_splits_refuses_a_single_json_object(document, keys, tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps(document, indent=2))
    assert f"the file is a single JSON object (keys: {keys}) that holds lists" in _refusal(path)


def test_load_raw_splits_reads_a_json_lines_file_of_one_review(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"review": "great", "stars": 5}\n')
    assert _read(path)[0] == {"review": "great", "stars": 5}


def test_load_raw_splits_refuses_a_text_file_named_parquet(tmp_path):
    path = tmp_path / "reviews.parquet"
    path.write_text("text,label\ngreat,positive\n")
    message = _refusal(path)
    assert "not a Parquet file" in message and "it starts with 'text,label'" in message


def test_load_raw_splits_still_reads_parquet(tmp_path):
    from datasets import Dataset

    path = tmp_path / "reviews.parquet"
    Dataset.from_list(make_reviews(4)).to_parquet(str(path))
    assert len(_read(path)) == 4


# --- what the columns hold ---------------------------------------------------------------------


def _review_data(path, **args):
    from finetune.data import load_review_data

    return load_review_data(DataArguments(train_file=str(path), **args), seed=0)


@pytest.mark.parametrize("empty_text", ["drop", "error"])
def test_load_review_data_reads_a_csv_text_column_of_numbers_as_text(empty_text, tmp_path, caplog):
    path = tmp_path / "numbers.csv"
    path.write_text("text,label\n" + "".join(f"{i % 9 + 1},{'pos' if i % 2 else 'neg'}\n" for i in range(200)))
    with caplog.at_level(logging.WARNING, logger="finetune.data"):
        data = _review_data(path, empty_text=empty_text)
    assert data.dropped == {"train": 0}
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 200
    assert set(data.splits["train"]["text"]) == {str(n) for n in range(1, 10)}
    assert (f"--train_file {path}: column 'text' holds only numbers (e.g. 1, 2, 3): read them as text. If the "
            "reviews are in another column, pass its name with --text_column_name") in caplog.text


@pytest.mark.parametrize(
    "texts, read, held",
    [
        ([9, 2.5, None, 4], ["9", "2.5", "4"], "only numbers (e.g. 9, 2.5, 4)"),
        ([9, "great", "", 7], ["9", "great", "7"], "20 numbers among its texts (e.g. 9, 7)"),
    ],
)
def test_load_review_data_reads_json_numbers_in_the_text_column_as_text(texts, read, held, tmp_path, caplog):
    path = tmp_path / "numbers.jsonl"
    path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n"
                            for text, label in zip(texts * 10, ["pos", "neg"] * 20)))
    with caplog.at_level(logging.WARNING, logger="finetune.data"):
        data = _review_data(path)
    assert data.dropped == {"train": 10}  # the None or "" rows only
    assert sorted(set(data.splits["train"]["text"]) | set(data.splits["validation"]["text"])) == sorted(read)
    assert f"--train_file {path}: column 'text' holds {held}: read them as text" in caplog.text


def test_load_review_data_names_the_file_in_label_column_messages(tmp_path, caplog):
    path = tmp_path / "scores.csv"
    scores = [round(1.01 + i / 20, 2) for i in range(69)] + [3] * 11  # 70 distinct, 69 with fractions
    write_csv(path, [{"text": f"review {i}", "label": score} for i, score in enumerate(scores)])
    with pytest.raises(UsageError) as caught:
        _review_data(path)
    assert str(caught.value).startswith(
        f"--train_file {path}: column 'label' holds 70 distinct numbers, 69 of them with fractions (e.g. 1.01, "
        "1.06, 1.11): this looks like a regression target"
    )
    write_csv(path, [{"text": f"review {i}", "label": "pos"} for i in range(10)])
    with pytest.raises(UsageError, match=f"^--train_file {path}: column 'label' holds a single label "):
        _review_data(path)
    write_csv(path, [{"text": f"review {i}", "label": f"user{i % 20}"} for i in range(30)])
    with pytest.raises(UsageError, match=f"^--train_file {path}: column 'label' holds 20 distinct labels in 30 rows"):
        _review_data(path)
    write_csv(path, [{"text": f"review {i}", "label": ["pos", "neg"][i % 2] if i < 20 else "meh"} for i in range(21)])
    with caplog.at_level(logging.WARNING, logger="finetune.data"):
        _review_data(path)
    assert f"--train_file {path}: 1 of 3 labels in column 'label' have a single example (meh)" in caplog.text


# --- end to end: one error line, no training ------------------------------------------------------


def _bad_train_file(case, tmp_path):
    if case == "cp1252":
        path = tmp_path / "reviews.csv"
        path.write_bytes(("text,label\n" + "\n".join(f"{r['text']} café,{r['label']}" for r in make_reviews(20)))
                         .encode("cp1252"))
    elif case == "unterminated_quote":
        rows = make_reviews(20)
        path = write_csv(tmp_path / "reviews.csv", rows)
        lines = path.read_text().splitlines()
        lines[5] = '"' + lines[5]
        path.write_text("\n".join(lines) + "\n")
    elif case == "semicolons_forced_comma":
        path = tmp_path / "reviews.csv"
        path.write_text("text;label\n" + "\n".join(f"{r['text']};{r['label']}" for r in make_reviews(20)) + "\n")
    elif case == "bad_json_lines":
        path = tmp_path / "reviews.jsonl"
        lines = [json.dumps(r) for r in make_reviews(20)]
        lines[7] = lines[7].replace('"label"', "label")
        path.write_text("\n".join(lines))
    elif case == "continuous_labels":
        rows = [{"text": r["text"], "label": round(1 + i * 0.05 + (0.01 if i % 3 else 0), 2)}
                for i, r in enumerate(make_reviews(80))]
        path = write_csv(tmp_path / "reviews.csv", rows)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("cp1252", "byte 0xe9 at offset"),
        ("unterminated_quote", "the quoted field that starts on line 6 is never closed"),
        ("semicolons_forced_comma", "its header 'text;label' is a single column"),
        ("bad_json_lines", "line 8 is not valid JSON"),
        ("continuous_labels", "this looks like a regression target"),
    ],
)
def test_main_bad_data_file_prints_one_error_line_and_never_trains(case, message, tiny_bert, tmp_path, capsys):
    output_dir = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_bert), "--train_file", str(_bad_train_file(case, tmp_path)),
            "--output_dir", str(output_dir), "--disable_tqdm", "true"]
    if case == "semicolons_forced_comma":
        argv += ["--csv_delimiter", ","]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]
    assert message in errors[0]
    assert f"--train_file {tmp_path}" in errors[0]
    assert "DatasetGenerationError" not in err and "Traceback" not in err
    assert not output_dir.exists()


# --- Python's own limits (finetune/limits.py) ---------------------------------------------------------

LONG_REVIEW_CHARS = 1_500_000  # past csv's default field limit of 131,072 characters


def test_a_csv_with_a_review_of_one_and_a_half_megabytes_trains(tiny_bert, review_files, tmp_path):
    from conftest import tiny_run_args
    from transformers import AutoTokenizer

    from finetune import artifacts
    from finetune.data_files import read_data_file

    long_review = ("the film was great and the cast was superb " * 40_000)[:LONG_REVIEW_CHARS]
    rows = make_reviews(96, seed=1)
    rows[0] = {"text": long_review, "label": "positive"}
    path = write_csv(tmp_path / "long.csv", rows)

    read = read_data_file(str(path), "train_file")
    assert read.num_rows == 96 and read[0]["text"] == long_review
    ids = AutoTokenizer.from_pretrained(tiny_bert)(read[0]["text"], truncation=True, max_length=64)["input_ids"]
    assert len(ids) == 64  # truncated as usual

    files = {**review_files, "train": path}
    out = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, files, out, "--num_train_epochs", "1")) == 0
    assert artifacts.read_json(out, artifacts.RESULTS_FILE)["split_sizes"]["train"] == 96


def test_a_json_lines_number_past_pythons_digit_limit_is_a_usage_error_not_a_crash(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "fine film", "label": "pos"}\n{"text": ' + "9" * 5000 + ', "label": "neg"}\n')
    assert "could not read it as JSON" in _refusal(path)


def test_json_nested_past_the_recursion_limit_is_a_usage_error_not_a_crash(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested more than about" in _refusal(path)


def test_limits_json_loads_keeps_huge_integers_as_their_digits():
    from finetune import limits

    assert limits.json_loads('{"n": 12, "big": ' + "7" * 5000 + "}") == {"n": 12, "big": "7" * 5000}
    limits.allow_long_csv_fields()
    assert csv.field_size_limit() >= LONG_REVIEW_CHARS
