"""The plugin commands Argo Rollouts users reach for: list, set image, undo, the watch tree and
completion, as pure functions of the objects read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import (
    GateResult,
    HistoryEntry,
    Phase,
    RevisionStatus,
    ServiceStatus,
    Verdict,
)
from rollwise.cli import plugin
from rollwise.cli.plugin_cluster import PluginError
from rollwise.cli.plugin_completion import candidates
from rollwise.cli.plugin_list import render_list
from rollwise.cli.plugin_spec import gitops_owner, image_patch, known_revisions, undo_patch
from rollwise.cli.plugin_tree import PodView, ReplicaSetView, RouterView, World, render_tree
from rollwise.core.revision import revision_of

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STEPS = [{"setWeight": 10}, {"pause": {"duration": "2m"}}, {"analysis": {"gates": [{"name": "e"}]}}]


def spec(version: str, *, declared: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "replicas": 4,
        "template": {"spec": {"containers": [{"name": "app", "image": f"shop/pay:{version}"}]}},
        "strategy": {"canary": {"steps": STEPS}},
    }
    if declared:
        body["version"] = version
    return body


def revision(version: str, declared: bool = True) -> str:
    return revision_of(ServiceSpec.model_validate(spec(version, declared=declared)))


def service(
    version: str, status: ServiceStatus, name: str = "pay", namespace: str = "shop", **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "creationTimestamp": "2026-12-01T09:00:00Z",
            **meta,
        },
        "spec": spec(version),
        "status": status.to_wire(),
    }


def healthy_after_two_promotions() -> ServiceStatus:
    r1, r2, r3 = revision("1.0.0"), revision("1.1.0"), revision("1.2.0")
    return ServiceStatus(
        phase=Phase.HEALTHY,
        stable=RevisionStatus(revision=r3, version="1.2.0", replicas=4, ready_replicas=4),
        history=[
            HistoryEntry(
                at=T0,
                event="InitialDeploy",
                message=f"first revision {r1} (version 1.0.0) deployed with 4 replicas",
            ),
            HistoryEntry(
                at=T0,
                event="Promoted",
                revision=r2,
                message=f"version 1.1.0 ({r2}) is stable and Healthy, 4/4 pods ready; "
                f"1.0.0 ({r1}) scaled down",
            ),
            HistoryEntry(
                at=T0,
                event="Promoted",
                revision=r3,
                message=f"version 1.2.0 ({r3}) is stable and Healthy, 4/4 pods ready; "
                f"1.1.0 ({r2}) scaled down",
            ),
        ],
    )


# ------------------------------------------------------------------------------------ list


def test_list_shows_one_row_per_service_with_its_step_as_people_count() -> None:
    canary = ServiceStatus(
        phase=Phase.PROGRESSING,
        stable=RevisionStatus(revision="a", version="1.0.0", replicas=4, ready_replicas=4),
        canary=RevisionStatus(revision="b", version="1.1.0", replicas=1, ready_replicas=1),
        canary_weight=10,
        current_step_index=1,
        current_step="2/3",
    )
    objects = [
        service("1.1.0", canary, name="pay"),
        service("1.0.0", ServiceStatus(), name="cart", namespace="web"),
    ]

    text = render_list(objects, T0, all_namespaces=True)

    lines = text.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "STABLE",
        "CANARY",
        "WEIGHT",
        "STEP",
        "READY",
        "AGE",
        "MESSAGE",
    ]
    assert lines[1].split()[:9] == [
        "shop",
        "pay",
        "Progressing",
        "1.0.0",
        "1.1.0",
        "10",
        "2/3",
        "5/4",
        "1h",
    ]
    assert lines[2].split()[:3] == ["web", "cart", "Pending"]
    assert render_list([], T0, False) == "No ProgressiveServices found.\n"


# ------------------------------------------------------------------------------- set image


@pytest.mark.parametrize(
    ("meta", "owner"),
    [
        (
            {"annotations": {"argocd.argoproj.io/tracking-id": "shop:rollwise.dev/X:shop/pay"}},
            "Argo CD",
        ),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "Flux"),
        ({"managedFields": [{"manager": "helm-controller"}]}, "Flux"),
        ({"managedFields": [{"manager": "argocd-controller"}]}, "Argo CD"),
        ({"managedFields": [{"manager": "kubectl-client-side-apply"}]}, None),
    ],
)
def test_gitops_ownership_is_read_from_the_marks_the_tools_leave(
    meta: dict[str, Any], owner: str | None
) -> None:
    found = gitops_owner(service("1.0.0", ServiceStatus(), **meta))

    assert (found or "").startswith(owner or "") and (found is None) == (owner is None)


def test_set_image_replaces_the_image_and_keeps_the_version_following_its_tag() -> None:
    obj = service("1.0.0", ServiceStatus())

    patch, notes = image_patch(obj, {"app": "shop/pay:1.1.0"}, None)

    assert patch == [
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "app"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": "shop/pay:1.1.0",
        },
        {"op": "add", "path": "/spec/version", "value": "1.1.0"},
    ]
    assert notes == ["spec.version follows the image tag: 1.0.0 -> 1.1.0"]


def test_set_image_refuses_an_unknown_container_and_a_workload_ref() -> None:
    obj = service("1.0.0", ServiceStatus())
    with pytest.raises(PluginError, match="no container web"):
        image_patch(obj, {"web": "x:1"}, None)
    obj["spec"] = {"workloadRef": {"name": "pay"}, "strategy": obj["spec"]["strategy"]}
    with pytest.raises(PluginError, match="kubectl set image deployment/pay"):
        image_patch(obj, {"app": "x:1"}, None)


# ------------------------------------------------------------------------------------ undo


def test_undo_rebuilds_the_previous_stable_revision_and_checks_its_hash() -> None:
    obj = service("1.2.0", healthy_after_two_promotions())

    patch, target = undo_patch(obj, None)

    assert (target.revision, target.version) == (revision("1.1.0"), "1.1.0")
    assert {"op": "replace", "path": "/spec/version", "value": "1.1.0"} in patch
    assert {
        "op": "replace",
        "path": "/spec/template/spec/containers/0/image",
        "value": "shop/pay:1.1.0",
    } in patch


def test_undo_to_a_named_revision_or_version() -> None:
    obj = service("1.2.0", healthy_after_two_promotions())

    _, by_version = undo_patch(obj, "1.0.0")
    _, by_prefix = undo_patch(obj, revision("1.1.0")[:6])

    assert by_version.revision == revision("1.0.0")
    assert by_prefix.version == "1.1.0"
    with pytest.raises(PluginError, match="unknown"):
        undo_patch(obj, "0.9.0")


def test_undo_after_a_rollback_declares_the_stable_revision_again() -> None:
    status = healthy_after_two_promotions().model_copy(update={"phase": Phase.ROLLED_BACK})
    obj = service("1.3.0", status)  # the spec still declares the version that was rolled back

    _, target = undo_patch(obj, None)

    assert target.version == "1.2.0"


def test_undo_refuses_what_it_cannot_rebuild_exactly() -> None:
    obj = service("1.2.0", healthy_after_two_promotions())
    obj["spec"]["replicas"] = 4
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]

    with pytest.raises(PluginError, match="differs from the current spec by more than its version"):
        undo_patch(obj, None)


def test_known_revisions_come_from_status_and_history_oldest_first() -> None:
    known = known_revisions(service("1.2.0", healthy_after_two_promotions()))

    assert [k.version for k in known] == ["1.0.0", "1.1.0", "1.2.0"]


# ------------------------------------------------------------------------------------ tree


def test_the_watch_tree_shows_steps_gates_router_revisions_and_pods() -> None:
    status = ServiceStatus(
        phase=Phase.PROGRESSING,
        stable=RevisionStatus(revision="s1", version="1.0.0", replicas=4, ready_replicas=4),
        canary=RevisionStatus(revision="c2", version="1.1.0", replicas=1, ready_replicas=1),
        canary_weight=10,
        current_step_index=2,
        current_step="3/3",
        history=[
            HistoryEntry(
                at=T0,
                event="StepCompleted",
                step=1,
                weight=10,
                message="step 2/3 (pause 2m)\ncompleted",
            )
        ],
        analysis=[
            GateResult(
                gate="e",
                step=2,
                value=0.004,
                verdict=Verdict.PASSED,
                measured_at=T0 - timedelta(seconds=30),
                measurements=2,
            )
        ],
    )
    world = World(
        replica_sets=(
            ReplicaSetView(
                "pay-c2",
                "c2",
                1,
                1,
                (PodView("pay-c2-x", "Running", True, 2, ("shop/pay:1.1.0",)),),
            ),
            ReplicaSetView(
                "pay-s1",
                "s1",
                4,
                4,
                (
                    PodView(
                        "pay-s1-a", "Pending", False, 0, ("shop/pay:1.0.0",), "ContainerCreating"
                    ),
                ),
            ),
        ),
        router=RouterView("gatewayAPI", "HTTPRoute pay", 10),
    )

    text = render_tree(service("1.1.0", status), world, T0)

    assert (
        "Router:     gatewayAPI HTTPRoute pay: canary weight 10% on the router, 10% in status"
        in text
    )
    assert "  ✔ 1. setWeight 10\n  ✔ 2. pause 2m\n  ► 3. analysis e\n" in text
    assert "  e  step 3  Passed  value 0.004  (2 measured, 0 failed)  30s ago" in text
    assert (
        "  ├── canary c2  version 1.1.0  weight 10%\n"
        "  │   └── ReplicaSet pay-c2  1/1 ready\n"
        "  │       └── pod pay-c2-x  Running  ready  restarts 2  shop/pay:1.1.0\n"
        "  └── stable s1  version 1.0.0\n"
        "      └── ReplicaSet pay-s1  4/4 ready\n"
        "          └── pod pay-s1-a  Pending  not ready  restarts 0  shop/pay:1.0.0  "
        "ContainerCreating\n"
    ) in text
    assert text.endswith(
        "History (last 1):\n"
        "  AT                    EVENT          STEP  WEIGHT  MESSAGE\n"
        "  2026-12-01T10:00:00Z  StepCompleted  2     10      step 2/3 (pause 2m) completed\n"
    )


# ------------------------------------------------------------------------------ completion


def test_completion_offers_commands_flags_and_names_from_the_cluster() -> None:
    parser = plugin.build_parser()
    asked: list[tuple[str, str | None]] = []

    def names(plural: str, namespace: str | None) -> list[str]:
        asked.append((plural, namespace))
        return ["payment", "cart"] if plural != "namespaces" else ["shop"]

    assert candidates(parser, ["st"], names) == ["status"]
    assert candidates(parser, ["-n", "shop", "promote", "p"], names) == ["payment"]
    assert asked[-1] == ("progressiveservices", "shop")
    assert candidates(parser, ["train", ""], names) == ["abort", "promote", "retry", "status"]
    candidates(parser, ["train", "status", ""], names)
    assert asked[-1] == ("releasetrains", None)
    assert candidates(parser, ["set", "image", "payment", ""], names) == []
    assert candidates(parser, ["list", "--a"], names) == ["--all-namespaces"]
    assert candidates(parser, ["-n", ""], names) == ["shop"]
