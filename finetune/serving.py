"""The demo's server guards: what one request may send, how a batch file is read, how file jobs are
admitted to the queue, and how Gradio's cache is kept small. Built to be public (a Space).

Everything a user can get wrong raises `InputProblem`, whose message is shown on the page as it is.
"""

import asyncio
import codecs
import contextlib
import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

from finetune.limits import allow_long_csv_fields
from finetune.sheets import WorkbookProblem, read_sheet

# What one request may send. The upload limit is enforced by the server while the file streams in
# (launch_settings): a larger upload is cut off at 2 MB and refused with HTTP 413, never stored whole.
MAX_REVIEW_CHARS = 20_000  # one review; the model reads at most its max length in tokens anyway
MAX_BATCH_ROWS = 1_000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
HEADER_BYTES = 64 * 1024  # what the column picker reads of a CSV to find its header row and a few rows
HEADER_SHEET_ROWS = 100  # what it reads of a workbook's first sheet, below the header

# How many requests run and wait. Gradio limits concurrency per *group* of events and the queue's
# length over all events together; it has no cap per event. So: every event that calls the model
# (classify button, Enter in the textbox, the word attributions, file job) joins the one group "model",
# at most MODEL_CONCURRENCY forward passes at once (2 vCPU: more only oversubscribes the cores and adds
# memory). The queue holds a 200-caller burst with room to spare; at ~20 ms per MiniLM review it
# drains in seconds. A file job holds its slot for tens of seconds (1,000 reviews), so at most
# MAX_FILE_JOBS of them may be waiting or running: more are refused when they arrive (a validator
# runs before a request joins the queue), and a handler-side guard holds the line if several arrive
# in the same instant. File jobs thus take at most one queue place and one of the two slots:
# single reviews always keep the other.
MODEL_CONCURRENCY = 2
QUEUE_SIZE = 256
MAX_FILE_JOBS = 1
FILE_JOB_BUSY = "Another file is being classified. Files go one at a time: try again in a minute."

# Gradio's cache (uploads and prediction files): every CACHE_CLEANING[0] s, files older than
# CACHE_CLEANING[1] s are deleted, and so is what Gradio's cleaning leaves behind (sweep_cache).
# A download link thus lives at least an hour; disk use is bounded by an hour of traffic.
CACHE_CLEANING = (600, 3600)

# Column names that say "the reviews are here"; otherwise the column with the longest texts is read.
TEXT_COLUMN_NAMES = ("text", "review", "content")
TEXT_FILE_COLUMN = "(one review per line)"



class InputProblem(ValueError):
    """A request the demo refuses, with a message for the page that names the problem and the fix."""


@dataclass
class BatchFile:
    """The reviews of an uploaded file, the column they came from, and the file's other columns (kept in the
    output, so that an id can be joined on)."""

    texts: list[str]
    column: str
    other_columns: dict[str, list[str]]
    note: str


