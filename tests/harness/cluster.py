"""A real Kubernetes control plane on this machine, with kwok playing nodes and pods.

``kwokctl --runtime binary`` runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and the kwok controller as plain processes from the binaries in the cache. Everything is given
explicitly (binary paths, bind address, the stage files) so nothing is ever downloaded and
nothing outside the cache is touched: no ``~/.kube/config``, no ``~/.kwok``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.harness import metrics, paths, pod_http, processes
from tests.harness.kube import api_client_from_kubeconfig
from tests.harness.wait import wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ROLLWISE_CRDS = ("progressiveservices", "metricgates", "clustermetricgates")

log = logging.getLogger(__name__)

NODE_CAPACITY = {"cpu": "64", "memory": "512Gi", "pods": "2000"}
# Pods and Services get loopback addresses so that real HTTP can reach them on this machine
# (tests/harness/pod_http.py): kwok takes a pod's IP from its node's podCIDR, node i's being
# 127.(100+i).0.0/16 in address slot 0; ClusterIPs come from 127.20.0.0/16. Each running
# cluster takes its own slot (pod_http.service_cidr, pod_http.node_pod_cidr), recorded in
# SLOT_FILE in its kwokctl directory.
SLOT_FILE = "rollwise-address-slot"
# kwok serves `kubectl logs` (the kubelet's containerLogs) from CRI-format files that a
# ClusterLogs object names (tests/harness/pod_logs.py); served as a CRD, set at run time.
LOG_CRDS = ("ClusterLogs",)


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()}"
        )
        self.result = result


class ClusterStartError(RuntimeError):
    """The control plane did not come up; the message says which step and where the logs are."""


@contextlib.contextmanager
def _create_lock() -> Iterator[None]:
    """Serialise cluster creation machine-wide.

    kwokctl picks ports by counting down from 32766 and test-binding them, so two clusters
    created at the same moment (two engineers' test sessions) can pick the same ports.
    """
    lock_path = paths.kwok_workdir() / "create.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def taken_address_slots(clusters_dir: Path, running: Callable[[Path], bool]) -> set[int]:
    """Address slots of the clusters whose control plane still runs (a leftover directory of a
    crashed run holds none). A running cluster without a slot file was started by a harness
    from before slots (another checkout): it uses slot 0's ranges."""
    taken = set()
    for cluster_dir in clusters_dir.glob("*/"):
        marker = cluster_dir / SLOT_FILE
        try:
            slot = int(marker.read_text().strip()) if marker.exists() else 0
        except ValueError:
            slot = 0
        if running(cluster_dir):
            taken.add(slot)
    return taken


def free_address_slot(taken: set[int]) -> int:
    for slot in range(pod_http.ADDRESS_SLOTS):
        if slot not in taken:
            return slot
    raise ClusterStartError(
        f"all {pod_http.ADDRESS_SLOTS} loopback address slots are taken by running clusters"
    )


def node_manifest(index: int, slot: int = 0) -> dict[str, Any]:
    """A kwok-managed Node with room for thousands of pods, its pods getting loopback IPs."""
    name = f"kwok-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # where metrics-server scrapes this node's kubelet /metrics/resource (kwok)
                metrics.RESOURCE_METRICS_PATH_ANNOTATION: metrics.resource_metrics_path(name),
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {
            "podCIDR": pod_http.node_pod_cidr(index, slot),
            "podCIDRs": [pod_http.node_pod_cidr(index, slot)],
        },
        "status": {"allocatable": dict(NODE_CAPACITY), "capacity": dict(NODE_CAPACITY)},
    }


