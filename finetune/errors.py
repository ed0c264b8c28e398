"""Errors shown to users as one clear message instead of a traceback."""


class UsageError(ValueError):
    """Bad input from the user: the message names the flag (or column) and the fix."""
