"""The comparison gate's measurement: one Prometheus range query per revision, same window.

`measure` never raises: the two revisions' per-interval samples (an empty tuple when a revision
has no series: no data), or an error (Prometheus unreachable, a bad query, several series).
The core runs the statistical test.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import requests

from rollwise.adapters.credentials import CredentialError, SecretReader
from rollwise.adapters.outbound import OutboundPolicy, OutboundRefused
from rollwise.adapters.providers.metric_http import PolicedSessions, unreachable
from rollwise.adapters.providers.prometheus import auth_headers
from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.providers.comparison")


class RangeResultError(ValueError):
    """The range query ran but its answer is not one series of numbers; says how to fix it."""


def samples_of(payload: Any) -> tuple[float, ...]:
    """The values of a range query's answer (`{"status": "success", "data": {...}}`): one
    series' values in time order; no series is no samples. Values stay floats, NaN included."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        raise RangeResultError("Prometheus answered an error; its answer is not shown")
    data = payload.get("data") or {}
    if data.get("resultType") != "matrix":
        raise RangeResultError(f"range query returned {data.get('resultType')!r}, not a matrix")
    series = data.get("result") or []
    if not series:
        return ()
    if len(series) > 1:
        raise RangeResultError(
            f"query returned {len(series)} series; aggregate it to one, e.g. sum(...)"
        )
    try:
        return tuple(float(value) for _, value in series[0]["values"])
    except (KeyError, TypeError, ValueError):
        raise RangeResultError("the range result's series has another shape; not shown") from None


class ComparisonProvider:
    """Two `/api/v1/query_range` calls per measurement, through the outbound policy (as every
    provider), no retries inside a measurement (the gate's interval is the retry)."""

    def __init__(
        self,
        pool_size: int = 8,
        policy: OutboundPolicy | None = None,
        secrets: SecretReader | None = None,
    ) -> None:
        self.sessions = PolicedSessions(policy, pool_size)
        self.secrets = secrets  # the gate's bearer token or basic auth, as a plain gate's

    def _range(
        self, address: str, query: str, window: Any, timeout: float, headers: dict[str, str]
    ) -> tuple[float, ...]:
        response = self.sessions.session(address).get(
            f"{address}/api/v1/query_range",
            params={
                "query": query,
                "start": f"{window.start.timestamp():.3f}",
                "end": f"{window.end.timestamp():.3f}",
                "step": f"{window.step_s:g}s",
                "timeout": f"{timeout:g}s",
            },
            timeout=timeout,
            headers=headers,
        )
        if response.status_code >= 300:
            raise RangeResultError(
                f"Prometheus answered HTTP {response.status_code}; its answer is not shown"
            )
        try:
            payload = response.json()
        except ValueError:
            raise RangeResultError(
                f"Prometheus answered HTTP {response.status_code} without JSON; not shown"
            ) from None
        return samples_of(payload)

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        window = query.comparison

        def sample(**fields: Any) -> MetricSample:
            return MetricSample(key=query.key, query=query.query, measured_at=now, **fields)

        if window is None:
            return sample(error=f"gate {query.gate}: not a comparison query")
        try:
            address = self.sessions.checked(query)
        except OutboundRefused as err:
            return sample(error=str(err))
        try:
            headers = auth_headers(self.secrets, query)
        except CredentialError as err:
            owner = "ClusterMetricGate " if query.cluster else f"MetricGate {query.namespace}/"
            return sample(error=f"{owner}{query.gate}: {err}")
        try:
            canary = self._range(address, query.query, window, query.timeout_s, headers)
            stable = self._range(address, window.stable_query, window, query.timeout_s, headers)
        except RangeResultError as err:
            return sample(error=str(err))
        except requests.RequestException as err:
            return sample(error=unreachable("Prometheus", address, err, query.timeout_s))
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring comparison gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
        return sample(canary_values=canary, stable_values=stable)
