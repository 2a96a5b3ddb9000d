"""The chart and the kustomize base installed into the real control plane with real helm and
kubectl, and the operator running as the chart's ServiceAccount, so RBAC is what a cluster
would enforce (the admin kubeconfig of the other tests bypasses it).

kwok pods run no containers, so the operator Deployment's pod never really runs the operator:
`rollwise run` is started beside the cluster as a separate process with a kubeconfig holding a
token of the chart's ServiceAccount (`kubectl create token`), exactly the identity the pod gets.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.conftest import Tools
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.paths import REPO_ROOT
from tests.harness.rollouts import Rollouts, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

CHART = REPO_ROOT / "charts" / "rollwise"
DEPLOY = REPO_ROOT / "deploy"
MODES = ("cluster", "namespaced")
SECRET_VERBS = ("get", "list", "watch")
# An RBAC denial as the kubernetes client, Kopf or the apiserver word it: "403", "(403)",
# "Forbidden", "forbidden: User ... cannot ...". A bare number inside a longer one (a port,
# a timestamp's milliseconds) is not one.
DENIED = re.compile(r"forbidden|(?<![\w.:])403(?![\w.])", re.IGNORECASE)

Obj = dict[str, Any]
Identity = tuple[str, str, str]  # (kind, name, namespace); namespace "" when cluster-scoped


def identity(obj: Obj) -> Identity:
    metadata = obj["metadata"]
    return (obj["kind"], metadata["name"], metadata.get("namespace") or "")


def resource_arg(obj: Obj) -> str:
    """``kind.group/name`` for kubectl, unambiguous whatever else the cluster serves."""
    api_version: str = obj["apiVersion"]
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = obj["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{obj['metadata']['name']}"


def namespace_args(ident: Identity) -> list[str]:
    return ["-n", ident[2]] if ident[2] else []


def parse_objects(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def items(json_text: str) -> list[Obj]:
    """The objects of `kubectl ... -o json` (a List, or one object)."""
    data: Obj = json.loads(json_text)
    found: list[Obj] = data["items"] if data.get("kind") == "List" else [data]
    return found


# --------------------------------------------------------------------------- a helm release


@dataclass(frozen=True)
class Release:
    mode: str
    name: str
    namespace: str  # the release's own namespace (the operator's ServiceAccount lives here)
    watched: str  # the test namespace the ProgressiveService lives in
    objects: list[Obj]  # `helm get manifest`, as installed

    @property
    def service_account(self) -> str:
        (sa,) = [o for o in self.objects if o["kind"] == "ServiceAccount"]
        name: str = sa["metadata"]["name"]
        return name

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@pytest.fixture(params=MODES)
def release(
    request: pytest.FixtureRequest,
    cluster: LocalCluster,
    tools: Tools,
    namespace: str,
    rollwise_crds: None,
) -> Iterator[Release]:
    """`helm install` of the chart into its own namespace, in one RBAC mode; uninstalled after.

    Release names contain "rollwise", so every object is named after the release: two releases
    never share a cluster-scoped name (ClusterRole, ClusterRoleBinding)."""
    mode: str = request.param
    suffix = secrets.token_hex(3)
    name = f"rollwise-{mode[:2]}-{suffix}"
    release_ns = f"rollwise-system-{suffix}"
    values = (
        ["--set", f"watchNamespaces={{{namespace}}}", "--set", "rbac.scope=namespaced"]
        if mode == "namespaced"
        else ["--set", "rbac.scope=cluster"]
    )
    admin = cluster.kubeconfig
    try:
        # --wait: every object is created and the Deployment's (kwok) pod is Ready.
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
            *values,
            kubeconfig=admin,
        )
        manifest = tools.helm_ok("get", "manifest", name, "-n", release_ns, kubeconfig=admin)
        yield Release(mode, name, release_ns, namespace, parse_objects(manifest))
    finally:
        uninstall = tools.helm(
            "uninstall",
            name,
            "-n",
            release_ns,
            "--wait",
            "--timeout",
            "60s",
            "--ignore-not-found",
            kubeconfig=admin,
        )
        cluster.kubectl("delete", "namespace", release_ns, "--wait=false", "--ignore-not-found")
        assert uninstall.returncode == 0, uninstall.stderr
        for kind in ("clusterrole", "clusterrolebinding"):
            left = cluster.kubectl("get", kind, name, "--ignore-not-found", "-o", "name").stdout
            assert not left.strip(), f"helm uninstall left {left.strip()} behind"


def test_helm_installs_every_object_of_the_release(
    release: Release, cluster: LocalCluster, tools: Tools
) -> None:
    status = json.loads(
        tools.helm_ok(
            "status",
            release.name,
            "-n",
            release.namespace,
            "-o",
            "json",
            kubeconfig=cluster.kubeconfig,
        )
    )
    assert status["info"]["status"] == "deployed"

    expected = {identity(o) for o in release.objects}
    kinds = {kind for kind, _, _ in expected}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"} <= kinds
    assert ("PodDisruptionBudget", release.name, release.namespace) in expected
    # Leader election: a Role for the one Lease, in the release namespace, in both modes.
    election = (f"{release.name}-leader-election", release.namespace)
    assert ("Role", *election) in expected and ("RoleBinding", *election) in expected
    watch_roles = {(k, n, ns) for k, n, ns in expected if k in ("Role", "RoleBinding")} - {
        ("Role", *election),
        ("RoleBinding", *election),
    }
    if release.mode == "namespaced":
        assert watch_roles == {
            ("Role", release.name, release.watched),
            ("RoleBinding", release.name, release.watched),
        }
    else:
        assert watch_roles == set()
    assert ("ClusterRole", release.name, "") in expected, "cluster-scoped names carry the release"

    # Every object of the release, read back from the apiserver.
    live = items(
        cluster.kubectl(
            "get", "-f", "-", "-o", "json", input=yaml.safe_dump_all(release.objects)
        ).stdout
    )
    assert {identity(o) for o in live} == expected
    deployment = next(o for o in live if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"].get("readyReplicas") == 2, "helm --wait saw both pods Ready"
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == release.service_account
    args = pod_spec["containers"][0]["args"]
    if release.mode == "namespaced":
        assert f"--namespace={release.watched}" in args and "--all-namespaces" not in args
    else:
        assert "--all-namespaces" in args


def _can_i(tools: Tools, cluster: LocalCluster, user: str, *args: str) -> bool:
    done = tools.kubectl("auth", "can-i", *args, "--as", user, kubeconfig=cluster.kubeconfig)
    answer = done.stdout.strip()
    assert (done.returncode, answer) in {(0, "yes"), (1, "no")}, (done.returncode, done.stderr)
    return answer == "yes"


def _listed_resources(tools: Tools, cluster: LocalCluster, user: str, ns: str) -> set[str]:
    """The resources `kubectl auth can-i --list` shows for ``user`` in ``ns``."""
    out = tools.kubectl_ok(
        "auth", "can-i", "--list", "--as", user, "-n", ns, kubeconfig=cluster.kubeconfig
    )
    resources = set()
    for line in out.splitlines()[1:]:  # the header: Resources  Non-Resource URLs  ...
        columns = line.split()
        if columns and not columns[0].startswith("["):  # "[/api/*]": a non-resource URL row
            resources.add(columns[0])
    return resources


def test_the_chart_service_account_can_never_read_secrets(
    release: Release, cluster: LocalCluster, tools: Tools
) -> None:
    user = release.user
    scopes = [["-n", release.watched], ["-n", release.namespace], ["-n", "default"]]
    if release.mode == "cluster":
        scopes.append(["--all-namespaces"])
    for verb in SECRET_VERBS:
        for scope in scopes:
            assert not _can_i(tools, cluster, user, verb, "secrets", *scope), (verb, scope)

    listed = _listed_resources(tools, cluster, user, release.watched)
    assert "progressiveservices.rollwise.dev" in listed, listed  # the listing is the real one
    granted = {resource.split(".")[0] for resource in listed}
    assert "secrets" not in granted and "*" not in granted, listed

    # What it needs, it has, and only where it watches.
    assert _can_i(
        tools,
        cluster,
        user,
        "patch",
        "progressiveservices.rollwise.dev/status",
        "-n",
        release.watched,
    )
    assert _can_i(tools, cluster, user, "create", "replicasets.apps", "-n", release.watched)
    # The Lease in its own namespace only.
    assert _can_i(
        tools, cluster, user, "update", "leases.coordination.k8s.io", "-n", release.namespace
    )
    assert not _can_i(tools, cluster, user, "update", "leases.coordination.k8s.io", "-n", "default")
    elsewhere = _can_i(
        tools, cluster, user, "list", "progressiveservices.rollwise.dev", "-n", "default"
    )
    assert elsewhere is (release.mode == "cluster")


# --------------------------------------------------------------------------- the operator


def _service_account_kubeconfig(
    release: Release, cluster: LocalCluster, tools: Tools, path: Path
) -> Path:
    token = tools.kubectl_ok(
        "create",
        "token",
        release.service_account,
        "-n",
        release.namespace,
        "--duration=1h",
        kubeconfig=cluster.kubeconfig,
    ).strip()
    kubeconfig = cluster.token_kubeconfig(token, path)
    whoami = json.loads(tools.kubectl_ok("auth", "whoami", "-o", "json", kubeconfig=kubeconfig))
    assert whoami["status"]["userInfo"]["username"] == release.user
    return kubeconfig


def _no_namespace_terminating(api: ApiClient) -> None:
    """A cluster-wide operator also sees what earlier tests left: ProgressiveServices in
    namespaces being deleted, where any create is refused with 403 ("being terminated"),
    which is no RBAC gap. Start it once those namespaces are gone."""
    core = client.CoreV1Api(api)

    def none_terminating() -> bool:
        namespaces = core.list_namespace().items
        return not [ns for ns in namespaces if ns.status and ns.status.phase == "Terminating"]

    wait_for(none_terminating, timeout=120, interval=1, message="no namespace Terminating")


def test_operator_as_the_chart_service_account_completes_a_canary(
    release: Release,
    cluster: LocalCluster,
    tools: Tools,
    harness_run: HarnessRun,
    api_client: ApiClient,
    rollouts: Rollouts,
    gate: dict[str, Any],
    tmp_path: Path,
) -> None:
    kubeconfig = _service_account_kubeconfig(
        release, cluster, tools, tmp_path / f"{release.name}.kubeconfig"
    )
    # Leader election as the chart runs it: the Lease in the release namespace, with the
    # ServiceAccount's Role for it.
    election = [
        "--leader-elect",
        f"--leader-elect-namespace={release.namespace}",
        f"--leader-elect-lease-name={release.name}-leader",
    ]
    if release.mode == "cluster":
        _no_namespace_terminating(api_client)
        operator = OperatorProcess(
            harness_run,
            kubeconfig,
            [],
            name=f"operator-{release.name}",
            env={"ROLLWISE_NAMESPACES": ""},
            extra_args=["--all-namespaces", *election],
        )
    else:
        operator = OperatorProcess(
            harness_run,
            kubeconfig,
            [release.watched],
            name=f"operator-{release.name}",
            env={"ROLLWISE_NAMESPACES": ""},
            extra_args=election,
        )
    operator.start()
    try:
        rollouts.apply(service_manifest(rollouts.ns, "1.0.0"))
        v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
        rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
        done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    finally:
        operator.stop()

    log = operator.log_path.read_text()
    assert rollouts.ns in log, "the operator's log records its work"
    denied = [line for line in log.splitlines() if DENIED.search(line)]
    assert not denied, f"{len(denied)} denied call(s) in {operator.log_path}:\n" + "\n".join(
        denied[:10]
    )
    assert done["stable"]["revision"] != v1["stable"]["revision"]
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        f"{release.name}-leader", release.namespace
    )
    assert lease.spec.acquire_time is not None, "acquired through the chart's Lease Role"
    assert [h["event"] for h in done["history"]].count("Promoted") == 1
    assert done["migration"]["phase"] == "Succeeded"
    # Posted with the ServiceAccount's rights; the gate result names the query as sent, with
    # the canary's revision in it.
    passed = [
        e
        for e in rollouts.events("StepCompleted")
        if "(analysis) completed: gate error-rate passed" in (e.message or "")
    ]
    assert passed and all(done["stable"]["revision"] in (e.message or "") for e in passed)


# --------------------------------------------------------------------------- kustomize


def test_kubectl_apply_k_deploy_creates_what_helm_template_renders(
    cluster: LocalCluster, tools: Tools, rollwise_crds: None
) -> None:
    admin = cluster.kubeconfig
    rendered = parse_objects(
        tools.helm_ok(
            "template",
            "rollwise",
            CHART,
            "-n",
            "rollwise-system",
            "--include-crds",
            kubeconfig=admin,
        )
    )
    # `helm install --create-namespace` creates the release namespace; the base has it.
    expected = {identity(o) for o in rendered} | {("Namespace", "rollwise-system", "")}
    crds_before = {
        o["metadata"]["name"]: o["metadata"]["uid"]
        for o in items(cluster.kubectl("get", "crd", "-o", "json").stdout)
        if o["metadata"]["name"].endswith(".rollwise.dev")
    }

    applied = items(tools.kubectl_ok("apply", "-k", DEPLOY, "-o", "json", kubeconfig=admin))
    try:
        assert {identity(o) for o in applied} == expected
        for obj in applied:  # read back each one from the apiserver: the very object applied
            ident = identity(obj)
            live = json.loads(
                cluster.kubectl(
                    "get", resource_arg(obj), *namespace_args(ident), "-o", "json"
                ).stdout
            )
            assert identity(live) == ident
            assert live["metadata"]["uid"] == obj["metadata"]["uid"]
        # The CRDs the session installed are the same objects, updated in place if at all.
        for name, uid in crds_before.items():
            now = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
            assert now["metadata"]["uid"] == uid, f"{name} was recreated"
    finally:
        # Not `kubectl delete -k deploy/`: that would delete the CRDs every other test uses.
        for obj in reversed(applied):
            if obj["kind"] not in ("CustomResourceDefinition", "Namespace"):
                cluster.kubectl(
                    "delete",
                    resource_arg(obj),
                    *namespace_args(identity(obj)),
                    "--ignore-not-found",
                    "--wait=false",
                )
        cluster.kubectl("delete", "namespace", "rollwise-system", "--ignore-not-found")
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not cluster.kubectl("get", kind, "rollwise", "--ignore-not-found").stdout.strip()


# --------------------------------------------------------------------------- kubectl wait


def test_kubectl_wait_for_ready_returns_once_the_rollout_is_healthy(
    cluster: LocalCluster,
    tools: Tools,
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
) -> None:
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0"))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
    generation = rollouts.get()["metadata"]["generation"]
    started = time.monotonic()
    # Ready is still True from 1.0.0 at this moment, for the previous generation: kubectl wait
    # must hold on until the operator says Ready for this one.
    done = subprocess.run(
        [
            str(tools.kubectl_bin),
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            rollouts.ns,
            "wait",
            "--for=condition=Ready",
            "psvc/payment",
            "--timeout=150s",
        ],
        capture_output=True,
        text=True,
        env=tools.env,
        timeout=180,
        check=False,
    )
    waited = time.monotonic() - started
    obj = rollouts.get()

    assert done.returncode == 0, f"kubectl wait exited {done.returncode}: {done.stderr}"
    assert "condition met" in done.stdout
    status = obj["status"]
    assert status["phase"] == "Healthy", f"kubectl wait returned at {status['phase']}"
    assert status["stable"]["version"] == "2.0.0"
    assert status["observedGeneration"] == generation == obj["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert waited > 3, f"returned after {waited:.1f}s: the canary pauses at least 3 s"
