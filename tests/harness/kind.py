"""The kind tier: rollwise as users run it, as real pods on a real kind cluster.

The operator is installed from a release: ``make release``'s builder
(``deploy/release/build.py``) builds the image from the project's Dockerfile and saves it, with
the chart package and the install manifest, into a dist folder; the image archive is loaded
into a kind cluster (``kind load image-archive``) and the chart package installed by helm, as a
user installs from ``dist/``. The workloads (the demo app in ``deploy/kind/app/``, its
migration Job), Prometheus and Traefik (the Gateway API data plane) run as pods beside it. The
pieces are built once per machine by ``deploy/kind/build.sh`` (``make tools``); a private
Docker daemon (``deploy/kind/dockerd.sh``) is started when none runs and stopped afterwards,
restoring what it changed on the host.

Addresses: the gateway and Prometheus are NodePort Services, published on 127.0.0.1 ports by
kind's ``extraPortMappings``, so every request a test sends goes to loopback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness import paths, processes, traefik
from tests.harness.prometheus import free_port
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

log = logging.getLogger(__name__)

KIND_DIR = paths.REPO_ROOT / "deploy" / "kind"
CHART = paths.REPO_ROOT / "charts" / "rollwise"
RELEASE_BUILDER = paths.REPO_ROOT / "deploy" / "release" / "build.py"
RELEASE = "rollwise"
OPERATOR_NAMESPACE = "rollwise-system"
MONITORING = "monitoring"
# The example gates' Prometheus address (deploy/examples): the one URL the platform allows teams.
PROMETHEUS_URL = f"http://prometheus.{MONITORING}:9090"
# NodePorts inside the node; kind publishes them on free loopback ports of this machine.
GATEWAY_NODE_PORT = 30080
PROMETHEUS_NODE_PORT = 30090
TRAEFIK_API_NODE_PORT = 30091
# The gateway's HTTP entrypoint inside the Traefik pod; the Gateway listener has this port.
GATEWAY_PORT = 8000
# The Prometheus pod's discovery sidecar (loopback only).
POD_SD_PORT = 8081


class KindError(RuntimeError):
    """A command of the kind tier failed; the message carries its output."""


def settings() -> dict[str, str]:
    """The pinned versions and image names, an environment variable winning (as env.sh)."""
    pinned = paths.versions()
    return {key: os.environ.get(key, value) for key, value in pinned.items()}


def kind_work() -> Path:
    """Where the kind tier's builds and its Docker daemon live."""
    override = os.environ.get("KIND_WORK")
    return Path(override) if override else paths.cache_dir() / "kind"


def docker_host() -> str:
    return os.environ.get("KIND_DOCKER_HOST") or f"unix://{kind_work() / 'docker.sock'}"


