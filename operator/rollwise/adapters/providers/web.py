"""The web gate provider: one HTTP GET or POST answering JSON, a JSONPath to the gate value.

`measure` never raises. Outcomes, as the core reads them (no data never passes):
- a number, a boolean (1/0) or a numeric string at the JSONPath: the value;
- nothing at the path, null, an empty list, a non-numeric value: no value (Inconclusive);
- a URL the allow-list refuses, a connection error, a timeout, an HTTP status outside 2xx, a
  redirect, a body that is not JSON, a path matching several values: an error (Error).

SSRF: every URL goes through the one outbound policy (adapters/outbound.py): normalised,
resolved, link-local and metadata addresses refused; a namespaced MetricGate (a team's) only
under the operator's outbound allow-list, a ClusterMetricGate (the platform's) anywhere else.
Redirects are never followed, proxies from the environment are not used, a body is read up to
1 MiB, and no part of an answer is ever copied into status or Events: a status code and a
fixed text.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from typing import Any

import requests
from jsonpath_ng.ext import parse as parse_json_path

from rollwise.adapters.credentials import CredentialError, SecretReader
from rollwise.adapters.outbound import (
    NormalURL,
    OutboundPolicy,
    OutboundRefused,
    connection_failure,
)
from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.web")

MAX_BODY_BYTES = 1024 * 1024


class WebGateError(ValueError):
    """A web gate measurement that cannot give a value; the message says what to fix."""


def number_at(document: Any, json_path: str) -> float | None:
    """The gate value at `json_path`: None for no match, null, an empty list or a value that is
    not a number, a boolean or a numeric string. Raises WebGateError for a bad path or one
    that matches several values."""
    try:
        expression = parse_json_path(json_path)
    except Exception as err:  # the lexer and parser raise several types, not one base
        raise WebGateError(f"jsonPath {json_path!r} does not parse: {err}") from err
    matches = [m.value for m in expression.find(document)]
    if len(matches) == 1 and isinstance(matches[0], list):
        matches = matches[0]
    if not matches:
        return None
    if len(matches) > 1:
        raise WebGateError(
            f"jsonPath {json_path!r} matched {len(matches)} values; narrow it to one"
        )
    value = matches[0]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _describe_value(document: Any, json_path: str) -> str:
    """Why there is no value at the path, for the Inconclusive message."""
    try:
        matches = [m.value for m in parse_json_path(json_path).find(document)]
    except Exception:  # number_at has reported a bad path already
        return f"jsonPath {json_path} matched nothing"
    if not matches or matches == [[]]:
        return f"jsonPath {json_path} matched nothing: no data"
    kind = "null" if matches[0] is None else type(matches[0]).__name__
    return f"jsonPath {json_path} matched a {kind} that is not a number: no data"


class WebProvider:
    """Web gates over one pooled requests.Session, without retries: the gate's interval is
    the retry, and consecutiveErrorLimit counts the errors."""

    def __init__(
        self,
        policy: OutboundPolicy | None = None,
        pool_size: int = 8,
        secrets: SecretReader | None = None,
    ) -> None:
        self.policy = policy or OutboundPolicy()
        self.secrets = secrets
        self._session = self.policy.session(pool_size=pool_size)

    def measure(self, query: GateQuery, now: datetime) -> MetricSample:
        def sample(
            value: float | None = None, error: str | None = None, message: str | None = None
        ) -> MetricSample:
            return MetricSample(
                key=query.key,
                query=query.query,
                measured_at=now,
                value=value,
                error=error,
                message=message,
            )

        request = query.web
        if request is None:
            return sample(error=f"gate {query.gate}: not a web gate")
        owner = "ClusterMetricGate " if query.cluster else f"MetricGate {query.namespace}/"
        try:
            url = self.policy.check(query.address, platform=query.cluster, what=owner + query.gate)
        except OutboundRefused as err:
            return sample(error=str(err))
        try:
            secret_headers = self._secret_headers(query)
        except CredentialError as err:
            return sample(error=f"{owner}{query.gate}: {err}")
        try:
            document = self._fetch(query, url, secret_headers)
            value = number_at(document, request.json_path)
        except WebGateError as err:
            return sample(error=str(err)[:500])
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.error("unexpected %s measuring web gate %s", type(err).__name__, query.gate)
            return sample(error=f"unexpected {type(err).__name__} measuring the gate")
        if value is None:
            return sample(message=_describe_value(document, request.json_path))
        return sample(value=value)

    def _secret_headers(self, query: GateQuery) -> dict[str, str]:
        """Header values from Secrets, read now; CredentialError naming the Secret."""
        request = query.web
        if request is None or not request.secret_headers:
            return {}
        if self.secrets is None:
            raise CredentialError("valueSecretRef: this operator reads no Secrets")
        namespace = self.secrets.namespace_for(query.cluster, query.namespace)
        return {
            header: self.secrets.value(namespace, name, key)
            for header, name, key in request.secret_headers
        }

    def _fetch(self, query: GateQuery, normal: NormalURL, secret_headers: dict[str, str]) -> Any:
        """The JSON document the URL answers; WebGateError for every way it does not. Errors
        name the destination as scheme://host:port/… and never quote the answer."""
        request = query.web
        assert request is not None
        url, shown = normal.url, normal.shown
        headers = {"Accept": "application/json", "User-Agent": "rollwise"}
        headers.update(dict(request.headers))
        headers.update(secret_headers)
        data = None
        if request.body is not None:
            data = request.body.encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            response = self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                timeout=query.timeout_s,
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout as err:
            raise WebGateError(f"{shown} did not answer within {query.timeout_s:g}s") from err
        except requests.RequestException as err:
            raise WebGateError(f"{shown} is unreachable: {connection_failure(err)}") from err
        with response:
            if 300 <= response.status_code < 400:
                raise WebGateError(
                    f"{shown} answered HTTP {response.status_code} (a redirect); web gates "
                    "follow no redirect: put the final URL in the gate"
                )
            if not 200 <= response.status_code < 300:
                raise WebGateError(
                    f"{shown} answered HTTP {response.status_code}; the answer is not shown "
                    "(it could hold anything): look at the service's own logs"
                )
            try:
                body = _read_bounded(response, query.timeout_s, shown)
            except requests.RequestException as err:
                raise WebGateError(
                    f"{shown}: reading the answer failed: {connection_failure(err)}"
                ) from err
        try:
            return json.loads(body)
        except ValueError as err:
            raise WebGateError(f"{shown} answered something that is not JSON") from err


def _read_bounded(response: requests.Response, timeout: float, shown: str) -> bytes:
    """The body, at most MAX_BODY_BYTES, within `timeout` in all (requests' own timeout is per
    socket read, so a server dripping a byte at a time would never reach it)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        if time.monotonic() > deadline:
            raise WebGateError(f"{shown} did not finish its answer within {timeout:g}s")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WebGateError(f"{shown} answered more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
