"""FleetRollout's API (validation, generated CRD) and the plugin's fleet view and requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from rollwise.api.crd import build_crds
from rollwise.api.fleet import FleetRolloutSpec, FleetRolloutStatus
from rollwise.cli.plugin import build_parser
from rollwise.cli.plugin_fleet import render_fleet
from rollwise.core.fleet.decide import decide_fleet
from rollwise.core.fleet.model import FleetMemberSpec as MemberSpec
from rollwise.core.fleet.model import MemberObservation

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


def raw_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"namespace": "shop", "service": "payment"},
        "version": "2.0.0",
        "clusters": [
            {"name": "eu-1", "region": "eu", "kubeconfigSecretRef": {"name": "eu-1"}},
            {"name": "us-1", "region": "us", "kubeconfigSecretRef": {"name": "us-1", "key": "k"}},
        ],
        "waves": [{"name": "canary", "clusters": ["eu-1"], "soak": "5m"}, {"name": "rest"}],
        "onFailure": "RollbackPromoted",
    }
    spec.update(overrides)
    return spec


def test_spec_reads_camel_case_and_defaults() -> None:
    spec = FleetRolloutSpec.model_validate(raw_spec())
    assert spec.clusters[0].kubeconfig_secret_ref.key == "kubeconfig"
    assert spec.clusters[1].kubeconfig_secret_ref.key == "k"
    assert spec.waves[1].max_parallel is None and spec.waves[1].soak == "0s"
    assert spec.on_failure.value == "RollbackPromoted"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"onFailure": "Ignore"}, "onFailure"),
        ({"waves": []}, "waves"),
        ({"waves": [{"name": "w", "maxParallel": 0}]}, "maxParallel"),
        ({"waves": [{"name": "w", "soak": "soon"}]}, "soak"),
        ({"waves": [{"name": "w"}, {"name": "w"}]}, "own name"),
        ({"clusters": [raw_spec()["clusters"][0]] * 2}, "more than once"),
        ({"version": ""}, "version"),
    ],
)
def test_bad_specs_are_rejected_with_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FleetRolloutSpec.model_validate(raw_spec(**change))


def test_the_generated_crd_has_status_subresource_columns_and_enums() -> None:
    crd = build_crds()["rollwise.dev_fleetrollouts.yaml"]
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["fleet"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Version", "Wave", "Message"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["onFailure"]["enum"] == ["Halt", "RollbackPromoted"]
    assert spec["properties"]["waves"]["minItems"] == 1
    assert '"default"' not in json.dumps(spec)  # GitOps: the stored spec is what was applied


def _member(name: str, version: str, phase: str = "Healthy") -> MemberObservation:
    return MemberObservation(
        cluster=name,
        reachable=True,
        found=True,
        spec=MemberSpec(version, ({"name": "app", "image": f"shop/payment:{version}"},)),
        resource_version="1",
        generation=1,
        observed_generation=1,
        phase=phase,
        stable_version=version,
    )


def test_the_fleet_view_is_a_tree_of_waves_and_clusters_with_why() -> None:
    spec = FleetRolloutSpec.model_validate(raw_spec())
    members = {
        "eu-1": _member("eu-1", "1.0.0"),
        "us-1": MemberObservation("us-1", reachable=False, error="connection refused"),
    }
    first = decide_fleet(spec, FleetRolloutStatus(), members, T0).status
    status = decide_fleet(spec, first, members, T0 + timedelta(seconds=1)).status
    obj = {
        "metadata": {"namespace": "fleet", "name": "payment"},
        "spec": raw_spec(),
        "status": status.to_wire(),
    }
    view = render_fleet(obj, T0 + timedelta(seconds=3))
    lines = view.splitlines()
    assert lines[0].startswith("FleetRollout fleet/payment: Progressing")
    canary = next(i for i, line in enumerate(lines) if line.startswith("canary"))
    assert lines[canary + 1].lstrip().startswith("└─ eu-1 (eu)")
    assert "Patching" in lines[canary + 1] and "1.0.0" in lines[canary + 1]
    assert any("└─ us-1 (us)" in line and " NO " in line for line in lines)
    assert "MemberUnreachable=True" in view and "connection refused" in view
    assert "FleetStarted" in view


def test_fleet_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["fleet", "promote", "payment", "--wait", "-n", "fleet"])
    assert (args.command, args.fleet_command, args.name, args.wait) == (
        "fleet",
        "promote",
        "payment",
        True,
    )
    assert args.namespace == "fleet"
    args = parser.parse_args(["-n", "hub", "fleet", "status", "payment", "-o", "json"])
    assert (args.namespace, args.output) == ("hub", "json")
    with pytest.raises(SystemExit):
        parser.parse_args(["fleet", "retry", "payment"])