def tool_env(kubeconfig: Path | None = None) -> dict[str, str]:
    """Our kubectl and helm first in PATH, the private daemon, no BuildKit (it would pull
    its frontend image)."""
    env = paths.tool_path_env(paths.binaries())
    env["DOCKER_HOST"] = docker_host()
    env["DOCKER_BUILDKIT"] = "0"
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command of the kind tier; KindError with its output when it fails."""
    done = subprocess.run(
        list(argv),
        env=env or tool_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise KindError(
            f"{' '.join(argv[:6])} exited {done.returncode}:\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    return done


def built() -> list[str]:
    """What ``deploy/kind/build.sh`` has not built yet (empty when the tier can run)."""
    work, pins = kind_work(), settings()
    missing = [str(p) for p in (work / "bin" / "kind",) if not p.exists()]
    if not (paths.binaries().helm.exists() and paths.binaries().kubectl.exists()):
        missing.append("helm/kubectl (make tools)")
    archives = [image_archive(pins[k]) for k in APP_IMAGES]
    missing += [str(a) for a in (*archives, gateway_crds()) if not a.exists()]
    return missing


APP_IMAGES = ("KIND_APP_IMAGE", "KIND_PROMETHEUS_IMAGE", "KIND_TRAEFIK_IMAGE")


def image_archive(ref: str) -> Path:
    """The archive build.sh saved an in-cluster image to (``docker save``)."""
    return kind_work() / "images" / ("app_" + ref.split(":")[0].replace("/", "_") + ".tar")


# --------------------------------------------------------------------------- the Docker daemon


class DockerDaemon:
    """The private daemon: started when it does not run, stopped only by whoever started it
    (``deploy/kind/dockerd.sh stop`` also deletes node containers and restores the host)."""

    def __init__(self) -> None:
        self.started_here = False

    def running(self) -> bool:
        if os.environ.get("KIND_DOCKER_HOST"):
            return True
        pid_file = kind_work() / "dockerd.pid"
        try:
            return Path(f"/proc/{int(pid_file.read_text())}").exists()
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        with host_lock():
            if self.running():
                return
            run(["bash", str(KIND_DIR / "dockerd.sh"), "start"], timeout=90)
            self.started_here = True

    def stop(self, *, force: bool = False) -> None:
        """Stop it if this process started it and no other kind cluster still runs."""
        if not (self.started_here or force):
            return
        with host_lock():
            if not force and clusters():
                log.info("dockerd left running: other kind clusters still use it")
                return
            run(["bash", str(KIND_DIR / "dockerd.sh"), "stop"], timeout=180)
            self.started_here = False


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """One session at a time starts/stops the daemon or creates a cluster (kind's network
    and node names are machine-wide)."""
    path = kind_work() / "host.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clusters() -> list[str]:
    done = run([str(kind_work() / "bin" / "kind"), "get", "clusters"], check=False, timeout=30)
    return [line for line in done.stdout.split() if line and "No kind clusters" not in line]


def leftovers() -> list[str]:
    """What the kind tier left running on this machine: its daemon, node containers, host
    changes (for ``cli check-clean``); empty when clean."""
    script = KIND_DIR / "dockerd.sh"
    if not script.exists():
        return []
    found = run(["bash", str(script), "leftovers"], check=False, timeout=30).stdout.split("\n")
    lines = [line for line in found if line.strip()]
    if DockerDaemon().running():
        nodes = run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                "label=io.x-k8s.kind.cluster",
                "--format",
                "{{.Names}}",
            ],
            check=False,
            timeout=30,
        ).stdout.split()
        lines += [f"kind node container {name}" for name in nodes]
    return lines


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Release:
    """What ``make release`` built into a dist folder, as a user gets it."""

    dist: Path
    version: str
    image: str  # the reference the chart package and the install manifest pin
    image_archive: Path  # rollwise-image-<v>.tar (``docker save``)
    chart: Path  # rollwise-<v>.tgz
    install_manifest: Path  # rollwise-install-<v>.yaml: CRDs + operator


def release_version() -> str:
    """The kind stage's release: a pre-release of the checkout's version. It is the same on
    every run, so the image build's dependency layer (the staged pyproject.toml, which carries
    the version) stays cached."""
    text = (paths.REPO_ROOT / "pyproject.toml").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("version = ")]
    return line.split('"')[1] + "-dev.0"


def build_release(run_: HarnessRun, dist: Path) -> Release:
    """``make release`` (deploy/release/build.py) into ``dist``, image included, on the kind
    tier's daemon: the Dockerfile unchanged, its base as a build-arg (``PYTHON_IMAGE``, the
    local stand-in where python:3.11-slim cannot be pulled). The builder stage is tagged too
    (``<repository>-builder:cache``), so that its layers (the dependencies) are not dangling
    images that a prune would take from the next run's cache."""
    pins = settings()
    version = release_version()
    env = {**tool_env(), "PYTHON_IMAGE": pins["PYTHON_IMAGE"]}
    argv = [sys.executable, str(RELEASE_BUILDER), "--version", version]
    argv += ["--image", pins["ROLLWISE_IMAGE"], "--dist", str(dist)]
    argv += ["--builder-tag", f"{pins['ROLLWISE_IMAGE']}-builder:cache"]
    with run_.timed("kind: release build (make release, image included)"):
        done = run(argv, env=env, timeout=900)
    (run_.log_dir / "release-build.log").write_text(done.stdout + done.stderr)
    record = json.loads((dist / "release.json").read_text())
    if "file" not in record["image"]:
        raise KindError(f"make release built no image: {record['image']}")
    return Release(
        dist=dist,
        version=version,
        image=record["image"]["image"],
        image_archive=dist / record["image"]["file"],
        chart=dist / record["chart"],
        install_manifest=dist / f"rollwise-install-{version}.yaml",
    )


