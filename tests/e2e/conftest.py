"""Fixtures for the end-to-end tests: real helm and kubectl binaries against the proving ground.

The operator fixtures (`rollwise_crds`, `rollouts`, `gate`, `operator`) come from
tests/harness/fixtures.py, loaded for every folder by tests/conftest.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.harness import paths
from tests.harness.processes import MARKER_ENV

__all__ = ["Tools", "tools"]


class Tools:
    """helm and kubectl as built by `make tools` (never /usr/bin/kubectl), run as a person
    would, with an explicit kubeconfig; their caches and configuration stay out of $HOME."""

    def __init__(self, bins: paths.Binaries, home: Path) -> None:
        self.kubectl_bin = bins.kubectl
        self.helm_bin = bins.helm
        env = paths.tool_path_env(bins)
        for key in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{key}_HOME"] = str(home / f"helm-{key.lower()}")
        env.pop("KUBECONFIG", None)  # always --kubeconfig: admin or a ServiceAccount's token
        env.pop(MARKER_ENV, None)  # these commands exit; they are no harness process
        self.env = env

    def run(
        self,
        binary: Path,
        args: Sequence[str | Path],
        *,
        kubeconfig: Path,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``binary --kubeconfig=... args``; the result whatever the exit code."""
        return subprocess.run(
            [str(binary), f"--kubeconfig={kubeconfig}", *(str(arg) for arg in args)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=paths.REPO_ROOT,
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str | Path, kubeconfig: Path, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubectl_bin, args, kubeconfig=kubeconfig, input=input, timeout=timeout)

    def kubectl_ok(
        self, *args: str | Path, kubeconfig: Path, input: str | None = None, timeout: float = 120.0
    ) -> str:
        done = self.kubectl(*args, kubeconfig=kubeconfig, input=input, timeout=timeout)
        _assert_ok("kubectl", args, done)
        return done.stdout

    def helm(
        self, *args: str | Path, kubeconfig: Path, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        return self.run(self.helm_bin, args, kubeconfig=kubeconfig, timeout=timeout)

    def helm_ok(self, *args: str | Path, kubeconfig: Path, timeout: float = 180.0) -> str:
        done = self.helm(*args, kubeconfig=kubeconfig, timeout=timeout)
        _assert_ok("helm", args, done)
        return done.stdout


def _assert_ok(
    tool: str, args: Sequence[str | Path], done: subprocess.CompletedProcess[str]
) -> None:
    command = " ".join(str(part) for part in (tool, *args))
    assert done.returncode == 0, (
        f"`{command}` exited {done.returncode}\nstdout: {done.stdout[-3000:]}\n"
        f"stderr: {done.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    bins = paths.binaries()
    try:
        bins.require("kubectl", "helm")
    except paths.MissingBinaryError as error:
        pytest.fail(str(error), pytrace=False)
    return Tools(bins, tmp_path_factory.mktemp("tools-home"))
