"""The web gate adapter against a real HTTP server on 127.0.0.1: JSONPath values, no data,
every way a request can fail, and the allow-list that keeps namespaced gates to their URLs.

The server is `http.server` in a thread; each path answers one way (a JSON body, a status, a
redirect, an answer that never comes), so every outcome comes from a real socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rollwise.adapters.providers.registry import MetricProviders
from rollwise.adapters.providers.web import (
    MAX_BODY_BYTES,
    AllowedPrefix,
    WebGateAllowList,
    WebGateError,
    WebProvider,
    number_at,
)
from rollwise.core.model import GateQuery, MetricSample, WebRequest

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RELEASE = threading.Event()  # the /hang handler waits on it; set at teardown


class Handler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.received.append({"path": self.path})
        path = self.path.split("?")[0]
        if path == "/hang":
            RELEASE.wait(30)
            return
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/broken":
            self._answer(500, b'{"error": "database down"}')
            return
        if path == "/html":
            self._answer(200, b"<html>hello</html>", "text/html")
            return
        if path == "/huge":
            self._answer(200, b"[" + b"1," * MAX_BODY_BYTES + b"1]")
            return
        documents = {
            "/number": {"data": {"errorRate": 0.004}},
            "/string": {"data": {"errorRate": "0.25"}},
            "/bool": {"healthy": True},
            "/null": {"data": {"errorRate": None}},
            "/empty": {"data": {"series": []}},
            "/one": {"data": {"series": [0.5]}},
            "/many": {"data": {"series": [{"v": 1}, {"v": 2}]}},
            "/text": {"data": {"errorRate": "n/a"}},
        }
        self._answer(200, json.dumps(documents.get(path, {})).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        Handler.received.append(
            {"path": self.path, "body": body, "team": self.headers.get("X-Team")}
        )
        self._answer(200, json.dumps({"value": len(body)}).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        RELEASE.set()
        httpd.shutdown()
        httpd.server_close()


def query(
    url: str,
    json_path: str = "$.data.errorRate",
    *,
    method: str = "GET",
    body: str | None = None,
    cluster: bool = True,
    timeout: float = 2.0,
    headers: tuple[tuple[str, str], ...] = (),
) -> GateQuery:
    request = WebRequest(url=url, method=method, headers=headers, body=body, json_path=json_path)
    return GateQuery(
        key="slo",
        gate="slo",
        background=False,
        address=url,
        query=f"{method} {url} jsonPath {json_path}",
        timeout_s=timeout,
        provider="web",
        web=request,
        cluster=cluster,
        namespace="shop",
    )


def measure(q: GateQuery, allow: tuple[str, ...] = ()) -> MetricSample:
    return WebProvider(WebGateAllowList(allow)).measure(q, NOW)


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("path", "json_path", "value"),
    [
        ("/number", "$.data.errorRate", 0.004),
        ("/string", "$.data.errorRate", 0.25),
        ("/bool", "$.healthy", 1.0),
        ("/one", "$.data.series", 0.5),
        ("/many", "$.data.series[?(@.v > 1)].v", 2.0),
    ],
)
def test_the_value_at_the_json_path_is_the_gate_value(
    server: str, path: str, json_path: str, value: float
) -> None:
    sample = measure(query(server + path, json_path))

    assert sample.error is None
    assert sample.value == value
    assert sample.query == f"GET {server}{path} jsonPath {json_path}"


@pytest.mark.parametrize(
    ("path", "json_path", "why"),
    [
        ("/null", "$.data.errorRate", "gave null, not a number: no data"),
        ("/empty", "$.data.series", "matched nothing: no data"),
        ("/number", "$.data.latency", "matched nothing: no data"),
        ("/text", "$.data.errorRate", 'gave "n/a", not a number: no data'),
        ("/many", "$.data", "not a number: no data"),
    ],
)
def test_no_value_at_the_path_is_no_data_never_zero(
    server: str, path: str, json_path: str, why: str
) -> None:
    sample = measure(query(server + path, json_path))

    assert sample.error is None and sample.value is None
    assert sample.message is not None and why in sample.message


def test_a_path_matching_several_values_is_an_error_naming_the_count(server: str) -> None:
    sample = measure(query(server + "/many", "$.data.series[*].v"))

    assert sample.value is None
    assert sample.error is not None and "matched 2 values; narrow it to one" in sample.error


def test_a_post_sends_its_body_and_headers(server: str) -> None:
    sample = measure(
        query(
            server + "/post",
            "$.value",
            method="POST",
            body='{"service": "payment"}',
            headers=(("X-Team", "pay"),),
        )
    )

    assert sample.value == len('{"service": "payment"}')
    assert {"path": "/post", "body": '{"service": "payment"}', "team": "pay"} in Handler.received


# ----------------------------------------------------------------------------- errors


def test_an_http_error_status_is_an_error_with_the_body(server: str) -> None:
    sample = measure(query(server + "/broken"))

    assert sample.error is not None
    assert "answered HTTP 500" in sample.error and "database down" in sample.error


def test_a_body_that_is_not_json_is_an_error(server: str) -> None:
    sample = measure(query(server + "/html"))

    assert sample.error is not None and "not JSON: '<html>hello</html>'" in sample.error


def test_no_answer_within_the_timeout_is_an_error(server: str) -> None:
    sample = measure(query(server + "/hang", timeout=0.3))

    assert sample.error is not None and "did not answer within 0.3s" in sample.error


def test_a_closed_port_is_an_error_saying_unreachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        sample = measure(query(f"http://127.0.0.1:{port}/x"))

    assert sample.error is not None and "is unreachable" in sample.error


def test_a_redirect_is_never_followed(server: str) -> None:
    sample = measure(query(server + "/redirect"))

    assert sample.error is not None
    assert "HTTP 302" in sample.error and "follow no redirect" in sample.error
    assert "169.254.169.254" in sample.error


def test_an_oversized_answer_is_an_error(server: str) -> None:
    sample = measure(query(server + "/huge", "$[0]", timeout=10))

    assert sample.error is not None and f"more than {MAX_BODY_BYTES} bytes" in sample.error


def test_a_json_path_that_does_not_parse_is_an_error() -> None:
    with pytest.raises(WebGateError, match="does not parse"):
        number_at({}, "$..[")


# ----------------------------------------------------------------------------- allow-list


def test_a_namespaced_gate_is_refused_without_an_allow_list(server: str) -> None:
    sample = measure(query(server + "/number?refused=1", cluster=False))

    assert sample.value is None
    assert sample.error is not None
    assert f"MetricGate shop/slo: URL {server}/number?refused=1 is not allowed" in sample.error
    assert "--web-gate-allow: none" in sample.error and "ClusterMetricGate" in sample.error
    assert {"path": "/number?refused=1"} not in Handler.received, "never sent"


def test_a_namespaced_gate_may_call_an_allowed_prefix(server: str) -> None:
    sample = measure(query(server + "/number", cluster=False), allow=(server + "/",))

    assert sample.error is None and sample.value == 0.004


def test_a_cluster_gate_may_call_any_url(server: str) -> None:
    assert measure(query(server + "/number", cluster=True)).value == 0.004


@pytest.mark.parametrize(
    ("prefix", "url", "allowed"),
    [
        ("https://slo.example.com/api/", "https://slo.example.com/api/v1?x=1", True),
        ("https://slo.example.com/api/", "https://slo.example.com/apix", False),
        ("https://slo.example.com/api", "https://slo.example.com/api/v1", True),
        ("https://slo.example.com/api", "https://slo.example.com/api2", False),
        ("https://slo.example.com/", "http://slo.example.com/", False),  # scheme
        ("https://slo.example.com/", "https://slo.example.com:8443/", False),  # port
        ("https://slo.example.com:443/", "https://slo.example.com/x", True),
        ("https://slo.example.com/", "https://slo.example.com.evil.io/", False),
        ("https://slo.example.com/", "https://slo.example.com@evil.io/", False),
        ("https://slo.example.com/", "https://evil.io/?https://slo.example.com/", False),
        ("http://*.monitoring.svc:8080/", "http://prom.monitoring.svc:8080/q", True),
        ("http://*.monitoring.svc:8080/", "http://monitoring.svc:8080/q", False),
        ("http://*.monitoring.svc:8080/", "http://x.evilmonitoring.svc:8080/q", False),
        ("http://SLO.example.com/", "http://slo.EXAMPLE.com/", True),
    ],
)
def test_allowed_prefixes_match_scheme_host_port_and_path(
    prefix: str, url: str, allowed: bool
) -> None:
    assert AllowedPrefix.parse(prefix).allows(url) is allowed


@pytest.mark.parametrize(
    "entry", ["slo.example.com", "ftp://x/", "https://u:p@x/", "https://x/?a=1", "https://a*b/"]
)
def test_a_malformed_allow_entry_is_refused_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="--web-gate-allow"):
        WebGateAllowList([entry])


def test_the_provider_factory_sends_web_queries_to_the_web_provider(server: str) -> None:
    providers = MetricProviders.default(2, WebProvider(WebGateAllowList()))

    sample = providers.measure(query(server + "/number"), NOW)

    assert sample.value == 0.004
