"""Durations as users write them in specs: "500ms", "30s", "2m", "1h30m"."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the bad text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; write e.g. 500ms, 30s, 2m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, json_schema_extra={"example": "30s"}),
    AfterValidator(_check),
]
