"""Shared pytest fixtures: the proving ground (tests/harness), started lazily.

Nothing here starts at import or collection time: the session fixtures run only when a test
asks for them, so ``pytest tests/unit`` starts no process. Tests that use a cluster fixture are
marked ``cluster`` automatically (``-m "not cluster"`` deselects them).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.harness import paths, processes, stack
from tests.harness.cluster import LocalCluster
from tests.harness.prometheus import PrometheusServer
from tests.harness.run import HarnessRun
from tests.harness.simulator_process import SimulatorProcess
from tests.harness.traefik import TraefikGateway
from tests.harness.wait import wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("rollwise.tests")

# The operator fixtures (CRDs, `operator`, `rollouts`, `gate`) for every test folder.
pytest_plugins = ["tests.harness.fixtures"]

CLUSTER_FIXTURES = frozenset(
    {"harness_run", "cluster", "simulator", "prometheus", "api_client", "namespace", "traefik"}
)
_active_run: HarnessRun | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the local control plane and Prometheus (tests/harness)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure while the proving ground runs, attach the tail of every component log."""
    report = yield
    uses_cluster = CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if report.failed and _active_run is not None and uses_cluster:
        report.sections.append(
            (
                f"proving ground logs (tails; full logs in {_active_run.log_dir})",
                _active_run.tails(),
            )
        )
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _active_run is None:
        return
    terminalreporter.write_sep("-", "proving ground")
    for what, seconds in _active_run.timings.items():
        terminalreporter.write_line(f"{what}: {seconds:.2f}s")
    for note in _active_run.notes:
        terminalreporter.write_line(note)
    terminalreporter.write_line(f"logs: {_active_run.log_dir}")


# --------------------------------------------------------------------------- session fixtures


@pytest.fixture(scope="session")
def harness_run() -> Iterator[HarnessRun]:
    """This session's run: log folder ``.run/logs/<run-id>/``, state folder, timings."""
    global _active_run
    processes.install_signal_handlers()
    run = HarnessRun()
    _active_run = run
    yield run
    processes.run_teardown()  # anything a test started and forgot
    run.remove_state()


@pytest.fixture(scope="session")
def cluster(harness_run: HarnessRun) -> Iterator[LocalCluster]:
    """A real control plane (kwok nodes) for the whole session; always deleted afterwards."""
    try:
        started = stack.start_cluster(harness_run, f"rwt-{os.getpid()}")
    except paths.MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield started
    finally:
        rss = started.control_plane_rss_mib()
        if rss:  # empty if a signal handler already tore the cluster down
            harness_run.note(
                f"control plane RSS at teardown: {sum(rss.values()):.0f} MiB ("
                + ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(rss.items()))
                + ")"
            )
        with harness_run.timed("cluster stop"):
            started.stop()


@pytest.fixture(scope="session")
def simulator(harness_run: HarnessRun, cluster: LocalCluster) -> Iterator[SimulatorProcess]:
    """The pod-traffic simulator watching ``cluster``; ``simulator.target`` is host:port."""
    started = stack.start_simulator(harness_run, cluster)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def prometheus(harness_run: HarnessRun, simulator: SimulatorProcess) -> Iterator[PrometheusServer]:
    """Real Prometheus scraping the simulator every second; ``prometheus.url``."""
    started = stack.start_prometheus(harness_run, simulator)
    try:
        yield started
    finally:
        started.stop()
        started.remove_data()


@pytest.fixture(scope="session")
def traefik(
    harness_run: HarnessRun,
    cluster: LocalCluster,
    simulator: SimulatorProcess,
    prometheus: PrometheusServer,
) -> Iterator[TraefikGateway]:
    """Traefik as the Gateway API data plane (``traefik.url``), scraped by ``prometheus``;
    ``simulator`` serves the pods' HTTP and the Services' ClusterIPs behind it."""
    try:
        started = stack.start_traefik(harness_run, cluster, prometheus)
    except paths.MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def api_client(cluster: LocalCluster) -> Iterator[ApiClient]:
    """A kubernetes ApiClient with admin rights on ``cluster``."""
    client = cluster.api_client()
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- function fixtures


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, harness_run: HarnessRun, api_client: ApiClient
) -> Iterator[str]:
    """A fresh namespace for one test, ready for pods (its ``default`` ServiceAccount exists);
    deleted afterwards (not waited for)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    name = _namespace_name(request.node.name)
    with harness_run.timed(f"namespace {name}"):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            message=f"ServiceAccount default in namespace {name}",
            ignore=(ApiException,),
        )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete namespace %s: %s", name, exc)
        except Exception as exc:  # e.g. the cluster is already gone after a SIGTERM
            log.warning("could not delete namespace %s: %s", name, exc)
