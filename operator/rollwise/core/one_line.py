"""Text for one table cell or one Event line: a multi-line query must not break a table."""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Every run of whitespace (newlines and indentation included) as one space, trimmed."""
    return _WHITESPACE.sub(" ", text).strip()
