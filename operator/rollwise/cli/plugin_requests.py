"""Manual requests as the plugin writes them: the `rollwise.dev/request` annotation's text, who
asked, and whether an earlier request is still waiting for the operator. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollwise.api.stored_status import read_stored_status
from rollwise.core.model import Action, ManualRequest
from rollwise.core.naming import ANNOTATION_REQUEST
from rollwise.core.requests import parse_request


def actor_label(username: str, action: Action) -> str:
    """How the operator's history names the person: "alice (kubectl rollwise promote)"."""
    return f"{username} (kubectl rollwise {action.value})"


def request_annotation(
    action: Action, request_id: str, by: str, *, full: bool = False, force: bool = False
) -> str:
    """The annotation value the operator parses; compact JSON, keys in a stable order
    (`full`/`force` only when set: `promote --full [--force]`)."""
    body: dict[str, object] = {"action": action.value, "id": request_id, "by": by}
    if full:
        body["full"] = True
    if force:
        body["force"] = True
    return json.dumps(body, separators=(",", ":"))


def unacknowledged_request(obj: Mapping[str, Any]) -> ManualRequest | None:
    """The request in the annotation when the operator has not acknowledged it yet."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    text = annotations.get(ANNOTATION_REQUEST) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        request = parse_request(text)
    except ValueError:
        return None  # the operator reports unreadable requests itself
    acknowledged = read_stored_status(obj.get("status")).status.last_request
    if acknowledged is not None and acknowledged.id == request.id:
        return None
    return request


def acknowledgement_of(obj: Mapping[str, Any], request_id: str) -> str | None:
    """The operator's result for this request id, once it has acted on it."""
    acknowledged = read_stored_status(obj.get("status")).status.last_request
    if acknowledged is None or acknowledged.id != request_id:
        return None
    return acknowledged.result