# --------------------------------------------------------------------------- a cluster


@dataclass
class KindCluster:
    """One kind cluster (one node) with the gateway and Prometheus published on loopback."""

    run_: HarnessRun
    name: str = field(default_factory=lambda: f"rw-{secrets.token_hex(3)}")
    # What `helm install` installs: the release's chart package once the stage has built it.
    chart: Path = CHART
    gateway_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    traefik_api_port: int = field(default_factory=free_port)

    @property
    def kubeconfig(self) -> Path:
        return self.run_.state_dir / f"kind-{self.name}.kubeconfig"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def traefik_api_url(self) -> str:
        return f"http://127.0.0.1:{self.traefik_api_port}"

    @property
    def kind(self) -> str:
        return str(kind_work() / "bin" / "kind")

    def env(self) -> dict[str, str]:
        return tool_env(self.kubeconfig)

    def config(self) -> dict[str, Any]:
        ports = (
            (GATEWAY_NODE_PORT, self.gateway_port),
            (PROMETHEUS_NODE_PORT, self.prometheus_port),
            (TRAEFIK_API_NODE_PORT, self.traefik_api_port),
        )
        return {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            # kindnetd cannot be built offline: the node image carries a static ptp CNI
            # (one node). With an upstream node image, kindnetd would do.
            "networking": {"disableDefaultCNI": settings()["KIND_LOCAL_IMAGES"] == "1"},
            "nodes": [
                {
                    "role": "control-plane",
                    "extraPortMappings": [
                        {"containerPort": c, "hostPort": h, "listenAddress": "127.0.0.1"}
                        for c, h in ports
                    ],
                }
            ],
        }

    def create(self) -> None:
        config = self.run_.state_dir / f"kind-{self.name}.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        with host_lock(), self.run_.timed("kind: cluster create"):
            done = run(
                [
                    self.kind,
                    "create",
                    "cluster",
                    "--name",
                    self.name,
                    "--image",
                    settings()["KIND_NODE_IMAGE"],
                    "--config",
                    str(config),
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--wait",
                    "0s",
                ],
                timeout=600,
            )
        (self.run_.log_dir / f"kind-create-{self.name}.log").write_text(done.stderr)
        with self.run_.timed("kind: node Ready"):
            self.kubectl(
                "wait", "--for=condition=Ready", "node", "--all", "--timeout=180s", timeout=200
            )

    def delete(self) -> None:
        with self.run_.timed("kind: cluster delete"):
            run([self.kind, "delete", "cluster", "--name", self.name], check=False, timeout=300)

    def load(self, *refs: str) -> None:
        """Images from the daemon into the node's containerd (``kind load docker-image``)."""
        with self.run_.timed(f"kind: load {len(refs)} image(s)"):
            run([self.kind, "load", "docker-image", "--name", self.name, *refs], timeout=600)

    def load_archive(self, archive: Path) -> None:
        with self.run_.timed(f"kind: load {archive.name}"):
            run(
                [self.kind, "load", "image-archive", "--name", self.name, str(archive)], timeout=600
            )

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [str(paths.binaries().kubectl), *args],
            env=self.env(),
            input=input,
            timeout=timeout,
            check=check,
        )

    def apply(self, *objects: dict[str, Any], server_side: bool = False) -> None:
        extra = ["--server-side", "--force-conflicts"] if server_side else []
        self.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump_all(objects))

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run([str(paths.binaries().helm), *args], env=self.env(), timeout=timeout)

    def node_container(self) -> str:
        return f"{self.name}-control-plane"

    # ------------------------------------------------------------------ in-cluster services

    def install_prometheus(self) -> None:
        self.load_archive(image_archive(settings()["KIND_PROMETHEUS_IMAGE"]))
        self.apply(*prometheus_manifests(settings()["KIND_PROMETHEUS_IMAGE"]))

    def install_traefik(self) -> None:
        binaries = paths.binaries()
        self.kubectl("apply", "--server-side", "-f", str(gateway_crds()), timeout=120)
        self.kubectl("apply", "--server-side", "-f", str(binaries.traefik_crds), timeout=120)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{name}" for name in traefik.GATEWAY_CRDS),
        )
        self.load_archive(image_archive(settings()["KIND_TRAEFIK_IMAGE"]))
        self.apply(*traefik.rbac_manifests(), *traefik_extra_rbac())
        self.apply(*traefik.gateway_manifests(GATEWAY_PORT))
        self.apply(*traefik_manifests(settings()["KIND_TRAEFIK_IMAGE"]))

    def wait_services(self, timeout: float = 180) -> None:
        """Prometheus ready, Traefik ready and the Gateway programmed."""
        with self.run_.timed("kind: prometheus + traefik ready"):
            for ns, name in ((MONITORING, "prometheus"), (traefik.GATEWAY_NAMESPACE, "traefik")):
                self.kubectl(
                    "rollout",
                    "status",
                    f"deployment/{name}",
                    "-n",
                    ns,
                    f"--timeout={int(timeout)}s",
                    timeout=timeout + 10,
                )
            wait_for(
                lambda: self.gateway_programmed(),
                timeout=60,
                message="Traefik to program the Gateway",
            )
            wait_for(
                lambda: http_ok(f"{self.prometheus_url}/-/ready"),
                timeout=60,
                message=f"Prometheus on {self.prometheus_url}",
            )

    def gateway_programmed(self) -> bool:
        gateway = self.get("gateway", traefik.GATEWAY_NAME, "-n", traefik.GATEWAY_NAMESPACE)
        conditions = (gateway.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query against the in-cluster Prometheus."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:
            result: list[dict[str, Any]] = json.loads(answer.read())["data"]["result"]
            return result

    # ------------------------------------------------------------------ the operator

    def helm_install(self, *values: str, image: str | None = None, upgrade: bool = False) -> None:
        """The chart (the release's package) as shipped: its pinned image unless ``image`` says
        otherwise, the platform's outbound allow-list (the example gates' in-cluster
        Prometheus, docs/security.md) and what a test passes set."""
        verb = ["upgrade"] if upgrade else ["install", "--create-namespace"]
        pinned: list[str] = []
        if image is not None:
            repository, tag = image.rsplit(":", 1)
            pinned = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]
        with self.run_.timed(f"kind: helm {verb[0]}"):
            self.helm(
                *verb,
                RELEASE,
                str(self.chart),
                "-n",
                OPERATOR_NAMESPACE,
                *pinned,
                "--set",
                f"outbound.allow={{{PROMETHEUS_URL}/}}",
                *values,
                "--wait",
                "--timeout",
                "300s",
                timeout=330,
            )

    def operator_pods(self) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = self.get(
            "pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}"
        )["items"]
        return pods

    def lease_holder(self) -> str:
        lease = self.get("lease", f"{RELEASE}-leader", "-n", OPERATOR_NAMESPACE)
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    def logs(self, target: str, namespace: str, *extra: str) -> str:
        return self.kubectl(
            "logs", target, "-n", namespace, "--tail=-1", *extra, check=False, timeout=60
        ).stdout

    def save_logs(self) -> None:
        """Operator, Traefik and Prometheus logs and the node's state into the run's logs."""
        out = self.run_.log_dir / f"kind-{self.name}"
        out.mkdir(parents=True, exist_ok=True)
        for pod in self.get("pods", "-A")["items"]:
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            (out / f"{ns}_{name}.log").write_text(self.logs(name, ns, "--all-containers"))
        (out / "pods.txt").write_text(self.kubectl("get", "pods", "-A", "-o", "wide").stdout)
        (out / "events.txt").write_text(
            self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout
        )
        self.run_.register_log(f"kind {self.name} operator", out)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


