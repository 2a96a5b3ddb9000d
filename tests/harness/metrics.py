"""Pod CPU/memory usage for the metrics API, and HPA helpers.

The chain is all real components: the kwok controller plays kubelet's ``/metrics/resource``
per node (kwok's ``Metric`` ``metrics-resource``), metrics-server scrapes it and serves
``metrics.k8s.io``, and kube-controller-manager's HPA controller reads that API and scales
through the target's scale subresource. What a pod "uses" is the only thing we decide, through
kwok's own usage objects:

- one ``ClusterResourceUsage`` named ``rollwise-usage`` holds every group rule
  (``set_cpu_usage``): a CEL expression ``pod in namespace N with labels L ? Quantity(...) :
  ...`` that kwok evaluates for every pod at every scrape, so pods created later (a scale-up)
  get their group's usage too. Rules are kept, as JSON, in the object's annotation
  ``rollwise.dev/usage-rules``; the newest rule for a pod wins. Pods no rule matches keep kwok's
  default: the ``kwok.x-k8s.io/usage-cpu`` / ``usage-memory`` annotations, else 1m / 1Mi.
- a ``ResourceUsage`` named after a pod (``set_pod_cpu_usage``) overrides every rule for that
  one pod (kwok looks those up first).

kwok integrates CPU from the current value at each scrape, so a change shows in
``metrics.k8s.io`` exactly (no blended window) at metrics-server's second scrape after it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.harness import paths

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

KWOK_GROUP = "kwok.x-k8s.io"
KWOK_VERSION = "v1alpha1"
USAGE_NAME = "rollwise-usage"
RULES_ANNOTATION = "rollwise.dev/usage-rules"

# ---------------------------------------------------------------------------- the cluster

# metrics-server's shortest allowed resolution (it refuses < 10s); kwokctl passes 15s.
METRIC_RESOLUTION = "10s"
# kube-controller-manager: HPA sync every 2s (default 15s); scale-down after 5s of lower
# recommendations (default 5 min). An HPA's own spec.behavior still overrides the latter.
HPA_SYNC_PERIOD = "2s"
HPA_DOWNSCALE_STABILIZATION = "5s"
# The kwok usage kinds served as CRDs, so tests can change usage at run time.
USAGE_CRDS = ("ResourceUsage", "ClusterResourceUsage")
RESOURCE_METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"


def resource_metrics_path(node: str) -> str:
    """kwok serves each node's kubelet ``/metrics/resource`` under this path (the ``Metric``
    ``metrics-resource`` kwokctl installs); metrics-server reads it from the node annotation."""
    return f"/metrics/nodes/{node}/metrics/resource"


def metrics_server_binary() -> Path:
    """``~/.cache/rollwise/bin/metrics-server-<v>/metrics-server`` (``paths.env`` first)."""
    bin_root = paths.cache_dir() / "bin"
    env = bin_root / "paths.env"
    found = paths.read_env_file(env) if env.exists() else {}
    folder = found.get("METRICS_SERVER_BIN") or str(
        bin_root / f"metrics-server-{paths.versions()['METRICS_SERVER_VERSION']}"
    )
    return Path(folder) / "metrics-server"


def kwokctl_options() -> dict[str, Any]:
    """KwokctlConfiguration options: run our metrics-server build (never download one)."""
    binary = metrics_server_binary()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise paths.MissingBinaryError(
            f"not built yet: metrics-server ({binary}) -- run "
            "`bash deploy/local/build-tools.sh metrics-server`"
        )
    return {
        "enableMetricsServer": True,
        "metricsServerBinary": str(binary),
        "enableCRDs": list(USAGE_CRDS),
    }


def kwokctl_components_patches() -> list[dict[str, Any]]:
    """KwokctlConfiguration ``componentsPatches``: faster metrics, a test-speed HPA controller.

    In the config file, not as ``--extra-args`` flags: kwokctl v0.7.0 indexes repeated
    ``--extra-args`` of one component by flag position (``cluster.go``
    ``mutationComponentPatches``), which panics or patches the wrong component as soon as
    another component's flag comes between."""
    return [
        {
            "name": "metrics-server",
            "extraArgs": [
                {"key": "metric-resolution", "value": METRIC_RESOLUTION, "override": True},
                # must stay below 90% of the resolution, or metrics-server refuses to start
                {"key": "kubelet-request-timeout", "value": "5s"},
            ],
        },
        {
            "name": "kube-controller-manager",
            "extraArgs": [
                {"key": "horizontal-pod-autoscaler-sync-period", "value": HPA_SYNC_PERIOD},
                {
                    "key": "horizontal-pod-autoscaler-downscale-stabilization",
                    "value": HPA_DOWNSCALE_STABILIZATION,
                },
            ],
        },
    ]


