"""Issue 21's attacks, on the real control plane, with the operator authenticated as the chart's
ServiceAccount (a namespaced helm release) and only a team's view of what it writes: gate
arguments, gate URLs, Prometheus addresses, webhook and notification URLs.

Local receivers on 127.0.0.1 stand for internal services: they count every request and answer
with a marker. Each test asserts the refusal and its clear message, that no request reached
the internal address, and that the marker never appears in status, Events or the operator's
log.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import Tools
from tests.harness.admission import status_writes_frozen
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import (
    ERROR_RATE_QUERY,
    Rollouts,
    deploy_first_version,
    gate_manifest,
    history_events,
    service_manifest,
)
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

CHART = Path(__file__).resolve().parents[2] / "charts" / "rollwise"
MARKER = "tok3nMARKER" + secrets.token_hex(6)


@dataclass
class Internal:
    """An "internal service" on 127.0.0.1: counts every request; its answers hold MARKER."""

    code: int = 500
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        internal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _answer(self) -> None:
                internal.paths.append(self.path)
                body = json.dumps({"status": "error", "error": MARKER, "value": MARKER}).encode()
                self.send_response(internal.code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Location", f"http://169.254.169.254/{MARKER}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def internal() -> Iterator[Internal]:
    server = Internal()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service_account_kubeconfig(
    cluster: LocalCluster, tools: Tools, namespace: str, rollwise_crds: None, tmp_path: Path
) -> Iterator[Path]:
    """A namespaced helm release of the chart watching the test's namespace; the kubeconfig of
    its ServiceAccount's token (RBAC applies, unlike the admin kubeconfig)."""
    yield from _release(cluster, tools, namespace, tmp_path, [])


@pytest.fixture
def secret_reading_kubeconfig(
    cluster: LocalCluster, tools: Tools, namespace: str, rollwise_crds: None, tmp_path: Path
) -> Iterator[Path]:
    """The same, with the chart's secretRefs.enabled (get on Secrets, by name)."""
    yield from _release(cluster, tools, namespace, tmp_path, ["--set", "secretRefs.enabled=true"])


def _release(
    cluster: LocalCluster, tools: Tools, namespace: str, tmp_path: Path, values: list[str]
) -> Iterator[Path]:
    suffix = secrets.token_hex(3)
    name, release_ns = f"rollwise-sec-{suffix}", f"rollwise-sec-{suffix}"
    admin = cluster.kubeconfig
    try:
        tools.helm_ok(
            "install", name, CHART, "-n", release_ns, "--create-namespace", "--wait",
            "--timeout", "90s", "--set", f"watchNamespaces={{{namespace}}}",
            "--set", "rbac.scope=namespaced", *values, kubeconfig=admin,
        )  # fmt: skip
        manifest = tools.helm_ok("get", "manifest", name, "-n", release_ns, kubeconfig=admin)
        (account,) = [
            line.split("name:", 1)[1].strip()
            for doc in manifest.split("\n---")
            if "kind: ServiceAccount" in doc
            for line in doc.splitlines()
            if line.strip().startswith("name:")
        ][:1]
        token = tools.kubectl_ok(
            "create", "token", account, "-n", release_ns, "--duration=1h", kubeconfig=admin
        ).strip()
        yield cluster.token_kubeconfig(token, tmp_path / "operator.kubeconfig")
    finally:
        tools.helm(
            "uninstall", name, "-n", release_ns, "--wait", "--timeout", "60s",
            "--ignore-not-found", kubeconfig=admin,
        )  # fmt: skip
        cluster.kubectl("delete", "namespace", release_ns, "--wait=false", "--ignore-not-found")


def start_operator(
    run: HarnessRun, kubeconfig: Path, namespace: str, allow: tuple[str, ...]
) -> OperatorProcess:
    operator = OperatorProcess(
        run,
        kubeconfig,
        [namespace],
        name=f"operator-sec-{namespace}",
        env={"ROLLWISE_NAMESPACES": "", "ROLLWISE_OUTBOUND_ALLOW": ""},
        outbound_allow=allow,
    )
    operator.start()
    return operator


def assert_marker_nowhere(rollouts: Rollouts, operator: OperatorProcess) -> None:
    status = json.dumps(rollouts.status())  # the spec holds it: that is where it was written
    assert MARKER not in status, "the marker is in the ProgressiveService's status"
    events = [f"{e.reason} {e.message}" for e in rollouts.events()]
    assert events, "the test produced Events to search"
    assert not [e for e in events if MARKER in e], "the marker is in an Event"
    log = operator.log_path.read_text()
    assert MARKER not in log, "the marker is in the operator's log"


