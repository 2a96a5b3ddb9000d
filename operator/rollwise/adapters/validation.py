"""A pydantic validation error as a person fixes it: `field.path: message`."""

from __future__ import annotations

from pydantic import ValidationError


def validation_summary(err: ValidationError, prefix: str = "spec") -> str:
    """A pydantic error as `field.path: message`, joined: what a person fixes in the YAML."""
    parts = []
    for item in err.errors()[:5]:
        path = prefix
        for loc in item["loc"]:
            path += f"[{loc}]" if isinstance(loc, int) else f".{loc}"
        # A model validator's ValueError arrives as "Value error, <text>": the text is enough.
        parts.append(f"{path}: {item['msg'].removeprefix('Value error, ')}")
    more = len(err.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
