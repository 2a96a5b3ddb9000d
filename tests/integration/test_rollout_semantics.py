"""Rollout rules users of Argo Rollouts and Flagger rely on, on the real control plane
(docs/rollout-semantics.md states each one).

- Replica split at the edges: 2 replicas at 51% and 1 replica at 25% keep a ready pod on each
  side (the 1-replica canary runs beside its stable on a surge pod).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, service_manifest
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster


def ready_split(rollouts: Rollouts) -> tuple[int, int]:
    """(canary, stable) ready pods, read from the ReplicaSets the status names."""
    status = rollouts.status()
    ready = {
        revision: rs.status.ready_replicas or 0 for revision, rs in rollouts.replica_sets().items()
    }
    canary = (status.get("canary") or {}).get("revision")
    stable = (status.get("stable") or {}).get("revision")
    return ready.get(canary, 0), ready.get(stable, 0)


@pytest.mark.parametrize(("replicas", "weight"), [(2, 51), (1, 25)])
def test_a_canary_step_keeps_a_ready_pod_on_each_side(
    rollouts: Rollouts, operator: OperatorProcess, replicas: int, weight: int
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": weight}, {"pause": {}}]
    rollouts.apply(
        service_manifest(rollouts.ns, "1.0.0", replicas=replicas, steps=steps, migration=False)
    )
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", replicas=replicas, steps=steps, migration=False)
    )
    paused = rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("canaryWeight") == weight,
        timeout=90,
        message=f"paused at {weight}%",
    )
    wait_for(
        lambda: ready_split(rollouts) == (1, 1),
        timeout=60,
        message="one ready canary pod beside one ready stable pod",
    )

    assert paused["canary"]["replicas"] == 1 and paused["stable"]["replicas"] == 1
    # Kept there, not passed through: the split still holds a moment later.
    assert ready_split(rollouts) == (1, 1)
