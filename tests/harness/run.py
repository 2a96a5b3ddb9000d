"""One harness run (a pytest session or a ``cli up``): its folders, logs and timings.

Logs go to ``.run/logs/<run-id>/`` in the checkout, where a developer looks after a failure;
state that no one reads (pid files, generated configs, the Prometheus TSDB) goes to
``~/.cache/rollwise/runs/<run-id>/`` and is removed when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from tests.harness import paths

log = logging.getLogger(__name__)


class HarnessRun:
    """Folders, component logs and startup timings of one run.

    ``child(name)`` gives a nested run (own state folder, logs in a subfolder) for processes a
    single test starts and stops itself.
    """

    def __init__(self, run_id: str | None = None, *, log_dir: Path | None = None) -> None:
        self.run_id = run_id or paths.new_run_id()
        self.log_dir = log_dir or paths.logs_root() / self.run_id
        self.state_dir = paths.runs_dir() / self.run_id
        self.component_logs: dict[str, Path] = {}
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def child(self, name: str) -> HarnessRun:
        """A nested run: state in ``runs/<run-id>-<name>``, logs in ``<log_dir>/<name>/``."""
        return HarnessRun(f"{self.run_id}-{name}", log_dir=self.log_dir / name)

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    def log_path(self, name: str) -> Path:
        """Register and return ``<log_dir>/<name>.log`` for a component."""
        path = self.log_dir / f"{name}.log"
        self.component_logs[name] = path
        return path

    def register_log(self, name: str, path: Path) -> None:
        """Track a log written elsewhere (e.g. by kwokctl) so failures show its tail."""
        self.component_logs[name] = path

    def note(self, text: str) -> None:
        """Record a fact about the run (shown in pytest's summary and in ``timings.log``)."""
        self.notes.append(text)
        with (self.log_dir / "timings.log").open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        log.info("%s", text)

    @contextlib.contextmanager
    def timed(self, what: str) -> Iterator[None]:
        """Record how long ``what`` took, in ``timings`` and in ``<log_dir>/timings.log``."""
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.timings[what] = elapsed
            with (self.log_dir / "timings.log").open("a") as out:
                out.write(f"{time.strftime('%H:%M:%S')} {what}: {elapsed:.2f}s\n")
            log.info("%s took %.2fs", what, elapsed)

    def tails(self, lines: int = 30) -> str:
        """The last ``lines`` lines of every component log, for a failure report."""
        chunks = []
        for name, path in sorted(self.component_logs.items()):
            chunks.append(f"----- {name}: {path}")
            chunks.append(tail(path, lines) or "(empty or missing)")
        return "\n".join(chunks)

    def remove_state(self) -> None:
        """Delete the state folder (logs stay)."""
        self.remove_state_dir(self.state_dir)

    @staticmethod
    def remove_state_dir(state_dir: Path) -> None:
        """Delete a run's state folder, refusing anything outside ``runs_dir()``."""
        if state_dir.resolve().parent == paths.runs_dir().resolve():
            shutil.rmtree(state_dir, ignore_errors=True)


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 256 * lines))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(line[:400] for line in data.splitlines()[-lines:])
