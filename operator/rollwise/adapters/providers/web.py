"""The web gate provider: one HTTP GET or POST answering JSON, a JSONPath to the gate value.

`measure` never raises. Outcomes, as the core reads them (no data never passes):
- a number, a boolean (1/0) or a numeric string at the JSONPath: the value;
- nothing at the path, null, an empty list, a non-numeric value: no value (Inconclusive);
- a URL the allow-list refuses, a connection error, a timeout, an HTTP status outside 2xx, a
  redirect, a body that is not JSON, a path matching several values: an error (Error).

SSRF: web gate URLs come only from MetricGates and ClusterMetricGates, never from a
ProgressiveService. A ClusterMetricGate is platform-owned and may call any URL; a namespaced
MetricGate is written by whoever administers its namespace, so its URLs must match the
operator's `--web-gate-allow` list (empty by default: namespaced web gates are refused).
Redirects are never followed (a redirect could leave the allowed prefix), proxies from the
environment are not used, and a body is read up to 1 MiB.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from jsonpath_ng.ext import parse as parse_json_path
from requests.adapters import HTTPAdapter

from rollwise.core.model import GateQuery, MetricSample

log = logging.getLogger("rollwise.adapters.web")

MAX_BODY_BYTES = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebGateError(ValueError):
    """A web gate measurement that cannot give a value; the message says what to fix."""


@dataclass(frozen=True)
class AllowedPrefix:
    """One `--web-gate-allow` entry: scheme, host (`*.` allows subdomains), port, path prefix."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, text: str) -> AllowedPrefix:
        parts = urlsplit(text.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(
                f"--web-gate-allow {text!r}: give a URL prefix such as "
                "https://slo.example.com/api/ or http://*.monitoring.svc:8080/"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                f"--web-gate-allow {text!r}: no user, query or fragment in an allowed prefix"
            )
        host = parts.hostname.lower()
        if "*" in host.removeprefix("*."):
            raise ValueError(f"--web-gate-allow {text!r}: only a leading '*.' wildcard is allowed")
        return cls(
            scheme=parts.scheme,
            host=host,
            port=parts.port or _DEFAULT_PORTS[parts.scheme],
            path=parts.path or "/",
        )

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, -1)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme != self.scheme or port != self.port or parts.username is not None:
            return False
        if self.host.startswith("*."):
            if not host.endswith(self.host[1:]) or host == self.host[2:]:
                return False
        elif host != self.host:
            return False
        path = parts.path or "/"
        # A prefix ending in "/" matches below it; one without matches itself and below it.
        prefix = self.path
        return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


class WebGateAllowList:
    """Which URLs a web gate may call: every URL for a ClusterMetricGate, only the allowed
    prefixes for a namespaced MetricGate."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(e for e in entries if e.strip())
        self.prefixes = tuple(AllowedPrefix.parse(e) for e in self.entries)

    def refusal(self, query: GateQuery) -> str | None:
        """Why this gate may not call its URL; None when it may."""
        if query.cluster or any(p.allows(query.address) for p in self.prefixes):
            return None
        allowed = ", ".join(self.entries) or "none"
        return (
            f"MetricGate {query.namespace}/{query.gate}: URL {query.address} is not allowed for "
            f"namespaced MetricGates (operator setting --web-gate-allow: {allowed}); ask the "
            "platform team to allow its prefix, or use a ClusterMetricGate"
        )


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
    shown = json.dumps(matches[0])[:80]
    return f"jsonPath {json_path} gave {shown}, not a number: no data"


class WebProvider:
    """Web gates over one pooled requests.Session, without retries: the gate's interval is
    the retry, and consecutiveErrorLimit counts the errors."""

    def __init__(self, allow: WebGateAllowList | None = None, pool_size: int = 8) -> None:
        self.allow = allow or WebGateAllowList()
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy from the environment: the URL is the URL
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

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
        refused = self.allow.refusal(query)
        if refused is not None:
            return sample(error=refused)
        try:
            document = self._fetch(query)
            value = number_at(document, request.json_path)
        except WebGateError as err:
            return sample(error=str(err)[:500])
        except Exception as err:  # never raise into the reconcile loop, but say what it was
            log.exception("unexpected error measuring web gate %s", query.gate)
            return sample(error=f"unexpected {type(err).__name__}: {err}"[:500])
        if value is None:
            return sample(message=_describe_value(document, request.json_path))
        return sample(value=value)

    def _fetch(self, query: GateQuery) -> Any:
        """The JSON document the URL answers; WebGateError for every way it does not."""
        request = query.web
        assert request is not None
        url = query.address
        headers = {"Accept": "application/json", "User-Agent": "rollwise"}
        headers.update(dict(request.headers))
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
            raise WebGateError(f"{url} did not answer within {query.timeout_s:g}s") from err
        except requests.RequestException as err:
            raise WebGateError(f"{url} is unreachable: {_reason(err)}") from err
        with response:
            if 300 <= response.status_code < 400:
                raise WebGateError(
                    f"{url} answered HTTP {response.status_code} (redirect to "
                    f"{response.headers.get('Location', '?')}); web gates follow no redirect: "
                    "put the final URL in the gate"
                )
            try:
                body = _read_bounded(response, query.timeout_s)
            except requests.RequestException as err:
                raise WebGateError(f"{url}: reading the answer failed: {_reason(err)}") from err
            if not 200 <= response.status_code < 300:
                snippet = body[:200].decode(errors="replace").strip()
                raise WebGateError(f"{url} answered HTTP {response.status_code}: {snippet}")
        try:
            return json.loads(body)
        except ValueError as err:
            snippet = body[:80].decode(errors="replace").strip()
            raise WebGateError(f"{url} answered something that is not JSON: {snippet!r}") from err


def _read_bounded(response: requests.Response, timeout: float) -> bytes:
    """The body, at most MAX_BODY_BYTES, within `timeout` in all (requests' own timeout is per
    socket read, so a server dripping a byte at a time would never reach it)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        if time.monotonic() > deadline:
            raise WebGateError(f"{response.url} did not finish its answer within {timeout:g}s")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WebGateError(f"{response.url} answered more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(err: requests.RequestException) -> str:
    text = str(err)
    for marker in ("[Errno", "Failed to resolve", "Connection refused", "Read timed out"):
        index = text.find(marker)
        if index >= 0:
            return text[index:].split("'))")[0].split('"))')[0][:200]
    return text[:200]