# ----------------------------------------------------------------------------- query injection

WINDOWED_QUERY = ERROR_RATE_QUERY.replace("[5s]", "[{{args.window}}]")


@pytest.mark.parametrize(
    ("args", "abort"),
    [
        # The issue's attack: commented out the rest of the query, 50% HTTP 500 promoted.
        ({"window": "5s])) * 0 or vector(0)) #"}, "not a PromQL duration"),
        # `.*` inside the =~ matcher widened the query to every service of the namespace.
        ({"window": "5s", "service": ".*"}, "no data"),
    ],
)
def test_a_gate_argument_can_never_change_the_query_and_a_failing_canary_is_not_promoted(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    service_account_kubeconfig: Path,
    harness_run: HarnessRun,
    args: dict[str, str],
    abort: str,
) -> None:
    gate = gate_manifest(rollouts.ns, prometheus.url, query=WINDOWED_QUERY, inconclusive_limit=0)
    gate["spec"]["args"] = [{"name": "service", "default": "payment"}, {"name": "window"}]
    gate["spec"]["provider"]["prometheus"]["query"] = WINDOWED_QUERY.replace(
        'service="{{args.service}}"', 'service=~"{{args.service}}"'
    )
    rollouts.create_gate(gate)
    operator = start_operator(
        harness_run, service_account_kubeconfig, rollouts.ns, (prometheus.url + "/",)
    )
    try:
        deploy_first_version(rollouts)
        steps: list[dict[str, Any]] = [
            {"setWeight": 50},
            {"pause": {"duration": "3s"}},
            {"analysis": {"gates": [{"name": "error-rate", "args": args}]}},
        ]
        rollouts.apply(service_manifest(rollouts.ns, "3.0.0", error_rate=0.5, steps=steps))
        rolled = rollouts.wait_phase("RolledBack", timeout=120)
    finally:
        operator.stop()

    assert rolled["stable"]["version"] == "1.0.0", "the failing canary was never promoted"
    assert history_events(rolled).count("Promoted") <= 1, "only 1.0.0 was ever promoted"
    assert abort in rolled["abort"]["message"], rolled["abort"]
    for result in rolled["analysis"]:
        assert "vector(0)) #" not in result.get("query", ""), "the injected text was never sent"


def test_a_gate_template_with_a_placeholder_outside_a_value_is_refused_when_read(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    service_account_kubeconfig: Path,
    harness_run: HarnessRun,
) -> None:
    spliced = ERROR_RATE_QUERY.replace("[5s]", "[5{{args.unit}}]")
    gate = gate_manifest(rollouts.ns, prometheus.url, query=spliced)
    gate["spec"]["args"] = [{"name": "service"}, {"name": "unit"}]
    rollouts.create_gate(gate)
    operator = start_operator(
        harness_run, service_account_kubeconfig, rollouts.ns, (prometheus.url + "/",)
    )
    try:
        deploy_first_version(rollouts)
        steps = [{"analysis": {"gates": [{"name": "error-rate", "args": {"unit": "s"}}]}}]
        rollouts.apply(service_manifest(rollouts.ns, "2.0.0", steps=steps))
        waiting = rollouts.wait_status(
            lambda s: "query template refused" in (s.get("message") or ""),
            timeout=60,
            message="the service waits, saying the gate's template is refused",
        )
        gate_events = wait_for(
            lambda: rollouts.events("InvalidGate"), timeout=30, message="an InvalidGate Event"
        )
    finally:
        operator.stop()

    assert waiting["stable"]["version"] == "1.0.0"
    assert "glued to other text" in waiting["message"]
    # The gate is a reference checked at apply time (docs/rollout-semantics.md, rule 6): the
    # service's Warning Event is InvalidSpec, naming the gate and why its template is refused.
    invalid = [e for e in rollouts.events("InvalidSpec") if e.type == "Warning"]
    assert invalid and "query template refused" in (invalid[0].message or "")
    on_gate = [e for e in gate_events if e.involved_object.kind == "MetricGate"]
    assert on_gate and "glued to other text" in (on_gate[0].message or ""), "the gate is told"


# ----------------------------------------------------------------------------- SSRF and leaks


