"""The comparison adapter: a range query's answer becomes one revision's samples, and both
revisions are asked over the same window; every failure is a sample with an error."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.comparison import ComparisonProvider, RangeResultError, samples_of
from rollwise.api.gates import ProviderKind
from rollwise.core.model import GateQuery, RangeQuery

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def matrix(*series: list[str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {}, "values": [[1767225600 + 15 * i, v] for i, v in enumerate(s)]}
                for s in series
            ],
        },
    }


def test_one_series_gives_its_values_in_order_nan_kept() -> None:
    values = samples_of(matrix(["0.1", "0.2", "NaN"]))

    assert values[:2] == (0.1, 0.2) and math.isnan(values[2])


def test_no_series_is_no_samples() -> None:
    assert samples_of(matrix()) == ()


def test_several_series_must_be_aggregated() -> None:
    with pytest.raises(RangeResultError, match="aggregate it to one"):
        samples_of(matrix(["1"], ["2"]))


class Answers(BaseHTTPRequestHandler):
    """Answers query_range by the revision named in the query; records every request."""

    seen: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:
        params = parse_qs(urlparse(self.path).query)
        type(self).seen.append(params)
        query = params["query"][0]
        if "broken" in query:
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            code = 400
        else:
            body = matrix(["0.5"] * 3 if 'revision="new"' in query else ["0.1"] * 4)
            code = 200
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    Answers.seen = []
    server = HTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def query(address: str, canary: str = 'x{revision="new"}') -> GateQuery:
    return GateQuery(
        key="cmp",
        gate="cmp",
        background=False,
        address=address,
        query=canary,
        timeout_s=3,
        provider=ProviderKind.PROMETHEUS,
        comparison=RangeQuery(
            stable_query='x{revision="old"}',
            start=NOW - timedelta(minutes=5),
            end=NOW,
            step_s=15,
        ),
    )


# What the test harness allows the operator (tests/harness/operator_process.py): loopback.
LOOPBACK = OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True)


def test_both_revisions_are_sampled_over_the_same_window(prometheus: str) -> None:
    sample = ComparisonProvider(policy=LOOPBACK).measure(query(prometheus), NOW)

    assert sample.error is None
    assert sample.canary_values == (0.5, 0.5, 0.5)
    assert sample.stable_values == (0.1, 0.1, 0.1, 0.1)
    windows = {(p["start"][0], p["end"][0], p["step"][0]) for p in Answers.seen}
    assert windows == {
        (f"{(NOW - timedelta(minutes=5)).timestamp():.3f}", f"{NOW.timestamp():.3f}", "15s")
    }


def test_a_bad_query_is_an_error_with_its_status_code_and_none_of_the_answer(
    prometheus: str,
) -> None:
    sample = ComparisonProvider(policy=LOOPBACK).measure(query(prometheus, "broken("), NOW)

    assert sample.error is not None and "HTTP 400" in sample.error
    assert "parse error" not in sample.error  # the answer's text never reaches status


def test_a_namespaced_gate_outside_the_allow_list_is_refused_and_never_sent(
    prometheus: str,
) -> None:
    Answers.seen.clear()
    refusing = OutboundPolicy(("http://prometheus.monitoring:9090/",), allow_loopback=True)

    sample = ComparisonProvider(policy=refusing).measure(query(prometheus), NOW)

    assert sample.error is not None and "outbound allow-list" in sample.error
    assert Answers.seen == []


def test_an_unreachable_prometheus_is_an_error_not_an_exception() -> None:
    sample = ComparisonProvider(policy=LOOPBACK).measure(query("http://127.0.0.1:9"), NOW)

    assert sample.error is not None and "unreachable" in sample.error
