"""Python's own limits where they meet user data, handled in one place.

- `csv` refuses a field longer than 131,072 characters (`_csv.Error: field larger than field limit`): one
  review of 1.5 MB stopped a run. A review of any length is read (the tokenizer truncates it), so
  `allow_long_csv_fields` lifts the limit to the largest value every platform takes (a C long is 32 bits
  on Windows; `sys.maxsize` would overflow there). Call it before reading any CSV a user gave.
- A JSON number of more than `sys.get_int_max_str_digits()` digits (4,300) cannot become an int (a
  ValueError since Python 3.11, not a JSONDecodeError). `json_loads` keeps such a number as its digits
  (text) rather than lifting that limit, which guards against conversions that take quadratic time.
- JSON nested deeper than the interpreter's recursion limit raises RecursionError: `json_loads` turns it
  into a ValueError that names the cause.
"""

import csv
import json
import sys
from typing import Any

CSV_FIELD_LIMIT = 2**31 - 1  # 2 GiB of text in one field: no review is refused


def allow_long_csv_fields() -> None:
    """Let the csv module read fields of any realistic size (process-wide, idempotent)."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


class JSONTooDeep(ValueError):
    """JSON nested deeper than Python's recursion limit."""


def json_loads(text: str) -> Any:
    """json.loads for user files: huge integers stay text; too-deep nesting is a JSONTooDeep, not a crash."""
    try:
        return json.loads(text, parse_int=_int_or_digits)
    except RecursionError:
        raise JSONTooDeep(f"nested more than about {sys.getrecursionlimit():,} levels deep") from None


def _int_or_digits(digits: str) -> int | str:
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    if limit and len(digits.lstrip("-")) > limit:
        return digits
    return int(digits)