# ---------------------------------------------------------------------------- usage

# kwok's own default (kustomize/metrics/usage/usage-from-annotation.yaml), the final `else`.
DEFAULT_CPU = (
    '"kwok.x-k8s.io/usage-cpu" in pod.metadata.annotations'
    ' ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-cpu"]) : Quantity("1m")'
)
DEFAULT_MEMORY = (
    '"kwok.x-k8s.io/usage-memory" in pod.metadata.annotations'
    ' ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-memory"]) : Quantity("1Mi")'
)

# Label keys and values, namespaces, memory quantities: nothing that needs escaping in CEL.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|Ki|Mi|Gi)?$")

Selector = Mapping[str, str] | str | None


def parse_selector(selector: Selector) -> dict[str, str]:
    """``{"app": "web"}``, ``"app=web,tier=fe"`` or None (every pod): equality only."""
    if selector is None:
        return {}
    if isinstance(selector, str):
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in selector.split(","))):
            key, sep, value = part.partition("=")
            if not sep or "!" in key or value.startswith("="):
                raise ValueError(f"only k=v selectors are supported, got {part!r}")
            pairs[key.strip()] = value.strip()
        labels = pairs
    else:
        labels = dict(selector)
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"not a label selector term: {key}={value}")
    return labels


def _cel_string(value: str) -> str:
    return json.dumps(value)  # validated above: a plain double-quoted CEL string


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def rule_condition(namespace: str, labels: Mapping[str, str]) -> str:
    """The CEL condition selecting the pods of one rule."""
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"not a namespace name: {namespace!r}")
    terms = [f"pod.metadata.namespace == {_cel_string(namespace)}"]
    for key, value in sorted(labels.items()):
        terms.append(
            f"{_cel_string(key)} in pod.metadata.labels"
            f" && pod.metadata.labels[{_cel_string(key)}] == {_cel_string(value)}"
        )
    return " && ".join(f"({t})" for t in terms)


def usage_expressions(rules: list[dict[str, Any]]) -> dict[str, str]:
    """The cpu and memory expressions for ``rules`` (newest last; the newest match wins)."""
    cpu, memory = DEFAULT_CPU, DEFAULT_MEMORY
    for rule in rules:  # oldest first: each newer rule wraps the expression built so far
        cond = rule_condition(rule["namespace"], rule["labels"])
        cpu = f'({cond}) ? Quantity("{int(rule["cpu_millicores"])}m") : ({cpu})'
        if rule.get("memory"):
            memory = f"({cond}) ? Quantity({_cel_string(rule['memory'])}) : ({memory})"
    return {"cpu": cpu, "memory": memory}


def cluster_usage_manifest(rules: list[dict[str, Any]]) -> dict[str, Any]:
    expressions = usage_expressions(rules)
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": USAGE_NAME, "annotations": {RULES_ANNOTATION: json.dumps(rules)}},
        "spec": {
            "usages": [
                {"usage": {name: {"expression": expr} for name, expr in expressions.items()}}
            ]
        },
    }