def merged_components_patches(patches: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One componentsPatches entry per component, its extraArgs in the order given (the
    metrics patches and the benchmark's tuning both patch kube-controller-manager)."""
    merged: dict[str, dict[str, Any]] = {}
    for patch in patches:
        entry = merged.setdefault(str(patch["name"]), {"name": patch["name"], "extraArgs": []})
        entry["extraArgs"] += list(patch.get("extraArgs") or [])
    return list(merged.values())


class LocalCluster:
    """A kwokctl cluster: ``start()``, use ``kubeconfig`` / ``kubectl()`` / ``api_client()``,
    ``stop()``.

    ``workdir_logs`` receives kwokctl's output, the generated config and, on stop, a copy of
    every component's log (kwokctl deletes its own copy with the cluster).
    """

    def __init__(
        self,
        name: str,
        workdir_logs: Path,
        *,
        nodes: int = 3,
        run_id: str | None = None,
        start_timeout: float = 180.0,
        create_flags: Sequence[str] = (),
        components_patches: Sequence[Mapping[str, Any]] = (),
        metrics_server: bool = True,
    ) -> None:
        self.name = name
        # metrics-server + kwok's per-node /metrics/resource + tuned HPA controller
        # (tests/harness/metrics.py); off: no metrics.k8s.io API.
        self.metrics_server = metrics_server
        # Extra `kwokctl create cluster` flags (a fleet member's Service range, an audit policy),
        # e.g. `--kube-audit-policy=...`.
        self.create_flags = tuple(create_flags)
        # Extra component flags (the benchmark's control-plane tuning) as KwokctlConfiguration
        # componentsPatches: `{"name": "kube-scheduler", "extraArgs": [{"key": .., "value": ..}]}`.
        # Never as repeated `--extra-args`: kwokctl v0.7.0 indexes those by flag position and
        # panics (`index out of range`) once another component's flag comes between.
        self.components_patches = tuple(components_patches)
        self.logs_dir = workdir_logs
        self.nodes = nodes
        self.run_id = run_id or paths.new_run_id()
        self.start_timeout = start_timeout
        self.address_slot = 0  # chosen at start(): see SLOT_FILE
        self.bins = paths.binaries()
        self.kwok_workdir = paths.kwok_workdir()
        self.started_at: float | None = None  # wall clock (epoch seconds) when start() began
        self.start_seconds: float | None = None  # how long start() took
        self._teardown_token: int | None = None
        self._owned = False  # only a cluster we created (or adopted) is ever deleted

    # ----------------------------------------------------------------- locations

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (group system:masters: bypasses RBAC; use tokens to test RBAC)."""
        return self.cluster_dir / "kubeconfig.yaml"

    def component_logs(self) -> dict[str, Path]:
        """Live log files of the control plane components, by component name."""
        return {p.stem: p for p in sorted((self.cluster_dir / "logs").glob("*.log"))}

    def _env(self) -> dict[str, str]:
        env = paths.tool_path_env(self.bins)
        env["KWOK_WORKDIR"] = str(self.kwok_workdir)
        env[processes.MARKER_ENV] = self.run_id
        env.pop("KUBECONFIG", None)
        return env

    # ----------------------------------------------------------------- lifecycle

    def _write_config(self) -> Path:
        """The KwokctlConfiguration: every binary explicit, local bind, nothing to download."""
        b = self.bins
        options = {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "securePort": True,
            "quietPull": True,
            "enableMetricsServer": False,
            "cacheDir": str(self.kwok_workdir / "cache"),
            "kubeApiserverBinary": str(b.kube_apiserver),
            "kubeControllerManagerBinary": str(b.kube_controller_manager),
            "kubeSchedulerBinary": str(b.kube_scheduler),
            "kubectlBinary": str(b.kubectl),
            "etcdBinary": str(b.etcd),
            "kwokControllerBinary": str(b.kwok),
        }
        config: dict[str, Any] = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": options,
        }
        patches: list[Mapping[str, Any]] = []
        if self.metrics_server:
            options.update(metrics.kwokctl_options())
            patches += metrics.kwokctl_components_patches()
        patches += self.components_patches
        if patches:
            config["componentsPatches"] = merged_components_patches(patches)
        enabled = options.get("enableCRDs")
        options["enableCRDs"] = [*(enabled if isinstance(enabled, list) else []), *LOG_CRDS]
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        path = self.logs_dir / "kwokctl-config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _kwokctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bins.kwokctl), "--name", self.name, *args]
        with (self.logs_dir / "kwokctl.log").open("a") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n")
            out.flush()
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=self._env(),
                timeout=timeout,
                start_new_session=True,  # a terminal Ctrl-C reaches us, and we tear down
                check=False,
            )

    def start(self) -> None:
        """Create the cluster, add the kwok nodes, wait until the API and nodes are ready."""
        self.bins.require(*self.bins.control_plane())
        for stage_file in paths.STAGE_FILES:
            if not stage_file.exists():
                raise ClusterStartError(f"missing stage file {stage_file}")
        self.started_at = time.time()
        begin = time.monotonic()
        processes.install_signal_handlers()
        config = self._write_config()
        with _create_lock():
            if self.cluster_dir.exists():
                if processes.leftover_processes([self.cluster_dir]):
                    raise ClusterStartError(
                        f"a cluster named {self.name} is already running from {self.cluster_dir}"
                    )
                self._delete()  # leftovers of a crashed run with the same name
            self._owned = True
            self._teardown_token = processes.on_teardown(f"delete cluster {self.name}", self.stop)
            self.address_slot = free_address_slot(
                taken_address_slots(
                    self.kwok_workdir / "clusters",
                    lambda d: bool(processes.leftover_processes([d])),
                )
            )
            try:
                self._create(config)
                (self.cluster_dir / SLOT_FILE).write_text(f"{self.address_slot}\n")
                self._wait_api_ready(deadline=begin + self.start_timeout)
            except BaseException:
                self._abandon_start()
                raise
        try:
            self._add_nodes(deadline=begin + self.start_timeout)
            if self.metrics_server:
                with contextlib.closing(self.api_client()) as admin:
                    metrics.PodUsage(admin).install_default()
        except BaseException:
            self._abandon_start()
            raise
        self.start_seconds = time.monotonic() - begin
        log.info("cluster %s ready in %.1fs", self.name, self.start_seconds)

    def _abandon_start(self) -> None:
        """Tear down a half-started cluster, even if a signal handler already ran ``stop()``
        while kwokctl was still starting components (they would be left behind otherwise)."""
        self._owned = True
        self.stop()

    def _create(self, config: Path) -> None:
        b = self.bins
        args = ["--config", str(config)]
        for stage_file in paths.STAGE_FILES:
            args += ["--config", str(stage_file)]
        result = self._kwokctl(
            *args,
            "create",
            "cluster",
            "--runtime=binary",
            "--kubeconfig=",
            f"--kube-apiserver-binary={b.kube_apiserver}",
            f"--kube-controller-manager-binary={b.kube_controller_manager}",
            f"--kube-scheduler-binary={b.kube_scheduler}",
            f"--etcd-binary={b.etcd}",
            f"--kwok-controller-binary={b.kwok}",
            "--kube-authorization=true",
            "--kube-admission=true",
            "--extra-args=kube-apiserver=advertise-address=127.0.0.1",
            # before create_flags: a later range (a fleet member's) wins
            "--extra-args=kube-apiserver=service-cluster-ip-range="
            + pod_http.service_cidr(self.address_slot),
            *self.create_flags,
            f"--timeout={int(self.start_timeout)}s",
            timeout=self.start_timeout + 30,
        )
        if result.returncode != 0:
            raise ClusterStartError(
                f"kwokctl create cluster failed ({result.returncode}); "
                f"see {self.logs_dir / 'kwokctl.log'} and {self.cluster_dir / 'logs'}"
            )

    def _wait_api_ready(self, deadline: float) -> None:
        def ready() -> bool:
            result = self._run_kubectl(["get", "--raw", "/readyz"], timeout=10)
            return result.returncode == 0 and result.stdout.strip() == "ok"

        wait_for(
            ready,
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.3,
            message=f"kube-apiserver of {self.name} to be ready (/readyz)",
        )

    def _add_nodes(self, deadline: float) -> None:
        if self.nodes == 0:
            return  # e.g. a fleet hub: it only stores objects, no pod ever runs there
        docs = [node_manifest(i, self.address_slot) for i in range(self.nodes)]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

        def all_ready() -> list[str] | None:
            listing = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)
            ready = [
                item["metadata"]["name"]
                for item in listing["items"]
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in item.get("status", {}).get("conditions", [])
                )
            ]
            return ready if len(ready) >= self.nodes else None

        wait_for(
            all_ready,
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.3,
            message=f"{self.nodes} kwok nodes to be Ready",
        )

    def stop(self) -> None:
        """Delete the cluster; keep its logs; kill anything kwokctl left behind. Idempotent."""
        if self._teardown_token is not None:
            processes.cancel_teardown(self._teardown_token)
            self._teardown_token = None
        if not self._owned:
            return
        self._save_component_logs()
        self._delete()
        self._owned = False

    def stop_components(self) -> None:
        """`kwokctl stop cluster`: every component (apiserver, etcd, ...) stops; the cluster's
        files stay, so `start_components()` brings the same cluster back on the same ports."""
        result = self._kwokctl("stop", "cluster", timeout=90)
        if result.returncode != 0:
            raise ClusterStartError(f"kwokctl stop cluster {self.name} failed; see kwokctl.log")

    def start_components(self, timeout: float = 120.0) -> None:
        """`kwokctl start cluster` after `stop_components()`; waits until /readyz answers."""
        begin = time.monotonic()
        result = self._kwokctl("start", "cluster", f"--timeout={int(timeout)}s", timeout=timeout)
        if result.returncode != 0:
            raise ClusterStartError(f"kwokctl start cluster {self.name} failed; see kwokctl.log")
        self._wait_api_ready(deadline=begin + timeout)
        # The restarted kwok controller has a new identity and leaves every node whose Lease
        # the stopped one held alone until it expires (--node-lease-duration-seconds: 200 s),
        # so no pod would start for minutes. The stopped holder renews nothing: hand them over.
        self.kubectl("delete", "leases", "--all", "-n", "kube-node-lease")

    def adopt(self) -> None:
        """Take charge of an existing cluster of this name (``cli down`` stops what ``up`` left)."""
        self._owned = True

    def detach(self) -> None:
        """Leave the cluster running when this process exits (``cli up``; ``cli down`` stops it)."""
        processes.mark_detached(paths.runs_dir() / self.run_id)
        if self._teardown_token is not None:
            processes.cancel_teardown(self._teardown_token)
            self._teardown_token = None

    def _save_component_logs(self) -> None:
        target = self.logs_dir / "control-plane"
        target.mkdir(parents=True, exist_ok=True)
        for name, path in self.component_logs().items():
            with contextlib.suppress(OSError):
                shutil.copyfile(path, target / f"{name}.log")

    def _delete(self) -> None:
        if not self.cluster_dir.exists():
            self._kill_strays()
            return
        try:
            # `--kubeconfig=` works for create but delete rejects it ("empty path", kwok
            # v0.7.0): point it at a scratch file so ~/.kube/config is never touched.
            scratch = self.logs_dir / "kwokctl-scratch-kubeconfig.yaml"
            self._kwokctl("delete", "cluster", f"--kubeconfig={scratch}", timeout=90)
        except subprocess.TimeoutExpired:
            log.error("kwokctl delete cluster %s timed out", self.name)
        self._kill_strays()
        shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def _kill_strays(self) -> None:
        for stray in processes.leftover_processes([self.cluster_dir]):
            log.warning("killing process kwokctl left behind: %s", stray)
            processes.terminate_pid(stray.pid)

    def control_plane_rss_mib(self) -> dict[str, float]:
        """Resident memory of each control plane process (MiB), by executable name."""
        usage: dict[str, float] = {}
        bin_dir = f"{self.cluster_dir / 'bin'}/"
        for proc in processes.leftover_processes([self.cluster_dir]):
            if not proc.cmdline.startswith(bin_dir):
                continue  # e.g. the simulator, which only reads our kubeconfig
            name = Path(proc.cmdline.split()[0]).name
            usage[name] = usage.get(name, 0.0) + processes.rss_mib(proc.pid)
        return usage

    # ----------------------------------------------------------------- clients

    def _run_kubectl(
        self, args: Sequence[str], *, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl against this cluster; raise KubectlError if it fails."""
        result = self._run_kubectl(args, input=input, timeout=timeout)
        if result.returncode != 0:
            raise KubectlError(args, result)
        return result

    def wait_established(self, *crds: str, timeout: float = 60.0) -> None:
        """Wait until each CRD (`crd/<name>` or `-f <file>` arguments) is Established.

        `kubectl wait --for=condition=Established` fails at once, instead of waiting, while a
        just-created CRD has no status.conditions yet ("accessor error: <nil> is of the type
        <nil>"), so it is retried until the deadline."""
        wait_for(
            lambda: self.kubectl(
                "wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *crds
            ),
            timeout=timeout,
            message=f"{' '.join(crds)} established",
            ignore=(KubectlError,),
        )

    def install_crds(self, kustomization: Path) -> None:
        """`kubectl apply -k` the generated CRDs and wait until all three are Established."""
        self.kubectl("apply", "-k", str(kustomization))
        self.wait_established(*(f"crd/{crd}.rollwise.dev" for crd in ROLLWISE_CRDS))

    def api_client(self) -> ApiClient:
        """A kubernetes-client ApiClient with the admin credentials."""
        return api_client_from_kubeconfig(self.kubeconfig)

    def _kubeconfig_cluster(self) -> dict[str, Any]:
        data = yaml.safe_load(self.kubeconfig.read_text())
        cluster: dict[str, Any] = data["clusters"][0]["cluster"]
        return cluster

    @property
    def server(self) -> str:
        """The apiserver URL, e.g. ``https://127.0.0.1:32766``."""
        return str(self._kubeconfig_cluster()["server"])

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates with ``token`` only (e.g. a ServiceAccount's
        from ``kubectl create token``), for a process that must be subject to RBAC, such as the
        operator in e2e tests. Returns ``path``."""
        cluster = {"server": self.server}
        if "certificate-authority" in self._kubeconfig_cluster():
            cluster["certificate-authority"] = str(
                self._kubeconfig_cluster()["certificate-authority"]
            )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": cluster}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "token"}}],
            "current-context": self.name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def token_api_client(self, token: str) -> ApiClient:
        """An ApiClient that authenticates with a bearer token only (e.g. a ServiceAccount's),
        so RBAC applies, unlike the admin kubeconfig."""
        from kubernetes import client

        cluster = self._kubeconfig_cluster()
        configuration = client.Configuration()
        configuration.host = str(cluster["server"])
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        if "certificate-authority" in cluster:
            configuration.ssl_ca_cert = str(cluster["certificate-authority"])
        else:
            configuration.verify_ssl = False
        return client.ApiClient(configuration)