def read_batch_file(file_path: str | None, column: str | None) -> BatchFile:
    """Reviews from a CSV or an Excel workbook's first sheet (the chosen column, or the one that looks like text)
    or a text file (one per line), within the limits."""
    if not file_path:
        raise InputProblem("Upload a CSV, an Excel (.xlsx) or a text file of reviews first.")
    path = Path(file_path)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_UPLOAD_BYTES + 1)  # never more than the limit, whatever the file holds
    if len(raw) > MAX_UPLOAD_BYTES:
        size = path.stat().st_size
        raise InputProblem(f"The file has {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    if not raw.strip():
        raise InputProblem("The file is empty: upload a CSV with a column of reviews, or a text file with one "
                           "review per line.")
    if path.suffix.lower() == ".xlsx":
        batch = _sheet_batch(path, column)
    else:
        batch = _text_batch(raw, path.suffix.lower(), column)
    if not batch.texts:
        raise InputProblem("The file holds no reviews.")
    if len(batch.texts) > MAX_BATCH_ROWS:
        raise InputProblem(f"The file has {len(batch.texts):,} reviews; the limit is {MAX_BATCH_ROWS:,} per request.")
    return batch


def _text_batch(raw: bytes, suffix: str, column: str | None) -> BatchFile:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputProblem("The file is not UTF-8 text: upload a .csv, .xlsx or .txt file of reviews.") from None
    if "\x00" in text:
        raise InputProblem("The file looks binary, not text: upload a .csv, .xlsx or .txt file of reviews.")
    if suffix == ".csv":
        return _csv_batch(text, column)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return BatchFile(lines, TEXT_FILE_COLUMN, {}, "One review per line.")


def _sheet_batch(path: Path, column: str | None) -> BatchFile:
    """The first sheet, read as a CSV would be (every cell as text); no more rows than the limit allows."""
    try:
        sheet = read_sheet(path, how_to_choose="move the sheet that holds them first in the workbook",
                           max_rows=MAX_BATCH_ROWS)
    except WorkbookProblem as err:
        raise InputProblem(str(err)[:1].upper() + str(err)[1:]) from None
    if not sheet.rows:
        raise InputProblem("The sheet has a header but no rows of reviews.")
    if len(sheet.rows) > MAX_BATCH_ROWS:  # read_sheet stopped one row past the limit
        raise InputProblem(f"The sheet has more than {MAX_BATCH_ROWS:,} rows; the limit is {MAX_BATCH_ROWS:,} reviews "
                           "per request.")
    return _table_batch(sheet.header, sheet.text_rows(), column)


def _csv_batch(text: str, column: str | None) -> BatchFile:
    allow_long_csv_fields()  # a review past the csv module's 131,072 characters is read, then cut to MAX_REVIEW_CHARS
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as err:
        raise InputProblem(f"The CSV could not be read ({err}).") from None
    columns = list(reader.fieldnames or [])
    if not rows:
        raise InputProblem("The CSV has a header but no rows of reviews." if columns else "The file is empty.")
    return _table_batch(columns, rows, column)


def _table_batch(columns: list[str], rows: list[dict], column: str | None) -> BatchFile:
    """The reviews of a table (a CSV's or a sheet's rows, as text): the chosen column or the guessed one."""
    if column in (None, "", TEXT_FILE_COLUMN):
        column, note = guess_text_column(columns, rows)
    elif column not in columns:
        raise InputProblem(f"Column '{column}' is not in the file. Its columns: {', '.join(columns)}.")
    else:
        note = f"Classified column '{column}'."
    values = [(row.get(column) or "").strip() for row in rows]
    if _numeric(values):
        better = [c for c in columns if c != column and not _numeric([row.get(c) or "" for row in rows])]
        raise InputProblem(f"Column '{column}' holds numbers, not reviews. "
                           + (f"Choose the column of reviews (here: {', '.join(better)})." if better else
                              "No column of this file holds text: upload a file with a column of reviews."))
    kept = [i for i, value in enumerate(values) if value]
    others = {c: [rows[i].get(c) or "" for i in kept] for c in columns if c != column and c is not None}
    return BatchFile([values[i] for i in kept], column, others, note)


def guess_text_column(columns: list[str], rows: list[dict]) -> tuple[str, str]:
    """The column that holds the reviews, and a note saying which was picked and why: one named like text
    (text, review, content), else the one with the longest texts on average; never a column of
    numbers (an id, a rating)."""
    if not columns:
        raise InputProblem("The CSV has no header row: its first line must name the columns (e.g. text).")
    named = next((c for c in columns if c and c.strip().lower() in TEXT_COLUMN_NAMES), None)
    if named is not None:
        return named, f"Classified column '{named}'."
    texts = [c for c in columns if c is not None and not _numeric([row.get(c) or "" for row in rows])]
    if not texts:
        raise InputProblem(f"No column of this file holds text ({', '.join(columns)} hold numbers or nothing): "
                           "upload a file with a column of reviews.")
    best = max(texts, key=lambda c: sum(len(row.get(c) or "") for row in rows))  # the same rows: sums rank as means
    if len(columns) == 1:
        return best, f"Classified column '{best}'."
    return best, (f"No column is named text, review or content: classified '{best}', the column with the longest texts "
                  f"(columns: {', '.join(columns)}). Choose another under 'Review column'.")


def _numeric(values: list[str]) -> bool:
    """True when every non-empty value is a number (and there is at least one)."""
    present = [v.strip() for v in values if v and v.strip()]
    if not present:
        return False
    for value in present:
        try:
            float(value.replace(",", ""))
        except ValueError:
            return False
    return True


def column_choices(file_path: str | None) -> tuple[list[str], str | None]:
    """The choices of the review column once a file is uploaded, and the one picked: a CSV's header (read from its
    first HEADER_BYTES, with the rows that fit in them to guess from), a workbook's first sheet's header, or the
    single line column of a text file."""
    suffix = Path(file_path).suffix.lower() if file_path else ""
    if suffix == ".xlsx":
        return _sheet_choices(file_path)
    if suffix != ".csv":
        return [TEXT_FILE_COLUMN], TEXT_FILE_COLUMN
    with open(file_path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
        whole = handle.read(1) == b""
    header, rows = csv_head(head, whole)
    if not header:
        return [], None
    try:
        return header, guess_text_column(header, rows)[0]
    except InputProblem:
        return header, None  # only numbers in the head: the job itself says so


def _sheet_choices(file_path: str) -> tuple[list[str], str | None]:
    """A workbook's first sheet's header, and the column guessed from its first HEADER_SHEET_ROWS rows."""
    try:
        sheet = read_sheet(file_path, max_rows=HEADER_SHEET_ROWS)
    except WorkbookProblem:
        return [], None  # the file job says what is wrong
    try:
        return sheet.header, guess_text_column(sheet.header, sheet.text_rows())[0]
    except InputProblem:
        return sheet.header, None


def csv_head(head: bytes, whole: bool) -> tuple[list[str], list[dict]]:
    """The header row of a CSV from the file's first bytes (all of it if `whole`), and the complete rows within
    them; nothing if those bytes are not UTF-8 text or the header does not end within them."""
    try:  # an incremental decoder keeps a character cut at the end of `head` instead of failing on it
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=whole)
    except UnicodeDecodeError:
        return [], []
    if not whole:
        last = max(text.rfind("\n"), text.rfind("\r"))
        if last < 0:
            return [], []
        text = text[:last + 1]  # complete lines only: a row cut by the byte limit would mislead the guess
    allow_long_csv_fields()
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, [])
    except csv.Error:
        return [], []
    rows = []
    with contextlib.suppress(csv.Error):  # the rows are only a sample to guess from: those before a bad one do
        rows.extend(dict(zip(header, row)) for row in reader)
    return header, rows


