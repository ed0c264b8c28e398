"""Read one sheet of an Excel workbook (.xlsx) as a header and rows, for training, scoring and the demo.

openpyxl reads the workbook (pandas.read_excel uses it too), in read-only mode: the sheet's XML is
streamed, so a large sheet costs rows, not the whole workbook, in memory. The first non-blank row is
the header. A cell keeps its value: text stays text and numbers stay numbers, except in a column that
mixes them, which becomes text (a review that is just "10" is still a review). Dates become ISO text.

What openpyxl cannot read, or reads into something that is not a table of reviews, raises
WorkbookProblem with the cause and the fix; each caller adds where the file came from (a flag, an
upload). An encrypted (password-protected) workbook is an OLE compound file holding the encrypted
package, not a zip, and openpyxl only says "File is not a zip file": it is recognised here first.
"""

import datetime
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Office 97-2003 files, and encrypted Office 2007+ files
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")  # a stream name in the OLE directory
BLANK_ROWS_READ = 10  # with max_rows: rows read at most, blank ones included, per row allowed


class WorkbookProblem(ValueError):
    """The workbook is not a table of reviews openpyxl can read: the message says why and what to do."""


@dataclass
class Sheet:
    name: str
    header: list[str]
    rows: list[tuple]  # one tuple per non-blank row below the header, as long as the header

    def columns(self) -> dict[str, list]:
        """Column name -> its values, a column that mixes text and numbers (or dates) read as text."""
        return {name: _uniform([row[i] for row in self.rows]) for i, name in enumerate(self.header)}

    def text_rows(self) -> list[dict[str, str]]:
        """Every row as column -> text (an empty cell: ""), as a CSV reader would give it."""
        return [{name: cell_text(value) for name, value in zip(self.header, row)} for row in self.rows]


def read_sheet(path: str | Path, sheet: str | None = None,
               how_to_choose: str = "pass --sheet NAME for the sheet that holds them",
               max_rows: int | None = None) -> Sheet:
    """The sheet named `sheet` (default: the first) of the workbook at `path`.

    `how_to_choose` ends the message about an empty sheet: how the caller's user names another sheet.
    `max_rows` stops reading after that many rows below the header (the demo's limit, plus one to tell it
    was passed): a workbook of a few MB can unpack to millions of rows.
    """
    _check_container(Path(path))
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():  # "no default style", data validation: nothing a reader needs
            warnings.simplefilter("ignore")
            workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as err:
        raise WorkbookProblem(f"could not read it as an .xlsx workbook ({type(err).__name__}: {err}). Open it in "
                              "Excel or LibreOffice and save it again as .xlsx, or export the sheet as CSV.") from err
    try:
        names = workbook.sheetnames
        if sheet is not None and sheet not in names:
            raise WorkbookProblem(f"no sheet named {sheet!r} (its sheets: {_listed(names)}). Pass one of them "
                                  "with --sheet.")
        name = sheet if sheet is not None else names[0]
        return _table(name, workbook[name].iter_rows(values_only=True), names, how_to_choose, max_rows)
    finally:
        workbook.close()


def _check_container(path: Path) -> None:
    """An .xlsx is a zip; an OLE file is encrypted or an old .xls; anything else is not a workbook."""
    with open(path, "rb") as handle:
        head = handle.read(len(OLE_MAGIC))
    if head.startswith(ZIP_MAGIC):
        return
    if head == OLE_MAGIC:
        if ENCRYPTED_STREAM in path.read_bytes():
            raise WorkbookProblem(
                "the workbook is password-protected (encrypted), and openpyxl cannot open it. Remove the password "
                "(Excel: File > Info > Protect Workbook > Encrypt with Password, clear it, save) or export the "
                "sheet as CSV.")
        raise WorkbookProblem("it is an Excel 97-2003 workbook (.xls) named .xlsx, which openpyxl cannot read. Open "
                              "it in Excel or LibreOffice and save it as .xlsx, or export the sheet as CSV.")
    raise WorkbookProblem(f"not an .xlsx workbook (an .xlsx file is a zip archive; this one starts with {head!r}). "
                          "If it is a CSV or text file, give it that extension; else save the workbook again as .xlsx.")


def _table(name: str, rows, names: list[str], how_to_choose: str, max_rows: int | None) -> Sheet:
    header, header_row, body = None, 0, []
    for number, row in enumerate(rows, start=1):
        if all(_blank(value) for value in row):
            continue
        if header is None:
            header, header_row = list(row), number
            continue
        body.append(tuple(row))
        if max_rows is not None and len(body) > max_rows:
            break
        if max_rows is not None and number > BLANK_ROWS_READ * max_rows:
            raise WorkbookProblem(f"sheet {name!r} has more than {BLANK_ROWS_READ * max_rows:,} rows, most of them "
                                  "blank. Delete the blank rows, or export the reviews as CSV.")
    if header is None:
        if len(names) == 1:
            choose = ""
        else:
            choose = f", or {how_to_choose} (its sheets: {_listed(names)})"
        raise WorkbookProblem(f"sheet {name!r} is empty. Put the reviews in it, one per row under a header row "
                              f"that names the columns (e.g. text, label){choose}.")
    width = max([len(header), *(len(row) for row in body)])
    header += [None] * (width - len(header))
    body = [row + (None,) * (width - len(row)) for row in body]
    used = [i for i in range(width) if not _blank(header[i]) or any(not _blank(row[i]) for row in body)]
    _check_header(name, header, header_row, used)
    return Sheet(name, [cell_text(header[i]).strip() for i in used], [tuple(row[i] for i in used) for row in body])


def _check_header(name: str, header: list, row: int, used: list[int]) -> None:
    """Every column that holds values has a name, and no name is used twice."""
    for i in used:
        if _blank(header[i]):
            raise WorkbookProblem(
                f"sheet {name!r}: the header cell {_cell(i, row)} is blank, but its column holds values (a header cell "
                "merged with its neighbour is blank too). Name every column in the header row: unmerge the cells and "
                "type one name per column (e.g. text, label).")
    seen: dict[str, int] = {}
    for i in used:
        text = cell_text(header[i]).strip()
        if text in seen:
            raise WorkbookProblem(f"sheet {name!r}: two columns are named {text!r} ({_cell(seen[text], row)} and "
                                  f"{_cell(i, row)}). Give each column its own name.")
        seen[text] = i


def _uniform(values: list) -> list:
    """The column's values as they are if they are all of one kind (text, numbers, true/false), else as text."""
    kinds = {_kind(value) for value in values if value is not None}
    if len(kinds) <= 1 and "date" not in kinds:
        return values
    return [None if value is None else cell_text(value) for value in values]


def _kind(value) -> str:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return "date"
    return "text"


def cell_text(value) -> str:
    """A cell as a person reads it: 10, not 10.0; an ISO date; an empty cell as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _cell(index: int, row: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(index + 1)}{row}"


def _listed(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)
