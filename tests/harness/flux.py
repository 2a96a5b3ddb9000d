"""Flux for real: source-controller and kustomize-controller (built from their Go modules by
`make tools`, deploy/local/build-tools.sh flux) running out of cluster against the proving
ground, fed by a Git server on loopback (tests/harness/git_http.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.harness import paths
from tests.harness.cluster import LocalCluster
from tests.harness.processes import ManagedProcess
from tests.harness.prometheus import free_port, http_ok
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
FLUX_NAMESPACE = "flux-system"


def flux_dir() -> Path:
    path = paths.cache_dir() / "bin" / f"flux-{paths.versions()['FLUX_VERSION']}"
    for binary in ("source-controller", "kustomize-controller"):
        if not (path / binary).exists():
            raise paths.MissingBinaryError(
                f"not built yet: {path / binary} -- run `make tools` "
                "(deploy/local/build-tools.sh flux)"
            )
    return path


class GitServer:
    """Bare repositories under `root`, served over smart HTTP on 127.0.0.1:`port`; `commit`
    writes files into a repository's main branch as one commit."""

    def __init__(self, state_dir: Path, log_dir: Path, run_id: str) -> None:
        self.root = state_dir / "git"
        self.work = state_dir / "git-work"
        self.port = free_port()
        self._process = ManagedProcess(
            "git-http",
            [sys.executable, "-m", "tests.harness.git_http", str(self.root), str(self.port)],
            log_path=log_dir / "git-http.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=REPO,
        )

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repo}.git"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._process.start()
        wait_for(self._listening, timeout=10, message="git server listening")

    def _listening(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self._process.stop()

    def _git(self, cwd: Path, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.email=ci@rollwise.test", "-c", "user.name=ci", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def commit(self, repo: str, files: dict[str, list[dict[str, Any]]], message: str) -> str:
        """Replace the repository's files with `files` (path: YAML documents); the commit id."""
        bare = self.root / f"{repo}.git"
        work = self.work / repo
        if not bare.exists():
            bare.parent.mkdir(parents=True, exist_ok=True)
            self._git(bare.parent, "init", "-q", "--bare", "-b", "main", bare.name)
            work.mkdir(parents=True, exist_ok=True)
            self._git(work, "init", "-q", "-b", "main")
            self._git(work, "remote", "add", "origin", str(bare))
        for old in work.rglob("*.yaml"):
            old.unlink()
        for path, docs in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self._git(work, "add", "-A")
        self._git(work, "commit", "-q", "--allow-empty", "-m", message)
        self._git(work, "push", "-q", "origin", "main")
        return self._git(work, "rev-parse", "HEAD").strip()


class FluxControllers:
    """source-controller and kustomize-controller as processes with the admin kubeconfig,
    watching every namespace; their CRDs installed first."""

    def __init__(self, cluster: LocalCluster, state_dir: Path, log_dir: Path, run_id: str) -> None:
        self.cluster = cluster
        self.dir = flux_dir()
        storage_port = free_port()
        self.storage = state_dir / "flux-storage"  # source-controller wants it to exist
        self.health = {"source-controller": free_port(), "kustomize-controller": free_port()}
        env = {"KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": FLUX_NAMESPACE}
        common = ["--enable-leader-election=false", "--log-level=info", "--concurrent=4"]
        self._processes = [
            ManagedProcess(
                "source-controller",
                [
                    str(self.dir / "source-controller"),
                    *common,
                    f"--storage-path={self.storage}",
                    f"--storage-addr=127.0.0.1:{storage_port}",
                    f"--storage-adv-addr=127.0.0.1:{storage_port}",
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr=127.0.0.1:{self.health['source-controller']}",
                ],
                log_path=log_dir / "source-controller.log",
                pid_dir=state_dir / "pids",
                run_id=run_id,
                env=env,
            ),
            ManagedProcess(
                "kustomize-controller",
                [
                    str(self.dir / "kustomize-controller"),
                    *common,
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr=127.0.0.1:{self.health['kustomize-controller']}",
                ],
                log_path=log_dir / "kustomize-controller.log",
                pid_dir=state_dir / "pids",
                run_id=run_id,
                env=env,
            ),
        ]

    def start(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        crds = sorted((self.dir / "crds").glob("*.yaml"))
        args = [a for crd in crds for a in ("-f", str(crd))]
        self.cluster.kubectl("apply", "--server-side", *args, timeout=120)
        self.cluster.wait_established(
            "crd/gitrepositories.source.toolkit.fluxcd.io",
            "crd/kustomizations.kustomize.toolkit.fluxcd.io",
        )
        with contextlib.suppress(Exception):
            self.cluster.kubectl("create", "namespace", FLUX_NAMESPACE)
        for process in self._processes:
            process.start()
        for name, port in self.health.items():
            url = f"http://127.0.0.1:{port}/readyz"
            wait_for(lambda url=url: http_ok(url), timeout=60, message=f"{name} ready")  # type: ignore[misc]

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
