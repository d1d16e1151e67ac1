"""The one error type users see.

A `BenchError` carries a one-line, actionable message that names the bad input and the valid
choices. The CLI prints it without a traceback and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A user-facing error: one line, no traceback, exit code 2."""


def did_you_mean(name: str, valid: Iterable[str], what: str) -> BenchError:
    """Build the standard "unknown X" error with close matches and the full list of valid names."""
    choices = sorted(valid)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return BenchError(f"unknown {what} {name!r}{hint}; valid: {', '.join(choices)}")
