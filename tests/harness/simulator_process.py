"""Run the pod-traffic simulator (``tests.harness.simulator``) as a separate, managed process.

A separate process, not a thread in the test session: it must keep serving while a test blocks,
it is what an operator under test would see in a real cluster (an HTTP endpoint), and killing
it is part of what the reliability tests do.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness import paths
from tests.harness.processes import ManagedProcess
from tests.harness.prometheus import free_port
from tests.harness.wait import wait_for


class SimulatorProcess:
    """``start()`` / ``stop()``; ``url`` serves ``/metrics``; ``target`` is host:port."""

    def __init__(
        self,
        kubeconfig: Path,
        state_dir: Path,
        log_dir: Path,
        *,
        run_id: str,
        port: int | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.log_path = log_dir / "simulator.log"
        self._process = ManagedProcess(
            "simulator",
            [
                sys.executable,
                "-m",
                "tests.harness.simulator",
                f"--kubeconfig={kubeconfig}",
                f"--port={self.port}",
                f"--log-file={self.log_path}",
            ],
            log_path=log_dir / "simulator.stdout.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=paths.REPO_ROOT,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}"

    @property
    def process(self) -> ManagedProcess:
        return self._process

    def metrics_text(self) -> str:
        """The current ``/metrics`` page."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=2) as response:
            text: str = response.read().decode()
            return text

    def synced(self) -> bool:
        """True once the simulator serves metrics and has listed the pods."""
        if not self._process.alive():
            raise RuntimeError(
                f"simulator exited with {self._process.returncode()}; see {self.log_path}"
            )
        try:
            return "rollwise_sim_synced 1.0" in self.metrics_text()
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        self._process.start()
        wait_for(
            self.synced,
            timeout=self.ready_timeout,
            message=f"simulator at {self.url} to list pods (log: {self.log_path})",
        )

    def alive(self) -> bool:
        return self._process.alive()

    def stop(self) -> None:
        self._process.stop()