def file_jobs_in_line(queue) -> int:
    """File jobs waiting or running in Gradio's queue (gradio.queueing.Queue, read as of 6.31)."""
    waiting = [event for line in list(queue.event_queue_per_concurrency_id.values()) for event in line.queue]
    running = [event for job in queue.active_jobs if job for event in job]
    return sum(event.fn.api_name == "classify_batch" for event in waiting + running)


def sweep_cache(folder: Path, older_than: float) -> int:
    """Remove what Gradio's own cache cleaning leaves in its cache `folder`, once older than
    `older_than` s; return how many entries went.

    Gradio 6.31 keeps each upload (and each file it copies) in a folder named by the file's SHA-256,
    and its cleaning deletes the files but not those folders; and gr.File(type="filepath") creates
    an empty tmp* file at every call that reads an upload, never deleted. Without this sweep both
    pile up, a few per request. Anything else, and any folder or file that is not empty, stays."""
    removed = 0
    cutoff = time.time() - older_than
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False) and _is_sha256(entry.name):
                    os.rmdir(entry.path)  # fails, and keeps the folder, unless it is empty
                elif entry.is_file(follow_symlinks=False) and entry.name.startswith("tmp") and info.st_size == 0:
                    os.remove(entry.path)
                else:
                    continue
                removed += 1
            except OSError:
                continue
    return removed


def _is_sha256(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


@contextlib.asynccontextmanager
async def _sweep_while_serving(server):
    """The server's lifespan: sweep the cache on the schedule of the Blocks' delete_cache."""
    frequency, age = server.get_blocks().delete_cache or (None, None)

    async def sweep_forever():
        while True:
            await asyncio.sleep(frequency)
            if os.path.isdir(server.uploaded_file_dir):
                await asyncio.to_thread(sweep_cache, Path(server.uploaded_file_dir), age)

    task = asyncio.create_task(sweep_forever()) if frequency and age else None
    try:
        yield
    finally:
        if task:
            task.cancel()


def launch_settings() -> dict:
    """Settings of every launch (python app.py, and so a Space; the tests use them too): the server
    refuses an upload past MAX_UPLOAD_BYTES as it streams in, and sweeps the cache (sweep_cache)."""
    return {"max_file_size": MAX_UPLOAD_BYTES, "app_kwargs": {"lifespan": _sweep_while_serving}}
