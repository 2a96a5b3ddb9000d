"""setMirror in the user's HTTPRoute: the standard RequestMirror filter, or Traefik's
TraefikService in place of the stable backendRef. Pure transforms over objects shaped like the
API's; the real Gateway API CRDs and a real Traefik are in tests/integration."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollwise.adapters.manifests.types import ServiceRef
from rollwise.adapters.routers.httproute import (
    Backends,
    filter_mirror,
    httproute_rules,
    httproute_weight,
    service_mirror,
    service_mirror_refs,
    traefik_mirror_service,
    traefik_service_percent,
    unmirrored_rules,
)
from rollwise.api.routing import CanaryMatch, HeaderMatch

REF = ServiceRef(namespace="shop", name="payment", uid="uid-1")
STABLE, CANARY = "payment-stable", "payment-canary"
FILTERED = Backends(stable=STABLE, canary=CANARY, port=80, mirror_service="payment-mirror")
TRAEFIK = Backends(
    stable=STABLE,
    canary=CANARY,
    port=80,
    mirror_with="TraefikService",
    mirror_service="payment-mirror",
)
ADMIN_RULE: dict[str, Any] = {
    "matches": [{"path": {"value": "/admin"}}],
    "backendRefs": [{"name": "admin", "port": 80}],
}


def user_rules() -> list[dict[str, Any]]:
    """As the API server stores them: group and kind defaulted."""
    return [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": STABLE, "port": 80}],
        },
        copy.deepcopy(ADMIN_RULE),
    ]


def route(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": {"rules": rules}}


# ----------------------------------------------------------------------------- RequestMirror


def test_request_mirror_is_the_standard_filter_on_each_rule_routing_to_stable() -> None:
    rules = httproute_rules(user_rules(), FILTERED, weight=0, mirror=50)

    assert rules[0] == {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {"group": "", "kind": "Service", "name": STABLE, "port": 80, "weight": 100},
            {"group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 0},
        ],
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"group": "", "kind": "Service", "name": CANARY, "port": 80},
                    "percent": 50,
                },
            }
        ],
    }
    assert rules[1] == ADMIN_RULE


def test_request_mirror_share_is_read_back_changed_in_place_and_removed_at_zero() -> None:
    at_50 = httproute_rules(user_rules(), FILTERED, weight=10, mirror=50)
    at_30 = httproute_rules(at_50, FILTERED, weight=10, mirror=30)
    stopped = httproute_rules(at_30, FILTERED, weight=10, mirror=0)

    assert filter_mirror(at_50, FILTERED) == 50
    assert len(at_30[0]["filters"]) == 1 and filter_mirror(at_30, FILTERED) == 30
    assert filter_mirror(stopped, FILTERED) == 0
    assert "filters" not in stopped[0]
    assert stopped == httproute_rules(user_rules(), FILTERED, weight=10, mirror=0)
    for rules in (at_50, at_30, stopped):
        assert httproute_weight(route(unmirrored_rules(rules, FILTERED)), STABLE, CANARY) == 10


def test_the_users_own_filters_stay_and_are_not_taken_for_rollwises_mirror() -> None:
    theirs = [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "a"}]}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "audit", "port": 9}}},
    ]
    rules = user_rules()
    rules[0]["filters"] = copy.deepcopy(theirs)

    mirrored = httproute_rules(rules, FILTERED, weight=0, mirror=20)
    stopped = httproute_rules(mirrored, FILTERED, weight=0, mirror=0)

    assert mirrored[0]["filters"][:2] == theirs and len(mirrored[0]["filters"]) == 3
    assert filter_mirror(mirrored, FILTERED) == 20
    assert stopped[0]["filters"] == theirs
    assert filter_mirror(rules, FILTERED) == 0


def test_canary_match_rules_never_mirror_the_canary_to_itself() -> None:
    matches = [CanaryMatch(headers=[HeaderMatch(name="X-Canary", value="1")])]

    rules = httproute_rules(user_rules(), FILTERED, weight=10, mirror=50, matches=matches)

    [added] = [r for r in rules if r.get("name") == "rollwise-canary-0"]
    assert "filters" not in added
    assert filter_mirror(rules, FILTERED) == 50
    assert httproute_weight(route(unmirrored_rules(rules, FILTERED)), STABLE, CANARY, matches) == 10


def test_a_mirror_on_only_some_stable_rules_or_at_two_shares_reads_as_unknown() -> None:
    rules = [*user_rules(), copy.deepcopy(user_rules()[0])]
    rules[2]["matches"] = [{"path": {"type": "PathPrefix", "value": "/v2"}}]
    both = httproute_rules(rules, FILTERED, weight=0, mirror=40)
    one = copy.deepcopy(both)
    one[2].pop("filters")
    two = copy.deepcopy(both)
    two[2]["filters"][0]["requestMirror"]["percent"] = 41

    assert filter_mirror(both, FILTERED) == 40
    assert filter_mirror(one, FILTERED) is None
    assert filter_mirror(two, FILTERED) is None


# ----------------------------------------------------------------------------- TraefikService


def test_traefik_service_takes_the_stable_backend_refs_place_while_mirroring() -> None:
    rules = httproute_rules(user_rules(), TRAEFIK, weight=10, mirror=50)

    assert rules[0]["backendRefs"] == [
        {"group": "traefik.io", "kind": "TraefikService", "name": "payment-mirror", "weight": 90},
        {"group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 10},
    ]
    assert "filters" not in rules[0]
    assert rules[1] == ADMIN_RULE
    assert service_mirror_refs(rules, TRAEFIK) is True
    assert filter_mirror(rules, TRAEFIK) == 0
    assert httproute_weight(route(unmirrored_rules(rules, TRAEFIK)), STABLE, CANARY) == 10


def test_traefik_service_mirroring_ends_with_the_stable_service_back_in_place() -> None:
    mirrored = httproute_rules(user_rules(), TRAEFIK, weight=10, mirror=50)

    stopped = httproute_rules(mirrored, TRAEFIK, weight=0, mirror=0)

    assert stopped[0]["backendRefs"] == [
        {"group": "", "kind": "Service", "name": STABLE, "port": 80, "weight": 100},
        {"group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 0},
    ]
    assert service_mirror_refs(stopped, TRAEFIK) is False
    half = copy.deepcopy(mirrored)
    half.append({**copy.deepcopy(user_rules()[0]), "matches": [{"path": {"value": "/v2"}}]})
    assert service_mirror_refs(half, TRAEFIK) is None


def test_the_mirror_traefik_service_answers_from_stable_and_copies_to_the_canary() -> None:
    service = traefik_mirror_service(REF, TRAEFIK, 50)

    assert service["apiVersion"] == "traefik.io/v1alpha1"
    assert service["kind"] == "TraefikService"
    assert service["metadata"]["name"] == "payment-mirror"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert service["spec"] == {
        "mirroring": {
            "name": STABLE,
            "port": 80,
            "mirrors": [{"name": CANARY, "port": 80, "percent": 50}],
        }
    }
    assert traefik_service_percent(service, REF, TRAEFIK) == 50


def test_a_traefik_service_edited_or_not_ours_reads_as_unknown() -> None:
    edited = traefik_mirror_service(REF, TRAEFIK, 50)
    edited["spec"]["mirroring"]["mirrorBody"] = False
    foreign = traefik_mirror_service(ServiceRef("shop", "payment", "other-uid"), TRAEFIK, 50)

    assert traefik_service_percent(edited, REF, TRAEFIK) is None
    assert traefik_service_percent(foreign, REF, TRAEFIK) is None
    assert traefik_service_percent(None, REF, TRAEFIK) is None


def test_traefik_native_lb_is_set_on_both_service_references_when_asked_for() -> None:
    native = Backends(
        stable=STABLE,
        canary=CANARY,
        port=80,
        mirror_with="TraefikService",
        mirror_service="payment-mirror",
        native_lb=True,
    )

    service = traefik_mirror_service(REF, native, 25)

    assert service["spec"]["mirroring"] == {
        "name": STABLE,
        "port": 80,
        "nativeLB": True,
        "mirrors": [{"name": CANARY, "port": 80, "nativeLB": True, "percent": 25}],
    }
    assert traefik_service_percent(service, REF, native) == 25
    assert traefik_service_percent(service, REF, TRAEFIK) is None


def test_at_zero_the_traefik_service_stays_with_no_mirror_at_all() -> None:
    service = traefik_mirror_service(REF, TRAEFIK, 0)
    stored = copy.deepcopy(service)
    stored["spec"]["mirroring"]["mirrors"] = []

    assert service["spec"] == {"mirroring": {"name": STABLE, "port": 80}}
    assert traefik_service_percent(service, REF, TRAEFIK) == 0
    assert traefik_service_percent(stored, REF, TRAEFIK) == 0


@pytest.mark.parametrize(
    ("through", "percent", "reading"),
    [
        (True, 50, 50),  # mirroring
        (False, 0, 0),  # not mirroring: the TraefikService waits with no mirror
        (False, 50, None),  # TraefikService written, route not yet through it
        (True, 0, None),  # route still through a TraefikService that mirrors nothing
        (False, None, None),  # TraefikService missing, foreign or edited
        (True, None, None),
    ],
)
def test_the_traefik_mirror_in_force_needs_the_route_and_the_service_to_agree(
    through: bool, percent: int | None, reading: int | None
) -> None:
    assert service_mirror(through, percent) == reading
