"""The kind stage: rollwise as users run it (tests/harness/kind.py).

One kind cluster per session, created once: the operator image built from the Dockerfile and
installed by the chart as shipped, Prometheus and Traefik in the cluster. The stage runs in a
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
LAST = ("test_uninstall.py",)
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
    """The machine's used memory (MemTotal - MemAvailable), every second, for the peak."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mem-sampler", daemon=True)

    @staticmethod
    def used_mib() -> int:
        info = dict(
            (line.split(":")[0], int(line.split()[1]))
            for line in Path("/proc/meminfo").read_text().splitlines()
        )
        return (info["MemTotal"] - info["MemAvailable"]) // 1024

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(self.used_mib())

    def start(self) -> None:
        self.samples.append(self.used_mib())
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples[0], max(self.samples)


@dataclass
class KindStage:
    """What the tests get: the cluster, the operator images (two tags of the one build, for
    the upgrade test) and the app image."""

    cluster: KindCluster
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
            stage.cluster, stage.operator_image, stage.extra_images["next"], stage.app_image, run
        )
    finally:
        if stage is not None:
            kind.stop_stage(stage)
        processes.run_teardown()  # whatever start_stage left registered (a failed start)
        before, peak = memory.stop()
        run.note(
            f"kind stage memory: {before} MiB used before, peak {peak} MiB "
            f"(+{peak - before} MiB) on this machine"
        )
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