def test_team_written_urls_reach_only_the_allow_list_and_no_answer_or_token_is_shown(
    rollouts: Rollouts,
    service_account_kubeconfig: Path,
    harness_run: HarnessRun,
    internal: Internal,
) -> None:
    allowed = Internal(code=500)  # on the allow-list under /api/, answering 500 with MARKER
    try:
        gates = {
            # The dot-segment path: /api/../admin/secrets is /admin/secrets, not under /api/.
            "dots": {"web": {"url": allowed.url + "/api/../admin/secrets", "jsonPath": "$.v"}},
            # A namespaced Prometheus-type gate at an internal address.
            "internal-prom": {"prometheus": {"address": internal.url, "query": "up"}},
            # On the allow-list; its error answer holds the marker.
            "broken": {"web": {"url": allowed.url + f"/api/v1?token={MARKER}", "jsonPath": "$"}},
        }
        for name, provider in gates.items():
            rollouts.create_gate(
                {
                    "apiVersion": "rollwise.dev/v1alpha1",
                    "kind": "MetricGate",
                    "metadata": {"name": name, "namespace": rollouts.ns},
                    "spec": {
                        "interval": "1s",
                        "consecutiveErrorLimit": 3,
                        "provider": provider,
                        "thresholdRange": {"max": 1},
                    },
                }
            )
        operator = start_operator(
            harness_run, service_account_kubeconfig, rollouts.ns, (allowed.url + "/api/",)
        )
        try:
            deploy_first_version(rollouts)
            manifest = service_manifest(
                rollouts.ns,
                "2.0.0",
                steps=[
                    {"setWeight": 25},
                    {"analysis": {"gates": [{"name": n} for n in gates]}},
                ],
            )
            manifest["spec"]["strategy"]["canary"]["webhooks"] = [
                {
                    "name": "metadata",
                    "type": "rollback",
                    # 169.254.169.254 written so that no pattern in the CRD sees it.
                    "url": "http://[::ffff:a9fe:a9fe]/latest/meta-data/iam/security-credentials/",
                    "maxAttempts": 1,
                },
                {
                    "name": "internal",
                    "type": "rollback",
                    "url": internal.url + f"/hook?token={MARKER}",
                    "maxAttempts": 1,
                },
            ]
            manifest["spec"]["notifications"] = {
                "on": ["Started", "RolledBack"],
                "receivers": [
                    {"name": "chat", "slack": {"url": f"{internal.url}/services/T0/{MARKER}"}}
                ],
            }
            literal = copy.deepcopy(manifest)
            literal["spec"]["strategy"]["canary"]["webhooks"][0]["url"] = (
                "http://169.254.169.254/latest/meta-data/"
            )
            with pytest.raises(ApiException) as refused:
                rollouts.apply(literal)
            assert refused.value.status == 422 and "cloud metadata" in str(refused.value.body)
            rollouts.apply(manifest)
            rolled = rollouts.wait_phase("RolledBack", timeout=120)
            done = rollouts.wait_status(
                lambda s: all(
                    w.get("result") == "Failed" for w in s.get("webhooks") or [{"result": "-"}]
                ),
                timeout=60,
                message="every webhook and notification failed",
            )
        finally:
            operator.stop()

        assert internal.paths == [], "no request reached the internal address"
        assert not [p for p in allowed.paths if "admin" in p], "the dot-segment path was refused"
        assert allowed.paths and all(p.startswith("/api/v1") for p in allowed.paths)
        results = {r["gate"]: r for r in done["analysis"]}
        assert (
            "not under a prefix of the operator's outbound allow-list" in results["dots"]["message"]
        )
        assert "not under a prefix" in results["internal-prom"]["message"]
        assert "answered HTTP 500" in results["broken"]["message"]
        assert rolled["abort"]["reason"] == "GateError"
        hooks = {w["name"]: w for w in done["webhooks"]}
        assert "link-local, metadata" in hooks["metadata"]["error"]
        assert "not under a prefix" in hooks["internal"]["error"]
        assert "not under a prefix" in hooks["chat"]["error"]
        assert_marker_nowhere(rollouts, operator)
    finally:
        allowed.stop()


# ----------------------------------------------------------------------------- failures visible


