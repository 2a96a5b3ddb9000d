"""Manual requests (`kubectl rollwise promote|abort|retry|pause|resume`), read from the
`rollwise.dev/request` annotation so that spec, and therefore GitOps, is never touched; and how a
pass acknowledges them (one action per request id, the actor in history and Events)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollwise.api.service_status import RequestAck
from rollwise.core.model import Action, ManualRequest
from rollwise.core.naming import ANNOTATION_REQUEST
from rollwise.core.passes import Pass
from rollwise.core.reasons import Reason

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
    flags = {}
    for flag in ("full", "force"):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            raise ValueError(f"annotation rollwise.dev/request: {flag} must be true or false")
        flags[flag] = value
    if parsed is not Action.PROMOTE and (flags["full"] or flags["force"]):
        raise ValueError("annotation rollwise.dev/request: full and force go with promote only")
    if flags["force"] and not flags["full"]:
        raise ValueError("annotation rollwise.dev/request: force goes with full only")
    return ManualRequest(
        id=request_id, action=parsed, by=by[:200], full=flags["full"], force=flags["force"]
    )


def read_request(
    annotations: Mapping[str, Any] | None,
) -> tuple[ManualRequest | None, str | None]:
    """(the request in an object's annotations, or why it cannot be read); (None, None) when
    there is none. Services, trains and fleets read it the same way."""
    text = (annotations or {}).get(ANNOTATION_REQUEST)
    if not text:
        return None, None
    try:
        return parse_request(text), None
    except ValueError as err:
        return None, str(err)


def report_invalid_request(p: Pass) -> None:
    """An unreadable request annotation is reported once (an Event and history), then kept in
    status until it is fixed; it never changes the rollout."""
    error = p.observed.request_error
    if error and p.status.invalid_request != error:
        p.event(Reason.REQUEST_INVALID, error, warning=True)
    p.set(invalid_request=error)


def pending_request(p: Pass) -> ManualRequest | None:
    """The annotation's request if it has not been acted on yet (one action per id)."""
    request = p.observed.request
    if request is None:
        return None
    if p.status.last_request is not None and p.status.last_request.id == request.id:
        return None
    return request


def ack(p: Pass, request: ManualRequest, result: str, accepted: bool = True) -> None:
    """Record that the request was acted on (or ignored), with its actor."""
    p.set(
        last_request=RequestAck(
            id=request.id, action=request.action.value, by=request.by, at=p.now, result=result
        )
    )
    reason = Reason.REQUEST_ACCEPTED if accepted else Reason.REQUEST_IGNORED
    p.event(
        reason,
        f"{request.action.value} by {request.by}: {result}",
        actor=request.by,
        warning=not accepted,
    )


def ack_unhandled_request(p: Pass) -> None:
    """A request no phase of this pass acted on is acknowledged as ignored, never left open."""
    request = pending_request(p)
    if request is not None:
        ack(
            p,
            request,
            f"nothing to {request.action.value} in phase {p.status.phase}",
            accepted=False,
        )
