"""Errors shown to users as one clear message instead of a traceback, and the exit codes of every command.

Every command (finetune.train, score, push, pretrain, onnx_export, space, the demo) prints its `error:` lines
through `print_error`/`report` and exits with one of these codes, each with one meaning whichever command
returns it:

    0  done
    1  failed otherwise: an unexpected error (its traceback), or an ONNX copy that failed its check
    2  bad input (a flag, a file, a column, a token): the message names it and the fix; nothing was changed
    3  the Hub step failed (a push, a card update, a Space upload); what was made locally is complete and kept
    4  training finished and the model is saved, but finishing the run (evaluation, files, card) failed
    5  training diverged (a non-finite loss in fp32); the checkpoints are kept
    6  the Space was deployed but its build or start failed
    7  waiting for the Space to run timed out (it may still start)
"""

import os
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_HUB_FAILED = 3
EXIT_FINISH_FAILED = 4
EXIT_DIVERGED = 5
EXIT_SPACE_FAILED = 6
EXIT_TIMEOUT = 7


class UsageError(ValueError):
    """Bad input from the user: the message names the flag (or column) and the fix."""


def is_main_process() -> bool:
    """Rank 0 of a launched run (or a plain process): the one that speaks for all."""
    return os.environ.get("RANK", "0") == "0"


def print_error(message: object) -> None:
    """One `error:` message on standard error, from the main process only (not one per launched process)."""
    if is_main_process():
        print(f"error: {message}", file=sys.stderr)


def report(err: object, code: int = EXIT_USAGE) -> int:
    """Print `err` as the command's one `error:` message and return its exit code: `return report(err, CODE)`."""
    print_error(err)
    return code
