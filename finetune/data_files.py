"""Read one local data file (CSV/TSV, JSON or JSON Lines, Parquet, an Excel sheet) into a `datasets.Dataset`.

A bad file fails here, before any model is trained, with one UsageError that names the
flag, the cause (with the line or byte where it is) and the fix. `datasets` itself
reports most of these as "An error occurred while generating the dataset", with the
real cause in a log line above it. So the file is checked first, with the standard
library: its text decodes in the chosen encoding, it is not empty, and a CSV's quotes
close and its rows fit the header. Only then does `load_dataset` read it. An .xlsx workbook is read
by finetune/sheets.py (openpyxl), one sheet: the first, or the one --sheet names.
"""

import codecs
import contextlib
import csv
import io
import itertools
import json
import logging
import os
import shlex
from pathlib import Path

from datasets import Dataset, load_dataset

from finetune import limits, sheets
from finetune.config import ReviewSource
from finetune.errors import UsageError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
SNIFF_BYTES = 64 << 10  # the header and the first rows, to pick the delimiter
PARQUET_MAGIC = b"PAR1"
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
DATA_FILE_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
                        ".xlsx": "xlsx"}
CSV_DELIMITERS = (",", ";", "\t", "|")  # detected in this order of preference


def data_file_format(path: str) -> str | None:
    return DATA_FILE_EXTENSIONS.get(Path(path).suffix.lower())


def check_files(source: ReviewSource) -> None:
    """Every file flag of `source` names an existing file of a format read here: checked when the flags are
    parsed, before a model is loaded (the files' contents are checked when they are read)."""
    files = source.data_files()
    for flag, path in files.items():
        check_data_file(flag, path)
    if source.sheet is not None and not any(data_file_format(path) == "xlsx" for path in files.values()):
        given = f" ({', '.join(f'--{flag} {path}' for flag, path in files.items())})" if files else ""
        raise UsageError(f"--sheet {source.sheet}: names a sheet of an .xlsx workbook, but no file given is one"
                         f"{given}. Drop --sheet, or pass the workbook.")


def check_data_file(flag: str, path: str) -> None:
    if not Path(path).expanduser().is_file():
        raise UsageError(f"--{flag} {path}: no such file. Check the path (it is relative to {os.getcwd()}).")
    if data_file_format(path) is None:
        raise UsageError(f"--{flag} {path}: unsupported file type. Use one of {', '.join(DATA_FILE_EXTENSIONS)}.")


def read_data_file(
    path: str,
    flag: str,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    required_columns: tuple[str, ...] = (),
    sheet: str | None = None,
) -> Dataset:
    """The file's rows, or a UsageError naming `--{flag} {path}`, the cause and the fix.

    `delimiter` None detects a CSV's separator among CSV_DELIMITERS (a .tsv file is tab-separated).
    `required_columns` (text and label) only sharpen the message for a CSV that reads as one column.
    `sheet` names the sheet of an .xlsx workbook (default: its first).
    """
    file = Path(path).expanduser()
    where = f"--{flag} {path}"
    file_format = data_file_format(path)
    if file.stat().st_size == 0:
        raise UsageError(f"{where}: the file is empty (0 bytes). Check the path, or export the data again.")
    if file_format == "parquet":
        return _read_parquet(file, where)
    if file_format == "xlsx":
        return _read_xlsx(file, where, sheet)
    encoding = _python_encoding(encoding)
    _check_text(file, where, encoding, path)
    if file_format == "csv":
        return _read_csv(file, where, encoding, delimiter, required_columns)
    return _read_json(file, where, encoding)


# --- text: encoding and emptiness ----------------------------------------------------------


