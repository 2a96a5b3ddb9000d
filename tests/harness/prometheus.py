"""A real Prometheus that scrapes the pod-traffic simulator every second.

Real, not faked, so gates are tested against PromQL as Prometheus evaluates it (staleness,
``rate()`` extrapolation, empty vectors, NaN). The TSDB lives in the run's state folder and
survives ``stop()``/``start()``: tests stop Prometheus to produce "unreachable" errors and start
it again on the same port, and it resumes with its data.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from tests.harness import paths
from tests.harness.processes import ManagedProcess
from tests.harness.wait import wait_for

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class PrometheusServer:
    """``start()`` / ``stop()`` (repeatable), ``url``; scrapes ``targets`` every second."""

    def __init__(
        self,
        state_dir: Path,
        log_dir: Path,
        targets: Sequence[str],
        *,
        run_id: str,
        port: int | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.targets = list(targets)
        self.extra_jobs: dict[str, list[str]] = {}  # job name -> targets, added while running
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.binary = paths.binaries().prometheus
        self.config_path = state_dir / "prometheus.yml"
        self.tsdb_path = state_dir / "tsdb"
        self._process = ManagedProcess(
            "prometheus",
            [
                str(self.binary),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.tsdb_path}",
                "--storage.tsdb.retention.time=1h",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ],
            log_path=log_dir / "prometheus.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=state_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @property
    def process(self) -> ManagedProcess:
        return self._process

    def write_config(self) -> None:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": "simulator",
                    "honor_labels": True,  # keep the simulator's pod/namespace labels as they are
                    "static_configs": [{"targets": self.targets}],
                },
                *(
                    {"job_name": job, "static_configs": [{"targets": targets}]}
                    for job, targets in self.extra_jobs.items()
                ),
            ],
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> None:
        """Start (or restart after ``stop()``) on the same port and TSDB; wait for ``/-/ready``."""
        if not self.binary.exists():
            raise FileNotFoundError(f"prometheus not found at {self.binary} (run `make tools`)")
        self.write_config()
        self._process.start()
        wait_for(
            self.ready,
            timeout=self.ready_timeout,
            interval=0.2,
            message=f"Prometheus at {self.url}/-/ready (log: {self.log_path})",
        )

    def add_scrape_job(self, job: str, targets: Sequence[str]) -> None:
        """Scrape ``targets`` every second as ``job`` too (kept across restarts); reloads a
        running Prometheus and waits until the new targets have been scraped."""
        self.extra_jobs[job] = list(targets)
        self.write_config()
        if not self._process.alive():
            return
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"Prometheus reload answered {response.status}")
        wait_for(
            lambda: self.job_healthy(job),
            timeout=30,
            message=f"Prometheus to scrape job {job} ({', '.join(targets)})",
        )

    def job_healthy(self, job: str) -> bool:
        """True once every target of ``job`` has been scraped successfully."""
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=2) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        active = [
            t
            for t in data.get("data", {}).get("activeTargets", [])
            if t.get("labels", {}).get("job") == job
        ]
        return bool(active) and all(t.get("health") == "up" for t in active)

    def ready(self) -> bool:
        if not self._process.alive():
            raise RuntimeError(
                f"prometheus exited with {self._process.returncode()}; see {self.log_path}"
            )
        return http_ok(f"{self.url}/-/ready")

    def alive(self) -> bool:
        return self._process.alive()

    def stop(self) -> None:
        """Stop Prometheus (the TSDB stays for a later ``start()``)."""
        self._process.stop()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Prometheus is down inside the block (queries fail: connection refused) and up again
        after it, even if the block fails; the session fixture stays usable for later tests.
        Scraping resumes about 5 s after the restart (Prometheus' target discovery delay)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def targets_healthy(self) -> bool:
        """True once every scrape target has been scraped successfully."""
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=2) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        active = data.get("data", {}).get("activeTargets", [])
        return bool(active) and all(t.get("health") == "up" for t in active)

    def remove_data(self) -> None:
        """Delete the TSDB and config (after the final stop)."""
        shutil.rmtree(self.tsdb_path, ignore_errors=True)
        self.config_path.unlink(missing_ok=True)
