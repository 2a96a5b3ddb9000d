"""The pod-traffic simulator for large benchmarks: same pods, same traffic model, same counters as
tests.harness.simulator, but only `http_requests_total` (what the gates query), rendered as
plain text without prometheus_client.

Why: the harness simulator also exports a 13-series latency histogram per pod and renders
through prometheus_client; at ~1,500 canary pods its scrape takes more than Prometheus' 1 s
scrape timeout on 2 cores, scrapes start failing (at N=2000 almost all did), and every gate
reads "no data". This one keeps the scrape in the tens of milliseconds.

Run: ``python -m tests.bench.simulator --kubeconfig K --port P``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from tests.harness import paths
from tests.harness.processes import ManagedProcess
from tests.harness.simulator import TrafficBook, watch_pods
from tests.harness.simulator_process import SimulatorProcess

log = logging.getLogger("rollwise.bench.simulator")


class LeanSimulatorProcess(SimulatorProcess):
    """SimulatorProcess running this module instead of tests.harness.simulator."""

    def __init__(self, kubeconfig: Path, state_dir: Path, log_dir: Path, *, run_id: str) -> None:
        super().__init__(kubeconfig, state_dir, log_dir, run_id=run_id)
        self.log_path = log_dir / "bench-simulator.log"
        self._process = ManagedProcess(
            "bench-simulator",
            [
                sys.executable,
                "-m",
                "tests.bench.simulator",
                f"--kubeconfig={kubeconfig}",
                f"--port={self.port}",
                f"--log-file={self.log_path}",
            ],
            log_path=log_dir / "bench-simulator.stdout.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=paths.REPO_ROOT,
        )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(book: TrafficBook) -> bytes:
    """`http_requests_total{namespace,service,pod,revision,code}` for every ready pod."""
    now, pods = book.snapshot()
    lines = ["# TYPE http_requests_total counter"]
    exported = 0
    for pod in pods:
        if pod.profile.rps <= 0:
            continue
        exported += 1
        ok, failed = pod.requests(now)
        labels = (
            f'namespace="{_escape(pod.namespace)}",service="{_escape(pod.service)}",'
            f'pod="{_escape(pod.pod)}",revision="{_escape(pod.revision)}"'
        )
        lines.append(f'http_requests_total{{{labels},code="200"}} {ok!r}')
        lines.append(f'http_requests_total{{{labels},code="500"}} {failed!r}')
    lines.append("# TYPE rollwise_sim_pods gauge")
    lines.append(f"rollwise_sim_pods {exported}")
    lines.append("# TYPE rollwise_sim_synced gauge")
    lines.append(f"rollwise_sim_synced {1.0 if book.synced else 0.0}")
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-file", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        filename=args.log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    book = TrafficBook()
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(book)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    watcher = threading.Thread(
        target=watch_pods, args=(book, args.kubeconfig, stop), name="pod-watch", daemon=True
    )
    watcher.start()
    log.info("serving http_requests_total on http://127.0.0.1:%d/metrics", args.port)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
