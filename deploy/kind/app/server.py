"""The kind tier's demo app: a real HTTP server whose behaviour comes from its env.

    serve                 answer GET / on :8080 (PORT), /metrics, /healthz, /ready
    migrate --to VERSION  a database migration stand-in: prints, takes MIGRATE_SECONDS, exits 0

Env (the same knobs as the kwok tier's simulator, read by a real process here):
  ERROR_RATE   fraction of requests to / answered 500, exactly (every k-th), default 0
  LATENCY_MS   added to every request to /, default 0
  VERSION      reported in every answer and in the metrics, default "dev"
  NEVER_READY  "1": /ready answers 503 forever (a canary that never becomes ready)
  CRASH        "1": exit 1 at start (a crash-looping canary)

Metrics (Prometheus text format; Prometheus adds namespace/pod/revision from the pod):
  http_requests_total{code}, http_request_duration_seconds (histogram).
Standard library only, so it runs on any python:3.11 base.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[int, int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0
        self.served = 0

    def next_is_error(self, rate: float) -> bool:
        """Exactly `rate` of the requests: request n fails when floor(n*rate) steps up."""
        with self.lock:
            n = self.served
            self.served += 1
        return int((n + 1) * rate) > int(n * rate)

    def observe(self, code: int, seconds: float) -> None:
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            self.count += 1
            self.total += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            for code in sorted(self.codes) or [200]:
                lines.append(f'http_requests_total{{code="{code}"}} {self.codes.get(code, 0)}')
            lines.append("# TYPE http_request_duration_seconds histogram")
            for bound, n in zip(BUCKETS, self.buckets, strict=True):
                lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {n}')
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.count}')
            lines.append(f"http_request_duration_seconds_sum {self.total}")
            lines.append(f"http_request_duration_seconds_count {self.count}")
            return "\n".join(lines) + "\n"


STATS = Stats()
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0") or 0)
LATENCY_S = float(os.environ.get("LATENCY_MS", "0") or 0) / 1000.0
VERSION = os.environ.get("VERSION", "dev")
POD = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME", "")
# The pod's rollwise.dev/revision label (downward API), so a client can tell who answered.
REVISION = os.environ.get("REVISION", "")


class Handler(BaseHTTPRequestHandler):
    server_version = "rollwise-demo-app"

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self.reply(200, STATS.render(), "text/plain; version=0.0.4")
        elif self.path == "/healthz":
            self.reply(200, "ok\n")
        elif self.path == "/ready":
            never = os.environ.get("NEVER_READY") == "1"
            self.reply(503 if never else 200, "never ready\n" if never else "ready\n")
        else:
            started = time.monotonic()
            if LATENCY_S:
                time.sleep(LATENCY_S)
            code = 500 if STATS.next_is_error(ERROR_RATE) else 200
            self.reply(
                code,
                f"{VERSION} {POD} {code}\n",
                extra={
                    "X-Version": VERSION,
                    "X-Rollwise-Revision": REVISION,
                    "X-Rollwise-Pod": POD,
                },
            )
            STATS.observe(code, time.monotonic() - started)

    def reply(
        self, code: int, body: str, ctype: str = "text/plain", extra: dict[str, str] | None = None
    ) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """No line per request: it would flood the pod log."""


def serve() -> int:
    if os.environ.get("CRASH") == "1":
        print(f"version {VERSION}: CRASH=1, exiting", flush=True)
        return 1
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    print(f"version {VERSION} serving on :{port} (error rate {ERROR_RATE})", flush=True)
    server.serve_forever()
    return 0


def migrate(argv: list[str]) -> int:
    target = argv[argv.index("--to") + 1] if "--to" in argv else VERSION
    print(f"migrating schema to {target}", flush=True)
    time.sleep(float(os.environ.get("MIGRATE_SECONDS", "1")))
    print(f"migrated to {target}", flush=True)
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    sys.exit(migrate(sys.argv[2:]) if command == "migrate" else serve())
