"""The prometheus metric provider: one instant query of a gate's resolved PromQL.

Every outcome is a MetricSample with a value, no value (no data: an empty vector, NaN, +-Inf) or
an error (Prometheus unreachable, a timeout, a bad query, several series).
"""

from __future__ import annotations

import ast
import base64
import hashlib
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
from urllib3.util.retry import Retry

from rollwise.adapters.credentials import CredentialError, SecretReader
from rollwise.adapters.outbound import (
    GuardedAdapter,
    OutboundPolicy,
    OutboundRefused,
    connection_failure,
)
from rollwise.core.model import GateQuery, MetricSample
from rollwise.core.redaction import describe_url

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
            raise QueryResultError("query returned a string, not a number") from None
    if not isinstance(result, list):
        raise QueryResultError(f"unexpected query result (a {type(result).__name__})")
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
        raise QueryResultError("unexpected series in query result: no value in it") from None


_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


# Prometheus' own errorType values: a fixed vocabulary, safe to show. Nothing else of an answer
# is ever shown (the address may be something else answering anything).
_ERROR_TYPES = {"bad_data", "execution", "timeout", "canceled", "internal", "unavailable",
                "not_found", "not_acceptable"}  # fmt: skip


def http_error_message(err: PrometheusApiClientException) -> str:
    """A status code and a fixed text from the client's "HTTP Status Code N (b'{...}')"
    exception; Prometheus' errorType when it is one of its own, never the answer's text."""
    match = _STATUS.match(str(err))
    if not match:
        return "Prometheus answered an error; the answer is not shown"
    code, raw = match.groups()
    kind = ""
    try:
        payload = json.loads(ast.literal_eval(raw))
        if isinstance(payload, dict) and payload.get("errorType") in _ERROR_TYPES:
            kind = f" ({payload['errorType']})"
    except (ValueError, SyntaxError, AttributeError, TypeError):
        pass
    return f"Prometheus answered HTTP {code}{kind}; its answer is not shown"


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
    shown = describe_url(address)
    if _timed_out(err):
        return f"Prometheus at {shown} did not answer within {timeout:g}s"
    return f"Prometheus at {shown} is unreachable: {connection_failure(err)}"


def auth_headers(secrets: SecretReader | None, query: GateQuery) -> dict[str, str]:
    """The Authorization header of a Prometheus gate from its Secret, read now; {} without
    one; CredentialError naming what is missing."""
    auth = query.auth
    if auth is None:
        return {}
    if secrets is None:
        raise CredentialError("a secretRef: this operator reads no Secrets")
    namespace = secrets.namespace_for(query.cluster, query.namespace)
    if auth.bearer is not None:
        return {"Authorization": f"Bearer {secrets.value(namespace, *auth.bearer)}"}
    if auth.basic_password is not None:
        password = secrets.value(namespace, *auth.basic_password)
        pair = base64.b64encode(f"{auth.basic_user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


class PrometheusProvider:
    """Prometheus through prometheus_api_client: one PrometheusConnect per address, cached.

    No retries inside a measurement: the gate's interval is the retry, and errors are counted
    against consecutiveErrorLimit by the core. The HTTP pool is sized for the worker threads.
    """

    def __init__(
        self,
        pool_size: int = 8,
        policy: OutboundPolicy | None = None,
        secrets: SecretReader | None = None,
    ) -> None:
        self._pool_size = max(1, pool_size)
        self.policy = policy or OutboundPolicy()
        self.secrets = secrets
        self._clients: dict[str, PrometheusConnect] = {}
        self._lock = threading.Lock()

    def _client(self, address: str, headers: dict[str, str] | None = None) -> PrometheusConnect:
        # One client per address and credential (a digest of it: no credential as a key).
        key = address
        if headers:
            digest = hashlib.sha256(repr(sorted(headers.items())).encode()).hexdigest()[:16]
            key = f"{address}#{digest}"
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                # The outbound policy's session: no proxy, no redirect, every peer checked.
                session = self.policy.session()
                no_retry = Retry(total=0, connect=0, read=0, redirect=0, status=0)
                client = PrometheusConnect(
                    url=address, session=session, retry=no_retry, headers=dict(headers or {})
                )
                # PrometheusConnect mounts a default-sized adapter for its URL: replace it with
                # one pooled for the workers, still without retries, still guarded.
                session.mount(
                    address,
                    GuardedAdapter(
                        self.policy.address_refusal,
                        pool_connections=1,
                        pool_maxsize=self._pool_size,
                        max_retries=no_retry,
                    ),
                )
                self._clients[key] = client
            return client

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        def sample(value: float | None = None, error: str | None = None) -> MetricSample:
            return MetricSample(
                key=query.key, query=query.query, measured_at=now, value=value, error=error
            )

        owner = "ClusterMetricGate " if query.cluster else f"MetricGate {query.namespace}/"
        try:
            normal = self.policy.check(
                query.address, platform=query.cluster, what=owner + query.gate
            )
        except OutboundRefused as err:
            return sample(error=str(err))
        address = normal.url.rstrip("/")
        try:
            headers = auth_headers(self.secrets, query)
        except CredentialError as err:
            return sample(error=f"{owner}{query.gate}: {err}")

        # requests takes float seconds; the client's annotation says int.
        timeout: Any = query.timeout_s
        try:
            result = self._client(address, headers).custom_query(
                query.query, params={"timeout": f"{query.timeout_s:g}s"}, timeout=timeout
            )
            return sample(value=value_of(result))
        except QueryResultError as err:
            return sample(error=str(err))
        except PrometheusApiClientException as err:
            return sample(error=http_error_message(err))
        except requests.RequestException as err:
            return sample(error=_unreachable(address, err, query.timeout_s))
        except (ValueError, KeyError, TypeError):  # a body that is not Prometheus JSON
            return sample(
                error=f"Prometheus at {describe_url(address)} answered something that is not "
                "a Prometheus query result"
            )
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.error("unexpected %s measuring gate %s", type(err).__name__, query.gate)
            return sample(error=f"unexpected {type(err).__name__} measuring the gate")
