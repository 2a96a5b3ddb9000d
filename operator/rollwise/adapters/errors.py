"""Adapter errors: every failure of a call to the cluster, mapped once, into words a person can
act on (the object, the field when there is one, and what to do)."""

from __future__ import annotations

import json
import socket
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from rollwise.adapters.refusals import advice_for


class AdapterError(Exception):
    """A failed call to the cluster, said so that someone can act on it.

    `transient` errors (timeouts, 5xx, 429, conflicts) are expected to go away on a retry;
    the others need a person (RBAC, a foreign object in the way, an invalid manifest).
    """

    def __init__(
        self,
        obj: str,
        problem: str,
        *,
        fix: str = "",
        field: str | None = None,
        transient: bool = False,
        status: int | None = None,
    ) -> None:
        self.obj = obj
        self.problem = problem
        self.fix = fix
        self.field = field
        self.transient = transient
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.obj}: {self.problem}"
        if self.field:
            text += f" (field {self.field})"
        if self.fix:
            text += f"; {self.fix}"
        return text


class NotOwnedError(AdapterError):
    """An object with the deterministic name exists but belongs to someone else: never adopted."""

    def __init__(self, obj: str) -> None:
        super().__init__(
            obj,
            "exists and is not owned by this ProgressiveService",
            fix="rollwise never adopts it; delete or rename it",
        )


class ObjectMissingError(AdapterError):
    """An object the spec refers to (a route, an ingress) does not exist."""


def _status_message(err: ApiException) -> tuple[str, str | None]:
    """The apiserver's own message and the first field it names, from a Status body."""
    body: Any = err.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        return (str(body or err.reason or "").strip()[:500], None)
    if not isinstance(status, dict):
        return (str(status)[:500], None)
    message = str(status.get("message") or err.reason or "")
    causes = (status.get("details") or {}).get("causes") or []
    field = next((c.get("field") for c in causes if isinstance(c, dict) and c.get("field")), None)
    return (message[:500], field)


def api_error(err: ApiException, obj: str, verb: str) -> AdapterError:
    """Map an ApiException of `verb` on `obj` (e.g. "ReplicaSet shop/payment-x") once."""
    code = int(err.status or 0)
    message, field = _status_message(err)
    not_the_spec = advice_for(code, message, obj, verb)
    if not_the_spec is not None:  # admission, or too large: the advice names the real cause
        return AdapterError(obj, f"{verb} refused: {message}", fix=not_the_spec, status=code)
    if code == 401:
        return AdapterError(
            obj,
            f"{verb}: credentials rejected (401)",
            fix="check the kubeconfig or the ServiceAccount token",
            status=code,
        )
    if code == 403:
        return AdapterError(
            obj,
            f"{verb} forbidden: {message}",
            fix=f"grant rollwise's ServiceAccount `{verb}` on it (charts/rollwise rbac.yaml)",
            status=code,
        )
    if code == 404:
        return AdapterError(obj, f"{verb}: not found", status=code, transient=True)
    if code == 409:
        return AdapterError(obj, f"{verb}: conflict: {message}", status=code, transient=True)
    if code in (400, 422):
        return AdapterError(
            obj,
            f"{verb} rejected as invalid: {message}",
            field=field,
            fix="fix the field named above in the ProgressiveService",
            status=code,
        )
    if code == 429 or code >= 500:
        return AdapterError(
            obj,
            f"{verb}: API server answered {code}: {message}",
            fix="retrying with backoff",
            transient=True,
            status=code,
        )
    return AdapterError(obj, f"{verb} failed ({code}): {message}", status=code)


def transport_error(err: Exception, obj: str, verb: str) -> AdapterError:
    """The API server could not be reached or did not answer in time."""
    return AdapterError(
        obj,
        f"{verb}: API server unreachable or too slow: {type(err).__name__}: {err}"[:500],
        fix="retrying with backoff",
        transient=True,
    )


# What the kubernetes client raises when the network, not the API server, fails.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    urllib3.exceptions.HTTPError,
    socket.timeout,
    ConnectionError,
    TimeoutError,
)
