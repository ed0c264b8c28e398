"""Reviews in Excel workbooks (.xlsx): training, scoring and the demo's batch tab read a sheet; a workbook that
is not a table of reviews fails before training with one `error:` line. Each test writes its workbook with
openpyxl (an encrypted one with msoffcrypto-tool, as Excel encrypts: an OLE file holding the package)."""

import csv
import datetime
import io
from pathlib import Path

import openpyxl
import pytest
from conftest import make_reviews, tiny_run_args

import app
from finetune import artifacts, serving, sheets
from finetune.config import DataArguments
from finetune.data import load_raw_splits, load_review_data
from finetune.errors import UsageError
from finetune.run_views import load_served_model
from finetune.score import EVALUATION_FILE
from finetune.score import main as score_main
from finetune.train import EXIT_USAGE
from finetune.train import main as train_main


def write_workbook(path: Path, sheets_rows: dict[str, list[list]], merge: str | None = None) -> Path:
    """A workbook with one sheet per entry, in order, each holding its rows from A1."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets_rows.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    if merge:
        workbook.worksheets[0].merge_cells(merge)
    workbook.save(path)
    return path


def review_workbook(path: Path, rows: list[dict], sheet: str = "Reviews", before: dict | None = None) -> Path:
    return write_workbook(path, {**(before or {}), sheet: [["text", "label"], *([r["text"], r["label"]] for r in rows)]})


def encrypted(path: Path, password: str = "secret") -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    with open(path, "rb") as handle:
        OOXMLFile(handle).encrypt(password, out)
    path.write_bytes(out.getvalue())
    return path


def _refusal(path, **args) -> str:
    with pytest.raises(UsageError) as caught:
        load_raw_splits(DataArguments(train_file=str(path), **args))
    message = str(caught.value)
    assert message.startswith(f"--train_file {path}: ") and "\n" not in message
    return message


# --- reading --------------------------------------------------------------------------------------------


def test_load_raw_splits_reads_the_first_sheet_with_its_header_as_columns(tmp_path):
    path = write_workbook(tmp_path / "reviews.xlsx", {
        "Reviews": [["text", "label", "stars"], ["great film", "positive", 5], [None], ["dull plot", "negative", 2]],
        "Notes": [["not", "this"], ["one", "two"]],
    })
    split = load_raw_splits(DataArguments(train_file=str(path)))["train"]
    assert split.column_names == ["text", "label", "stars"]
    assert list(split["text"]) == ["great film", "dull plot"]  # the blank row is skipped
    assert list(split["stars"]) == [5, 2]  # numbers stay numbers


def test_load_raw_splits_reads_the_sheet_named_by_the_sheet_flag(tmp_path):
    path = review_workbook(tmp_path / "reviews.xlsx", make_reviews(4), sheet="Critics",
                           before={"Summary": [["total"], [4]]})
    split = load_raw_splits(DataArguments(train_file=str(path), sheet="Critics"))["train"]
    assert list(split["label"]) == [r["label"] for r in make_reviews(4)]


def test_sheet_columns_keep_text_as_text_and_read_a_mixed_column_as_text(tmp_path):
    path = write_workbook(tmp_path / "mixed.xlsx", {"S": [
        ["text", "label", "date", "score"],
        ["great", "positive", datetime.date(2024, 5, 1), 4.0],
        [10, "negative", datetime.date(2024, 5, 2), 3.5],  # a review that is only a number
        ["007 was fun", 1, None, None],
    ]})
    columns = sheets.read_sheet(path).columns()
    assert columns["text"] == ["great", "10", "007 was fun"]
    assert columns["label"] == ["positive", "negative", "1"]
    assert columns["date"] == ["2024-05-01T00:00:00", "2024-05-02T00:00:00", None]
    assert columns["score"] == [4, 3.5, None]


def test_a_sheet_with_a_column_of_numbers_as_text_trains_as_a_csv_would(tmp_path):
    rows = [["text", "label"], *([i, "positive" if i % 2 else "negative"] for i in range(20))]
    path = write_workbook(tmp_path / "numbers.xlsx", {"S": rows})
    data = load_review_data(DataArguments(train_file=str(path)), seed=0)
    assert sorted(data.splits["train"]["text"][:] + data.splits["validation"]["text"][:]) == sorted(
        str(i) for i in range(20))


def test_blank_trailing_columns_and_rows_of_formatting_are_ignored(tmp_path):
    path = write_workbook(tmp_path / "reviews.xlsx", {"S": [["text", "label", None, "  "], ["great", "positive"]]})
    sheet = sheets.read_sheet(path)
    assert sheet.header == ["text", "label"] and sheet.rows == [("great", "positive")]


# --- refusals ---------------------------------------------------------------------------------------------


def test_an_encrypted_workbook_is_refused_with_how_to_remove_the_password(tmp_path):
    path = encrypted(review_workbook(tmp_path / "locked.xlsx", make_reviews(4)))
    assert path.read_bytes().startswith(sheets.OLE_MAGIC)
    message = _refusal(path)
    assert "password-protected (encrypted), and openpyxl cannot open it" in message
    assert "Encrypt with Password" in message and "export the sheet as CSV" in message


def test_an_xls_workbook_named_xlsx_and_a_csv_named_xlsx_are_refused(tmp_path):
    xls = tmp_path / "old.xlsx"
    xls.write_bytes(sheets.OLE_MAGIC + b"\x00" * 504)
    assert "an Excel 97-2003 workbook (.xls) named .xlsx" in _refusal(xls)
    text = tmp_path / "text.xlsx"
    text.write_text("text,label\ngreat,positive\n")
    assert "not an .xlsx workbook (an .xlsx file is a zip archive; this one starts with b'text,lab')" in _refusal(text)


def test_a_broken_zip_named_xlsx_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(sheets.ZIP_MAGIC + b"not really a zip" * 10)
    assert "could not read it as an .xlsx workbook (BadZipFile" in _refusal(path)


def test_an_empty_sheet_is_refused_naming_the_other_sheets(tmp_path):
    path = write_workbook(tmp_path / "reviews.xlsx", {"Sheet1": [], "Reviews": [["text", "label"], ["great", "positive"]]})
    assert _refusal(path) == (
        f"--train_file {path}: sheet 'Sheet1' is empty. Put the reviews in it, one per row under a header row that "
        "names the columns (e.g. text, label), or pass --sheet NAME for the sheet that holds them (its sheets: "
        "'Sheet1', 'Reviews').")
    alone = write_workbook(tmp_path / "alone.xlsx", {"Sheet1": [[None, "  "]]})
    assert _refusal(alone).endswith("sheet 'Sheet1' is empty. Put the reviews in it, one per row under a header row "
                                    "that names the columns (e.g. text, label).")


def test_a_header_without_rows_is_refused(tmp_path):
    path = write_workbook(tmp_path / "reviews.xlsx", {"S": [["text", "label"]]})
    assert "sheet 'S' has a header (text, label) but no rows. Add reviews below the header." in _refusal(path)


def test_a_sheet_flag_that_names_no_sheet_lists_the_sheets(tmp_path):
    path = review_workbook(tmp_path / "reviews.xlsx", make_reviews(4), before={"Summary": [["n"], [4]]})
    assert _refusal(path, sheet="reviews") == (
        f"--train_file {path}: no sheet named 'reviews' (its sheets: 'Summary', 'Reviews'). Pass one of them with "
        "--sheet.")


def test_a_merged_header_cell_is_refused_naming_the_cell(tmp_path):
    path = write_workbook(tmp_path / "merged.xlsx", {"S": [["review", None, "label"], ["great", "film", "positive"]]},
                          merge="A1:B1")
    message = _refusal(path)
    assert "sheet 'S': the header cell B1 is blank, but its column holds values (a header cell merged with its " \
           "neighbour is blank too)" in message
    assert "unmerge the cells and type one name per column" in message


def test_a_column_named_twice_is_refused(tmp_path):
    path = write_workbook(tmp_path / "twice.xlsx", {"S": [["text", "label", "text"], ["a", "b", "c"]]})
    assert "sheet 'S': two columns are named 'text' (A1 and C1). Give each column its own name." in _refusal(path)


def test_the_sheet_flag_without_a_workbook_is_refused_at_parse_time(tmp_path, review_files, tiny_bert, capsys):
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_bert), "--train_file", str(review_files["train"]), "--sheet", "Reviews",
            "--output_dir", str(out)]
    assert train_main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (f"error: --sheet Reviews: names a sheet of an .xlsx workbook, but no file given is one (--train_file "
            f"{review_files['train']}). Drop --sheet, or pass the workbook.") in err
    assert not out.exists()


@pytest.mark.parametrize("case, message", [
    ("encrypted", "password-protected (encrypted)"),
    ("missing_sheet", "no sheet named 'Critics' (its sheets: 'Reviews'). Pass one of them with --sheet."),
    ("merged_header", "the header cell B1 is blank"),
])
def test_main_bad_workbook_prints_one_error_line_and_never_trains(case, message, tiny_bert, tmp_path, capsys):
    path = review_workbook(tmp_path / "reviews.xlsx", make_reviews(20))
    extra = []
    if case == "encrypted":
        encrypted(path)
    elif case == "missing_sheet":
        extra = ["--sheet", "Critics"]
    else:
        write_workbook(path, {"S": [["review", None], *([r["text"], r["label"]] for r in make_reviews(20))]},
                       merge="A1:B1")
    output_dir = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_bert), "--train_file", str(path), "--output_dir", str(output_dir),
            "--disable_tqdm", "true", *extra]
    assert train_main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"error: --train_file {path}: ") and message in errors[0]
    assert "Traceback" not in err and not output_dir.exists()


# --- end to end: training, scoring, the demo ----------------------------------------------------------------


def test_a_tiny_run_trains_on_xlsx_files_and_scores_an_xlsx_file(tiny_bert, review_files, tmp_path):
    def as_workbook(split: str) -> Path:
        with open(review_files[split], newline="") as handle:
            rows = list(csv.DictReader(handle))
        return review_workbook(tmp_path / f"{split}.xlsx", rows, sheet="Critics", before={"About": [["made by"], ["me"]]})

    files = {split: as_workbook(split) for split in ("train", "validation", "test")}
    out = tmp_path / "run"
    assert train_main(tiny_run_args(tiny_bert, files, out, "--num_train_epochs", "1", "--sheet", "Critics")) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["split_sizes"] == {"train": 96, "validation": 32, "test": 32}

    scored = tmp_path / "scored"
    assert score_main([str(out), "--test_file", str(files["test"]), "--sheet", "Critics",
                       "--output_dir", str(scored)]) == 0
    evaluation = artifacts.read_json(scored, EVALUATION_FILE)
    assert evaluation["reviews"] == 32 and evaluation["dataset"]["name"] == "test.xlsx"
    assert evaluation["scores"]["accuracy"] == pytest.approx(results["scores"]["test"]["accuracy"], abs=1e-9)


def test_score_refuses_a_missing_sheet_before_predicting(trained_run, tmp_path, capsys):
    path = review_workbook(tmp_path / "new.xlsx", make_reviews(6))
    assert score_main([str(trained_run), "--test_file", str(path), "--sheet", "Nope",
                       "--output_dir", str(tmp_path / "out")]) == EXIT_USAGE
    assert f"--test_file {path}: no sheet named 'Nope' (its sheets: 'Reviews')" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_batch_classifies_the_first_sheet_of_an_uploaded_workbook(trained_run, tmp_path):
    served = load_served_model(str(trained_run))
    path = write_workbook(tmp_path / "upload.xlsx", {
        "Feedback": [["id", "comment", "stars"], [1, "great superb film", 5], [2, "awful dull plot", 1], [3, None, 2]],
        "Other": [["text"], ["not read"]],
    })
    dropdown = app.file_columns(str(path))
    assert [name for name, _ in dropdown.choices] == ["id", "comment", "stars"] and dropdown.value == "comment"
    table, download, note = app.classify_batch(served, str(path), None, str(tmp_path / "cache"))
    assert list(table["review"]) == ["great superb film", "awful dull plot"]
    assert list(table["id"]) == ["1", "2"] and list(table["stars"]) == ["5", "1"]  # the other columns are kept
    expected = served.classifier.predict(["great superb film", "awful dull plot"])
    assert list(table["label"]) == [p.label for p in expected]
    assert note.startswith("No column is named text, review or content: classified 'comment'") and \
        note.endswith("2 reviews.")
    assert Path(download).read_text().splitlines()[0].startswith("id,stars,review,label,confidence")


@pytest.mark.parametrize("rows, message", [
    ({"S": []}, r"Sheet 'S' is empty. Put the reviews in it, one per row under a header row that names the columns "
                r"\(e.g. text, label\).$"),
    ({"S": [["comment"]]}, "The sheet has a header but no rows of reviews."),
    ({"S": [["a", None], ["great", "film"]]}, "Sheet 'S': the header cell B1 is blank"),
    ({"S": [["comment"], *([f"review {i}"] for i in range(1001))]}, "more than 1,000 rows; the limit is 1,000"),
    ({"S": [["id"], [1], [2]]}, r"No column of this file holds text \(id hold numbers"),
])
def test_demo_batch_refuses_a_bad_workbook_with_a_message(rows, message, tmp_path):
    path = write_workbook(tmp_path / "upload.xlsx", rows)
    with pytest.raises(serving.InputProblem, match=message):
        serving.read_batch_file(str(path), None)


def test_demo_batch_refuses_an_encrypted_workbook(tmp_path):
    path = encrypted(review_workbook(tmp_path / "locked.xlsx", make_reviews(3)))
    with pytest.raises(serving.InputProblem, match="The workbook is password-protected"):
        serving.read_batch_file(str(path), None)
    assert app.file_columns(str(path)).choices == []
