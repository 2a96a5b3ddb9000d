"""What the InfluxDB and Graphite providers share: one pooled HTTP session per address, no
retries inside a measurement (the gate's interval is the retry), and every failure turned into
a sample with an error, never an exception."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.providers.metric_http")


class AnswerError(ValueError):
    """The server answered, but not with one gate value; the message says how to fix it."""


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
    ) -> None:
        self.name = name
        self.fixed = fixed
        self.path = path
        self.query_param = query_param
        self.value_of = value_of
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

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        address = query.address.rstrip("/")

        def sample(value: float | None = None, error: str | None = None) -> MetricSample:
            return MetricSample(
                key=query.key, query=query.query, measured_at=now, value=value, error=error
            )

        try:
            response = self._session(address).get(
                f"{address}{self.path}",
                params={**dict(self.fixed), self.query_param: query.query, **dict(query.params)},
                timeout=query.timeout_s,
            )
            try:
                payload = response.json()
            except ValueError:
                return sample(
                    error=f"{self.name} at {address} answered HTTP {response.status_code} "
                    f"without JSON: {response.text[:200]}"
                )
            if response.status_code >= 400:
                detail = payload.get("error") if isinstance(payload, dict) else None
                return sample(
                    error=f"{self.name} answered HTTP {response.status_code}: "
                    f"{detail or str(payload)[:300]}"[:500]
                )
            return sample(value=self.value_of(payload))
        except AnswerError as err:
            return sample(error=str(err))
        except requests.Timeout:
            return sample(
                error=f"{self.name} at {address} did not answer within {query.timeout_s:g}s"
            )
        except requests.RequestException as err:
            return sample(error=f"{self.name} at {address} is unreachable: {err}"[:500])
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
