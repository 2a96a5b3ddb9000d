"""The benchmark's proving ground: a tuned local control plane, Prometheus, the operator under an
identity of its own, and the measurements taken from outside it (/proc, the apiserver's /metrics).

Who made a request is told by API Priority and Fairness: the operator runs as the ServiceAccount
`rollwise-bench-system/rollwise-bench`, and one FlowSchema per verb (all on the `exempt` priority
level, so nothing is throttled that was not before) matches only that ServiceAccount. The
apiserver's own counter `apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}` then
counts the operator's requests by verb, apart from kube-controller-manager, the scheduler, kwok,
the simulator and the benchmark itself (all of which use the admin kubeconfig and stay on the
built-in `exempt` FlowSchema). `apiserver_request_total` (every client) is recorded as well.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from tests.bench.simulator import LeanSimulatorProcess
from tests.harness import processes
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"

# Control-plane tuning for the benchmark, recorded in the results: kube-controller-manager and
# kube-scheduler default to 20 and 50 API requests/s, which makes them (creating, binding and
# reporting pods) the bottleneck long before the operator. kwokctl's --disable-qps-limits is not
# used: it also turns API Priority and Fairness off, which the per-client request counts rely on.
# (The Service range needs no tuning any more: each address slot's is a /16, 65k Services.)
# Written into the cluster's KwokctlConfiguration as componentsPatches, never as `--extra-args`:
# kwokctl v0.7.0 indexes repeated --extra-args by flag position and panicked (`index out of
# range [3] with length 3`) once the address slots added a second kube-apiserver flag ahead.
TUNING_ARGS: dict[str, dict[str, str]] = {
    "kube-controller-manager": {"kube-api-qps": "1000", "kube-api-burst": "2000"},
    "kube-scheduler": {"kube-api-qps": "1000", "kube-api-burst": "2000"},
}
TUNING = tuple(f"{c}={k}={v}" for c, args in TUNING_ARGS.items() for k, v in args.items())


def tuning_patches() -> list[dict[str, Any]]:
    """TUNING_ARGS as KwokctlConfiguration componentsPatches."""
    return [
        {"name": component, "extraArgs": [{"key": k, "value": v} for k, v in args.items()]}
        for component, args in TUNING_ARGS.items()
    ]


PODS_PER_NODE = 2000  # tests.harness.cluster.NODE_CAPACITY

OPERATOR_NS = "rollwise-bench-system"
OPERATOR_SA = "rollwise-bench"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
FLOW_PREFIX = "rollwise-bench-"
# Flow schemas evaluated before the per-verb ones (lower precedence number first).
SPECIAL_FLOWS = {
    "status": (["patch", "update"], ["rollwise.dev"], ["progressiveservices/status"]),
    "events": (["create", "patch", "update"], [""], ["events"]),
}


def nodes_for(pods: int) -> int:
    """kwok nodes for this many pods at once, with headroom (at least the harness' 3)."""
    return max(3, math.ceil(pods * 1.3 / PODS_PER_NODE))


@dataclass
class Environment:
    """A cluster with Prometheus scraping the simulator, and the operator's identity set up."""

    run: HarnessRun
    cluster: LocalCluster
    prometheus_url: str
    api: ApiClient
    simulator_pid: int | None = None
    prometheus_pid: int | None = None
    tuning: tuple[str, ...] = ()
    operator_kubeconfig: Path | None = None
    shared: bool = False  # a cluster others use too: clean up after each part
    _owned: list[Any] = field(default_factory=list)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.contextmanager
    def started(cls, run: HarnessRun, name: str, *, nodes: int) -> Iterator[Environment]:
        """A fresh tuned cluster (deleted at the end), the simulator and Prometheus."""
        cluster = LocalCluster(
            name,
            run.log_dir / name,
            run_id=run.run_id,
            nodes=nodes,
            components_patches=tuning_patches(),
            # kwok evaluates every pod's usage at each metrics-server scrape: keep it out of
            # the numbers (and comparable with runs from before metrics-server existed).
            metrics_server=False,
        )
        simulator: LeanSimulatorProcess | None = None
        prometheus: PrometheusServer | None = None
        api: ApiClient | None = None
        try:
            with run.timed(f"{name}: cluster start ({nodes} nodes)"):
                cluster.start()
            simulator = LeanSimulatorProcess(
                cluster.kubeconfig, run.state_dir, run.log_dir / name, run_id=run.run_id
            )
            with run.timed(f"{name}: simulator start"):
                simulator.start()
            prometheus = PrometheusServer(
                run.state_dir / f"prometheus-{name}",
                run.log_dir / name,
                [simulator.target],
                run_id=run.run_id,
            )
            with run.timed(f"{name}: prometheus start"):
                prometheus.start()
                wait_for(prometheus.targets_healthy, timeout=30, message="first scrape")
            api = admin_client(cluster.kubeconfig)
            env = cls(
                run=run,
                cluster=cluster,
                prometheus_url=prometheus.url,
                api=api,
                simulator_pid=simulator.process.pid,
                prometheus_pid=prometheus.process.pid,
                tuning=TUNING,
            )
            env.prepare()
            yield env
        finally:
            if api is not None:
                api.close()  # type: ignore[no-untyped-call]
            if prometheus is not None:
                prometheus.stop()
                prometheus.remove_data()
            if simulator is not None:
                simulator.stop()
            cluster.stop()

    def prepare(self) -> None:
        """CRDs, the operator's ServiceAccount (cluster-admin) and its counting FlowSchemas."""
        self.cluster.install_crds(CRDS)
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(identity_manifests()))
        token = self.cluster.kubectl(
            "create", "token", OPERATOR_SA, "-n", OPERATOR_NS, "--duration=48h"
        ).stdout.strip()
        path = self.run.state_dir / f"operator-{self.cluster.name}.kubeconfig"
        self.operator_kubeconfig = self.cluster.token_kubeconfig(token, path)

    # ------------------------------------------------------------------ operator

    def operator(
        self, namespaces: list[str], *, name: str, workers: int, log_level: str = "info"
    ) -> OperatorProcess:
        assert self.operator_kubeconfig is not None
        return OperatorProcess(
            self.run,
            self.operator_kubeconfig,
            namespaces,
            name=name,
            extra_args=["--log-level", log_level, "--workers", str(workers)],
        )

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(client.exceptions.ApiException):
            client.CoreV1Api(self.api).delete_namespace(name, propagation_policy="Background")

    def namespace(self, name: str) -> None:
        core = client.CoreV1Api(self.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=60,
            message=f"ServiceAccount default in {name}",
            ignore=(client.exceptions.ApiException,),
        )

    # ------------------------------------------------------------------ measurements

    def api_counts(self) -> ApiCounts:
        text = self.cluster.kubectl("get", "--raw", "/metrics", timeout=120).stdout
        return ApiCounts.parse(text)

    def component_pids(self) -> dict[str, int]:
        """Control plane processes, simulator and Prometheus: name -> pid."""
        pids: dict[str, int] = {}
        bin_dir = f"{self.cluster.cluster_dir / 'bin'}/"
        for proc in processes.leftover_processes([self.cluster.cluster_dir]):
            if proc.cmdline.startswith(bin_dir):
                pids[Path(proc.cmdline.split()[0]).name] = proc.pid
        if self.simulator_pid:
            pids["simulator"] = self.simulator_pid
        if self.prometheus_pid:
            pids["prometheus"] = self.prometheus_pid
        return pids


