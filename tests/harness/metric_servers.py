"""Real metric servers besides Prometheus, for the influxdb and graphite gate providers:
InfluxDB 1.x (Debian `influxdb`) and Graphite (Debian `graphite-carbon` for writes,
`graphite-web`'s render API for reads, run by Django's own server). `make tools` installs them
(deploy/local/build-tools.sh influxdb|graphite). Each listens on loopback only, keeps its data in
the run's state folder and is stopped (its whole process group) by `stop()`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness.processes import ManagedProcess
from tests.harness.prometheus import free_port
from tests.harness.wait import wait_for

INFLUXD = Path(shutil.which("influxd") or "/usr/bin/influxd")
CARBON_CACHE = Path(shutil.which("carbon-cache") or "/usr/bin/carbon-cache")
SYSTEM_PYTHON = Path("/usr/bin/python3")  # graphite-web and Django are Debian's, in its Python
GRAPHITE_WEB = Path("/usr/lib/python3/dist-packages/graphite")


def _missing(path: Path, package: str) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: install Debian's {package} (`make tools`, or "
            f"`bash deploy/local/build-tools.sh {package.split('-')[0]}`)"
        )


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


class InfluxDBServer:
    """`influxd` with its HTTP API on 127.0.0.1:`port`; `write` line protocol, `query`."""

    def __init__(self, state_dir: Path, log_dir: Path, *, run_id: str) -> None:
        _missing(INFLUXD, "influxdb")
        self.state_dir = state_dir
        self.port = free_port()
        config = state_dir / "influxdb.conf"
        state_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            textwrap.dedent(
                f"""\
                reporting-disabled = true
                bind-address = "127.0.0.1:{free_port()}"
                [meta]
                  dir = "{state_dir / "meta"}"
                [data]
                  dir = "{state_dir / "data"}"
                  wal-dir = "{state_dir / "wal"}"
                  query-log-enabled = false
                [monitor]
                  store-enabled = false
                [subscriber]
                  enabled = false
                [continuous_queries]
                  enabled = false
                [http]
                  enabled = true
                  bind-address = "127.0.0.1:{self.port}"
                  log-enabled = false
                """
            )
        )
        self.process = ManagedProcess(
            "influxdb",
            [str(INFLUXD), "-config", str(config)],
            log_path=log_dir / "influxdb.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=state_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"influxd exited; see {self.process.log_path}")
            return _get(f"{self.url}/ping")[0] == 204

        wait_for(ready, timeout=60, message=f"InfluxDB at {self.url}/ping")

    def stop(self) -> None:
        self.process.stop()

    def query(self, q: str, db: str | None = None, *, post: bool = False) -> dict[str, Any]:
        params = {"q": q, **({"db": db} if db else {})}
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(
            f"{self.url}/query" + ("" if post else f"?{data.decode()}"),
            data=data if post else None,
            method="POST" if post else "GET",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"', post=True)

    def write(self, db: str, lines: list[str]) -> None:
        """Line protocol, timestamps in seconds."""
        request = urllib.request.Request(
            f"{self.url}/write?db={db}&precision=s",
            data="\n".join(lines).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 204:
                raise RuntimeError(f"InfluxDB write answered {response.status}")


class GraphiteServer:
    """carbon-cache (plaintext writes on `carbon_port`) and graphite-web's render API on
    127.0.0.1:`port`, which also asks carbon's cache for points not yet on disk."""

    def __init__(self, state_dir: Path, log_dir: Path, *, run_id: str) -> None:
        _missing(CARBON_CACHE, "graphite-carbon")
        _missing(GRAPHITE_WEB, "graphite-web")
        self.state_dir = state_dir
        self.port = free_port()
        self.carbon_port = free_port()
        query_port = free_port()
        storage = state_dir / "storage"
        for folder in (storage / "whisper", state_dir / "log", state_dir / "py"):
            folder.mkdir(parents=True, exist_ok=True)
        conf = state_dir / "carbon.conf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                [cache]
                STORAGE_DIR = {storage}/
                LOCAL_DATA_DIR = {storage}/whisper/
                LOG_DIR = {state_dir}/log/
                PID_DIR = {state_dir}/
                ENABLE_LOGROTATION = False
                USER =
                ENABLE_TAGS = False
                MAX_CACHE_SIZE = inf
                MAX_UPDATES_PER_SECOND = 1000
                MAX_CREATES_PER_MINUTE = inf
                LINE_RECEIVER_INTERFACE = 127.0.0.1
                LINE_RECEIVER_PORT = {self.carbon_port}
                ENABLE_UDP_LISTENER = False
                PICKLE_RECEIVER_INTERFACE = 127.0.0.1
                PICKLE_RECEIVER_PORT = {free_port()}
                CACHE_QUERY_INTERFACE = 127.0.0.1
                CACHE_QUERY_PORT = {query_port}
                """
            )
        )
        (state_dir / "storage-schemas.conf").write_text(
            "[default]\npattern = .*\nretentions = 1s:1h\n"
        )
        (state_dir / "py" / "rollwise_graphite_settings.py").write_text(
            textwrap.dedent(
                f"""\
                STORAGE_DIR = {str(storage)!r}
                LOG_DIR = {str(state_dir / "log")!r}
                SECRET_KEY = "rollwise-harness"
                DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                              "NAME": {str(state_dir / "graphite.db")!r}}}}}
                CARBONLINK_HOSTS = ["127.0.0.1:{query_port}"]
                """
            )
        )
        env = {
            **os.environ,
            "GRAPHITE_SETTINGS_MODULE": "rollwise_graphite_settings",
            "PYTHONPATH": str(state_dir / "py"),
            "DJANGO_SETTINGS_MODULE": "graphite.settings",
        }
        env.pop("VIRTUAL_ENV", None)
        self._env = env
        self.carbon = ManagedProcess(
            "carbon-cache",
            [
                str(CARBON_CACHE),
                f"--config={conf}",
                "--nodaemon",
                f"--pidfile={state_dir / 'carbon.pid'}",
                f"--logdir={state_dir / 'log'}",
                "start",
            ],
            log_path=log_dir / "carbon-cache.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            env=env,
            cwd=state_dir,
        )
        self.web = ManagedProcess(
            "graphite-web",
            [
                str(SYSTEM_PYTHON),
                "-m",
                "django",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.port}",
            ],
            log_path=log_dir / "graphite-web.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            env=env,
            cwd=state_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The web app's own tables (sqlite; the render API reads none, Django checks them).
        subprocess.run(
            [str(SYSTEM_PYTHON), "-m", "django", "migrate", "--noinput"],
            env=self._env,
            cwd=self.state_dir,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.carbon.start()
        self.web.start()

        def ready() -> bool:
            for process in (self.carbon, self.web):
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited; see {process.log_path}")
            return _get(f"{self.url}/render?target=none&format=json")[0] == 200 and _listening(
                self.carbon_port
            )

        wait_for(ready, timeout=90, message=f"graphite-web at {self.url} and carbon")

    def stop(self) -> None:
        self.web.stop()
        self.carbon.stop()

    def write(self, lines: list[str]) -> None:
        """Plaintext protocol: `path value timestamp` per line."""
        with socket.create_connection(("127.0.0.1", self.carbon_port), timeout=5) as sock:
            sock.sendall(("\n".join(lines) + "\n").encode())

    def render(self, target: str, since: str = "-5min") -> list[Any]:
        query = urllib.parse.urlencode({"target": target, "from": since, "format": "json"})
        status, body = _get(f"{self.url}/render?{query}", timeout=10)
        if status != 200:
            raise RuntimeError(f"render answered {status}: {body[:200]!r}")
        answer: list[Any] = json.loads(body)
        return answer


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def now_s() -> int:
    return int(time.time())
