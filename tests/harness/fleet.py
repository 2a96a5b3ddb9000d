"""A fleet proving ground: a hub cluster and three member clusters, each member with its own
rollwise, its own pod-traffic simulator, and one Prometheus scraping all three simulators.

Lean on purpose (2 cores): the hub runs only etcd and kube-apiserver (no nodes, no scheduler,
no controller-manager, no kwok controller: it stores FleetRollouts and Secrets, nothing runs
there); each member has one kwok node and no metrics-server. Members get distinct ClusterIP
ranges (127.21/16, 127.22/16, ...) because their simulators all play kube-proxy on this one
machine's loopback.

Credentials are the production model: the hub's kubeconfig Secrets carry a ServiceAccount token
of each member whose Role allows only get and patch on ProgressiveServices in the target
namespace (`MEMBER_ROLE_RULES`); the hub process itself runs with the hub's admin kubeconfig.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.harness import processes
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import ERROR_RATE_QUERY, Rollouts, gate_manifest, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.simulator_process import SimulatorProcess
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
FLEET_CRD = CRDS / "rollwise.dev_fleetrollouts.yaml"
TARGET_NS = "shop"  # the members' namespace of every ProgressiveService the tests roll
HUB_NS = "fleet"  # FleetRollouts and kubeconfig Secrets on the hub
HUB_SA = "rollwise-fleet-hub"
GROUP, VERSION = "rollwise.dev", "v1alpha1"
# All the hub's identity needs in a member (documented in the README).
MEMBER_ROLE_RULES = [
    {
        "apiGroups": [GROUP],
        "resources": ["progressiveservices"],
        "verbs": ["get", "patch"],
    }
]
MEMBER_REGIONS = {"member-a": "eu", "member-b": "us", "member-c": "ap"}
SERVICE_RANGE_ARG = "--extra-args=kube-apiserver=service-cluster-ip-range"
HUB_DISABLED = "--disable=kube-scheduler,kube-controller-manager,kwok-controller"


def member_steps(service: str) -> list[dict[str, Any]]:
    """A member's canary: half the pods, then its error-rate gate (2 measurements, 1 s apart)."""
    return [
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": service}}]}},
    ]


@dataclass
class Member:
    """One member cluster with everything that runs for it."""

    name: str
    region: str
    cluster: LocalCluster
    simulator: SimulatorProcess
    operator: OperatorProcess
    api: ApiClient

    @property
    def rollouts(self) -> Rollouts:
        return Rollouts(self.api, TARGET_NS)

    def deploy(self, service: str, version: str = "1.0.0", *, error_rate: float = 0.0) -> None:
        """The service's first version, Healthy (a first revision runs no gate)."""
        manifest = service_manifest(
            TARGET_NS,
            version,
            name=service,
            replicas=2,
            error_rate=error_rate,
            steps=member_steps(service),
            abort_delay=1,
        )
        self.rollouts.apply(manifest)
        self.rollouts.wait_phase("Healthy", version=version, timeout=120, name=service)

    def service(self, service: str) -> dict[str, Any]:
        return self.rollouts.get(service)

    def migration_jobs(self, service: str) -> list[str]:
        """Names of every migration Job of `service` in this member (one per revision run)."""
        return sorted(
            str(j.metadata.name)
            for j in self.rollouts.jobs()
            if j.metadata and (j.metadata.labels or {}).get("rollwise.dev/service") == service
        )


