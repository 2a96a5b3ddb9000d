"""A real HTTP receiver for webhooks and notifications, on 127.0.0.1.

It records every request (path, headers, body, parsed JSON) and answers each path as the test
says: a status code, or `hang` (no answer until the receiver is told to let go, so the client's
timeout fires). `stop()` closes the port, so a later request meets "connection refused".
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1
HANG_LIMIT_S = 120.0  # a hung request is let go after this at the latest


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str
    json: Any = None
    answered: int | None = None  # the status sent; None when it hung


@dataclass
class Receiver:
    """`url(path)` to point a webhook at; `answer(path, code)` to change what a path gets."""

    host: str = "127.0.0.1"
    default: int = 200
    answers: dict[str, int] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                code = receiver.code_for(self.path)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                receiver._record(
                    Received(
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        json=parsed,
                        answered=None if code == HANG else code,
                    )
                )
                if code == HANG:
                    receiver._release.wait(HANG_LIMIT_S)
                    code = 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (its timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def answer(self, path: str, code: int) -> None:
        with self._lock:
            self.answers[path] = code

    def code_for(self, path: str) -> int:
        with self._lock:
            return self.answers.get(path, self.default)

    def _record(self, request: Received) -> None:
        with self._lock:
            self.requests.append(request)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def stop(self) -> None:
        """Let hung requests go and close the port."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
