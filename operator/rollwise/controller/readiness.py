"""What probes and people see of leadership: `/readyz` beside `/metrics`, and a `leadership`
entry in Kopf's `/healthz`.

- `/healthz` (Kopf, --health-port): liveness, for leader and standby alike; its JSON now also
  says `{"leadership": {"leader": true, ...}}`.
- `/readyz` (--metrics-port): 200 once the watch cache is filled and the workers run, for the
  leader and for a warm standby (a standby that is ready takes over in one pass); 503 before
  that, and once the lease is lost and the process is on its way out. The JSON tells leader
  from standby: `{"ready": true, "leader": false, "identity": ..., "holder": ...}`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import kopf
from prometheus_client import CollectorRegistry, make_wsgi_app

from rollwise.controller import handlers
from rollwise.controller.leadership import LeaderElector

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class LeaderRuntime(handlers.Runtime):
    """The handlers' runtime, plus the elector (None: --leader-elect is off, this process
    is the only one and always leads)."""

    elector: LeaderElector | None = None


def leadership(runtime: handlers.Runtime) -> dict[str, Any]:
    """Leadership as the probes show it."""
    elector = runtime.elector if isinstance(runtime, LeaderRuntime) else None
    if elector is None:
        return {"election": False, "leader": True}
    return {
        "election": True,
        "leader": elector.is_leader(),
        "identity": elector.config.identity,
        "holder": elector.holder,
        "lost": elector.lost,
    }


def readiness(runtime: handlers.Runtime) -> dict[str, Any]:
    """Ready: the cache is filled and the workers run (the startup activity did both), and
    the lease is not lost."""
    state = leadership(runtime)
    warm = runtime.pool.alive() > 0
    return {"ready": warm and not state.get("lost", False), **state}


@kopf.on.probe(id="leadership", registry=handlers.registry)
async def leadership_probe(memo: Any, **_: Any) -> dict[str, Any]:
    """Leader or standby, in Kopf's /healthz."""
    if not isinstance(memo, handlers.Runtime):
        raise kopf.PermanentError("rollwise runtime missing: run through rollwise.controller")
    return leadership(memo)


def app(runtime: handlers.Runtime, registry: CollectorRegistry) -> WsgiApp:
    """`/readyz`, and Prometheus' exposition on every other path (as before)."""
    metrics = make_wsgi_app(registry)

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/readyz":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        state = readiness(runtime)
        body = json.dumps(state).encode()
        status = "200 OK" if state["ready"] else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return serve


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line."""


def serve(port: int, runtime: handlers.Runtime, registry: CollectorRegistry) -> None:
    """Serve /metrics and /readyz on `port` from a background thread (0: not at all)."""
    if not port:
        return
    server = make_server(
        "0.0.0.0", port, app(runtime, registry), _ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="rollwise-metrics", daemon=True).start()
