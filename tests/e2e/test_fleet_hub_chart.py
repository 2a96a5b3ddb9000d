"""The fleet hub in the chart (off by default): its own Deployment, ServiceAccount and Lease,
and least privilege: its FleetRollouts, their Events, `get` on the named member kubeconfig
Secrets only. Rendered with real helm; then installed into the real control plane, checked
with `kubectl auth can-i`, and run (`rollwise run --fleet-hub`) as the chart's ServiceAccount,
as tests/e2e/test_helm_install.py does for the operator.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.conftest import Tools
from tests.e2e.test_helm_install import DENIED, parse_objects
from tests.e2e.test_packaging_static import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    built_binary,
    helm_template,
    of_kind,
    permissions,
    run,
)
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

Obj = dict[str, Any]
FLEETS = ("fleets-eu", "fleets-us")
MEMBER_SECRETS = ("eu-1-kubeconfig", "us-1-kubeconfig")
HUB = f"{RELEASE}-fleet-hub"
HUB_VALUES = (
    "fleetHub.enabled=true",
    f"fleetHub.namespaces={{{','.join(FLEETS)}}}",
    f"fleetHub.memberSecrets={{{','.join(MEMBER_SECRETS)}}}",
)


def _grants(group: str, resource: str, verbs: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for verb in verbs.split()}


HUB_NAMESPACED = (
    _grants("rollwise.dev", "fleetrollouts", "get list watch")
    | _grants("rollwise.dev", "fleetrollouts/status", "get patch")
    | _grants("", "events", "create patch")
    | _grants("", "secrets", "get")
)


def hub_objects(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["metadata"]["name"].startswith(HUB)]


def hub_container(objects: list[Obj]) -> Obj:
    deployment = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}[HUB]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def helm() -> Path:
    return built_binary("helm")


@pytest.fixture(scope="module")
def hub_render(helm: Path) -> list[Obj]:
    return helm_template(helm, *HUB_VALUES)


# --------------------------------------------------------------------------- rendered


def test_the_fleet_hub_is_off_by_default(helm: Path) -> None:
    assert hub_objects(helm_template(helm)) == []


def test_the_hub_is_its_own_deployment_that_elects_its_own_leader(hub_render: list[Obj]) -> None:
    operator = {d["metadata"]["name"]: d for d in of_kind(hub_render, "Deployment")}[RELEASE]
    hub = {d["metadata"]["name"]: d for d in of_kind(hub_render, "Deployment")}[HUB]
    args = hub_container(hub_render)["args"]

    assert args[:2] == ["run", "--fleet-hub"]
    assert [a for a in args if a.startswith("--namespace")] == [f"--namespace={n}" for n in FLEETS]
    assert "--leader-elect" in args and f"--leader-elect-lease-name={HUB}" in args
    assert f"--leader-elect-namespace={RELEASE_NAMESPACE}" in args
    assert hub["spec"]["replicas"] == 2
    assert hub["spec"]["template"]["spec"]["serviceAccountName"] == HUB
    # The operator's Service and disruption budget select by these: never a hub pod.
    selector = operator["spec"]["selector"]["matchLabels"]
    hub_labels = hub["spec"]["template"]["metadata"]["labels"]
    assert not all(hub_labels.get(k) == v for k, v in selector.items())
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in of_kind(hub_render, kind):
            chosen = obj["spec"]["selector"]
            chosen = chosen.get("matchLabels", chosen)
            assert not all(hub_labels.get(k) == v for k, v in chosen.items()), obj


def test_the_hub_may_get_the_named_member_secrets_and_nothing_else_secret(
    hub_render: list[Obj],
) -> None:
    roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(hub_render, "Role")
    }

    for namespace in FLEETS:
        role = roles[(namespace, HUB)]
        assert permissions(role) == HUB_NAMESPACED
        [secret_rule] = [r for r in role["rules"] if "secrets" in r["resources"]]
        assert secret_rule["verbs"] == ["get"]
        assert secret_rule["resourceNames"] == list(MEMBER_SECRETS)
        for rule in role["rules"]:
            assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]
    lease = roles[(RELEASE_NAMESPACE, f"{HUB}-leader-election")]
    assert permissions(lease) == _grants("coordination.k8s.io", "leases", "get update create")
    hub_cluster_role = {c["metadata"]["name"]: c for c in of_kind(hub_render, "ClusterRole")}[HUB]
    assert permissions(hub_cluster_role) == _grants(
        "apiextensions.k8s.io", "customresourcedefinitions", "get list watch"
    )
    # The operator's own grants are unchanged: still no Secret anywhere.
    for obj in of_kind(hub_render, "ClusterRole") + of_kind(hub_render, "Role"):
        if not obj["metadata"]["name"].startswith(HUB):
            assert not any(res == "secrets" for _, res, _ in permissions(obj))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("fleetHub.enabled=true",), "fleetHub.enabled needs fleetHub.namespaces"),
        (
            (*HUB_VALUES, "leaderElection.enabled=false", "replicas=1"),
            "fleetHub.replicas > 1 needs leaderElection.enabled",
        ),
    ],
)
def test_unsafe_hub_settings_are_refused(helm: Path, values: tuple[str, ...], message: str) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    done = run(helm, "template", RELEASE, CHART, *sets)

    assert done.returncode != 0
    assert message in done.stderr


def test_the_hub_cli_accepts_the_args_the_chart_renders(
    hub_render: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollwise.cli.main import _parser

    monkeypatch.delenv("ROLLWISE_NAMESPACES", raising=False)

    args = _parser().parse_args(hub_container(hub_render)["args"])

    assert args.fleet_hub and args.namespaces == list(FLEETS)
    assert (args.fleet_poll_interval, args.fleet_resync_interval) == (5, 30)
    assert args.leader_elect and args.leader_elect_lease_name == HUB


# --------------------------------------------------------------------------- installed


@dataclass(frozen=True)
class HubRelease:
    name: str
    namespace: str
    fleets: str  # the namespace holding FleetRollouts and member Secrets
    objects: list[Obj]

    @property
    def hub(self) -> str:
        return f"{self.name}-fleet-hub"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.hub}"


@pytest.fixture
def hub_release(
    cluster: LocalCluster, tools: Tools, namespace: str, rollwise_crds: None
) -> Iterator[HubRelease]:
    suffix = secrets.token_hex(3)
    name = f"rollwise-hub-{suffix}"
    release_ns = f"rollwise-system-{suffix}"
    admin = cluster.kubeconfig
    try:
        tools.helm_ok(
            "install",
            name,
            CHART,
            "-n",
            release_ns,
            "--create-namespace",
            "--wait",
            "--timeout",
            "90s",
            "--set",
            "fleetHub.enabled=true",
            "--set",
            f"fleetHub.namespaces={{{namespace}}}",
            "--set",
            f"fleetHub.memberSecrets={{{MEMBER_SECRETS[0]}}}",
            "--set",
            f"watchNamespaces={{{namespace}}}",
            kubeconfig=admin,
        )
        manifest = tools.helm_ok("get", "manifest", name, "-n", release_ns, kubeconfig=admin)
        yield HubRelease(name, release_ns, namespace, parse_objects(manifest))
    finally:
        uninstall = tools.helm(
            "uninstall", name, "-n", release_ns, "--wait", "--timeout", "60s", kubeconfig=admin
        )
        cluster.kubectl("delete", "namespace", release_ns, "--wait=false", "--ignore-not-found")
        assert uninstall.returncode == 0, uninstall.stderr


def _can_i(tools: Tools, cluster: LocalCluster, user: str, *args: str) -> bool:
    done = tools.kubectl("auth", "can-i", *args, "--as", user, kubeconfig=cluster.kubeconfig)
    answer = done.stdout.strip()
    assert (done.returncode, answer) in {(0, "yes"), (1, "no")}, (done.returncode, done.stderr)
    return answer == "yes"


def test_the_installed_hub_gets_only_the_named_member_secret(
    hub_release: HubRelease, cluster: LocalCluster, tools: Tools
) -> None:
    user, ns = hub_release.user, hub_release.fleets

    assert _can_i(tools, cluster, user, "get", f"secrets/{MEMBER_SECRETS[0]}", "-n", ns)
    assert not _can_i(tools, cluster, user, "get", f"secrets/{MEMBER_SECRETS[1]}", "-n", ns)
    for verb in ("list", "watch"):
        assert not _can_i(tools, cluster, user, verb, "secrets", "-n", ns)
    assert not _can_i(tools, cluster, user, "get", f"secrets/{MEMBER_SECRETS[0]}", "-n", "default")
    fleets = "fleetrollouts.rollwise.dev"
    assert _can_i(tools, cluster, user, "patch", fleets, "--subresource=status", "-n", ns)
    assert not _can_i(tools, cluster, user, "patch", fleets, "-n", ns)
    assert not _can_i(tools, cluster, user, "get", "progressiveservices.rollwise.dev", "-n", ns)
    lease = f"leases.coordination.k8s.io/{hub_release.hub}"
    assert _can_i(tools, cluster, user, "update", lease, "-n", hub_release.namespace)
    other = f"leases.coordination.k8s.io/{hub_release.name}-leader"
    assert not _can_i(tools, cluster, user, "update", other, "-n", hub_release.namespace)


def _member_secret(name: str, namespace: str) -> Obj:
    """A member kubeconfig whose server refuses every connection: the member is unreachable."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "eu-1", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "hub", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "eu-1", "context": {"cluster": "eu-1", "user": "hub"}}],
        "current-context": "eu-1",
    }
    data = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"kubeconfig": data},
    }


