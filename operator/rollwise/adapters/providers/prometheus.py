"""The prometheus metric provider: one instant query of a gate's resolved PromQL.

Every outcome is a MetricSample with a value, no value (no data: an empty vector, NaN, +-Inf) or
an error (Prometheus unreachable, a timeout, a bad query, several series).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import threading
from datetime import datetime
from typing import Any

import requests
import urllib3.exceptions
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.prometheus")


class QueryResultError(ValueError):
    """The query ran but its result cannot be one gate value; the message says how to fix it."""


def value_of(result: Any) -> float | None:
    """The gate value in a Prometheus instant-query `data.result`.

    A scalar or a one-series vector gives its value (NaN and +-Inf kept as floats, so the core
    sees no data); an empty vector gives None. Anything else raises QueryResultError.
    """
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        # resultType scalar (or string): [<unix time>, "<value>"]
        try:
            return float(result[1])
        except (TypeError, ValueError):
            raise QueryResultError(
                f"query returned the string {str(result[1])[:80]!r}, not a number"
            ) from None
    if not isinstance(result, list):
        raise QueryResultError(f"unexpected query result {str(result)[:120]}")
    if not result:
        return None
    if any(isinstance(s, dict) and "values" in s for s in result):
        raise QueryResultError(
            "query returned a range vector; wrap it in a function, e.g. rate(...[1m])"
        )
    if len(result) > 1:
        raise QueryResultError(
            f"query returned {len(result)} series; aggregate it to one, e.g. sum(...)"
        )
    series = result[0]
    try:
        return float(series["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise QueryResultError(f"unexpected series in query result: {str(series)[:120]}") from None


_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


def http_error_message(err: PrometheusApiClientException) -> str:
    """Prometheus's own message from the client's "HTTP Status Code N (b'{...}')" exception."""
    text = str(err)
    match = _STATUS.match(text)
    if not match:
        return text[:500]
    code, raw = match.groups()
    try:
        body = ast.literal_eval(raw)
        payload = json.loads(body)
        detail = f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"
    except (ValueError, SyntaxError, AttributeError, TypeError):
        detail = raw[:300]
    return f"Prometheus answered HTTP {code}: {detail}"[:500]


def _timed_out(err: requests.RequestException) -> bool:
    """requests.Timeout, or (with retries off) urllib3's timeout inside a MaxRetryError."""
    if isinstance(err, requests.Timeout):
        return True
    cause = err.args[0] if err.args else None
    reason = getattr(cause, "reason", None)
    # NewConnectionError (refused, no route) subclasses ConnectTimeoutError for old reasons.
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _unreachable(address: str, err: requests.RequestException, timeout: float) -> str:
    if _timed_out(err):
        return f"Prometheus at {address} did not answer within {timeout:g}s"
    reason = str(err)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", reason)
    if errno:
        reason = errno.group(1)
    return f"Prometheus at {address} is unreachable: {reason}"[:500]


class PrometheusProvider:
    """Prometheus through prometheus_api_client: one PrometheusConnect per address, cached.

    No retries inside a measurement: the gate's interval is the retry, and errors are counted
    against consecutiveErrorLimit by the core. The HTTP pool is sized for the worker threads.
    """

    def __init__(self, pool_size: int = 8) -> None:
        self._pool_size = max(1, pool_size)
        self._clients: dict[str, PrometheusConnect] = {}
        self._lock = threading.Lock()

    def _client(self, address: str) -> PrometheusConnect:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                session = requests.Session()
                no_retry = Retry(total=0, connect=0, read=0, redirect=0, status=0)
                client = PrometheusConnect(url=address, session=session, retry=no_retry)
                # PrometheusConnect mounts a default-sized adapter for its URL: replace it with
                # one pooled for the workers, still without retries.
                session.mount(
                    address,
                    HTTPAdapter(
                        pool_connections=1, pool_maxsize=self._pool_size, max_retries=no_retry
                    ),
                )
                self._clients[address] = client
            return client

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        address = query.address.rstrip("/")

        def sample(value: float | None = None, error: str | None = None) -> MetricSample:
            return MetricSample(
                key=query.key, query=query.query, measured_at=now, value=value, error=error
            )

        # requests takes float seconds; the client's annotation says int.
        timeout: Any = query.timeout_s
        try:
            result = self._client(address).custom_query(
                query.query, params={"timeout": f"{query.timeout_s:g}s"}, timeout=timeout
            )
            return sample(value=value_of(result))
        except QueryResultError as err:
            return sample(error=str(err))
        except PrometheusApiClientException as err:
            return sample(error=http_error_message(err))
        except requests.RequestException as err:
            return sample(error=_unreachable(address, err, query.timeout_s))
        except (ValueError, KeyError, TypeError) as err:  # a body that is not Prometheus JSON
            return sample(error=f"Prometheus at {address} answered something else: {err}"[:500])
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