class PodUsage:
    """Set what kwok pods use, as the metrics API (and so the HPA) will see it.

    ``PodUsage(api_client)``; every call is one small write to a kwok usage object."""

    def __init__(self, api_client: ApiClient) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)

    # ------------------------------------------------------------ the group rules

    def _read(self) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            obj = self.custom.get_cluster_custom_object(
                KWOK_GROUP, KWOK_VERSION, "clusterresourceusages", USAGE_NAME
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        assert isinstance(obj, dict)
        return obj

    def rules(self) -> list[dict[str, Any]]:
        """The group rules in force, oldest first."""
        obj = self._read()
        return [] if obj is None else self.rules_of(obj)

    def _write(self, change: Any) -> None:
        """Read-modify-write the rules with the object's resourceVersion; retry on conflict."""
        from kubernetes.client.exceptions import ApiException

        for _ in range(10):
            obj = self._read()
            current = [] if obj is None else self.rules_of(obj)
            manifest = cluster_usage_manifest(change(current))
            try:
                if obj is None:
                    self.custom.create_cluster_custom_object(
                        KWOK_GROUP, KWOK_VERSION, "clusterresourceusages", manifest
                    )
                else:
                    manifest["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
                    self.custom.replace_cluster_custom_object(
                        KWOK_GROUP, KWOK_VERSION, "clusterresourceusages", USAGE_NAME, manifest
                    )
                return
            except ApiException as exc:
                if exc.status not in (409,):
                    raise
        raise RuntimeError(f"ClusterResourceUsage {USAGE_NAME}: too many write conflicts")

    @staticmethod
    def rules_of(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
        raw = (obj["metadata"].get("annotations") or {}).get(RULES_ANNOTATION, "[]")
        rules: list[dict[str, Any]] = json.loads(raw)
        return rules

    def install_default(self) -> None:
        """Create ``rollwise-usage`` with no rules (kwok's default behaviour) if absent."""
        self._write(lambda rules: rules)

    def set_cpu_usage(
        self,
        namespace: str,
        selector: Selector,
        millicores: int,
        *,
        memory: str | None = None,
    ) -> None:
        """Every pod of ``namespace`` matching ``selector`` (None: all of them), now and later,
        uses ``millicores`` of CPU (and ``memory``, e.g. ``"64Mi"``, if given). Replaces an
        earlier rule for the same namespace and selector; the newest rule wins for a pod
        that several match."""
        self.set_cpu_usages(namespace, [(selector, millicores, memory)])

    def set_cpu_usages(
        self,
        namespace: str,
        rules: Sequence[tuple[Selector, int] | tuple[Selector, int, str | None]],
    ) -> None:
        """Several ``(selector, millicores[, memory])`` rules in ONE write, later ones winning:
        kwok sees all of them at the same scrape. Use it to move a group of pods from one
        picture to another without an in-between the HPA could act on (separate writes, or a
        ``set_pod_cpu_usage`` next to a group rule, reach kwok through separate watches)."""
        new: list[dict[str, Any]] = []
        for entry in rules:
            selector, millicores = entry[0], entry[1]
            memory = entry[2] if len(entry) > 2 else None
            if millicores < 0:
                raise ValueError("millicores must be >= 0")
            if memory is not None and not _QUANTITY.match(memory):
                raise ValueError(f"not a memory quantity: {memory!r}")
            rule: dict[str, Any] = {
                "namespace": namespace,
                "labels": parse_selector(selector),
                "cpu_millicores": int(millicores),
            }
            if memory is not None:
                rule["memory"] = memory
            rule_condition(namespace, rule["labels"])  # validates the namespace
            new = [r for r in new if r["labels"] != rule["labels"]] + [rule]
        keys = [(r["namespace"], r["labels"]) for r in new]

        def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [r for r in current if (r["namespace"], r["labels"]) not in keys]
            return [*kept, *new]

        self._write(change)

    def clear(self, namespace: str) -> None:
        """Drop every rule of ``namespace`` (call it when a test's namespace goes away)."""
        self._write(lambda rules: [r for r in rules if r["namespace"] != namespace])

    # ------------------------------------------------------------ one pod

    def set_pod_cpu_usage(
        self, namespace: str, pod: str, millicores: int, *, memory: str | None = None
    ) -> None:
        """Pod ``pod`` uses ``millicores``, whatever the group rules say (a kwok
        ``ResourceUsage`` named after the pod; it goes away with the namespace)."""
        from kubernetes.client.exceptions import ApiException

        usage: dict[str, Any] = {"cpu": {"value": f"{int(millicores)}m"}}
        usage["memory"] = (
            {"value": memory} if memory is not None else {"expression": DEFAULT_MEMORY}
        )
        manifest = {
            "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
            "kind": "ResourceUsage",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {"usages": [{"usage": usage}]},
        }
        try:
            self.custom.create_namespaced_custom_object(
                KWOK_GROUP, KWOK_VERSION, namespace, "resourceusages", manifest
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(
                KWOK_GROUP,
                KWOK_VERSION,
                namespace,
                "resourceusages",
                pod,
                {"spec": manifest["spec"]},
            )

    # ------------------------------------------------------------ what the metrics API says

    def pod_metrics(self, namespace: str, selector: Selector = None) -> dict[str, dict[str, Any]]:
        """``GET /apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods``: for each pod with
        metrics, ``{"cpu_millicores": int, "memory_bytes": int, "timestamp": str,
        "window": str}`` (summed over containers)."""
        labels = parse_selector(selector)
        data = self.custom.list_namespaced_custom_object(
            "metrics.k8s.io",
            "v1beta1",
            namespace,
            "pods",
            label_selector=",".join(f"{k}={v}" for k, v in labels.items()),
        )
        assert isinstance(data, dict)
        result: dict[str, dict[str, Any]] = {}
        for item in data.get("items", []):
            cpu = sum(cpu_millicores(c["usage"]["cpu"]) for c in item["containers"])
            mem = sum(memory_bytes(c["usage"]["memory"]) for c in item["containers"])
            result[item["metadata"]["name"]] = {
                "cpu_millicores": cpu,
                "memory_bytes": mem,
                "timestamp": item["timestamp"],
                "window": item["window"],
            }
        return result


def cpu_millicores(quantity: str) -> int:
    """A CPU quantity as metrics-server writes it (``250m``, ``1``, ``12345n``, ``5u``)."""
    units = {"n": 1e-6, "u": 1e-3, "m": 1.0, "": 1000.0}
    match = re.fullmatch(r"([0-9.]+)([num]?)", quantity)
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    return round(float(match.group(1)) * units[match.group(2)])


def memory_bytes(quantity: str) -> int:
    units = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)(k|M|G|Ki|Mi|Gi)?", quantity)
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return round(float(match.group(1)) * units[match.group(2) or ""])


# ---------------------------------------------------------------------------- HPA


@dataclass(frozen=True)
class ScaleTarget:
    """What an HPA scales: its ``scaleTargetRef`` plus the plural used to read ``/scale``."""

    api_version: str
    kind: str
    name: str
    plural: str

    @classmethod
    def deployment(cls, name: str) -> ScaleTarget:
        return cls("apps/v1", "Deployment", name, "deployments")

    @classmethod
    def progressive_service(cls, name: str) -> ScaleTarget:
        return cls("rollwise.dev/v1alpha1", "ProgressiveService", name, "progressiveservices")

    def ref(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}

    @property
    def group(self) -> str:
        group, sep, _ = self.api_version.partition("/")
        if not sep:
            raise ValueError(f"{self.kind}: core-group scale targets are not supported")
        return group

    @property
    def version(self) -> str:
        return self.api_version.partition("/")[2]


def hpa_manifest(
    name: str,
    target: ScaleTarget,
    *,
    min_replicas: int,
    max_replicas: int,
    cpu_utilization: int | None = None,
    cpu_average_millicores: int | None = None,
    behavior: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``autoscaling/v2`` HPA on CPU: a Utilization target (percent of requests) or an
    AverageValue target (millicores per pod), exactly one."""
    if (cpu_utilization is None) == (cpu_average_millicores is None):
        raise ValueError("give exactly one of cpu_utilization, cpu_average_millicores")
    metric_target: dict[str, Any] = (
        {"type": "Utilization", "averageUtilization": cpu_utilization}
        if cpu_utilization is not None
        else {"type": "AverageValue", "averageValue": f"{cpu_average_millicores}m"}
    )
    spec: dict[str, Any] = {
        "scaleTargetRef": target.ref(),
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": metric_target}}],
    }
    if behavior is not None:
        spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    }


def desired_replicas(
    current: int,
    usage_ratio: float,
    *,
    min_replicas: int,
    max_replicas: int,
    tolerance: float = 0.1,
) -> int:
    """The HPA formula for ready pods that all have metrics:
    ``ceil(current * currentMetric / target)``, unchanged within ``tolerance``, clamped to
    [min, max] (scale-rate limits aside: they delay, they don't change the end state)."""
    within = abs(1.0 - usage_ratio) <= tolerance
    wanted = current if within else math.ceil(usage_ratio * current)
    return max(min_replicas, min(max_replicas, wanted))


class Autoscaling:
    """Create HPAs and watch what they do to any scale target (plain dicts throughout)."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api_client)

    def create_hpa(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            "autoscaling", "v2", self.ns, "horizontalpodautoscalers", manifest
        )

    def hpa(self, name: str) -> dict[str, Any]:
        """The HPA (``status.currentReplicas``, ``desiredReplicas``, ``currentMetrics``,
        ``conditions``)."""
        obj = self.custom.get_namespaced_custom_object(
            "autoscaling", "v2", self.ns, "horizontalpodautoscalers", name
        )
        assert isinstance(obj, dict)
        return obj

    def scale(self, target: ScaleTarget) -> dict[str, Any]:
        """The target's scale subresource: ``{"spec": {"replicas"}, "status": {"replicas",
        "selector"}}``."""
        obj = self.custom.get_namespaced_custom_object_scale(
            target.group, target.version, self.ns, target.plural, target.name
        )
        assert isinstance(obj, dict)
        return obj

    def replicas(self, target: ScaleTarget) -> int:
        """``spec.replicas`` of the target's scale subresource: what the HPA last set."""
        return int(self.scale(target)["spec"].get("replicas", 0))

    def rescale_events(self, hpa_name: str) -> list[str]:
        """Messages of the HPA's ``SuccessfulRescale`` Events, oldest first
        (``New size: 8; reason: cpu resource utilization (percentage of request) above target``)."""
        from kubernetes import client

        events = client.CoreV1Api(self.api_client).list_namespaced_event(
            self.ns,
            field_selector=(
                f"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={hpa_name},"
                "reason=SuccessfulRescale"
            ),
        )
        items = sorted(events.items, key=lambda e: str(e.metadata.creation_timestamp))
        return [str(e.message) for e in items]
