"""A real Gateway API data plane: Traefik v3 on this machine, against the local apiserver.

Traefik (built from its Go module by ``deploy/local/build-tools.sh traefik``) runs as a plain
process, out of cluster: its ``kubernetesGateway`` provider gets the apiserver's endpoint, the
cluster CA and a ServiceAccount token bound to a ClusterRole with exactly what the provider
watches and writes, so it is an RBAC-checked client like any in-cluster controller.

Its ``kubernetesCRD`` provider runs beside it (Traefik's own CRDs, same version): an
HTTPRoute backendRef ``{group: traefik.io, kind: TraefikService, name: N}`` then resolves to
that provider's TraefikService ``<namespace>-N@kubernetescrd``, which is how rollwise mirrors
on Traefik (its Gateway API provider implements no RequestMirror filter: an unsupported filter
makes the rule answer 500 from an error service, see ``loadMiddlewares`` in
pkg/provider/kubernetes/gateway/httproute.go).

Routing facts the tests rely on:
- one entrypoint ``web`` on a free 127.0.0.1 port; the Gateway ``rollwise-gateway/gateway`` has
  one HTTP listener on that port (Traefik matches listeners to entrypoints by port) and accepts
  HTTPRoutes from every namespace;
- ``nativeLBByDefault``: each backendRef is sent to its Service's ClusterIP, because the API
  server refuses loopback addresses in EndpointSlices; the harness' kube-proxy stand-in
  (tests/harness/pod_http.py) forwards from there to the pods. The weighted choice between
  backendRefs, the thing under test, is Traefik's own;
- a second entrypoint ``traefik`` (127.0.0.1 only) serves ``/metrics`` (Prometheus format:
  ``traefik_service_requests_total{service,code,method,protocol}``, one ``service`` per
  backendRef), ``/ping`` and the read-only API (``/api/http/services``), from which a test
  reads the weights Traefik has actually applied, not just the ones written in the HTTPRoute.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.harness import paths
from tests.harness.cluster import LocalCluster
from tests.harness.processes import ManagedProcess
from tests.harness.prometheus import free_port, http_ok
from tests.harness.wait import wait_for

log = logging.getLogger(__name__)

GATEWAY_NAMESPACE = "rollwise-gateway"
GATEWAY_NAME = "gateway"
GATEWAY_CLASS = "rollwise-traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
SERVICE_ACCOUNT = "traefik"
GATEWAY_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
    "backendtlspolicies.gateway.networking.k8s.io",
)
# Every kind the kubernetesCRD provider watches: it waits for all of their informers.
TRAEFIK_KINDS = (
    "ingressroutes",
    "ingressroutetcps",
    "ingressrouteudps",
    "middlewares",
    "middlewaretcps",
    "serverstransports",
    "serverstransporttcps",
    "tlsoptions",
    "tlsstores",
    "traefikservices",
)


def rbac_manifests() -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and binding: what Traefik's Gateway and kubernetesCRD
    providers read and write (their informers in pkg/provider/kubernetes/gateway/client.go and
    crd/client.go; cluster-scoped lookups of the CRD provider are off)."""
    gateway_group = "gateway.networking.k8s.io"
    read = ["get", "list", "watch"]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": GATEWAY_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "rollwise-traefik-gateway"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "services", "secrets", "configmaps"],
                    "verbs": read,
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
                {"apiGroups": ["traefik.io"], "resources": list(TRAEFIK_KINDS), "verbs": read},
                {
                    "apiGroups": [gateway_group],
                    "resources": [
                        "gatewayclasses",
                        "gateways",
                        "httproutes",
                        "grpcroutes",
                        "tlsroutes",
                        "referencegrants",
                        "backendtlspolicies",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": [gateway_group],
                    "resources": [
                        "gatewayclasses/status",
                        "gateways/status",
                        "httproutes/status",
                        "grpcroutes/status",
                        "tlsroutes/status",
                        "backendtlspolicies/status",
                    ],
                    "verbs": ["update"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rollwise-traefik-gateway"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "rollwise-traefik-gateway",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": GATEWAY_NAMESPACE}
            ],
        },
    ]


def gateway_manifests(port: int) -> list[dict[str, Any]]:
    """The GatewayClass for Traefik and one Gateway listening for HTTP on ``port``."""
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "web",
                        "protocol": "HTTP",
                        "port": port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


def parent_ref() -> dict[str, str]:
    """The ``parentRefs`` entry of an HTTPRoute attached to the harness Gateway."""
    return {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}


