"""A bounded load generator: steady HTTP requests to a loopback address, then it stops.

Bounded three ways, whatever the caller asks: at most ``MAX_REQUESTS`` requests, at most
``MAX_SECONDS`` of sending, at most ``MAX_RATE`` requests per second; and only to 127.0.0.0/8.
Requests are paced on a fixed schedule (request i is due at start + i/rate) over a few
kept-alive connections, so the gateway sees a steady stream, as from real clients.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_REQUESTS = 20_000
MAX_SECONDS = 120.0
MAX_RATE = 500.0
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class Response:
    """One request's outcome: status (0 for a connection error), the pod's revision header."""

    sent_at: float  # time.monotonic()
    status: int
    revision: str
    pod: str
    body: str = ""  # the start of an answer no pod gave (the gateway's own), for diagnosis


@dataclass
class LoadResult:
    responses: list[Response] = field(default_factory=list)
    seconds: float = 0.0

    def by_revision(self) -> Counter[str]:
        return Counter(r.revision for r in self.responses if r.status)

    def by_status(self) -> Counter[int]:
        return Counter(r.status for r in self.responses)

    def share(self, revision: str) -> float:
        """Fraction of answered requests that the pods of ``revision`` answered."""
        counts = self.by_revision()
        answered = sum(counts.values())
        return counts[revision] / answered if answered else 0.0


def _check_loopback(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"load generator: only http:// URLs, got {url!r}")
    if ipaddress.ip_address(parts.hostname) not in LOOPBACK:
        raise ValueError(f"load generator: {parts.hostname} is not in 127.0.0.0/8")
    return (
        parts.hostname,
        parts.port or 80,
        (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
    )


def send(
    url: str,
    *,
    requests: int,
    rate: float = 200.0,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | None = None,
    connections: int = 4,
    timeout: float = 5.0,
    max_seconds: float = MAX_SECONDS,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Send ``requests`` GETs to ``url`` at ``rate``/s; return every outcome. Stops early at
    ``max_seconds`` (capped at MAX_SECONDS)."""
    host, port, path = _check_loopback(url)
    requests = max(0, min(requests, MAX_REQUESTS))
    rate = min(max(rate, 1.0), MAX_RATE)
    deadline_s = min(max_seconds, MAX_SECONDS)
    sent_headers = dict(headers or {})
    if cookies:
        sent_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    result = LoadResult()
    lock = threading.Lock()
    next_index = [0]
    start = time.monotonic()
    stop = stop or threading.Event()

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            with lock:
                index = next_index[0]
                if index >= requests:
                    return
                next_index[0] += 1
            due = start + index / rate
            if due - start > deadline_s:
                stop.set()
                return
            if stop.wait(max(0.0, due - time.monotonic())):  # pacing, not a test sleep
                break
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            sent_at = time.monotonic()
            try:
                conn.request("GET", path, headers=sent_headers)
                answer = conn.getresponse()
                body = answer.read()
                revision = answer.getheader("X-Rollwise-Revision") or ""
                outcome = Response(
                    sent_at,
                    answer.status,
                    revision,
                    answer.getheader("X-Rollwise-Pod") or "",
                    "" if revision else body[:120].decode(errors="replace"),
                )
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                outcome = Response(sent_at, 0, "", "")
            with lock:
                result.responses.append(outcome)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_s + timeout + 5)
    result.seconds = time.monotonic() - start
    result.responses.sort(key=lambda r: r.sent_at)
    return result


class BackgroundLoad:
    """``send`` in a thread, for traffic that must flow while a test waits on something else;
    stops by itself at its bounds, or at ``stop()``."""

    def __init__(self, url: str, *, rate: float, seconds: float, **kwargs: object) -> None:
        self._args = (url,)
        self._kwargs = {
            "requests": int(rate * min(seconds, MAX_SECONDS)),
            "rate": rate,
            "max_seconds": seconds,
            **kwargs,
        }
        self.result: LoadResult | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = send(*self._args, stop=self._stop, **self._kwargs)  # type: ignore[arg-type]

    def stop(self) -> LoadResult:
        """Stop sending now; the outcomes so far."""
        self._stop.set()
        self._thread.join(MAX_SECONDS + 15)
        assert self.result is not None
        return self.result

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