def test_the_hub_as_the_chart_service_account_leads_reads_its_secret_and_writes_status(
    hub_release: HubRelease,
    cluster: LocalCluster,
    tools: Tools,
    harness_run: HarnessRun,
    api_client: ApiClient,
    tmp_path: Path,
) -> None:
    ns = hub_release.fleets
    admin = cluster.kubeconfig
    token = tools.kubectl_ok(
        "create",
        "token",
        hub_release.hub,
        "-n",
        hub_release.namespace,
        "--duration=1h",
        kubeconfig=admin,
    ).strip()
    kubeconfig = cluster.token_kubeconfig(token, tmp_path / "hub.kubeconfig")
    fleet = {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "FleetRollout",
        "metadata": {"name": "payment", "namespace": ns},
        "spec": {
            "target": {"namespace": "shop", "service": "payment"},
            "version": "2.0.0",
            "clusters": [{"name": "eu-1", "kubeconfigSecretRef": {"name": MEMBER_SECRETS[0]}}],
            "waves": [{"name": "all"}],
        },
    }
    manifests = yaml.safe_dump_all([_member_secret(MEMBER_SECRETS[0], ns), fleet])
    tools.kubectl_ok("apply", "-f", "-", input=manifests, kubeconfig=admin)
    hub = OperatorProcess(
        harness_run,
        kubeconfig,
        [ns],
        name=f"fleet-hub-{hub_release.name}",
        env={"ROLLWISE_NAMESPACES": ""},
        extra_args=[
            "--fleet-hub",
            "--fleet-poll-interval",
            "1",
            "--leader-elect",
            f"--leader-elect-namespace={hub_release.namespace}",
            f"--leader-elect-lease-name={hub_release.hub}",
        ],
    )
    custom = client.CustomObjectsApi(api_client)

    def unreachable_member() -> Obj | None:
        body: Obj = custom.get_namespaced_custom_object(
            "rollwise.dev", "v1alpha1", ns, "fleetrollouts", "payment"
        )
        status = body.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return status if conditions.get("MemberUnreachable") == "True" else None

    hub.start()
    try:
        status = wait_for(unreachable_member, timeout=60, message="the hub's status write")
    finally:
        hub.stop()

    [member] = status["waves"][0]["clusters"]
    assert member["reachable"] is False
    assert member["message"].startswith("unreachable"), member
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        hub_release.hub, hub_release.namespace
    )
    assert lease.spec.acquire_time is not None, "acquired through the chart's Lease Role"
    log = hub.log_path.read_text()
    denied = [line for line in log.splitlines() if DENIED.search(line)]
    assert not denied, f"{len(denied)} denied call(s) in {hub.log_path}:\n" + "\n".join(denied[:10])
