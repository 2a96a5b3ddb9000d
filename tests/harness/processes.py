"""Start, track and reliably stop every process the harness owns.

Why so careful: a forgotten etcd or Prometheus keeps ports, memory and disk after the tests and
makes the next run flaky. So every process is started in its own session (its own process group,
untouched by the terminal's Ctrl-C, killable as a whole), recorded in a pid file with its kernel
start time (so a recycled pid is never killed by mistake), and stopped by a teardown registry
that runs on normal exit, on exceptions, on SIGINT/SIGTERM/SIGHUP and at interpreter exit.
Processes also carry ``ROLLWISE_HARNESS_RUN`` in their environment (kwokctl passes its
environment on to the control plane), which lets ``leftover_processes`` find strays even when
their command line does not name one of our folders.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from tests.harness import paths

log = logging.getLogger(__name__)

MARKER_ENV = "ROLLWISE_HARNESS_RUN"
DETACHED_MARKER = "detached"  # file in a run's state folder: left running on purpose


# --------------------------------------------------------------------------- /proc helpers


def _read_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Kernel start time of a process (clock ticks since boot): with the pid, its identity."""
    fields = _read_stat(pid)
    return int(fields[19]) if fields else None


def _state_and_pgid(pid: int) -> tuple[str, int] | None:
    fields = _read_stat(pid)
    return (fields[0], int(fields[2])) if fields else None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for pid in _all_pids():
        info = _state_and_pgid(pid)
        if info and info[1] == pgid and info[0] != "Z":
            members.append(pid)
    return members


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _environ_marker(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = MARKER_ENV.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        fields = _read_stat(pid)
        if not fields:
            break
        pid = int(fields[1])
    return seen


# --------------------------------------------------------------------------- stopping


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def terminate_group(
    pgid: int,
    *,
    expected_start: int | None = None,
    timeout: float = 10.0,
    reap: Callable[[], object] | None = None,
) -> None:
    """SIGTERM a whole process group, then SIGKILL what is left after ``timeout`` seconds.

    ``expected_start`` guards against pid reuse: if the group leader is alive but is not the
    process we started, nothing is signalled. ``reap`` (e.g. ``Popen.poll``) collects our own
    child so it does not linger as a zombie.
    """
    current = start_ticks(pgid)
    if expected_start is not None and current is not None and current != expected_start:
        log.warning("pid %s was reused by another process; not signalling it", pgid)
        return

    def gone() -> bool:
        if reap is not None:
            reap()
        return not group_members(pgid)

    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if gone():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        if _wait_until(gone, wait_s):
            return
    log.error("process group %s survived SIGKILL: %s", pgid, group_members(pgid))


def terminate_pid(pid: int, *, timeout: float = 5.0) -> None:
    """SIGTERM one process, SIGKILL it if it is still there after ``timeout`` seconds."""
    ident = start_ticks(pid)

    def gone() -> bool:
        now = _state_and_pgid(pid)
        return now is None or now[0] == "Z" or start_ticks(pid) != ident

    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        if gone():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        if _wait_until(gone, wait_s):
            return


# --------------------------------------------------------------------------- teardown registry

_teardown_lock = threading.Lock()
_teardown_callbacks: dict[int, tuple[str, Callable[[], None]]] = {}
_teardown_counter = 0
_tearing_down = False
_handlers_installed = False


def on_teardown(description: str, callback: Callable[[], None]) -> int:
    """Register ``callback`` to run at teardown (LIFO); returns a token for ``cancel_teardown``."""
    global _teardown_counter
    with _teardown_lock:
        _teardown_counter += 1
        _teardown_callbacks[_teardown_counter] = (description, callback)
        return _teardown_counter


def cancel_teardown(token: int) -> None:
    """Forget a callback (its resource was stopped normally, or handed over to ``cli down``)."""
    with _teardown_lock:
        _teardown_callbacks.pop(token, None)


def run_teardown() -> None:
    """Run every registered callback once, newest first; errors are logged, never raised."""
    global _tearing_down
    _tearing_down = True
    try:
        while True:
            with _teardown_lock:
                if not _teardown_callbacks:
                    return
                token = max(_teardown_callbacks)
                description, callback = _teardown_callbacks.pop(token)
            try:
                log.info("teardown: %s", description)
                callback()
            except Exception:
                log.exception("teardown step failed: %s", description)
    finally:
        _tearing_down = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _tearing_down:
        log.warning("signal %s during teardown: finishing teardown first", signum)
        return
    log.warning("signal %s: tearing the harness down", signum)
    run_teardown()
    # Behave like Ctrl-C from here on, so pytest still reports and runs its finalizers.
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """Tear down on SIGINT, SIGTERM and SIGHUP, and at interpreter exit (idempotent).

    Only possible from the main thread; elsewhere only the atexit hook is installed.
    """
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(run_teardown)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def mark_detached(state_dir: Path) -> None:
    """Record that a run's processes are left running on purpose (see ``cli reap``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / DETACHED_MARKER).touch()


# --------------------------------------------------------------------------- managed processes


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds: enough to find and stop the process from another Python process."""

    name: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks

    def stop(self, timeout: float = 10.0) -> None:
        terminate_group(self.pid, expected_start=self.start_ticks, timeout=timeout)

    @classmethod
    def load(cls, path: Path) -> ProcessRecord:
        return cls(**json.loads(path.read_text()))


def read_pid_records(pid_dir: Path) -> list[ProcessRecord]:
    """Every process recorded in a folder of pid files (unreadable files are skipped)."""
    records = []
    for path in sorted(pid_dir.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, TypeError):
            records.append(ProcessRecord.load(path))
    return records


class ManagedProcess:
    """One long-running child: own session, output to a log file, pid file, guaranteed stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        pid_dir: Path,
        run_id: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.pid_file = pid_dir / f"{name}.json"
        self._run_id = run_id
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._record: ProcessRecord | None = None
        self._teardown_token: int | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def record(self) -> ProcessRecord | None:
        return self._record

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        install_signal_handlers()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**self._env, MARKER_ENV: self._run_id}
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self._cwd,
            )
        ticks = start_ticks(self._popen.pid) or 0
        self._record = ProcessRecord(
            self.name, self._popen.pid, ticks, self.argv, str(self.log_path)
        )
        self.pid_file.write_text(json.dumps(asdict(self._record)))
        self._teardown_token = on_teardown(f"stop {self.name}", self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group; safe to call twice or after the process died."""
        popen = self._popen
        if popen is None:
            return
        terminate_group(
            popen.pid,
            expected_start=self._record.start_ticks if self._record else None,
            timeout=timeout,
            reap=popen.poll,
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=1)
        self._popen = None
        self.pid_file.unlink(missing_ok=True)
        if self._teardown_token is not None:
            cancel_teardown(self._teardown_token)
            self._teardown_token = None

    def detach(self) -> ProcessRecord | None:
        """Keep the process running after this Python process exits (``cli up``); marks the
        run as detached so ``cli reap`` never lists it as abandoned."""
        mark_detached(self.pid_file.parent.parent)
        if self._teardown_token is not None:
            cancel_teardown(self._teardown_token)
            self._teardown_token = None
        return self._record


# --------------------------------------------------------------------------- leftovers


@dataclass(frozen=True)
class Leftover:
    """A process that looks like ours: why it matched, what it is, and which run started it
    (``run_id``, from the environment marker, when readable)."""

    pid: int
    reason: str
    cmdline: str
    run_id: str | None = None

    def __str__(self) -> str:
        run = f" run={self.run_id}" if self.run_id else ""
        return f"{self.pid:>7}  [{self.reason}]{run}  {self.cmdline[:200]}"


def harness_roots() -> list[Path]:
    """Folders a harness process runs from or points into: builds, run state, kwok workdir."""
    # The kind tier's folder: its dockerd, containerd and container shims run from there.
    kind_work = paths.cache_dir() / "kind"
    return [*paths.binaries().bin_dirs(), paths.runs_dir(), paths.kwok_workdir(), kind_work]


def leftover_processes(
    roots: Iterable[Path] | None = None, *, use_marker: bool | None = None
) -> list[Leftover]:
    """Processes whose command line or executable points into ``roots`` (default: all of ours).

    With the default roots the environment marker is checked too, so that a process we
    started is found whatever its command line. The caller and its ancestors are never listed.
    """
    chosen = list(roots) if roots is not None else harness_roots()
    check_marker = roots is None if use_marker is None else use_marker
    prefixes = [str(root).rstrip("/") + "/" for root in chosen]
    skip = _ancestors(os.getpid())
    found = []
    for pid in _all_pids():
        if pid in skip:
            continue
        info = _state_and_pgid(pid)
        if info is None or info[0] == "Z":
            continue
        cmdline = _cmdline(pid)
        if not cmdline:  # kernel threads
            continue
        exe = _exe(pid)
        marker = _environ_marker(pid)
        reason = next((p for p in prefixes if p in cmdline or exe.startswith(p)), None)
        if reason is None and check_marker and marker:
            reason = f"{MARKER_ENV}={marker}"
        if reason is not None:
            found.append(Leftover(pid, reason, cmdline, marker))
    return found


def run_owner_alive(run_id: str) -> bool:
    """Whether the process that started a run still exists (run ids end in the owner's pid:
    ``YYYYmmdd-HHMMSS-<pid>[-child]``). Unknown formats count as alive: never reap them."""
    parts = run_id.split("-")
    if len(parts) < 3 or not parts[2].isdigit():
        return True
    return Path(f"/proc/{parts[2]}").exists()
