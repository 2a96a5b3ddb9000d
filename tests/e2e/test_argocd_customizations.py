"""Argo CD customizations beyond the ProgressiveService health check (deploy/argocd/): the
ReleaseTrain and FleetRollout health checks know every phase, the resource actions are offered
where they mean something and write a request the operator parses, and the README's ConfigMap
is the current scripts. Live objects: tests/integration/test_kstatus_argocd.py."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from rollwise.api.fleet import FleetPhase
from rollwise.api.service_status import Phase
from rollwise.api.train import TrainPhase
from rollwise.core.model import Action
from rollwise.core.requests import parse_request
from tests.harness import argocd_lua

ARGOCD = argocd_lua.ARGOCD


def obj(kind: str, phase: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "shop", "generation": 2},
        "status": {"observedGeneration": 2, "phase": phase, **status},
    }


@pytest.mark.parametrize("phase", list(TrainPhase))
def test_every_train_phase_has_a_health(phase: TrainPhase) -> None:
    health, message = argocd_lua.health(obj("ReleaseTrain", phase.value, message="m"))

    assert health in {"Healthy", "Progressing", "Suspended", "Degraded"}
    assert message == f"{phase.value}: m"


@pytest.mark.parametrize("phase", list(FleetPhase))
def test_every_fleet_phase_has_a_health(phase: FleetPhase) -> None:
    health, _ = argocd_lua.health(obj("FleetRollout", phase.value, currentWave="eu"))

    assert health in {"Healthy", "Progressing", "Suspended", "Degraded"}


@pytest.mark.parametrize("kind", ["ReleaseTrain", "FleetRollout"])
def test_a_stale_generation_waits(kind: str) -> None:
    stale = obj(kind, "Succeeded")
    stale["status"]["observedGeneration"] = 1

    assert argocd_lua.health(stale)[0] == "Progressing"


def test_actions_are_offered_where_they_mean_something() -> None:
    paused = argocd_lua.discovered(obj("ProgressiveService", Phase.PAUSED.value))
    rolled = argocd_lua.discovered(obj("ProgressiveService", Phase.ROLLED_BACK.value))
    healthy = argocd_lua.discovered(obj("ProgressiveService", Phase.HEALTHY.value))
    fleet = argocd_lua.discovered(obj("FleetRollout", FleetPhase.FAILED.value))

    assert paused == {"promote": True, "promote-full": True, "abort": True, "retry": False}
    assert rolled == {"promote": False, "promote-full": False, "abort": False, "retry": True}
    assert not any(healthy.values())
    assert "promote-full" not in fleet and fleet["retry"] is False


@pytest.mark.parametrize("action", argocd_lua.ACTIONS)
def test_each_action_writes_a_request_the_operator_parses(action: str) -> None:
    text = argocd_lua.request_annotation(action, obj("ProgressiveService", "Paused"))

    request = parse_request(text)
    assert request.action is Action(action.split("-")[0])
    assert request.full is (action == "promote-full")
    assert request.by == f"argocd (resource action {action})"
    assert json.loads(text)["id"].startswith(f"argocd-{action}-")


def test_the_readme_configmap_is_the_current_scripts(tmp_path: Any) -> None:
    before = (ARGOCD / "README.md").read_text()
    repo = ARGOCD.parents[1]
    copy = tmp_path / "deploy" / "argocd"
    copy.mkdir(parents=True)
    for path in ARGOCD.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(ARGOCD)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    subprocess.run(
        [sys.executable, str(copy / "render_readme.py")], cwd=tmp_path, check=True, timeout=30
    )

    assert (copy / "README.md").read_text() == before, (
        f"run `python3 deploy/argocd/render_readme.py` in {repo}"
    )