# --------------------------------------------------------------------------- manifests


def prometheus_manifests(image: str) -> list[dict[str, Any]]:
    """Prometheus in ``monitoring``: scrapes the app pods (annotation ``prometheus.io/scrape``,
    found by the pod-sd sidecar) with their namespace, pod, revision and service as labels
    (as the simulator exports them),
    Traefik, and the operator's metrics Service. Reachable as prometheus.monitoring:9090."""
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {
                # Debian's prometheus has no Kubernetes discovery: the pod-sd sidecar
                # (deploy/kind/prometheus/pod_sd.py) lists the pods over HTTP SD instead.
                "job_name": "pods",
                "http_sd_configs": [
                    {"url": f"http://127.0.0.1:{POD_SD_PORT}/targets", "refresh_interval": "2s"}
                ],
            },
            {
                "job_name": "traefik",
                "static_configs": [{"targets": ["traefik-api.rollwise-gateway:9000"]}],
            },
            {
                "job_name": "rollwise",
                "static_configs": [{"targets": [f"{RELEASE}-metrics.{OPERATOR_NAMESPACE}:8080"]}],
            },
        ],
    }
    labels = {"app": "prometheus"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MONITORING}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "prometheus", "namespace": MONITORING},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "rollwise-kind-prometheus"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rollwise-kind-prometheus"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "rollwise-kind-prometheus",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "prometheus", "namespace": MONITORING},
            "data": {"prometheus.yml": yaml.safe_dump(config)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "prometheus", "namespace": MONITORING},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "prometheus",
                        "containers": [
                            {
                                "name": "prometheus",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": [
                                    "--config.file=/etc/prometheus/prometheus.yml",
                                    "--storage.tsdb.path=/prometheus",
                                    "--storage.tsdb.retention.time=2h",
                                ],
                                "ports": [{"name": "web", "containerPort": 9090}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/-/ready", "port": "web"},
                                    "periodSeconds": 2,
                                },
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/prometheus"},
                                    {"name": "data", "mountPath": "/prometheus"},
                                ],
                            },
                            {
                                "name": "pod-sd",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": [
                                    "python3",
                                    "/usr/local/bin/pod_sd.py",
                                    str(POD_SD_PORT),
                                ],
                            },
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "prometheus"}},
                            {"name": "data", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "prometheus", "namespace": MONITORING},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [{"port": 9090, "targetPort": "web", "nodePort": PROMETHEUS_NODE_PORT}],
            },
        },
    ]


