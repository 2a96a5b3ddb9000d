"""Crash points are the tests' hook on rollwise's checkpoints, not code of the operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollwise.controller import loop
from tests.harness import crash_points

ROOT = Path(__file__).resolve().parents[3]


def test_the_variables_name_the_moments_to_crash_at() -> None:
    env = {"ROLLWISE_CRASH_AFTER": "SetRouterWeight", "ROLLWISE_FLEET_CRASH_AT": "patched:eu-1"}

    assert crash_points.moments(env) == {"applied:SetRouterWeight", "patched:eu-1"}
    assert crash_points.moments({}) == set()


def test_a_checkpoint_calls_the_installed_hook_and_nothing_without_one() -> None:
    seen: list[str] = []
    loop.checkpoint("applied:ScaleReplicaSet")  # no hook: nothing happens

    loop.install_checkpoint(seen.append)
    try:
        loop.checkpoint("applied:ScaleReplicaSet")
    finally:
        loop.install_checkpoint(None)

    assert seen == ["applied:ScaleReplicaSet"]


@pytest.mark.parametrize("variable", crash_points.CRASH_VARIABLES)
def test_no_production_module_reads_a_crash_variable(variable: str) -> None:
    sources = (ROOT / "operator" / "rollwise").rglob("*.py")

    assert not [p.name for p in sources if variable in p.read_text()]
