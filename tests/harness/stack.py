"""The whole proving ground in one object: cluster, simulator, Prometheus scraping it.

Used by ``cli up`` and by anything that wants all three at once; the pytest fixtures start the
same pieces one by one so that a test asking only for ``cluster`` gets only a cluster.
"""

from __future__ import annotations

import logging

from tests.harness.cluster import LocalCluster
from tests.harness.prometheus import PrometheusServer
from tests.harness.run import HarnessRun
from tests.harness.simulator_process import SimulatorProcess
from tests.harness.traefik import TraefikGateway
from tests.harness.wait import wait_for

log = logging.getLogger(__name__)


def start_cluster(run: HarnessRun, name: str) -> LocalCluster:
    """Start a cluster whose logs go to ``<run log dir>/cluster/``; failures tear it down."""
    cluster = LocalCluster(name, run.log_dir / "cluster", run_id=run.run_id)
    try:
        with run.timed("cluster start"):
            cluster.start()
    except BaseException:
        cluster.stop()
        raise
    for component, path in cluster.component_logs().items():
        run.register_log(component, path)
    run.register_log("kwokctl", cluster.logs_dir / "kwokctl.log")
    return cluster


def start_simulator(run: HarnessRun, cluster: LocalCluster) -> SimulatorProcess:
    simulator = SimulatorProcess(cluster.kubeconfig, run.state_dir, run.log_dir, run_id=run.run_id)
    run.register_log("simulator", simulator.log_path)
    run.register_log("simulator-stdout", simulator.process.log_path)
    try:
        with run.timed("simulator start"):
            simulator.start()
    except BaseException:
        simulator.stop()
        raise
    return simulator


def start_prometheus(run: HarnessRun, simulator: SimulatorProcess) -> PrometheusServer:
    """Start Prometheus scraping the simulator; return once the first scrape succeeded."""
    prometheus = PrometheusServer(
        run.state_dir / "prometheus", run.log_dir, [simulator.target], run_id=run.run_id
    )
    run.register_log("prometheus", prometheus.log_path)
    try:
        with run.timed("prometheus start"):
            prometheus.start()
            wait_for(prometheus.targets_healthy, timeout=30, message="first simulator scrape")
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


def start_traefik(
    run: HarnessRun, cluster: LocalCluster, prometheus: PrometheusServer
) -> TraefikGateway:
    """Start Traefik as the cluster's Gateway API data plane and have Prometheus scrape its
    metrics (job ``traefik``); return once the Gateway is programmed and scraped."""
    gateway = TraefikGateway(cluster, run.state_dir, run.log_dir, run_id=run.run_id)
    run.register_log("traefik", gateway.log_path)
    run.register_log("traefik-stdout", gateway.process.log_path)
    try:
        with run.timed("traefik start"):
            gateway.start()
            prometheus.add_scrape_job("traefik", [gateway.metrics_target])
    except BaseException:
        gateway.stop()
        raise
    return gateway
