"""The operator's log lines at --log-level debug: urllib3's own request lines never show a
spec URL's path or query, where a token can be written."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from rollwise.adapters.outbound import OutboundPolicy
from rollwise.controller import logs
from tests.harness.receiver import Receiver

MARKER = "pathMARKERz9y8x7"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure() replaces the root handler and levels: put them back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("urllib3", "requests")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_debug_logs_show_no_path_or_query_of_a_url_the_operator_called(
    root_logging: None, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    receiver = Receiver()
    try:
        logs.configure("debug", fmt)
        session = OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True).session()
        url = receiver.url(f"/services/T0/{MARKER}?x={MARKER}")
        session.post(url, data=b"{}", timeout=5).close()
        session.get(receiver.url(f"/{MARKER}"), timeout=5).close()
    finally:
        receiver.stop()

    err = capsys.readouterr().err
    hidden = r"POST /(…|\\u2026) HTTP/1.1\\?\" 200"  # JSON escapes the quote and the ellipsis
    assert re.search(hidden, err), "urllib3's request line is logged, its path hidden"
    assert "Starting new HTTP connection" in err
    assert MARKER not in err


def test_a_url_in_a_urllib3_line_keeps_its_host_only() -> None:
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1, "Redirecting %s -> %s",
        (f"/a/{MARKER}", f"https://hooks.example:8443/b/{MARKER}"), None,
    )  # fmt: skip

    logs.HideRequestPaths().filter(record)

    assert record.getMessage() == "Redirecting /… -> https://hooks.example:8443/…"