def _python_encoding(encoding: str) -> str:
    # UTF-8 files written by Excel and Notepad start with a byte order mark: accept it.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _check_text(file: Path, where: str, encoding: str, path: str) -> None:
    """Decode the whole file in chunks; fail at the first byte that does not decode, or if it is blank."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    consumed = newlines = 0
    has_content = False
    with open(file, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK_BYTES)
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as err:
                offset = consumed - pending + err.start
                line = newlines + err.object[: err.start].decode(encoding, errors="replace").count("\n") + 1
                raise UsageError(_decode_message(where, path, encoding, err, offset, line)) from err
            consumed += len(chunk)
            newlines += text.count("\n")
            has_content = has_content or bool(text.strip())
            if final:
                break
    if not has_content:
        raise UsageError(f"{where}: the file holds only whitespace, no reviews. Check the path, or export the data again.")


def _decode_message(where: str, path: str, encoding: str, err: UnicodeDecodeError, offset: int, line: int) -> str:
    bad = err.object[err.start : min(err.end, err.start + 4)]
    before = err.object[max(0, err.start - 20) : err.start].rsplit(b"\n", 1)[-1]
    after = err.object[err.end : err.end + 20].split(b"\n", 1)[0]
    shown = _printable((before + err.object[err.start : err.end] + after).decode(encoding, errors="backslashreplace"))
    codec = codecs.lookup(encoding).name.removesuffix("-sig").upper()
    utf16 = err.object.startswith(UTF16_BOMS) and offset < 2
    context = f'line {line}' if utf16 else f'line {line}, in "{shown}"'  # UTF-16 text shows as a run of \x00
    cause = f"byte {_hex(bad)} at offset {offset:,} ({context}) is not valid {codec}"
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return f"{where}: {cause}. Pass the file's real encoding with --file_encoding (e.g. utf-8, cp1252, utf-16)."
    guess = "utf-16" if utf16 else "cp1252"
    utf8_copy = str(Path(path).with_name(f"{Path(path).stem}-utf8{Path(path).suffix}"))
    return (
        f"{where}: {cause}; the file is probably {guess}{' (Windows/Latin-1)' if guess == 'cp1252' else ''}. "
        f"Re-save it as UTF-8 (iconv -f {guess} -t utf-8 {shlex.quote(path)} > {shlex.quote(utf8_copy)}) "
        f"or pass --file_encoding {guess}."
    )


def delimiter_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text.strip())


def _hex(data: bytes) -> str:
    return " ".join(f"0x{byte:02x}" for byte in data)


# --- CSV ----------------------------------------------------------------------------------------


def _read_csv(
    file: Path, where: str, encoding: str, delimiter: str | None, required_columns: tuple[str, ...]
) -> Dataset:
    limits.allow_long_csv_fields()  # a review of any length is read (and truncated by the tokenizer)
    if delimiter is not None:
        how = "--csv_delimiter"
    elif file.suffix.lower() == ".tsv":
        delimiter, how = "\t", "the .tsv extension; --csv_delimiter overrides"
    else:
        delimiter = detect_delimiter(_head(file, encoding))
        how = "detected from the header; --csv_delimiter overrides"
    logger.info("read %s as %s-separated (%s)", file.name, delimiter_name(delimiter), how)

    header = check_csv_rows(file, where, encoding, delimiter)
    missing = [column for column in required_columns if column not in header]
    if len(header) == 1 and missing:
        tried = ", ".join(delimiter_name(d) for d in CSV_DELIMITERS)
        raise UsageError(
            f"{where}: read as {delimiter_name(delimiter)}-separated, its header {header[0]!r} is a single column, "
            f"so there is no column '{missing[0]}'. If the file uses another separator than {tried}, pass it with "
            "--csv_delimiter (a single character, or tab)."
        )
    return _load(where, "CSV", "csv", file, sep=delimiter, encoding=encoding)


def _head(file: Path, encoding: str) -> str:
    with open(file, encoding=encoding, errors="replace", newline="") as handle:
        head = handle.read(SNIFF_BYTES)
    # Drop a last line cut in half, unless the header is all there is.
    return head.rsplit("\n", 1)[0] if "\n" in head.rstrip("\n") else head


def detect_delimiter(head: str) -> str:
    """The candidate that splits the header into 2+ columns and fits the most rows; ',' when none does.

    Ties go to the earlier candidate in CSV_DELIMITERS (comma first).
    """
    best, best_score = ",", None
    for candidate in CSV_DELIMITERS:
        rows = [row for row in csv.reader(io.StringIO(head, newline=""), delimiter=candidate) if row]
        if not rows or len(rows[0]) < 2:
            continue
        fitting = sum(len(row) == len(rows[0]) for row in rows[1:]) / max(1, len(rows) - 1)
        score = (fitting, len(rows[0]))
        if best_score is None or score > best_score:
            best, best_score = candidate, score
    return best


def check_csv_rows(file: Path, where: str, encoding: str, delimiter: str) -> list[str]:
    """The header; raise on no rows, a quote that never closes or that the next line's quote closes, or a row
    with more fields than the header."""
    with open(file, encoding=encoding, newline="") as handle:
        row_lines: list[str] = []
        reader = csv.reader(_recorded(handle, row_lines), delimiter=delimiter)
        header = next((row for row in reader if row), None)
        row_lines.clear()
        expected, rows, row_start, last_start, last_end = None, 0, reader.line_num + 1, None, None
        for row in reader:
            start, row_start = row_start, reader.line_num + 1
            lines = row_lines[:]
            row_lines.clear()
            if not row:
                continue
            rows += 1
            last_start, last_end = start, reader.line_num
            if len(lines) > 1 and _opens_a_whole_row(lines[1], delimiter, len(header)):
                raise UsageError(
                    f"{where}: the quote that starts on line {start} ({_clip(lines[0])!r}) is not closed on that "
                    f"line, so the quote that opens line {start + 1} closes it instead and the quotes go out of step "
                    f"(lines {start}-{start + 1} read as one row). Close the quote where the text on line {start} "
                    'ends, or write a " inside a quoted text as "".'
                )
            if expected is None:
                # pandas reads a first row one field longer than the header as an unnamed index column.
                expected = len(header) + 1 if len(row) == len(header) + 1 else len(header)
            if len(row) > expected:
                raise UsageError(
                    f"{where}: line {start} has {len(row)} fields but the header has {len(header)} "
                    f"({delimiter_name(delimiter)}-separated). Put double quotes around a text that contains the "
                    "separator, or pass the right --csv_delimiter."
                )
    if header is None:
        raise UsageError(f"{where}: the file has no header row. Pass a CSV whose first line names the columns.")
    if rows == 0:
        raise UsageError(
            f"{where}: the file has a header ({', '.join(header)}) but no rows. Add reviews below the header."
        )
    if _quote_left_open(file, encoding, delimiter, last_start):
        raise UsageError(
            f"{where}: the quoted field that starts on line {last_start} is never closed (no matching \"), so "
            f"everything from there to the end of the file ({_lines(last_end - last_start + 1)}) would be one value. "
            'Close the quote, or write a " inside a quoted text as "".'
        )
    return header


def _recorded(lines, record: list[str]):
    """`lines`, each also appended to `record`: the raw lines of the row the csv reader is reading (it reads
    no further than the row's end)."""
    for line in lines:
        record.append(line)
        yield line


def _opens_a_whole_row(line: str, delimiter: str, fields: int) -> bool:
    """Whether `line`, the second line of a row, is a whole row of its own that opens with a quote.

    Then the row's first line left a quote open, and this line's opening quote closed it. Inside a quoted
    text that really spans lines, a next line that starts with a lone quote cannot be a whole row: a
    quote inside a quoted text is written "", and a lone one ends the text.
    """
    if not line.startswith('"'):
        return False
    try:
        rows = list(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) >= fields


def _lines(count: int) -> str:
    return f"{count} line" + ("" if count == 1 else "s")


def _quote_left_open(file: Path, encoding: str, delimiter: str, line: int) -> bool:
    """Whether the row that starts on `line` (the file's last) ends inside quotes.

    A quote that never closes swallows the rest of the file into the last row; the lenient reader
    above cannot tell, a strict one can.
    """
    with open(file, encoding=encoding, newline="") as handle:
        rest = itertools.islice(handle, line - 1, None)
        try:
            for _ in csv.reader(rest, delimiter=delimiter, strict=True):
                pass
        except csv.Error as err:
            return "unexpected end of data" in str(err)
    return False


# --- JSON and JSON Lines ----------------------------------------------------------------------


def _read_json(file: Path, where: str, encoding: str) -> Dataset:
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig") and _first_char(file, encoding) == "[":
        # datasets parses a JSON list as raw UTF-8 bytes: decode it here instead.
        dataset = _json_list(file, where, encoding)
    else:
        try:
            dataset = _load(where, "JSON", "json", file, encoding=encoding.removesuffix("-sig"))
        except UsageError as err:
            problem = json_problem(file.read_text(encoding=encoding))
            if problem is None:
                raise
            raise UsageError(f"{where}: {problem}. Fix the file: one JSON object per line, or a list of objects.") from err
    if len(dataset) == 1 and any(isinstance(v, list) for v in dataset[0].values()) and _first_char(file, encoding) == "{":
        # {"data": [...]} or {"text": [...], "label": [...]}: datasets reads one row holding lists.
        raise UsageError(
            f"{where}: the file is a single JSON object (keys: {', '.join(dataset.column_names)}) that holds lists, "
            "not one object per review. Write one object per review, one per line (JSON Lines), or a list of objects."
        )
    return dataset


def _first_char(file: Path, encoding: str) -> str:
    with open(file, encoding=encoding, errors="replace") as handle:
        return handle.read(SNIFF_BYTES).lstrip()[:1]


def _json_list(file: Path, where: str, encoding: str) -> Dataset:
    text = file.read_text(encoding=encoding)
    try:
        records = limits.json_loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{where}: {json_problem(text)}. Fix the file: a list of objects, one per review.") from None
    except limits.JSONTooDeep as err:
        raise UsageError(f"{where}: the JSON is {err}. Fix the file: a list of objects, one per review.") from None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise UsageError(f"{where}: expected a list of objects (one per review). Fix the file.")
    if not records:
        raise UsageError(f"{where}: the file holds an empty list: no reviews. Add reviews to it.")
    return Dataset.from_list(records)


def json_problem(text: str) -> str | None:
    """Where and why `text` is not JSON Lines nor one JSON document, or None when it is either."""
    try:
        limits.json_loads(text)
        return None
    except json.JSONDecodeError as err:
        whole = f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
    except limits.JSONTooDeep as err:
        whole = f"the JSON is {err}"
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for number, line in lines:
        try:
            limits.json_loads(line)
        except json.JSONDecodeError as err:
            if number == lines[0][0]:  # not JSON Lines at all: one document (a list, a pretty-printed object)
                return whole
            return f"line {number} is not valid JSON: {err.msg} (column {err.colno}) in {_clip(line)!r}"
        except limits.JSONTooDeep as err:
            return f"line {number}: the JSON is {err}"
    return None


def _clip(line: str, width: int = 60) -> str:
    line = line.strip()
    return line if len(line) <= width else line[: width - 3] + "..."


# --- Parquet ------------------------------------------------------------------------------------


def _read_parquet(file: Path, where: str) -> Dataset:
    with open(file, "rb") as handle:
        head = handle.read(len(PARQUET_MAGIC))
        handle.seek(-min(len(PARQUET_MAGIC), file.stat().st_size), io.SEEK_END)
        tail = handle.read()
    if head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        with open(file, "rb") as handle:
            start = handle.read(40).decode("utf-8", errors="replace").split("\n", 1)[0]
        raise UsageError(
            f"{where}: not a Parquet file (it does not start and end with the Parquet marker PAR1; it starts with "
            f"{start!r}). If it is a CSV or JSON file, give it that extension; else export the Parquet file again."
        )
    return _load(where, "Parquet", "parquet", file)


# --- Excel -----------------------------------------------------------------------------------------


def _read_xlsx(file: Path, where: str, sheet: str | None) -> Dataset:
    try:
        table = sheets.read_sheet(file, sheet)
    except sheets.WorkbookProblem as err:
        raise UsageError(f"{where}: {err}") from None
    if not table.rows:
        raise UsageError(f"{where}: sheet {table.name!r} has a header ({', '.join(table.header)}) but no rows. Add "
                         "reviews below the header.")
    logger.info("read sheet %r of %s: %d rows, columns %s", table.name, file.name, len(table.rows),
                ", ".join(table.header))
    try:
        return Dataset.from_dict(table.columns())
    except Exception as err:  # pyarrow: a value it cannot store; one line with the cause
        raise UsageError(f"{where}: could not read sheet {table.name!r} ({_root_cause(err)}).") from err


# --- reading, once checked ---------------------------------------------------------------------


def _load(where: str, kind: str, builder: str, file: Path, **options) -> Dataset:
    no_rows = UsageError(f"{where}: the file holds no rows. Add reviews to it.")
    try:
        with _quiet_datasets():
            dataset = load_dataset(builder, data_files=str(file), split="train", **options)
    except Exception as err:  # the checks above leave little; still, one line with the real cause
        if "corresponds to no data" in str(err):  # datasets' words for a file without rows
            raise no_rows from err
        raise UsageError(f"{where}: could not read it as {kind} ({_root_cause(err)}).") from err
    if len(dataset) == 0:
        raise no_rows
    return dataset


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


@contextlib.contextmanager
def _quiet_datasets():
    """datasets logs its own copy of a read error; the UsageError says it once, with the fix."""
    datasets_logger = logging.getLogger("datasets")
    level = datasets_logger.level
    datasets_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        datasets_logger.setLevel(level)
