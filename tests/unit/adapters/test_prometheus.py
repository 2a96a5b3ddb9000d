"""The Prometheus adapter: how a query result becomes one gate value, and how every way a query
can fail becomes a sample with an error instead of an exception.

Result bodies are the `data.result` of real Prometheus answers (captured from the proving
ground's Prometheus 2.x). Failures use real sockets: a closed port, a listener that never
answers, and a small HTTP server that answers with Prometheus's own 400 body, because a test
cannot make a real Prometheus refuse or hang on demand.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from prometheus_api_client.exceptions import PrometheusApiClientException

from rollwise.adapters.providers.prometheus import (
    PrometheusProvider,
    QueryResultError,
    http_error_message,
    value_of,
)
from rollwise.core.model import GateQuery

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TS = 1795608351.705


def one_series(value: str) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [TS, value]}]


def series(n: int) -> list[dict[str, Any]]:
    return [
        {"metric": {"__name__": "http_requests_total", "pod": f"p{i}"}, "value": [TS, "1"]}
        for i in range(n)
    ]


# ----------------------------------------------------------------------------- value_of


def test_one_series_vector_gives_its_value() -> None:
    assert value_of(one_series("0.004")) == 0.004


def test_scalar_result_gives_its_value() -> None:
    assert value_of([TS, "1.5"]) == 1.5


def test_empty_vector_is_no_data_not_zero() -> None:
    assert value_of([]) is None


@pytest.mark.parametrize("text", ["NaN", "+Inf", "-Inf"])
def test_nan_and_infinities_are_kept_for_the_core_to_see_no_data(text: str) -> None:
    value = value_of(one_series(text))

    assert value is not None and (math.isnan(value) or math.isinf(value))


def test_nan_scalar_is_kept() -> None:
    value = value_of([TS, "NaN"])

    assert value is not None and math.isnan(value)


def test_several_series_must_be_aggregated() -> None:
    with pytest.raises(
        QueryResultError, match=r"returned 3 series; aggregate it to one, e\.g\. sum"
    ):
        value_of(series(3))


def test_range_vector_is_refused_with_a_hint() -> None:
    matrix = [{"metric": {"__name__": "up"}, "values": [[TS, "1"], [TS + 1, "1"]]}]

    with pytest.raises(QueryResultError, match="range vector"):
        value_of(matrix)


def test_string_result_is_refused() -> None:
    with pytest.raises(QueryResultError, match="string 'hello'"):
        value_of([TS, "hello"])


def test_prometheus_error_body_is_unwrapped_from_the_client_exception() -> None:
    body = json.dumps(
        {
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
        }
    ).encode()
    err = PrometheusApiClientException(f"HTTP Status Code 400 ({body!r})")

    assert http_error_message(err) == (
        'Prometheus answered HTTP 400: bad_data: invalid parameter "query": 1:5: '
        "parse error: unclosed left parenthesis"
    )


# ----------------------------------------------------------------------------- measure


def gate_query(address: str, query: str = "up", timeout_s: float = 2.0) -> GateQuery:
    return GateQuery(
        key="error-rate",
        gate="error-rate",
        background=False,
        address=address,
        query=query,
        timeout_s=timeout_s,
    )


class CannedPrometheus(HTTPServer):
    """Answers /api/v1/query with the status and body the test put in `answer`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.answer: tuple[int, dict[str, Any]] = (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": []}},
        )
        self.seen: list[str] = []

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: CannedPrometheus

    def do_GET(self) -> None:
        status, body = self.server.answer
        self.server.seen.append(self.path)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def prometheus() -> Iterator[CannedPrometheus]:
    server = CannedPrometheus()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_measure_returns_the_value_with_the_query_as_sent(prometheus: CannedPrometheus) -> None:
    prometheus.answer = (
        200,
        {"status": "success", "data": {"resultType": "vector", "result": one_series("0.02")}},
    )

    sample = PrometheusProvider().measure(gate_query(prometheus.address, "sum(x)"), NOW)

    assert (sample.key, sample.query, sample.value, sample.error) == (
        "error-rate",
        "sum(x)",
        0.02,
        None,
    )
    assert sample.measured_at == NOW
    assert "timeout=2s" in prometheus.seen[0]


def test_measure_reports_a_bad_query_with_prometheus_message(prometheus: CannedPrometheus) -> None:
    prometheus.answer = (
        400,
        {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected end"},
    )

    sample = PrometheusProvider().measure(gate_query(prometheus.address, "sum("), NOW)

    assert sample.value is None
    assert sample.error == "Prometheus answered HTTP 400: bad_data: parse error: unexpected end"


def test_measure_reports_a_server_error_without_retrying(prometheus: CannedPrometheus) -> None:
    prometheus.answer = (503, {"status": "error", "errorType": "unavailable", "error": "busy"})

    sample = PrometheusProvider().measure(gate_query(prometheus.address), NOW)

    assert sample.error == "Prometheus answered HTTP 503: unavailable: busy"
    assert len(prometheus.seen) == 1


def test_measure_reports_several_series_as_an_error(prometheus: CannedPrometheus) -> None:
    prometheus.answer = (
        200,
        {"status": "success", "data": {"resultType": "vector", "result": series(2)}},
    )

    sample = PrometheusProvider().measure(gate_query(prometheus.address), NOW)

    assert sample.error == "query returned 2 series; aggregate it to one, e.g. sum(...)"


def test_measure_reports_an_unreachable_prometheus() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    sample = PrometheusProvider().measure(gate_query(f"http://127.0.0.1:{port}"), NOW)

    assert sample.value is None
    assert (
        sample.error == f"Prometheus at http://127.0.0.1:{port} is unreachable: Connection refused"
    )


def test_measure_gives_up_after_the_gate_timeout() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()

        sample = PrometheusProvider().measure(gate_query(address, timeout_s=0.5), NOW)

        elapsed = time.monotonic() - started
    assert sample.error == f"Prometheus at {address} did not answer within 0.5s"
    assert elapsed < 3


def test_one_client_is_kept_per_address(prometheus: CannedPrometheus) -> None:
    provider = PrometheusProvider()
    address = prometheus.address

    provider.measure(gate_query(address), NOW)
    provider.measure(gate_query(address + "/"), NOW)

    assert list(provider._clients) == [address]
