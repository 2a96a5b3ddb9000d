"""What we ship besides the Python package, checked without a cluster.

The Helm chart (lint, RBAC in both scopes, pod security, optional objects, values schema), the
kustomize base against the chart's default render, the examples, the Argo CD health check run
by a real Lua interpreter, and the Dockerfile. Real helm, kubectl and lua5.4 binaries: a
missing one fails the test with how to get it, it never skips.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.argocd_lua import lua_string
from tests.harness.paths import MissingBinaryError, binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rollwise"
DEPLOY = REPO / "deploy"
ARGOCD = DEPLOY / "argocd"
EXAMPLES = DEPLOY / "examples"
RELEASE = "rollwise"
RELEASE_NAMESPACE = "rollwise-system"
WATCHED = ("shop", "payments")

Obj = dict[str, Any]
Permission = tuple[str, str, str]  # (apiGroup, resource, verb)


def _grants(group: str, resource: str, verbs: str) -> set[Permission]:
    return {(group, resource, verb) for verb in verbs.split()}


# Exactly the API calls the operator makes in each namespace it watches; anything more is a
# grant nobody reviewed, anything less a 403 at run time.
NAMESPACED_PERMISSIONS = (
    _grants("rollwise.dev", "progressiveservices", "get list watch patch")
    | _grants("rollwise.dev", "progressiveservices/status", "get patch update")
    | _grants("rollwise.dev", "releasetrains", "get list watch")
    | _grants("rollwise.dev", "releasetrains/status", "get patch update")
    | _grants("rollwise.dev", "metricgates", "get list watch")
    | _grants("apps", "replicasets", "get list watch create patch update delete")
    | _grants("apps", "deployments", "get list watch patch")
    | _grants("apps", "deployments/scale", "get patch")
    | _grants("", "services", "get list watch create patch update delete")
    | _grants("", "pods", "get list watch")
    | _grants("", "pods/log", "get")
    | _grants("batch", "jobs", "get list watch create delete")
    | _grants("", "events", "create patch")
    | _grants("events.k8s.io", "events", "create patch")
    | _grants("gateway.networking.k8s.io", "httproutes", "get list watch patch update")
    | _grants("networking.k8s.io", "ingresses", "get list watch create patch update delete")
    | _grants("networking.istio.io", "virtualservices", "get list watch patch update")
    | _grants("traefik.io", "traefikservices", "get create patch")
)
# Cluster-scoped reads, needed whatever the operator watches.
CLUSTER_SCOPED_PERMISSIONS = _grants("rollwise.dev", "clustermetricgates", "get list watch") | (
    _grants("apiextensions.k8s.io", "customresourcedefinitions", "get list watch")
)
# Kopf follows namespaces only when it watches all of them.
ALL_NAMESPACES_PERMISSIONS = _grants("", "namespaces", "list watch")
# Leader election: the one Lease, in the release namespace only (a Role there).
LEADER_ELECTION_ROLE = f"{RELEASE}-leader-election"
LEADER_ELECTION_PERMISSIONS = _grants("coordination.k8s.io", "leases", "get create update")

# Labels only Helm can truthfully set; the kustomize base has every other label.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

# Every phase in DESIGN.md, section 2.
PHASES = (
    "Pending",
    "Migrating",
    "Progressing",
    "Paused",
    "Promoting",
    "Healthy",
    "RollingBack",
    "RolledBack",
    "MigrationFailed",
    "Degraded",
)


# --- the real binaries ---------------------------------------------------------------------


def built_binary(name: str) -> Path:
    """helm or kubectl as built by `make tools`; never the machine's /usr/bin/kubectl."""
    built = binaries()
    try:
        built.require(name)
    except MissingBinaryError as error:
        pytest.fail(str(error))
    path: Path = getattr(built, name)
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    return built_binary("helm")


@pytest.fixture(scope="session")
def kubectl() -> Path:
    return built_binary("kubectl")


@pytest.fixture(scope="session")
def lua() -> Path:
    found = shutil.which("lua5.4")
    if found is None:
        pytest.fail(
            "lua5.4 not found on PATH: the Argo CD health check is tested with a real Lua. "
            "Install it with `apt-get install -y lua5.4` (Debian/Ubuntu) or run `make tools`."
        )
    return Path(found)