class TraefikGateway:
    """``start()`` / ``stop()``; ``url`` is the gateway's HTTP entrypoint, ``metrics_target``
    the host:port Prometheus scrapes."""

    def __init__(
        self,
        cluster: LocalCluster,
        state_dir: Path,
        log_dir: Path,
        *,
        run_id: str,
        ready_timeout: float = 60.0,
    ) -> None:
        self.cluster = cluster
        self.state_dir = state_dir / "traefik"
        self.ready_timeout = ready_timeout
        self.web_port = free_port()
        self.api_port = free_port()
        self.binary = paths.binaries().traefik
        self.crds = paths.binaries().gateway_crds
        self.traefik_crds = paths.binaries().traefik_crds
        self.config_path = self.state_dir / "traefik.yml"
        self.log_path = log_dir / "traefik.log"
        self._process = ManagedProcess(
            "traefik",
            [str(self.binary), f"--configFile={self.config_path}"],
            log_path=log_dir / "traefik.stdout.log",
            pid_dir=state_dir / "pids",
            run_id=run_id,
            cwd=self.state_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def metrics_target(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def process(self) -> ManagedProcess:
        return self._process

    def install_crds(self) -> None:
        """The Gateway API CRDs (standard channel) and Traefik's own, server-side: they exceed
        the client-side apply annotation limit."""
        self.cluster.kubectl("apply", "--server-side", "-f", str(self.crds), timeout=120)
        self.cluster.kubectl("apply", "--server-side", "-f", str(self.traefik_crds), timeout=120)
        self.cluster.wait_established(
            *(f"crd/{name}" for name in GATEWAY_CRDS),
            *(f"crd/{kind}.traefik.io" for kind in TRAEFIK_KINDS),
        )

    def _token(self) -> str:
        return self.cluster.kubectl(
            "create", "token", SERVICE_ACCOUNT, "-n", GATEWAY_NAMESPACE, "--duration=24h"
        ).stdout.strip()

    def write_config(self, token: str) -> None:
        cluster = yaml.safe_load(self.cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
        provider: dict[str, Any] = {
            "endpoint": cluster["server"],
            "token": token,
            "nativeLBByDefault": True,
            "throttleDuration": "0s",
            "statusAddress": {"ip": "127.0.0.1"},
        }
        if "certificate-authority" in cluster:
            provider["certAuthFilePath"] = str(cluster["certificate-authority"])
        config = {
            "entryPoints": {
                "web": {"address": f"127.0.0.1:{self.web_port}"},
                "traefik": {"address": f"127.0.0.1:{self.api_port}"},
            },
            "providers": {
                "kubernetesGateway": provider,
                # TraefikServices (mirroring); no Nodes or IngressClasses are looked up.
                "kubernetesCRD": {
                    **{k: v for k, v in provider.items() if k != "statusAddress"},
                    "disableClusterScopeResources": True,
                },
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
            "log": {"level": "INFO", "filePath": str(self.log_path)},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.config_path.chmod(0o600)  # it holds the token

    def start(self) -> None:
        """Install CRDs, RBAC and the Gateway, start Traefik, wait until it has programmed the
        Gateway (its status says so) and answers ``/ping``."""
        self.binary_check()
        self.install_crds()
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac_manifests()))
        self.cluster.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump_all(gateway_manifests(self.web_port))
        )
        self.write_config(self._token())
        self._process.start()
        wait_for(
            self.ready,
            timeout=self.ready_timeout,
            message=f"Traefik to answer /ping and program the Gateway (log: {self.log_path})",
        )

    def binary_check(self) -> None:
        paths.binaries().require("traefik")
        for crds, what in ((self.crds, "Gateway API"), (self.traefik_crds, "Traefik")):
            if not crds.exists():
                raise paths.MissingBinaryError(
                    f"not built yet: {what} CRDs ({crds}) -- run `make tools`"
                )

    def gateway_programmed(self) -> bool:
        gateway = yaml.safe_load(
            self.cluster.kubectl(
                "get", "gateway", GATEWAY_NAME, "-n", GATEWAY_NAMESPACE, "-o", "yaml"
            ).stdout
        )
        conditions = (gateway.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)

    def ready(self) -> bool:
        if not self._process.alive():
            raise RuntimeError(
                f"traefik exited with {self._process.returncode()}; see {self.log_path} "
                f"and {self._process.log_path}"
            )
        return http_ok(f"http://{self.metrics_target}/ping") and self.gateway_programmed()

    def services(self) -> list[dict[str, Any]]:
        """Traefik's HTTP services as it runs them now (``/api/http/services``)."""
        import json

        with urllib.request.urlopen(
            f"{self.api_url}/api/http/services?per_page=1000", timeout=5
        ) as r:
            services: list[dict[str, Any]] = json.loads(r.read())
            return services

    def applied_weights(self, backend_prefix: str) -> dict[str, int] | None:
        """The weights of the weighted service whose backends are the Services named
        ``backend_prefix...`` (``<namespace>-<name>-``), by Traefik's backend name; None if
        Traefik runs none yet."""
        for service in self.services():
            weighted = (service.get("weighted") or {}).get("services") or []
            names = [str(b.get("name", "")) for b in weighted]
            if weighted and all(backend_service(n).startswith(backend_prefix) for n in names):
                return {n: int(b.get("weight", 1)) for n, b in zip(names, weighted, strict=True)}
        return None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_target}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def alive(self) -> bool:
        return self._process.alive()

    def stop(self) -> None:
        self._process.stop()


def backend_service(name: str) -> str:
    """The ``<namespace>-<service>-<n>`` part of a Gateway backend's Traefik service name.

    Traefik up to v3.6 names it just that; v3.7 prefixes the route and listener
    (``httproute-<ns>-<route>-gw-...-svc-<namespace>-<service>-<index>``)."""
    return name.split("@", 1)[0].rsplit("-svc-", 1)[-1]


def route_accepted(route: dict[str, Any]) -> bool:
    """An HTTPRoute whose status says the harness Gateway accepted it and resolved its refs."""
    for parent in (route.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        if ref.get("name") != GATEWAY_NAME:
            continue
        kinds = {c["type"]: c["status"] for c in parent.get("conditions") or []}
        return kinds.get("Accepted") == "True" and kinds.get("ResolvedRefs") == "True"
    return False


def get_ok(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> bool:
    """One GET answered 200 (for waiting until a route is live)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
