"""An Event on a MetricGate or ClusterMetricGate whose spec the operator refuses, when it is
applied: its owner sees the refusal on the gate itself (`kubectl describe metricgate`), not
only on the services that use it (which wait with GateInvalid and say the same)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from rollwise.adapters.validation import validation_summary
from rollwise.api.gates import MetricGateSpec
from rollwise.core.promql import gate_template_problem

log = logging.getLogger("rollwise.controller")

REASON_INVALID = "InvalidGate"


def gate_problem(body: Mapping[str, Any]) -> str | None:
    """Why the gate in `body` is refused (its schema, or its query template), or None."""
    try:
        spec = MetricGateSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        return validation_summary(err)
    return gate_template_problem(spec)


def warn_if_invalid_gate(event: Mapping[str, Any]) -> None:
    """A Warning Event on an added or changed gate that is refused; never blocks (Kopf posts
    it from its own queue)."""
    body = event.get("object") or {}
    if event.get("type") not in (None, "ADDED", "MODIFIED") or not body.get("metadata"):
        return
    problem = gate_problem(body)
    if problem is None:
        return
    metadata = body["metadata"]
    log.warning(
        "%s %s is refused: %s",
        body.get("kind", "MetricGate"),
        "/".join(str(x) for x in (metadata.get("namespace"), metadata.get("name")) if x),
        problem,
    )
    # Outside a running operator (a handler called by a test) Kopf has no poster: logged only.
    with contextlib.suppress(LookupError):
        kopf.warn(
            dict(body),
            reason=REASON_INVALID,
            message=f"refused, no query is sent and every rollout using it waits: {problem}",
        )
