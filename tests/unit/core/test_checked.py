"""The checked-update pass base every kind builds on: a mistyped status field is a TypeError at
run time and a mypy error, for trains and fleets as for services."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollwise.api.fleet import FleetMemberStatus, FleetRolloutSpec, FleetRolloutStatus, WaveStatus
from rollwise.api.train import MemberStatus, TrainPhase, TrainSpec, TrainStatus
from rollwise.core.checked import KindPass, checked_update
from rollwise.core.fleet.passes import (
    FleetMemberChanges,
    FleetPass,
    FleetStatusChanges,
    WaveChanges,
)
from rollwise.core.train.model import TrainObserved
from rollwise.core.train.passes import TrainMemberChanges, TrainPass, TrainStatusChanges

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def a_train_pass() -> TrainPass:
    spec = TrainSpec.model_validate({"members": [{"service": "api", "version": "2.0.0"}]})
    status = TrainStatus(members=[MemberStatus(service="api", version="1.0.0")])
    observed = TrainObserved(namespace="shop", name="spring", generation=1)
    return TrainPass(spec=spec, observed=observed, status=status, now=NOW)


def a_fleet_pass() -> FleetPass:
    spec = FleetRolloutSpec.model_validate(
        {
            "target": {"namespace": "shop", "service": "payment"},
            "version": "2.0.0",
            "clusters": [{"name": "eu-1", "kubeconfigSecretRef": {"name": "eu-1"}}],
            "waves": [{"name": "all"}],
        }
    )
    waves = [WaveStatus(name="all", clusters=[FleetMemberStatus(name="eu-1")])]
    return FleetPass(
        spec=spec,
        members={},
        generation=1,
        poll_s=5.0,
        waves=waves,
        status=FleetRolloutStatus(waves=waves),
        now=NOW,
    )


def test_checked_update_changes_the_named_fields() -> None:
    status = checked_update(TrainStatus(), {"phase": TrainPhase.PROGRESSING, "message": "go"})

    assert (status.phase, status.message) == (TrainPhase.PROGRESSING, "go")


def test_checked_update_rejects_a_mistyped_field_instead_of_dropping_it() -> None:
    with pytest.raises(TypeError, match="TrainStatus has no field mesage"):
        checked_update(TrainStatus(), {"mesage": "go"})


def test_a_train_pass_rejects_a_mistyped_status_or_member_field() -> None:
    t = a_train_pass()
    bad_status: dict[str, Any] = {"phse": TrainPhase.PROGRESSING}
    bad_member: dict[str, Any] = {"verison": "2.0.0"}

    with pytest.raises(TypeError, match="no field phse"):
        t.set(**bad_status)
    with pytest.raises(TypeError, match="no field verison"):
        t.put("api", **bad_member)

    assert t.member("api").version == "1.0.0"


def test_a_fleet_pass_rejects_a_mistyped_status_wave_or_member_field() -> None:
    p = a_fleet_pass()
    bad: dict[str, Any] = {"finshed_at": NOW}

    with pytest.raises(TypeError, match="no field finshed_at"):
        p.set(**bad)
    with pytest.raises(TypeError, match="no field finshed_at"):
        p.set_wave(0, **bad)
    with pytest.raises(TypeError, match="no field finshed_at"):
        p.set_member(0, 0, **bad)


def test_the_earliest_wake_wins_and_never_below_half_a_second() -> None:
    p = KindPass(status=TrainStatus(), now=NOW)

    p.wake_in(30)
    p.wake_in(0)
    p.wake_in(10)

    assert p.requeue == 0.5


@pytest.mark.parametrize(
    ("changes", "model", "identity"),
    [
        (TrainStatusChanges, TrainStatus, set()),
        (TrainMemberChanges, MemberStatus, {"service"}),
        (FleetStatusChanges, FleetRolloutStatus, set()),
        (WaveChanges, WaveStatus, {"name"}),
        (FleetMemberChanges, FleetMemberStatus, {"name"}),
    ],
)
def test_each_changes_type_lists_exactly_its_models_fields(
    changes: type, model: type[Any], identity: set[str]
) -> None:
    # A new status field must be added to its Changes TypedDict, or no pass can set it.
    assert set(changes.__annotations__) == set(model.model_fields) - identity


TYPOS = [
    ("rollwise.core.train.passes", "TrainPass", "p.set(mesage='x')"),
    ("rollwise.core.train.passes", "TrainPass", "p.put('api', verison='x')"),
    ("rollwise.core.fleet.passes", "FleetPass", "p.set_member(0, 0, mesage='x')"),
]


def test_mypy_reports_every_mistyped_field_of_a_train_or_fleet(tmp_path: Path) -> None:
    # One mypy run for every typo (a run costs ~15 s of CPU): each must be reported on its line.
    lines = ["from rollwise.core.fleet.passes import FleetPass"]
    lines.append("from rollwise.core.train.passes import TrainPass")
    typo_lines: dict[int, str] = {}
    for i, (_, cls, call) in enumerate(TYPOS):
        lines += ["", "", f"def f{i}(p: {cls}) -> None:", f"    {call}"]
        typo_lines[len(lines)] = call
    snippet = tmp_path / "typo.py"
    snippet.write_text("\n".join(lines) + "\n")

    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert found.returncode == 1, found.stdout + found.stderr
    reported = {
        int(line.split(":")[1])
        for line in found.stdout.splitlines()
        if "Unexpected keyword argument" in line
    }
    assert reported == set(typo_lines), (typo_lines, found.stdout)
