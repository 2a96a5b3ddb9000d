"""The comparison gate's measurement: one Prometheus range query per revision, same window.

`measure` never raises: the two revisions' per-interval samples (an empty tuple when a revision
has no series: no data), or an error (Prometheus unreachable, a bad query, several series).
The core runs the statistical test.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.providers.comparison")


class RangeResultError(ValueError):
    """The range query ran but its answer is not one series of numbers; says how to fix it."""


def samples_of(payload: Any) -> tuple[float, ...]:
    """The values of a range query's answer (`{"status": "success", "data": {...}}`): one
    series' values in time order; no series is no samples. Values stay floats, NaN included."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise RangeResultError(f"Prometheus answered an error: {error or str(payload)[:200]}")
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
        raise RangeResultError(f"unexpected series in range result: {str(series)[:160]}") from None


class ComparisonProvider:
    """Two `/api/v1/query_range` calls per measurement, on one pooled session per address, no
    retries inside a measurement (the gate's interval is the retry)."""

    def __init__(self, pool_size: int = 8) -> None:
        self._pool_size = max(1, pool_size)
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def _session(self, address: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(address)
            if session is None:
                session = requests.Session()
                no_retry = Retry(total=0, connect=0, read=0, redirect=0, status=0)
                adapter = HTTPAdapter(
                    pool_connections=1, pool_maxsize=self._pool_size, max_retries=no_retry
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._sessions[address] = session
            return session

    def _range(self, address: str, query: str, window: Any, timeout: float) -> tuple[float, ...]:
        response = self._session(address).get(
            f"{address}/api/v1/query_range",
            params={
                "query": query,
                "start": f"{window.start.timestamp():.3f}",
                "end": f"{window.end.timestamp():.3f}",
                "step": f"{window.step_s:g}s",
                "timeout": f"{timeout:g}s",
            },
            timeout=timeout,
        )
        try:
            payload = response.json()
        except ValueError:
            raise RangeResultError(
                f"Prometheus answered HTTP {response.status_code} with no JSON body"
            ) from None
        if response.status_code >= 400:
            detail = payload.get("error") if isinstance(payload, dict) else None
            raise RangeResultError(
                f"Prometheus answered HTTP {response.status_code}: {detail or payload}"[:500]
            )
        return samples_of(payload)

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        address = query.address.rstrip("/")
        window = query.comparison

        def sample(**fields: Any) -> MetricSample:
            return MetricSample(key=query.key, query=query.query, measured_at=now, **fields)

        if window is None:
            return sample(error=f"gate {query.gate}: not a comparison query")
        try:
            canary = self._range(address, query.query, window, query.timeout_s)
            stable = self._range(address, window.stable_query, window, query.timeout_s)
        except RangeResultError as err:
            return sample(error=str(err))
        except requests.Timeout:
            return sample(
                error=f"Prometheus at {address} did not answer within {query.timeout_s:g}s"
            )
        except requests.RequestException as err:
            return sample(error=f"Prometheus at {address} is unreachable: {err}"[:500])
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring comparison gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
        return sample(canary_values=canary, stable_values=stable)
