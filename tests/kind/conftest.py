"""The kind stage: rollwise as users run it (tests/harness/kind.py).

One kind cluster per session, created once: the operator installed from a release that
`make release` builds for the session (deploy/release/build.py into a dist folder: the image
from the Dockerfile, saved and loaded with `kind load image-archive`; the chart package
installed by helm; the install manifest for test_install_manifest.py), Prometheus and Traefik
in the cluster. The stage runs in a
pytest process of its own (``make test`` starts it beside the kwok suite): its tests share one
operator and run in file order, the uninstall last.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import kind, processes
from tests.harness.kind import KindCluster
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

log = logging.getLogger("rollwise.tests.kind")

# Files that must run last, in this order: they change or remove the shared operator.
LAST = ("test_uninstall.py", "test_install_manifest.py")
_active: HarnessRun | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def order(item: pytest.Item) -> int:
        name = item.path.name
        return LAST.index(name) + 1 if name in LAST else 0

    items.sort(key=order)  # stable: file order otherwise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _active is not None:
        report.sections.append(("kind stage logs", f"see {_active.log_dir}"))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _active is None:
        return
    terminalreporter.write_sep("-", "kind stage")
    for what, seconds in _active.timings.items():
        terminalreporter.write_line(f"{what}: {seconds:.1f}s")
    for note in _active.notes:
        terminalreporter.write_line(note)
    terminalreporter.write_line(f"logs: {_active.log_dir}")


class MemorySampler:
    """Every second: the machine's used memory (MemTotal - MemAvailable, which other work on a
    shared machine moves too) and the kind tier's own: the containers' working set (cgroup v1
    memory usage minus inactive file cache, as `docker stats` counts it) plus the RSS of
    dockerd and its containerd."""

    def __init__(self) -> None:
        self.machine: list[int] = []
        self.tier: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mem-sampler", daemon=True)

    @staticmethod
    def machine_mib() -> int:
        info = {
            line.split(":")[0]: int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
        }
        return (info["MemTotal"] - info["MemAvailable"]) // 1024

    @staticmethod
    def tier_mib() -> int:
        total = 0
        for group in Path("/sys/fs/cgroup/memory/docker").glob("*/memory.usage_in_bytes"):
            try:
                usage = int(group.read_text())
                stat = dict(
                    line.split() for line in (group.parent / "memory.stat").read_text().splitlines()
                )
                total += usage - int(stat.get("total_inactive_file", 0))
            except (OSError, ValueError):
                continue
        work = str(kind.kind_work())
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                if work in cmdline and ("dockerd" in cmdline or "containerd" in cmdline):
                    rss = (proc / "statm").read_text().split()[1]
                    total += int(rss) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        return total // (1024 * 1024)

    def _sample(self) -> None:
        self.machine.append(self.machine_mib())
        self.tier.append(self.tier_mib())

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=5)
        return (
            f"kind stage memory: peak {max(self.tier)} MiB for dockerd + the node container "
            f"(working set); machine used {self.machine[0]} MiB before, peak "
            f"{max(self.machine)} MiB (shared with whatever else runs)"
        )


@dataclass
class KindStage:
    """What the tests get: the cluster, the release it runs (dist folder, chart package,
    install manifest), the operator images (the release's and a second tag of it, for the
    upgrade test) and the app image."""

    cluster: KindCluster
    release: kind.Release
    operator_image: str
    operator_image_next: str
    app_image: str
    run: HarnessRun


@pytest.fixture(scope="session")
def kind_stage() -> Iterator[KindStage]:
    global _active
    missing = kind.built()
    if missing:
        pytest.fail(
            "the kind tier is not built: " + ", ".join(missing) + " -- run `make tools`",
            pytrace=False,
        )
    processes.install_signal_handlers()
    run = HarnessRun()
    _active = run
    memory = MemorySampler()
    memory.start()
    stage: kind.Stage | None = None
    try:
        stage = kind.start_stage(run, extra_tags=("next",))
        yield KindStage(
            stage.cluster,
            stage.release,
            stage.operator_image,
            stage.extra_images["next"],
            stage.app_image,
            run,
        )
    finally:
        if stage is not None:
            kind.stop_stage(stage)
        processes.run_teardown()  # whatever start_stage left registered (a failed start)
        run.note(memory.stop())
        run.remove_state()


@pytest.fixture
def kind_cluster(kind_stage: KindStage) -> KindCluster:
    return kind_stage.cluster


@pytest.fixture
def fresh_namespace(kind_cluster: KindCluster) -> Iterator[str]:
    """A namespace of its own for one test module's services; deleted afterwards."""
    name = f"kind-{secrets.token_hex(3)}"
    kind_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            kind_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        timeout=30,
        message=f"namespace {name}'s default ServiceAccount",
    )
    yield name
    if os.environ.get("ROLLWISE_KIND_KEEP_NAMESPACES") != "1":
        kind_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
