"""What the InfluxDB, Graphite and comparison providers share: the outbound policy's check of
the address (adapters/outbound.py: allow-list, no metadata or link-local address, no redirect,
every connected peer checked), one pooled session per address, no retries inside a measurement
(the gate's interval is the retry), and every failure turned into a sample with an error whose
text is fixed: no part of an answer is ever shown (it would reach status and Events)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from rollwise.adapters.outbound import OutboundPolicy, OutboundRefused, connection_failure
from rollwise.core.model import GateQuery, MetricSample
from rollwise.core.redaction import describe_url

log = logging.getLogger("rollwise.adapters.providers.metric_http")


class AnswerError(ValueError):
    """The server answered, but not with one gate value; the message says how to fix it."""


class PolicedSessions:
    """One session per checked address, made by the outbound policy."""

    def __init__(self, policy: OutboundPolicy | None, pool_size: int) -> None:
        self.policy = policy or OutboundPolicy()
        self._pool_size = max(1, pool_size)
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def checked(self, query: GateQuery) -> str:
        """The gate's address, normalised, once the policy allows it (OutboundRefused if not)."""
        owner = "ClusterMetricGate " if query.cluster else f"MetricGate {query.namespace}/"
        normal = self.policy.check(query.address, platform=query.cluster, what=owner + query.gate)
        return normal.url.rstrip("/")

    def session(self, address: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(address)
            if session is None:
                session = self._sessions[address] = self.policy.session(self._pool_size)
            return session


def unreachable(what: str, address: str, err: requests.RequestException, timeout: float) -> str:
    """A fixed text for a request that got no answer."""
    if isinstance(err, requests.Timeout):
        return f"{what} at {describe_url(address)} did not answer within {timeout:g}s"
    return f"{what} at {describe_url(address)} is unreachable: {connection_failure(err)}"


class JsonMetricSource:
    """GET `<address><path>` with the query's parameters; `value_of` reads the JSON answer."""

    def __init__(
        self,
        name: str,
        path: str,
        query_param: str,
        value_of: Callable[[Any], float | None],
        pool_size: int = 8,
        fixed: tuple[tuple[str, str], ...] = (),
        policy: OutboundPolicy | None = None,
    ) -> None:
        self.name = name
        self.fixed = fixed
        self.path = path
        self.query_param = query_param
        self.value_of = value_of
        self.sessions = PolicedSessions(policy, pool_size)

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        def sample(value: float | None = None, error: str | None = None) -> MetricSample:
            return MetricSample(
                key=query.key, query=query.query, measured_at=now, value=value, error=error
            )

        try:
            address = self.sessions.checked(query)
        except OutboundRefused as err:
            return sample(error=str(err))
        try:
            response = self.sessions.session(address).get(
                f"{address}{self.path}",
                params={**dict(self.fixed), self.query_param: query.query, **dict(query.params)},
                timeout=query.timeout_s,
            )
            if response.status_code >= 300:
                return sample(
                    error=f"{self.name} answered HTTP {response.status_code}; "
                    "its answer is not shown"
                )
            try:
                payload = response.json()
            except ValueError:
                return sample(
                    error=f"{self.name} answered HTTP {response.status_code} without JSON; "
                    "its answer is not shown"
                )
            return sample(value=self.value_of(payload))
        except AnswerError as err:
            return sample(error=str(err))
        except requests.RequestException as err:
            return sample(error=unreachable(self.name, address, err, query.timeout_s))
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