class FleetGround:
    """``start()`` the hub, three members, simulators, Prometheus and operators; ``stop()``."""

    def __init__(self, run: HarnessRun, poll_s: float = 1.0) -> None:
        self.run = run
        self.poll_s = poll_s
        stamp = str(os.getpid())
        self.hub = LocalCluster(
            f"rwf-{stamp}-hub",
            run.log_dir / "fleet-hub",
            nodes=0,
            run_id=run.run_id,
            metrics_server=False,
            create_flags=[HUB_DISABLED],
        )
        self.members: dict[str, Member] = {}
        self.prometheus: PrometheusServer | None = None
        self.hub_operator: OperatorProcess | None = None
        self.hub_api: ApiClient | None = None
        self.timings: dict[str, float] = {}
        self._stamp = stamp
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ lifecycle

    def _timed(self, what: str) -> contextlib.AbstractContextManager[None]:
        return self.run.timed(f"fleet {what}")

    def start(self) -> None:
        begin = time.monotonic()
        try:
            with self._timed("hub start"):
                self.hub.start()
            self._stack.callback(self.hub.stop)
            self.hub.kubectl("apply", "-f", str(FLEET_CRD))
            self.hub.wait_established("crd/fleetrollouts.rollwise.dev")
            self.hub.kubectl("create", "namespace", HUB_NS)
            self.hub_api = self.hub.api_client()
            self._stack.callback(self.hub_api.close)
            simulators = []
            for index, (name, region) in enumerate(MEMBER_REGIONS.items()):
                cluster = LocalCluster(
                    f"rwf-{self._stamp}-{name[-1]}",
                    self.run.log_dir / f"fleet-{name}",
                    nodes=1,
                    run_id=self.run.run_id,
                    metrics_server=False,
                    create_flags=[f"{SERVICE_RANGE_ARG}=127.{21 + index}.0.0/16"],
                )
                with self._timed(f"{name} start"):
                    cluster.start()
                self._stack.callback(cluster.stop)
                cluster.install_crds(CRDS)
                cluster.kubectl("create", "namespace", TARGET_NS)
                state = self.run.state_dir / f"fleet-{name}"
                simulator = SimulatorProcess(
                    cluster.kubeconfig,
                    state,
                    self.run.log_dir / f"fleet-{name}",
                    run_id=self.run.run_id,
                )
                with self._timed(f"{name} simulator start"):
                    simulator.start()
                self._stack.callback(simulator.stop)
                simulators.append(simulator)
                operator = OperatorProcess(
                    self.run, cluster.kubeconfig, [TARGET_NS], name=f"fleet-{name}-operator"
                )
                operator.start()
                self._stack.callback(operator.stop)
                api = cluster.api_client()
                self._stack.callback(api.close)
                self.members[name] = Member(name, region, cluster, simulator, operator, api)
            self.prometheus = PrometheusServer(
                self.run.state_dir / "fleet-prometheus",
                self.run.log_dir / "fleet-prometheus",
                [s.target for s in simulators],
                run_id=self.run.run_id,
            )
            with self._timed("prometheus start"):
                self.prometheus.start()
                wait_for(self.prometheus.targets_healthy, timeout=30, message="first scrapes")
            self._stack.callback(self.prometheus.remove_data)
            self._stack.callback(self.prometheus.stop)
            for member in self.members.values():
                self._member_gate(member)
                self._grant_hub(member)
            self.hub_operator = OperatorProcess(
                self.run,
                self.hub.kubeconfig,
                [HUB_NS],
                name="fleet-hub-operator",
                extra_args=["--fleet-hub", "--fleet-poll-interval", str(self.poll_s)],
            )
            self.hub_operator.start()
            self._stack.callback(self.hub_operator.stop)
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - begin

    def stop(self) -> None:
        self._stack.close()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every live process of this run: control
        planes, simulators, Prometheus, operators (a killed process' share is lost)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for proc in processes.leftover_processes():
            if proc.run_id != self.run.run_id:
                continue
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def rss_mib(self) -> float:
        """Resident memory of every live process of this run, MiB."""
        return sum(
            processes.rss_mib(p.pid)
            for p in processes.leftover_processes()
            if p.run_id == self.run.run_id
        )

    # ------------------------------------------------------------------ setup pieces

    def _member_gate(self, member: Member) -> None:
        """The member's `error-rate` gate, reading only its own simulator's series."""
        assert self.prometheus is not None
        query = ERROR_RATE_QUERY.replace(
            'namespace="{{service.namespace}}",',
            f'namespace="{{{{service.namespace}}}}",instance="{member.simulator.target}",',
        )
        manifest = gate_manifest(TARGET_NS, self.prometheus.url, interval="1s", query=query)
        member.rollouts.create_gate(manifest)

    def _grant_hub(self, member: Member) -> None:
        """A ServiceAccount in the member allowed only get/patch on ProgressiveServices in the
        target namespace; its token's kubeconfig in a Secret on the hub, named after the member."""
        grant = [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": HUB_SA, "namespace": TARGET_NS},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": HUB_SA, "namespace": TARGET_NS},
                "rules": MEMBER_ROLE_RULES,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": HUB_SA, "namespace": TARGET_NS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": HUB_SA,
                },
                "subjects": [{"kind": "ServiceAccount", "name": HUB_SA, "namespace": TARGET_NS}],
            },
        ]
        member.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(grant))
        token = member.cluster.kubectl(
            "create", "token", HUB_SA, "-n", TARGET_NS, "--duration=6h"
        ).stdout.strip()
        path = member.cluster.token_kubeconfig(
            token, self.run.state_dir / f"fleet-{member.name}" / "hub-identity.kubeconfig"
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{member.name}-kubeconfig", "namespace": HUB_NS},
            "data": {"kubeconfig": base64.b64encode(path.read_bytes()).decode()},
        }
        self.hub.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))

    # ------------------------------------------------------------------ fleets

    def cluster_entries(self) -> list[dict[str, Any]]:
        return [
            {
                "name": m.name,
                "region": m.region,
                "kubeconfigSecretRef": {"name": f"{m.name}-kubeconfig", "key": "kubeconfig"},
            }
            for m in self.members.values()
        ]

    def fleet_manifest(
        self,
        name: str,
        service: str,
        version: str,
        *,
        waves: list[dict[str, Any]] | None = None,
        on_failure: str = "Halt",
        containers: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "target": {"namespace": TARGET_NS, "service": service},
            "version": version,
            "clusters": self.cluster_entries(),
            "waves": copy.deepcopy(waves or three_waves()),
            "onFailure": on_failure,
        }
        if containers:
            spec["containers"] = containers
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FleetRollout",
            "metadata": {"name": name, "namespace": HUB_NS},
            "spec": spec,
        }

    def _objects(self) -> client.CustomObjectsApi:
        assert self.hub_api is not None
        return client.CustomObjectsApi(self.hub_api)

    def apply_fleet(self, manifest: dict[str, Any]) -> None:
        self._objects().create_namespaced_custom_object(
            GROUP, VERSION, HUB_NS, "fleetrollouts", manifest
        )

    def fleet(self, name: str) -> dict[str, Any]:
        obj = self._objects().get_namespaced_custom_object(
            GROUP, VERSION, HUB_NS, "fleetrollouts", name
        )
        assert isinstance(obj, dict)
        return obj

    def fleet_status(self, name: str) -> dict[str, Any]:
        return dict(self.fleet(name).get("status") or {})

    def wait_fleet(self, name: str, predicate: Any, timeout: float, message: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status = self.fleet_status(name)
            return status if predicate(status) else None

        try:
            # KeyError: the hub has not written this cluster's entry yet.
            return wait_for(
                check,
                timeout=timeout,
                interval=0.5,
                message=message,
                ignore=(ApiException, KeyError),
            )
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nlast fleet status: {yaml.safe_dump(self.fleet_status(name))[:4000]}"
            ) from None

    def wait_fleet_phase(self, name: str, phase: str, timeout: float = 240) -> dict[str, Any]:
        return self.wait_fleet(
            name, lambda s: s.get("phase") == phase, timeout, f"fleet {name} phase {phase}"
        )


def three_waves(**last: Any) -> list[dict[str, Any]]:
    """canary (member-a), then us (member-b, by region), then the rest (member-c)."""
    return [
        {"name": "canary", "clusters": ["member-a"], "soak": "2s"},
        {"name": "us", "selector": {"region": "us"}},
        {"name": "rest", **last},
    ]


def member_entry(status: dict[str, Any], cluster: str) -> dict[str, Any]:
    """One cluster's entry of a fleet status."""
    for wave in status.get("waves") or []:
        for member in wave.get("clusters") or []:
            if member["name"] == cluster:
                return dict(member)
    raise KeyError(cluster)


def wave_phases(status: dict[str, Any]) -> list[str]:
    return [w.get("phase", "") for w in status.get("waves") or []]


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})
