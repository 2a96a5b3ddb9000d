"""Manual requests (`kubectl rollwise promote|abort|retry|pause|resume`), read from the
`rollwise.dev/request` annotation so that spec, and therefore GitOps, is never touched."""

from __future__ import annotations

import json

from rollwise.core.model import Action, ManualRequest

_MAX_ID = 64


def parse_request(text: str) -> ManualRequest:
    """The request in the annotation; ValueError with a message a person can act on."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"annotation rollwise.dev/request is not JSON: {err.msg}") from err
    if not isinstance(raw, dict):
        raise ValueError("annotation rollwise.dev/request must be a JSON object")
    action = raw.get("action")
    try:
        parsed = Action(str(action))
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise ValueError(
            f"annotation rollwise.dev/request: action {action!r} is not one of {allowed}"
        ) from None
    request_id = raw.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= _MAX_ID:
        raise ValueError("annotation rollwise.dev/request needs an id (a string of 1-64 chars)")
    by = raw.get("by")
    by = by if isinstance(by, str) and by else "unknown"
    return ManualRequest(id=request_id, action=parsed, by=by[:200])