def gateway_crds() -> Path:
    """The Gateway API CRDs (standard channel) build.sh fetched for the in-cluster Traefik."""
    return kind_work() / f"gateway-crds-{settings()['GATEWAY_API_VERSION']}.yaml"


def traefik_extra_rbac() -> list[dict[str, Any]]:
    """What Traefik v3.7 reads beyond the kwok tier's ClusterRole: every Gateway API kind
    (it also watches TLSRoutes and ListenerSets, and waits for their informers)."""
    binding = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "rollwise-kind-traefik-routes",
    }
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "rollwise-kind-traefik-routes"},
            "rules": [
                {
                    "apiGroups": ["gateway.networking.k8s.io"],
                    "resources": ["*"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["gateway.networking.k8s.io"],
                    "resources": ["tlsroutes/status", "listenersets/status"],
                    "verbs": ["update"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rollwise-kind-traefik-routes"},
            "roleRef": binding,
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": traefik.SERVICE_ACCOUNT,
                    "namespace": traefik.GATEWAY_NAMESPACE,
                }
            ],
        },
    ]


def traefik_manifests(image: str) -> list[dict[str, Any]]:
    """Traefik as the Gateway API data plane in ``rollwise-gateway`` (its ServiceAccount and
    Gateway come from tests/harness/traefik.py, as on the kwok tier): entrypoint ``web``
    :8000 (the Gateway's listener, NodePort 30080), ``traefik`` :9000 with /metrics, /ping
    and the read-only API (NodePort 30091)."""
    ns = traefik.GATEWAY_NAMESPACE
    config = {
        "entryPoints": {"web": {"address": f":{GATEWAY_PORT}"}, "traefik": {"address": ":9000"}},
        "providers": {
            "kubernetesGateway": {
                "throttleDuration": "0s",
                "statusAddress": {"service": {"name": "traefik", "namespace": ns}},
            },
            "kubernetesCRD": {"throttleDuration": "0s", "disableClusterScopeResources": True},
        },
        "metrics": {
            "prometheus": {
                "entryPoint": "traefik",
                "addEntryPointsLabels": True,
                "addRoutersLabels": True,
                "addServicesLabels": True,
            }
        },
        "ping": {"entryPoint": "traefik"},
        "api": {"insecure": True, "dashboard": False},
        "log": {"level": "INFO"},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }
    labels = {"app": "traefik"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "traefik", "namespace": ns},
            "data": {"traefik.yml": yaml.safe_dump(config)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "traefik", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": traefik.SERVICE_ACCOUNT,
                        "containers": [
                            {
                                "name": "traefik",
                                "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "args": ["--configFile=/etc/traefik/traefik.yml"],
                                "ports": [
                                    {"name": "web", "containerPort": GATEWAY_PORT},
                                    {"name": "api", "containerPort": 9000},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ping", "port": "api"},
                                    "periodSeconds": 2,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/traefik"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "traefik"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "traefik", "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [
                    {"name": "web", "port": 80, "targetPort": "web", "nodePort": GATEWAY_NODE_PORT}
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "traefik-api", "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [
                    {
                        "name": "api",
                        "port": 9000,
                        "targetPort": "api",
                        "nodePort": TRAEFIK_API_NODE_PORT,
                    }
                ],
            },
        },
    ]


def app_container(image: str, version: str, *, error_rate: str = "0", **env: str) -> dict[str, Any]:
    """The demo app's container for a ProgressiveService template: real probes, its revision
    from the pod's label (downward API), its behaviour from env."""
    values = {"VERSION": version, "ERROR_RATE": error_rate, **env}
    return {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [
            *({"name": k, "value": v} for k, v in values.items()),
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "REVISION",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['rollwise.dev/revision']"}
                },
            },
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "24Mi"}},
    }