def admin_client(kubeconfig: Path, pool: int = 32) -> ApiClient:
    """An admin ApiClient whose connection pool fits the bulk writers' threads."""
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    configuration.connection_pool_maxsize = pool
    return ApiClient(configuration)


def identity_manifests() -> list[dict[str, Any]]:
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": OPERATOR_SA, "namespace": OPERATOR_NS},
    }
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": OPERATOR_SA, "namespace": OPERATOR_NS},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rollwise-bench"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NS}],
        },
    ]

    def flow(name: str, precedence: int, rules: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": FLOW_PREFIX + name},
            "spec": {
                "priorityLevelConfiguration": {"name": "exempt"},
                "matchingPrecedence": precedence,
                "rules": [{"subjects": [subject], **rules}],
            },
        }

    for name, (verbs, groups, resources) in SPECIAL_FLOWS.items():
        rule = {
            "verbs": verbs,
            "apiGroups": groups,
            "resources": resources,
            "namespaces": ["*"],
        }
        docs.append(flow(name, 100, {"resourceRules": [rule]}))
    for verb in VERBS:
        verb_rule: dict[str, Any] = {
            "verbs": [verb],
            "apiGroups": ["*"],
            "resources": ["*"],
            "namespaces": ["*"],
            "clusterScope": True,
        }
        docs.append(flow(verb, 110, {"resourceRules": [verb_rule]}))
    docs.append(
        flow("other", 120, {"nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]})
    )
    return docs


# --------------------------------------------------------------------------- apiserver counts

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class ApiCounts:
    """The apiserver's request counters at one moment."""

    operator: dict[str, float]  # FlowSchema suffix (verb, "status", "events", "other") -> count
    all_by_verb: dict[str, float]  # apiserver_request_total by verb, every client
    all_by_resource: dict[str, float]  # "VERB resource[/sub]" -> count, every client
    at: float = field(default_factory=time.time)

    @classmethod
    def parse(cls, text: str) -> ApiCounts:
        operator: dict[str, float] = {}
        by_verb: dict[str, float] = {}
        by_resource: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
                labels, value = _split(line)
                schema = labels.get("flow_schema", "")
                if schema.startswith(FLOW_PREFIX):
                    key = schema.removeprefix(FLOW_PREFIX)
                    operator[key] = operator.get(key, 0.0) + value
            elif line.startswith("apiserver_request_total{"):
                labels, value = _split(line)
                verb = labels.get("verb", "")
                by_verb[verb] = by_verb.get(verb, 0.0) + value
                resource = labels.get("resource", "") or "-"
                if labels.get("subresource"):
                    resource += "/" + labels["subresource"]
                key = f"{verb} {resource}"
                by_resource[key] = by_resource.get(key, 0.0) + value
        return cls(operator=operator, all_by_verb=by_verb, all_by_resource=by_resource)

    def minus(self, before: ApiCounts) -> ApiCounts:
        def sub(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            return {k: v - b.get(k, 0.0) for k, v in a.items() if v - b.get(k, 0.0) > 0}

        return ApiCounts(
            operator=sub(self.operator, before.operator),
            all_by_verb=sub(self.all_by_verb, before.all_by_verb),
            all_by_resource=sub(self.all_by_resource, before.all_by_resource),
            at=self.at,
        )

    def operator_writes(self) -> float:
        """Every mutating request of the operator (status and Events included)."""
        return sum(self.operator.get(k, 0.0) for k in (*WRITE_VERBS, "status", "events"))


def _split(line: str) -> tuple[dict[str, str], float]:
    head, _, value = line.rpartition(" ")
    labels = dict(_LABEL.findall(head[head.index("{") :]))
    return labels, float(value)


# --------------------------------------------------------------------------- /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), 0 if it is gone."""
    fields = processes._read_stat(pid)
    if not fields:
        return 0.0
    # Fields after the command name start at field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_mib(pid: int, key: str) -> float:
    """A memory figure of /proc/<pid>/status in MiB (VmRSS, VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in first]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / CLK_TCK


def operator_pid(operator: OperatorProcess) -> int:
    process = operator._process
    assert process is not None and process.pid is not None, "operator not running"
    return process.pid


class ProcessSampler:
    """Samples a process's RSS every `interval` s in a thread; `peak_mib` is the largest seen,
    `cpu_s` the CPU used between start() and stop()."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_mib = 0.0
        self.last_mib = 0.0
        self.cpu_start = 0.0
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> ProcessSampler:
        self.cpu_start = cpu_seconds(self.pid)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = status_mib(self.pid, "VmRSS")
            if rss:
                self.last_mib = rss
                self.peak_mib = max(self.peak_mib, rss)
            self._stop.wait(self.interval)

    def stop(self) -> ProcessSampler:
        self.cpu_s = cpu_seconds(self.pid) - self.cpu_start
        self._stop.set()
        self._thread.join(timeout=5)
        return self


class CpuWindow:
    """CPU seconds of named processes and of the whole machine over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.start_machine = machine_busy_seconds()
        self.start = time.monotonic()

    def result(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.start
        used = {
            name: round(cpu_seconds(pid) - self.start_cpu[name], 1)
            for name, pid in self.pids.items()
        }
        machine = machine_busy_seconds() - self.start_machine
        return {
            "window_s": round(elapsed, 1),
            "by_process_cpu_s": used,
            "machine_busy_cpu_s": round(machine, 1),
            "machine_capacity_cpu_s": round(elapsed * (os.cpu_count() or 1), 1),
            "other_cpu_s": round(machine - sum(used.values()), 1),
        }