def test_a_status_write_refused_by_admission_is_an_event_naming_it_and_recovers_at_once(
    rollouts: Rollouts,
    api_client: Any,
    service_account_kubeconfig: Path,
    harness_run: HarnessRun,
) -> None:
    """A ValidatingAdmissionPolicy freezes the service's status for ~12 s: a Warning Event names
    the policy (not the spec), and once it is gone the status is written again within seconds
    (watch events during the block never pushed the backoff toward its cap)."""
    operator = start_operator(harness_run, service_account_kubeconfig, rollouts.ns, ())
    try:
        deploy_first_version(rollouts, migration=False)
        with status_writes_frozen(api_client, rollouts.ns, "progressiveservices") as name:
            wait_for(
                lambda: _status_write_refused(api_client, rollouts.ns),
                timeout=30,
                message="the policy is in force",
            )
            rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False))
            refused = wait_for(
                lambda: rollouts.events("StatusRefusedByAdmission"),
                timeout=30,
                message="a StatusRefusedByAdmission Event",
            )
            blocked_at = time.monotonic()
            wait_for(
                lambda: time.monotonic() - blocked_at > 12,
                timeout=30,
                interval=1,
                message="12 s of refused writes",
            )
        unblocked = time.monotonic()
        rollouts.wait_status(
            lambda s: (
                (s.get("canary") or {}).get("version") == "2.0.0"
                or (s.get("stable") or {}).get("version") == "2.0.0"
            ),
            timeout=60,
            message="the status is written again",
        )
        recovery = time.monotonic() - unblocked
        metrics = operator.metrics()
    finally:
        operator.stop()

    message = refused[0].message or ""
    assert refused[0].type == "Warning" and name in message, message
    assert "the spec is not at fault" in message
    assert "fix the field" not in message
    harness_run.note(f"status writes refused for 12 s by admission: recovered in {recovery:.1f}s")
    assert recovery < 20, f"recovered {recovery:.1f}s after the block ended"
    assert (
        'rollwise_status_write_failures_total{kind="ProgressiveService",'
        'reason="StatusRefusedByAdmission"}' in metrics
    )


def _status_write_refused(api: Any, namespace: str) -> bool:
    """Whether a status write (as admin) is refused now: the policy is in force."""
    from kubernetes import client

    try:
        client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            "rollwise.dev", "v1alpha1", namespace, "progressiveservices", "payment",
            {"status": {"message": "admission probe"}},
        )  # fmt: skip
    except ApiException as err:
        return err.status in (400, 403, 422)
    return False


def test_a_notification_url_from_a_secret_is_used_and_never_shown(
    rollouts: Rollouts,
    api_client: Any,
    secret_reading_kubeconfig: Path,
    harness_run: HarnessRun,
    internal: Internal,
) -> None:
    """urlSecretRef, read as the chart's ServiceAccount with secretRefs.enabled: the call is
    made with the Secret's URL (token included); neither status, Events nor logs show it. A
    reference to a missing key holds the rollout when it is applied (InvalidSpec, naming the
    Secret, key and field only) until the key is added."""
    from kubernetes import client

    internal.code = 200
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(
        rollouts.ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="chat-hook"),
            string_data={"url": f"{internal.url}/services/T0/{MARKER}"},
        ),
    )
    operator = start_operator(
        harness_run, secret_reading_kubeconfig, rollouts.ns, (internal.url + "/services/",)
    )
    try:
        deploy_first_version(rollouts, migration=False)
        steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
        manifest = service_manifest(rollouts.ns, "2.0.0", migration=False, steps=steps)
        manifest["spec"]["notifications"] = {
            "on": ["Started", "Promoted"],
            "receivers": [
                {"name": "chat", "slack": {"urlSecretRef": {"name": "chat-hook", "key": "url"}}},
                {"name": "late", "slack": {"urlSecretRef": {"name": "chat-hook", "key": "late"}}},
            ],
        }
        rollouts.apply(manifest)
        held = rollouts.wait_status(
            lambda s: "InvalidSpec" in {c.get("reason") for c in s.get("conditions") or []},
            timeout=60,
            message="held: the Secret has no key late",
        )
        assert internal.paths == [], "nothing was sent while the spec was invalid"
        assert set(rollouts.replica_sets()) == {held["stable"]["revision"]}, "no canary pod"
        core.patch_namespaced_secret(
            "chat-hook",
            rollouts.ns,
            {"stringData": {"late": f"{internal.url}/services/T1/{MARKER}"}},
        )
        rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
        rollouts.wait_status(
            lambda s: (
                {w["name"]: w.get("result") for w in s.get("webhooks") or []}
                == {"chat": "Succeeded", "late": "Succeeded"}
            ),
            timeout=60,
            message="both notifications are delivered",
        )
    finally:
        operator.stop()

    assert (
        f"Secret {rollouts.ns}/chat-hook (spec.notifications.receivers[1].slack.urlSecretRef) "
        "has no key late" in held["message"]
    )
    assert held["stable"]["version"] == "1.0.0"
    assert any(f"/T0/{MARKER}" in p for p in internal.paths), "called with the Secret's URL"
    assert any(f"/T1/{MARKER}" in p for p in internal.paths), "and with the key added later"
    assert_marker_nowhere(rollouts, operator)