def run(*command: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def run_ok(*command: str | Path, stdin: str | None = None) -> str:
    done = run(*command, stdin=stdin)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(map(str, command))}` exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def parse_objects(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_template(helm: Path, *values: str, include_crds: bool = False) -> list[Obj]:
    sets = [arg for value in values for arg in ("--set", value)]
    crds = ["--include-crds"] if include_crds else []
    return parse_objects(
        run_ok(helm, "template", RELEASE, CHART, "-n", RELEASE_NAMESPACE, *crds, *sets)
    )


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def the_only(objects: Iterable[Obj], kind: str) -> Obj:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def permissions(role: Obj) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def watch_roles(objects: Iterable[Obj], kind: str) -> list[Obj]:
    """Roles or RoleBindings of the watched namespaces: all but the leader election's."""
    return [
        obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] != LEADER_ELECTION_ROLE
    ]


def operator_container(objects: Iterable[Obj]) -> Obj:
    deployment = the_only(objects, "Deployment")
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"expected the operator container only, found {containers}"
    return containers[0]


# --- renders shared by the tests -----------------------------------------------------------

NAMESPACED_VALUE_SETS = {
    "watchNamespaces": (f"watchNamespaces={{{','.join(WATCHED)}}}",),
    "watchNamespaces+scope": (
        f"watchNamespaces={{{','.join(WATCHED)}}}",
        "rbac.scope=namespaced",
    ),
}


@pytest.fixture(scope="module")
def default_render(helm: Path) -> list[Obj]:
    return helm_template(helm)


@pytest.fixture(scope="module", params=list(NAMESPACED_VALUE_SETS))
def namespaced_render(request: pytest.FixtureRequest, helm: Path) -> list[Obj]:
    return helm_template(helm, *NAMESPACED_VALUE_SETS[request.param])


@pytest.fixture(scope="module")
def kustomize_render(kubectl: Path) -> list[Obj]:
    return parse_objects(run_ok(kubectl, "kustomize", DEPLOY))


# --- chart ---------------------------------------------------------------------------------


def test_chart_app_version_follows_pyproject() -> None:
    project_version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project_version


@pytest.mark.parametrize(
    "values",
    [
        (),
        *NAMESPACED_VALUE_SETS.values(),
        ("metrics.serviceMonitor.enabled=true", "dashboards.enabled=true"),
    ],
    ids=["default", *NAMESPACED_VALUE_SETS, "optional-objects"],
)
def test_helm_lint_is_clean(helm: Path, values: tuple[str, ...]) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    done = run(helm, "lint", "--strict", CHART, *sets)

    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "[WARNING]" not in report and "[ERROR]" not in report, report


def test_cluster_scope_grants_exactly_the_api_calls_the_operator_makes(
    default_render: list[Obj],
) -> None:
    cluster_role = the_only(default_render, "ClusterRole")
    binding = the_only(default_render, "ClusterRoleBinding")

    assert permissions(cluster_role) == (
        NAMESPACED_PERMISSIONS | CLUSTER_SCOPED_PERMISSIONS | ALL_NAMESPACES_PERMISSIONS
    )
    assert watch_roles(default_render, "Role") == []
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
    ]


def test_namespaced_scope_grants_a_role_per_watched_namespace_only(
    namespaced_render: list[Obj],
) -> None:
    roles = watch_roles(namespaced_render, "Role")
    bindings = watch_roles(namespaced_render, "RoleBinding")
    cluster_roles = of_kind(namespaced_render, "ClusterRole")

    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(WATCHED)
    for role in roles:
        assert permissions(role) == NAMESPACED_PERMISSIONS
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == sorted(WATCHED)
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
        ]
    # Cluster-wide, only what has no namespace: no ReplicaSets, no namespace list.
    assert [permissions(role) for role in cluster_roles] == [CLUSTER_SCOPED_PERMISSIONS]
    assert not any(resource == "replicasets" for _, resource, _ in permissions(cluster_roles[0]))


def test_leader_election_may_touch_leases_in_the_release_namespace_only(
    default_render: list[Obj], namespaced_render: list[Obj]
) -> None:
    for render in (default_render, namespaced_render):
        role = {r["metadata"]["name"]: r for r in of_kind(render, "Role")}[LEADER_ELECTION_ROLE]
        binding = {b["metadata"]["name"]: b for b in of_kind(render, "RoleBinding")}[
            LEADER_ELECTION_ROLE
        ]
        assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert permissions(role) == LEADER_ELECTION_PERMISSIONS
        assert binding["metadata"]["namespace"] == RELEASE_NAMESPACE
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": LEADER_ELECTION_ROLE,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
        ]
        for cluster_role in of_kind(render, "ClusterRole"):
            assert not any(res == "leases" for _, res, _ in permissions(cluster_role))


def test_namespaced_scope_without_namespaces_is_refused(helm: Path) -> None:
    done = run(helm, "template", RELEASE, CHART, "--set", "rbac.scope=namespaced")

    assert done.returncode != 0
    assert "rbac.scope=namespaced needs watchNamespaces" in done.stderr


def _rbac_rules(objects: Iterable[Obj]) -> Iterator[tuple[str, Obj]]:
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj.get("rules", []):
                yield f"{obj['kind']} {obj['metadata']['name']}", rule


def assert_no_secrets_and_no_wildcards(objects: list[Obj]) -> None:
    rules = list(_rbac_rules(objects))
    assert rules, "no RBAC rules rendered at all"
    for owner, rule in rules:
        words = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule["verbs"]]
        assert "*" not in words, f"{owner} has a wildcard: {rule}"
        assert not any("secret" in word.lower() for word in words), f"{owner}: {rule}"
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, f"{owner}: {rule}"


def test_no_rbac_rule_touches_secrets_or_uses_wildcards(
    default_render: list[Obj], namespaced_render: list[Obj]
) -> None:
    assert_no_secrets_and_no_wildcards(default_render)
    assert_no_secrets_and_no_wildcards(namespaced_render)


def test_operator_args_follow_the_watch_mode(
    default_render: list[Obj], namespaced_render: list[Obj]
) -> None:
    cluster_args = operator_container(default_render)["args"]
    namespaced_args = operator_container(namespaced_render)["args"]

    assert cluster_args[0] == "run"
    assert "--all-namespaces" in cluster_args
    assert not any(arg.startswith("--namespace") for arg in cluster_args)
    assert "--all-namespaces" not in namespaced_args
    assert [arg for arg in namespaced_args if arg.startswith("--namespace")] == [
        f"--namespace={namespace}" for namespace in WATCHED
    ]
    for flag in (
        "--workers=8",
        "--log-level=info",
        "--log-format=json",
        "--metrics-port=8080",
        "--health-port=8081",
    ):
        assert flag in cluster_args


def test_operator_cli_accepts_the_args_the_chart_renders(
    default_render: list[Obj], namespaced_render: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser itself, not a process: running `rollwise run` would start the operator.
    from rollwise.cli.main import _parser

    monkeypatch.delenv("ROLLWISE_NAMESPACES", raising=False)  # the parser's default

    cluster = _parser().parse_args(operator_container(default_render)["args"])
    namespaced = _parser().parse_args(operator_container(namespaced_render)["args"])

    assert (cluster.command, cluster.all_namespaces, cluster.namespaces) == ("run", True, [])
    assert namespaced.namespaces == list(WATCHED) and not namespaced.all_namespaces
    assert (cluster.workers, cluster.log_level, cluster.log_format) == (8, "info", "json")
    assert (cluster.metrics_port, cluster.health_port) == (8080, 8081)
    assert cluster.leader_elect and cluster.leader_elect_lease_name == f"{RELEASE}-leader"
    assert cluster.leader_elect_namespace == RELEASE_NAMESPACE
    assert (
        cluster.leader_elect_lease_duration,
        cluster.leader_elect_renew_deadline,
        cluster.leader_elect_retry_period,
    ) == (15, 10, 2)


def test_operator_pod_meets_the_restricted_pod_security_standard(
    default_render: list[Obj],
) -> None:
    deployment = the_only(default_render, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(default_render)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any("hostPath" in volume for volume in pod["volumes"])
    tmp = {volume["name"]: volume for volume in pod["volumes"]}["tmp"]
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_two_replicas_by_default_one_leading_rolled_without_downtime(
    default_render: list[Obj],
) -> None:
    deployment = the_only(default_render, "Deployment")
    container = operator_container(default_render)
    pod = deployment["spec"]["template"]["spec"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert "--leader-elect" in container["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )
    assert container["image"] == "ghcr.io/rollwise/rollwise:0.1.0"
    assert ports == {"metrics": 8080, "health": 8081}
    # Liveness for leader and standby alike; readiness once the watch cache is filled.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    [preferred] = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["podAntiAffinity"]
    )


def test_a_disruption_budget_keeps_one_operator_through_a_drain(default_render: list[Obj]) -> None:
    budget = the_only(default_render, "PodDisruptionBudget")
    deployment = the_only(default_render, "Deployment")

    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert budget["spec"]["minAvailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )


def test_one_replica_without_election_is_recreated_with_no_budget_and_no_lease(
    helm: Path,
) -> None:
    single = helm_template(helm, "replicas=1", "leaderElection.enabled=false")
    deployment = the_only(single, "Deployment")
    container = operator_container(single)

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(arg.startswith("--leader-elect") for arg in container["args"])
    assert of_kind(single, "PodDisruptionBudget") == []
    assert of_kind(single, "Role") == []
    assert "affinity" not in deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("replicas=2", "leaderElection.enabled=false"), "replicas > 1 needs leaderElection"),
        (("leaderElection.renewDeadlineSeconds=15",), "renewDeadlineSeconds must be below"),
    ],
)
def test_unsafe_replica_and_election_settings_are_refused(
    helm: Path, values: tuple[str, ...], message: str
) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    done = run(helm, "template", RELEASE, CHART, *sets)

    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_metrics_service_selects_the_operator_pod(default_render: list[Obj]) -> None:
    deployment = the_only(default_render, "Deployment")
    service = the_only(default_render, "Service")

    assert service["metadata"]["name"] == f"{RELEASE}-metrics"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_service_monitor_and_dashboard_are_off_by_default_and_render_when_enabled(
    helm: Path, default_render: list[Obj]
) -> None:
    enabled = helm_template(helm, "metrics.serviceMonitor.enabled=true", "dashboards.enabled=true")
    service = the_only(enabled, "Service")
    monitor = the_only(enabled, "ServiceMonitor")
    dashboard = the_only(enabled, "ConfigMap")

    assert of_kind(default_render, "ServiceMonitor") == []
    assert of_kind(default_render, "ConfigMap") == []
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["rollwise.json"]) == json.loads(
        (CHART / "dashboards" / "rollwise.json").read_text()
    )


def test_dashboard_charts_every_operator_metric() -> None:
    dashboard = json.loads((CHART / "dashboards" / "rollwise.json").read_text())
    queries = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )

    assert "rollwise_rollouts{" in queries and "by (phase)" in queries
    assert "rollwise_step_transitions_total" in queries
    assert "rollwise_gate_verdicts_total" in queries and "by (gate, verdict)" in queries
    assert "rollwise_reconcile_duration_seconds_bucket" in queries
    assert "rollwise_leader" in queries and "rollwise_api_writes_total" in queries
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.parametrize(
    "bad_value",
    [
        "logLevel=verbose",
        "logFormat=xml",
        "workers=0",
        "watchNamespaces={Not_A_Namespace}",
        "rbac.scope=everywhere",
        "watchNamespace={shop}",  # a typo of watchNamespaces must not pass silently
        "replicas=0",
        "podAntiAffinity=required",
        "leaderElection.leaseDuration=15",  # a typo of leaseDurationSeconds
        "podDisruptionBudget.maxUnavailable=1",
    ],
)
def test_values_schema_rejects_invalid_values(helm: Path, bad_value: str) -> None:
    done = run(helm, "template", RELEASE, CHART, "--set", bad_value)

    assert done.returncode != 0, f"{bad_value} was accepted"
    assert "schema" in done.stderr, done.stderr


# --- kustomize base ------------------------------------------------------------------------


def _without_helm_only_labels(obj: Obj) -> Obj:
    obj = json.loads(json.dumps(obj))
    holders = [obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})]
    for metadata in holders:
        for label in HELM_ONLY_LABELS:
            metadata.get("labels", {}).pop(label, None)
    return obj


def _by_identity(objects: Iterable[Obj]) -> dict[tuple[str, str, str], Obj]:
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]): obj
        for obj in objects
    }


def _crd_names(objects: Iterable[Obj]) -> set[str]:
    return {obj["metadata"]["name"] for obj in of_kind(objects, "CustomResourceDefinition")}


def test_kustomize_deploy_is_the_chart_default_render_plus_its_namespace(
    helm: Path, kustomize_render: list[Obj]
) -> None:
    chart_render = helm_template(helm, include_crds=True)
    chart = _by_identity(
        _without_helm_only_labels(obj)
        for obj in chart_render
        if obj["kind"] != "CustomResourceDefinition"
    )
    kustomized = _by_identity(
        obj for obj in kustomize_render if obj["kind"] != "CustomResourceDefinition"
    )
    namespace = kustomized.pop(("Namespace", "", RELEASE_NAMESPACE), None)

    # Helm creates it with --create-namespace; `kubectl apply -k` needs it in the base.
    assert namespace is not None
    # kustomize refuses single files outside its directory (crds/*.yaml), but takes crds/ as
    # a whole once it holds a kustomization.yaml; from then on the base must include them.
    if (REPO / "crds" / "kustomization.yaml").exists():
        assert _crd_names(kustomize_render) == _crd_names(chart_render)
    else:
        assert _crd_names(kustomize_render) == set()
    assert sorted(kustomized) == sorted(chart)
    for identity, expected in chart.items():
        if kustomized[identity] != expected:
            diff = difflib.unified_diff(
                yaml.safe_dump(expected).splitlines(),
                yaml.safe_dump(kustomized[identity]).splitlines(),
                "helm template",
                "kubectl kustomize deploy/",
                lineterm="",
            )
            pytest.fail(f"{identity} differs:\n" + "\n".join(diff))


def test_kustomize_base_grants_no_secrets_and_no_wildcards(kustomize_render: list[Obj]) -> None:
    assert_no_secrets_and_no_wildcards(kustomize_render)


# --- examples ------------------------------------------------------------------------------


def test_examples_gate_and_service_agree_on_gate_names_and_args() -> None:
    [service] = parse_objects((EXAMPLES / "payment.yaml").read_text())
    [gate] = parse_objects((EXAMPLES / "error-rate-gate.yaml").read_text())
    canary = service["spec"]["strategy"]["canary"]
    step_gates = [
        ref for step in canary["steps"] if "analysis" in step for ref in step["analysis"]["gates"]
    ]
    gate_refs = [*step_gates, *canary["analysis"]["gates"]]
    declared_args = {arg["name"] for arg in gate["spec"]["args"]}

    assert (service["apiVersion"], service["kind"]) == (
        "rollwise.dev/v1alpha1",
        "ProgressiveService",
    )
    assert (gate["apiVersion"], gate["kind"]) == ("rollwise.dev/v1alpha1", "MetricGate")
    # A MetricGate is namespaced: it must live beside the services that name it.
    assert gate["metadata"]["namespace"] == service["metadata"]["namespace"] == "shop"
    assert step_gates, "no analysis step"
    for ref in gate_refs:
        assert ref["name"] == gate["metadata"]["name"]
        assert set(ref["args"]) == declared_args
    query = gate["spec"]["provider"]["prometheus"]["query"]
    assert "{{args.service}}" in query and "{{canary.revision}}" in query
    assert gate["spec"]["thresholdRange"] == {"max": 0.05}


def test_payment_example_steps_through_25_50_75_percent() -> None:
    [service] = parse_objects((EXAMPLES / "payment.yaml").read_text())
    spec = service["spec"]
    weights = [
        step["setWeight"] for step in spec["strategy"]["canary"]["steps"] if "setWeight" in step
    ]

    assert weights == [25, 50, 75]
    assert spec["replicas"] == 4 and spec["version"] == "1.0.0"
    assert spec["service"] == {"port": 80, "targetPort": 8080}
    assert spec["strategy"]["canary"]["trafficRouting"] == {"replicas": {}}
    migration = spec["migration"]
    assert migration["template"]["spec"]["containers"][0]["command"] == [
        "migrate",
        "--to",
        spec["version"],
    ]
    assert (migration["backoffLimit"], migration["activeDeadlineSeconds"]) == (1, 600)


def test_gateway_example_routes_through_its_httproute_and_gates_on_gateway_metrics() -> None:
    from rollwise.api.service import ServiceSpec

    route, service = parse_objects((EXAMPLES / "payment-gateway.yaml").read_text())
    [gate] = parse_objects((EXAMPLES / "gateway-error-rate-gate.yaml").read_text())
    spec = ServiceSpec.model_validate(service["spec"])
    gateway_api = spec.strategy.canary.traffic_routing.gateway_api

    assert route["kind"] == "HTTPRoute" and gateway_api is not None
    assert gateway_api.http_route == route["metadata"]["name"]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "payment-stable", "port": 80}]
    canary = service["spec"]["strategy"]["canary"]
    refs = [r for s in canary["steps"] if "analysis" in s for r in s["analysis"]["gates"]]
    assert {r["name"] for r in [*refs, *canary["analysis"]["gates"]]} == {gate["metadata"]["name"]}
    query = gate["spec"]["provider"]["prometheus"]["query"]
    assert "traefik_service_requests_total" in query and "{{args.service}}-canary-" in query
    assert gate["metadata"]["namespace"] == service["metadata"]["namespace"]


# --- Argo CD health check ------------------------------------------------------------------


def to_lua(value: Any) -> str:
    """A Lua table literal of a YAML document, shaped as Argo CD hands `obj` to the script."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no JSON form, so Argo CD never passes it")
        return repr(value)
    if isinstance(value, datetime.datetime | datetime.date):
        # The API server serves timestamps as RFC 3339 strings.
        return lua_string(value.isoformat().replace("+00:00", "Z"))
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        if any(item is None for item in value):
            raise ValueError("a nil inside a Lua sequence would cut it short")
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        fields = (
            f"[{lua_string(str(key))}] = {to_lua(item)}"
            for key, item in value.items()
            if item is not None
        )
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as Lua: {value!r}")


def run_health_check(lua: Path, obj: Obj) -> tuple[str, str]:
    """Run health.lua as Argo CD does: `obj` global in, {status, message} table out."""
    program = "\n".join(
        [
            f"obj = {to_lua(obj)}",
            f"local check = assert(loadfile({lua_string(str(ARGOCD / 'health.lua'))}))",
            "local hs = check()",
            'io.write(tostring(hs.status), "\\n", tostring(hs.message))',
        ]
    )
    output = run_ok(lua, "-", stdin=program)
    status, _, message = output.partition("\n")
    return status, message


def test_lua_table_literal_keeps_every_value(lua: Path) -> None:
    tricky = {
        "text": 'quote " backslash \\ newline \n bell \x07 then 7 and é',
        "list": [1, 2.5, True],
    }
    program = "\n".join(
        [
            f"local t = {to_lua(tricky)}",
            'io.write(t.text, "|", #t.list, "|", tostring(t.list[2]), "|", tostring(t.list[3]))',
        ]
    )

    assert run_ok(lua, "-", stdin=program) == f"{tricky['text']}|3|2.5|true"


HEALTH_TESTS = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize(
    "case", HEALTH_TESTS, ids=[Path(case["inputPath"]).stem for case in HEALTH_TESTS]
)
def test_argocd_health_check_maps_status_to_health(lua: Path, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())

    status, message = run_health_check(lua, obj)

    assert (status, message) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


def test_argocd_health_check_prints_whole_numbers_that_argo_cd_passes_as_floats(
    lua: Path,
) -> None:
    # Argo CD decodes JSON numbers to float64; lua5.4 would print 25.0 where gopher-lua says 25.
    obj = yaml.safe_load((ARGOCD / "testdata" / "progressing.yaml").read_text())
    obj["metadata"]["generation"] = float(obj["metadata"]["generation"])
    obj["status"]["observedGeneration"] = float(obj["status"]["observedGeneration"])
    obj["status"]["canaryWeight"] = 25.0

    assert run_health_check(lua, obj) == ("Progressing", "Progressing: canary weight 25%")


def test_argocd_health_samples_cover_every_phase() -> None:
    phases = {
        yaml.safe_load((ARGOCD / case["inputPath"]).read_text()).get("status", {}).get("phase")
        for case in HEALTH_TESTS
    }

    assert set(PHASES) <= phases


def test_argocd_readme_embeds_the_current_health_check() -> None:
    readme = (ARGOCD / "README.md").read_text()
    script = (ARGOCD / "health.lua").read_text()
    indented = "".join(
        f"    {line}" if line.strip() else line for line in script.splitlines(keepends=True)
    )

    assert (
        "resource.customizations.health.rollwise.dev_ProgressiveService: |\n" + indented in readme
    )


# --- image ---------------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[str]]:
    """Instructions of each stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_image_runs_the_operator_from_a_venv_as_non_root() -> None:
    *_, runtime = _dockerfile_stages()
    copies = [line for line in runtime if line.startswith("COPY")]

    assert copies == ["COPY --from=builder /opt/rollwise /opt/rollwise"]
    assert "USER 65532:65532" in runtime
    assert 'ENTRYPOINT ["rollwise"]' in runtime
    assert 'CMD ["run", "--all-namespaces"]' in runtime
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (REPO / "Dockerfile").read_text()


def test_dockerignore_sends_only_what_the_wheel_is_built_from() -> None:
    builder, *_ = _dockerfile_stages()
    copied = {
        source
        for line in builder
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    }
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert patterns[0] == "*"
    assert {pattern.removeprefix("!") for pattern in patterns if pattern.startswith("!")} == copied
