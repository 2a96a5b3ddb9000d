"""A refused status write, made visible: what refused it, said so that someone can act on it.

Every kind's loop calls `report` when a status patch fails (controller/loop.py,
`KindLoop.status_refused`: ProgressiveServices, ReleaseTrains and FleetRollouts alike). Every
failure gives a Warning Event on the object (Events are separate objects: they are written when
the status is not), a count in `rollwise_status_write_failures_total{reason,kind}` and a log
line. The message names the real
cause: the object is too large for etcd (and what to shrink), an admission webhook refused it
(which one), the ServiceAccount may not write status (RBAC), the status changed under every
attempt (a conflict storm), or the API server found it invalid.

A condition is not written for these failures: it would travel in the same status patch that
was just refused. Status itself stays bounded (see docs/security.md: history, analysis,
webhooks and messages have fixed limits), so only the spec can bring an object near the limit.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from rollwise.adapters.credentials import SEEN
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.manifests.types import ObjectRef
from rollwise.adapters.refusals import admission_of
from rollwise.core.model import EventRecord

log = logging.getLogger("rollwise.controller")

# etcd's default request limit (--max-request-bytes, 1.5 MiB); the API server refuses larger
# objects with 413 or "etcdserver: request is too large".
ETCD_LIMIT_BYTES = 1_572_864
# A spec within this much of the limit leaves no room for status: warned about before it fails.
SPEC_WARN_BYTES = ETCD_LIMIT_BYTES - 256 * 1024


class StatusWriteFailure(StrEnum):
    TOO_LARGE = "StatusTooLarge"
    ADMISSION = "StatusRefusedByAdmission"
    FORBIDDEN = "StatusWriteForbidden"
    CONFLICT = "StatusWriteConflict"
    INVALID = "StatusInvalid"
    OTHER = "StatusWriteFailed"


@dataclass(frozen=True)
class Refusal:
    reason: StatusWriteFailure
    message: str


_TOO_LARGE = re.compile(r"too large|request entity too large|exceeds the maximum", re.IGNORECASE)


def classify(
    err: AdapterError, object_bytes: int | None = None, plural: str = "progressiveservices"
) -> Refusal:
    """Why a status patch was refused, in words that name the cause and the fix; `plural`:
    the kind's resource, as RBAC and admission rules name it."""
    text = f"{err.problem} {err.fix}"
    size = f" ({object_bytes} bytes)" if object_bytes else ""
    if err.status == 413 or _TOO_LARGE.search(text):
        return Refusal(
            StatusWriteFailure.TOO_LARGE,
            f"the object{size} is too large for etcd (limit {ETCD_LIMIT_BYTES} bytes): shrink "
            "the spec (the pod template's env, annotations, command lines); status is bounded",
        )
    name = admission_of(text)
    if name is not None:
        return Refusal(
            StatusWriteFailure.ADMISSION,
            f"{name} refused the operator's status write: ask its owner to let the rollwise "
            f"ServiceAccount write {plural}/status; the spec is not at fault",
        )
    if err.status == 403:
        return Refusal(
            StatusWriteFailure.FORBIDDEN,
            f"the operator's ServiceAccount may not patch {plural}/status here "
            "(RBAC): install the chart's Role in this namespace",
        )
    if err.status == 409:
        return Refusal(
            StatusWriteFailure.CONFLICT,
            "the status changed under every write attempt (something else writes it: another "
            "operator instance or a controller); the pass is retried",
        )
    if err.status == 422:
        return Refusal(
            StatusWriteFailure.INVALID,
            "the API server refused the status as invalid (a CRD older than the operator?): "
            "install the CRDs of this operator version",
        )
    return Refusal(StatusWriteFailure.OTHER, f"the status write failed (HTTP {err.status or '?'})")


_COUNTERS: dict[int, Counter] = {}
_LOCK = threading.Lock()


def counter(registry: CollectorRegistry) -> Counter:
    """`rollwise_status_write_failures_total{reason,kind}` in `registry` (one per registry)."""
    with _LOCK:
        found = _COUNTERS.get(id(registry))
        if found is None:
            found = Counter(
                "rollwise_status_write_failures_total",
                "Status writes refused, by reason (StatusTooLarge, StatusRefusedByAdmission, "
                "StatusWriteForbidden, StatusWriteConflict, StatusInvalid, StatusWriteFailed) and "
                "kind (ProgressiveService, ReleaseTrain, FleetRollout)",
                ["reason", "kind"],
                registry=registry,
            )
            _COUNTERS[id(registry)] = found
        return found


def spec_size_warning(obj: dict[str, Any]) -> str | None:
    """What to shrink when the object is near etcd's limit, before a write fails; None else."""
    import json

    size = len(json.dumps(obj.get("spec") or {}, separators=(",", ":")))
    if size < SPEC_WARN_BYTES:
        return None
    return (
        f"the spec is {size} bytes, within {ETCD_LIMIT_BYTES - size} bytes of etcd's limit "
        f"({ETCD_LIMIT_BYTES}): shrink the pod template (env values, annotations, command "
        "lines, config inlined into the spec) or status writes will be refused"
    )


def scrubbed(text: str) -> str:
    return SEEN.scrub(text)


def report(
    post: Callable[[ObjectRef, EventRecord, Any], None],
    registry: CollectorRegistry,
    ref: ObjectRef,
    err: AdapterError,
    now: Any,
    context: Mapping[str, Any],
    object_bytes: int | None = None,
    plural: str = "progressiveservices",
) -> Refusal:
    """The refused write as a Warning Event on the object (`post(ref, record, now)`: the
    kind's Event recorder), a metric by reason and kind, and a log line."""
    refusal = classify(err, object_bytes, plural)
    counter(registry).labels(reason=refusal.reason, kind=ref.kind).inc()
    log.warning("status write refused (%s): %s", refusal.reason, refusal.message, extra=context)
    try:
        post(ref, EventRecord(refusal.reason, refusal.message, warning=True), now)
    except AdapterError as event_err:  # Events refused too: the log line and metric remain
        log.warning("cannot post the %s Event: %s", refusal.reason, event_err, extra=context)
    return refusal
