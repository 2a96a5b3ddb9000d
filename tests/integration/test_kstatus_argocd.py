"""What GitOps tools make of the objects the operator writes, on the real control plane
(docs/rollout-semantics.md, rule 7): the real kstatus library (sigs.k8s.io/cli-utils, as Flux
and cli-utils use it, built by `make tools`) and Argo CD's Lua health checks and resource
actions (deploy/argocd/, run by a real Lua), each given the live object as read back.

- kstatus: Current when Healthy, InProgress while a rollout moves or is paused, Failed at once
  when it rolled back, its migration failed, or the spec names a MetricGate that does not
  exist; and "Current" for an object the operator has not written a status to yet (why the
  Flux docs add healthCheckExprs).
- Argo CD: Healthy, Suspended, Degraded on the same live objects; promote-full, abort and retry
  as resource actions, acted on by the operator with the Argo CD actor in history.
- Flux's own healthCheckExprs evaluator (github.com/fluxcd/pkg/runtime/cel) with the
  expressions docs/gitops.md ships: the same verdicts as kstatus, and no "Current" before the
  operator wrote a status.
- A ReleaseTrain's health (Argo CD and kstatus) from its live status; a failed train and the
  FleetRollout phases are read the same way in test_release_train.py and test_fleet.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness import argocd_lua, kstatus
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import GROUP, PLURAL, VERSION, Rollouts, service_manifest
from tests.integration.test_release_train import Train, deploy_members, train_manifest

pytestmark = pytest.mark.cluster

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {}},
    {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "payment"}}]}},
]


def verdicts(rollouts: Rollouts, name: str = "payment") -> tuple[str, str, str]:
    """(kstatus status, Argo CD health, Argo CD message) of the live object; Flux's
    healthCheckExprs evaluator with docs/gitops.md's expressions must agree with kstatus."""
    obj = rollouts.get(name)
    [computed] = kstatus.compute([obj])
    health, message = argocd_lua.health(obj)
    [flux] = kstatus.flux_health([obj], kstatus.flux_health_exprs())
    assert flux == computed["status"], (flux, computed)
    return computed["status"], health, message


def act(rollouts: Rollouts, action: str, name: str = "payment") -> dict[str, Any]:
    """Run an Argo CD resource action on the live object and write its result, as Argo CD
    does (a patch of what the action changed: the request annotation)."""
    obj = rollouts.get(name)
    assert argocd_lua.discovered(obj).get(action), argocd_lua.discovered(obj)
    annotation = argocd_lua.request_annotation(action, obj)
    rollouts.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        rollouts.ns,
        PLURAL,
        name,
        {"metadata": {"annotations": {"rollwise.dev/request": annotation}}},
    )
    request = json.loads(annotation)
    assert isinstance(request, dict)
    return request


def manifest(rollouts: Rollouts, version: str, **kwargs: Any) -> dict[str, Any]:
    return service_manifest(rollouts.ns, version, steps=STEPS, migration=False, **kwargs)


def test_kstatus_and_argocd_read_every_outcome_from_the_live_object(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    created = rollouts.custom.create_namespaced_custom_object(
        GROUP, VERSION, rollouts.ns, PLURAL, manifest(rollouts, "1.0.0")
    )
    # As created, before the operator wrote anything: kstatus reads "no status" as Current;
    # docs/gitops.md's healthCheckExprs cannot be evaluated yet, so Flux waits.
    assert kstatus.compute([created])[0]["status"] == "Current"
    [flux] = kstatus.flux_health([created], kstatus.flux_health_exprs())
    assert flux.startswith("error: "), flux
    assert argocd_lua.health(created)[0] == "Progressing"
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    assert verdicts(rollouts)[:2] == ("Current", "Healthy")

    rollouts.apply(manifest(rollouts, "2.0.0"))
    rollouts.wait_status(lambda s: s.get("phase") == "Paused", timeout=90, message="paused")
    assert verdicts(rollouts)[:2] == ("InProgress", "Suspended")

    abort = act(rollouts, "abort")
    rolled = rollouts.wait_phase("RolledBack", timeout=90)
    status, health, message = verdicts(rollouts)
    assert (status, health) == ("Failed", "Degraded"), message
    assert rolled["lastRequest"]["id"] == abort["id"]
    assert "argocd (resource action abort)" in [h["actor"] for h in rolled["history"]]
    assert argocd_lua.discovered(rollouts.get())["retry"]

    act(rollouts, "retry")
    rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("lastRequest", {}).get("action") == "retry",
        timeout=90,
        message="retried, paused again",
    )
    assert verdicts(rollouts)[0] == "InProgress"
    act(rollouts, "promote-full")
    promoted = rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
    assert promoted["fullPromotion"]["by"] == "argocd (resource action promote-full)"
    assert verdicts(rollouts)[:2] == ("Current", "Healthy")

    rollouts.apply(
        service_manifest(rollouts.ns, "3.0.0", steps=STEPS, migration=True, migration_fails=True)
    )
    rollouts.wait_phase("MigrationFailed", timeout=120)
    status, health, message = verdicts(rollouts)
    assert (status, health) == ("Failed", "Degraded"), message

    missing = manifest(rollouts, "4.0.0")
    missing["spec"]["strategy"]["canary"]["steps"][2]["analysis"]["gates"][0]["name"] = "nope"
    rollouts.apply(missing)
    rollouts.wait_status(
        lambda s: "MetricGate" in (s.get("message") or ""), timeout=60, message="InvalidSpec"
    )
    status, health, message = verdicts(rollouts)
    assert (status, health) == ("Failed", "Degraded"), message
    assert "InvalidSpec" in message


def test_a_release_train_reads_healthy_from_its_live_status(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_members(rollouts, ("a",))
    train = Train(rollouts)
    train.create(train_manifest(rollouts.ns, members=("a",)))
    train.wait("Succeeded")

    obj = train.get()

    assert argocd_lua.health(obj)[0] == "Healthy"
    [computed] = kstatus.compute([obj])
    assert computed["status"] == "Current", computed
    assert argocd_lua.discovered(obj) == {"promote": False, "abort": False, "retry": False}