def migration_job(image: str, version: str) -> dict[str, Any]:
    """The app's own migration command as the run-once Job of a version."""
    return {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "migrate",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["migrate", "--to", version],
                    }
                ],
            }
        },
        "backoffLimit": 1,
        "activeDeadlineSeconds": 300,
    }


@dataclass
class Timer:
    """Wall-clock seconds since creation, for per-phase numbers in the run's notes."""

    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.started


# --------------------------------------------------------------------------- rollouts


GATE_EXAMPLE = paths.REPO_ROOT / "deploy" / "examples" / "gateway-error-rate-gate.yaml"
ROUTE_EXAMPLE = paths.REPO_ROOT / "deploy" / "examples" / "payment-gateway.yaml"
SETTLED = {"Healthy", "RolledBack", "MigrationFailed", "Degraded"}


def example_route_and_service(namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """deploy/examples/payment-gateway.yaml in ``namespace``, its host made unique to it."""
    route, service = yaml.safe_load_all(ROUTE_EXAMPLE.read_text())
    route["metadata"]["namespace"] = service["metadata"]["namespace"] = namespace
    route["spec"]["hostnames"] = [f"payment.{namespace}.example"]
    return route, service


def example_gate(namespace: str) -> dict[str, Any]:
    """deploy/examples/gateway-error-rate-gate.yaml as shipped (its Prometheus address is the
    in-cluster Service's), in ``namespace``."""
    gate: dict[str, Any] = yaml.safe_load(GATE_EXAMPLE.read_text())
    gate["metadata"]["namespace"] = namespace
    return gate


def at_version(
    service: dict[str, Any],
    image: str,
    version: str,
    *,
    error_rate: str = "0",
    steps: list[dict[str, Any]] | None = None,
    progress_deadline: int | None = None,
    **env: str,
) -> dict[str, Any]:
    """The example ProgressiveService running the demo app at ``version``: the app's own
    container (real probes, metrics annotations), its migration command as the Job."""
    out: dict[str, Any] = json.loads(json.dumps(service))
    spec = out["spec"]
    spec["version"] = version
    spec["replicas"] = 2
    template = spec["template"]
    template.setdefault("metadata", {})["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
    }
    template["spec"]["containers"] = [app_container(image, version, error_rate=error_rate, **env)]
    spec["migration"] = migration_job(image, version)
    if steps is not None:
        spec["strategy"]["canary"]["steps"] = steps
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    spec["abortScaleDownDelaySeconds"] = 2
    return out


@dataclass
class Rollout:
    """Reads one ProgressiveService back from the cluster (kubectl, the admin kubeconfig)."""

    cluster: KindCluster
    namespace: str
    name: str = "payment"

    def apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.apply(manifest)

    def get(self) -> dict[str, Any]:
        got: dict[str, Any] = self.cluster.get(
            "progressiveservice", self.name, "-n", self.namespace
        )
        return got

    def status(self) -> dict[str, Any]:
        return dict(self.get().get("status") or {})

    def wait_status(self, predicate: Any, timeout: float, message: str) -> dict[str, Any]:
        status: dict[str, Any] = wait_for(
            lambda: (s := self.status()) and predicate(s) and s,
            timeout=timeout,
            interval=1.0,
            message=f"{self.namespace}/{self.name}: {message}",
            ignore=(KindError,),
        )
        return status

    def wait_settled(self, version: str, timeout: float = 300) -> dict[str, Any]:
        """The rollout of ``version`` settled (any settled phase: a wrong one fails at once)."""

        def settled(s: dict[str, Any]) -> bool:
            generation = self.get()["metadata"]["generation"]
            return s.get("observedGeneration") == generation and s.get("phase") in SETTLED

        return self.wait_status(settled, timeout, f"version {version} settled")

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.cluster.get(
            "jobs", "-n", self.namespace, "-l", "rollwise.dev/role=migration"
        )["items"]
        return jobs


# --------------------------------------------------------------------------- the whole stage


@dataclass
class Stage:
    """A running kind stage: the daemon, the cluster, the operator installed from the release
    (its image archive loaded, its chart package installed by helm)."""

    run_: HarnessRun
    daemon: DockerDaemon
    cluster: KindCluster
    release: Release
    extra_images: dict[str, str]
    app_image: str
    teardown_tokens: tuple[int, ...] = ()

    @property
    def operator_image(self) -> str:
        return self.release.image


def start_stage(run_: HarnessRun, extra_tags: Sequence[str] = ()) -> Stage:
    """Start the daemon if needed; build the release (``make release``, the image included)
    while the cluster is created; load the release's image archive and the other images;
    Prometheus and Traefik; `helm install` of the release's chart package. ``extra_tags``:
    more tags of the one operator image (``<version>-<tag>``), for upgrade tests. Everything
    started is registered for teardown (`stop_stage` undoes it in order)."""
    pins = settings()
    daemon = DockerDaemon()
    daemon.start()
    tokens = [processes.on_teardown("kind: stop dockerd", daemon.stop)]
    cluster = KindCluster(run_)
    tokens.append(processes.on_teardown(f"kind: delete {cluster.name}", cluster.delete))
    built: list[Release] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            built.append(build_release(run_, run_.state_dir / "dist"))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    builder = threading.Thread(target=build, name="release-build")
    builder.start()
    try:
        with run_.timed("kind: stage setup"):
            cluster.create()
            cluster.install_prometheus()
            cluster.install_traefik()
            cluster.load_archive(image_archive(pins["KIND_APP_IMAGE"]))  # while it builds
            builder.join()
            if errors:
                raise errors[0]
            (release,) = built
            cluster.load_archive(release.image_archive)
            extra = {t: f"{release.image}-{t}" for t in extra_tags}
            for ref in extra.values():
                run(["docker", "tag", release.image, ref])
            if extra:  # the archive's image under more names: kind only tags it in the node
                cluster.load(*extra.values())
            cluster.wait_services()
            cluster.chart = release.chart
            cluster.helm_install()
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.save_logs()
        builder.join()
        for release in built:
            for ref in (release.image, *(f"{release.image}-{t}" for t in extra_tags)):
                run(["docker", "rmi", ref], check=False)
        raise
    finally:
        builder.join()
    return Stage(run_, daemon, cluster, release, extra, pins["KIND_APP_IMAGE"], tuple(tokens))


def stop_stage(stage: Stage) -> None:
    """Save the logs, delete the cluster, stop the daemon if this process started it."""
    for token in stage.teardown_tokens:
        processes.cancel_teardown(token)
    try:
        stage.cluster.save_logs()
    except Exception:
        log.exception("saving the kind cluster's logs")
    stage.cluster.delete()
    for ref in (stage.operator_image, *stage.extra_images.values()):
        run(["docker", "rmi", ref], check=False)
    # The build's intermediate (builder stage) images, so the data-root does not grow per run.
    run(["docker", "image", "prune", "-f"], check=False)
    with stage.run_.timed("kind: dockerd stop"):
        stage.daemon.stop()


def wait_default_service_account(cluster: KindCluster, namespace: str) -> None:
    """Pods need their namespace's default ServiceAccount, made a moment after it."""
    wait_for(
        lambda: (
            cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0
        ),
        timeout=30,
        message=f"namespace {namespace}'s default ServiceAccount",
    )
