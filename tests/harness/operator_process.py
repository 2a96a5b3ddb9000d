"""The rollwise operator as a separate, killable process (`rollwise run`), as in production.

Tests kill it with SIGKILL at chosen moments and start it again; it keeps nothing in memory
that matters, so a restart must continue from what the cluster and the status say.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.harness.crash_points import CRASH_VARIABLES
from tests.harness.processes import ManagedProcess, ProcessRecord
from tests.harness.prometheus import free_port, http_ok
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

ROLLWISE = Path(sys.executable).with_name("rollwise")
REPO = Path(__file__).resolve().parents[2]


class OperatorProcess:
    """`rollwise run` watching some namespaces, with its own log, health and metrics ports."""

    def __init__(
        self,
        run: HarnessRun,
        kubeconfig: Path,
        namespaces: list[str],
        *,
        name: str = "operator",
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.run = run
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.name = name
        self.env = env or {}
        self.extra_args = extra_args or []
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.starts = 0
        self.log_path = run.log_path(name)
        self._process: ManagedProcess | None = None

    def argv(self, env: Mapping[str, str] | None = None) -> list[str]:
        """The command line; through tests.harness.crash_points when `env` asks for a crash
        point (production rollwise has none of its own)."""
        command = [str(ROLLWISE)]
        if any((env or {}).get(name) for name in CRASH_VARIABLES):
            command = [sys.executable, "-m", "tests.harness.crash_points"]
        args = [*command, "run", "--kubeconfig", str(self.kubeconfig)]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += [
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            "json",
            "--log-level",
            "debug",
            *self.extra_args,
        ]
        return args

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start and wait until its liveness endpoint answers."""
        self.starts += 1
        merged = {**os.environ, **self.env, **(env or {})}
        if any(merged.get(name) for name in CRASH_VARIABLES):
            merged["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO), merged.get("PYTHONPATH", "")) if p
            )
        process = ManagedProcess(
            f"{self.name}-{self.starts}",
            self.argv(merged),
            log_path=self.log_path,
            pid_dir=self.run.pid_dir,
            run_id=self.run.run_id,
            env=merged,
        )
        process.start()
        self._process = process
        wait_for(
            lambda: http_ok(f"http://127.0.0.1:{self.health_port}/healthz") or self.died(),
            timeout=60,
            message=f"{self.name} liveness endpoint",
        )
        if self.died():
            raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        """The process (group leader) id while it runs."""
        return self._process.pid if self._process else None

    def died(self) -> bool:
        return self._process is not None and not self._process.alive()

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no final status write — a crash."""
        if self._process is None or self._process.pid is None:
            return
        os.killpg(self._process.pid, signal.SIGKILL)
        wait_for(
            lambda: not self._process or not self._process.alive(),
            timeout=10,
            message=f"{self.name} to die",
        )
        self._process.stop()
        self._process = None

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself (e.g. at a crash point); its return code."""
        process = self._process
        assert process is not None
        wait_for(lambda: not process.alive(), timeout=timeout, message=f"{self.name} to exit")
        code = process.returncode()
        process.stop()
        self._process = None
        return code

    def detach(self) -> ProcessRecord | None:
        """Leave it running after this Python process exits (`make demo KEEP=1`)."""
        return self._process.detach() if self._process else None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def rss_mib(self) -> float:
        """Resident memory of the operator process, from /proc."""
        if self._process is None or self._process.pid is None:
            return 0.0
        for line in Path(f"/proc/{self._process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0
