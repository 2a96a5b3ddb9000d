"""Text for one table cell or one Event line: a multi-line query must not break a table."""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"[ \t]*[\r\n]+[ \t]*")


def one_line(text: str) -> str:
    """Line breaks (with the indentation around them) and tabs as one space; spacing within a
    line is kept."""
    return _LINE_BREAK.sub(" ", text).replace("\t", " ").strip()
