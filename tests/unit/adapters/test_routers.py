"""Traffic routers: how a canary weight is written into the user's HTTPRoute, VirtualService or
a canary Ingress, and read back. Pure transforms over objects shaped like the API's; patching
real objects is tested against a real API server in tests/integration.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from rollwise.adapters.manifests.types import ServiceRef
from rollwise.adapters.routers.httproute import httproute_rules_with_weight, httproute_weight
from rollwise.adapters.routers.istio import virtualservice_http_with_weight, virtualservice_weight
from rollwise.adapters.routers.nginx import NGINX_CANARY, NGINX_CANARY_WEIGHT, nginx_canary_ingress
from rollwise.adapters.routers.registry import RouterFactory
from rollwise.adapters.routers.router import RouteError
from rollwise.api.routing import CanaryMatch, CookieMatch, HeaderMatch
from rollwise.api.service import ServiceSpec

REF = ServiceRef(namespace="shop", name="payment", uid="uid-1")
STABLE, CANARY = "payment-stable", "payment-canary"


# ----------------------------------------------------------------------------- Gateway API


def http_rules() -> list[dict[str, Any]]:
    return [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": STABLE, "port": 80}],
        },
        {
            "matches": [{"path": {"value": "/admin"}}],
            "backendRefs": [{"name": "admin", "port": 80}],
        },
    ]


def test_httproute_gets_a_canary_backend_beside_stable_with_the_split() -> None:
    rules = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10)

    assert rules[0]["backendRefs"] == [
        {"name": STABLE, "port": 80, "weight": 90},
        {"name": CANARY, "port": 80, "weight": 10},
    ]
    assert rules[0]["matches"] == http_rules()[0]["matches"]
    assert rules[1] == http_rules()[1]


def test_httproute_weights_are_moved_in_place_and_read_back() -> None:
    once = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10)
    twice = httproute_rules_with_weight(once, STABLE, CANARY, 50)

    assert [r["name"] for r in twice[0]["backendRefs"]] == [STABLE, CANARY]
    assert httproute_weight({"spec": {"rules": twice}}, STABLE, CANARY) == 50


def test_httproute_weight_is_unknown_until_both_backends_are_split() -> None:
    assert httproute_weight({"spec": {"rules": http_rules()}}, STABLE, CANARY) is None


def test_httproute_without_the_stable_backend_cannot_be_split() -> None:
    with pytest.raises(RouteError, match="nothing routes to Service payment-stable"):
        httproute_rules_with_weight(http_rules()[1:], STABLE, CANARY, 10)


def test_httproute_backends_of_another_kind_are_not_the_service() -> None:
    rules = [{"backendRefs": [{"name": STABLE, "kind": "Bucket", "group": "storage.example"}]}]

    with pytest.raises(RouteError):
        httproute_rules_with_weight(rules, STABLE, CANARY, 10)


# ----------------------------------------------------------------------------- Istio


def vs_http(host: str = STABLE) -> list[dict[str, Any]]:
    return [{"route": [{"destination": {"host": host, "port": {"number": 80}}}]}]


def test_virtualservice_gets_a_canary_destination_with_the_split() -> None:
    http = virtualservice_http_with_weight(vs_http(), "shop", STABLE, CANARY, 20)

    assert http[0]["route"] == [
        {"destination": {"host": STABLE, "port": {"number": 80}}, "weight": 80},
        {"destination": {"host": CANARY, "port": {"number": 80}}, "weight": 20},
    ]
    assert virtualservice_weight({"spec": {"http": http}}, "shop", STABLE, CANARY) == 20


def test_virtualservice_fully_qualified_hosts_keep_their_suffix() -> None:
    fqdn = f"{STABLE}.shop.svc.cluster.local"

    http = virtualservice_http_with_weight(vs_http(fqdn), "shop", STABLE, CANARY, 5)

    assert http[0]["route"][1]["destination"]["host"] == f"{CANARY}.shop.svc.cluster.local"


def test_virtualservice_host_of_another_namespace_is_not_ours() -> None:
    with pytest.raises(RouteError):
        virtualservice_http_with_weight(vs_http(f"{STABLE}.other"), "shop", STABLE, CANARY, 5)


# ----------------------------------------------------------------------------- nginx


def user_ingress() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "payment",
            "namespace": "shop",
            "annotations": {
                "nginx.ingress.kubernetes.io/rewrite-target": "/",
                "nginx.ingress.kubernetes.io/canary": "false",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["pay.example.com"], "secretName": "tls"}],
            "rules": [
                {
                    "host": "pay.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": STABLE, "port": {"number": 80}}},
                            },
                            {
                                "path": "/static",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "cdn", "port": {"number": 80}}},
                            },
                        ]
                    },
                }
            ],
        },
    }


def test_nginx_canary_ingress_copies_the_user_ingress_onto_the_canary_service() -> None:
    canary = nginx_canary_ingress(REF, user_ingress(), STABLE, CANARY, 30)

    paths = canary["spec"]["rules"][0]["http"]["paths"]
    assert canary["metadata"]["name"] == "payment-canary"
    assert paths[0]["backend"]["service"] == {"name": CANARY, "port": {"number": 80}}
    assert paths[1]["backend"]["service"]["name"] == "cdn"
    assert canary["spec"]["ingressClassName"] == "nginx"
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/rewrite-target": "/",
        NGINX_CANARY: "true",
        NGINX_CANARY_WEIGHT: "30",
    }
    assert canary["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert canary["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rollwise"


def test_nginx_user_ingress_is_not_modified() -> None:
    original = user_ingress()

    nginx_canary_ingress(REF, original, STABLE, CANARY, 30)

    assert original == user_ingress()


def test_nginx_ingress_that_does_not_route_to_stable_cannot_get_a_canary() -> None:
    ingress = user_ingress()
    ingress["spec"]["rules"][0]["http"]["paths"] = ingress["spec"]["rules"][0]["http"]["paths"][1:]

    with pytest.raises(RouteError, match="no backend points at Service payment-stable"):
        nginx_canary_ingress(REF, ingress, STABLE, CANARY, 30)


# ----------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("routing", "router"),
    [
        ({"replicas": {}}, "ReplicasRouter"),
        ({"gatewayAPI": {"httpRoute": "payment"}}, "GatewayAPIRouter"),
        ({"nginx": {"ingress": "payment"}}, "NginxRouter"),
        ({"istio": {"virtualService": "payment"}}, "IstioRouter"),
    ],
)
def test_the_factory_picks_the_router_named_in_the_spec(
    routing: dict[str, Any], router: str
) -> None:
    spec = ServiceSpec.model_validate(
        {
            "template": {"spec": {"containers": [{"name": "a", "image": "i:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 10}], "trafficRouting": routing}},
        }
    )

    chosen = RouterFactory(api=None).for_spec(spec)  # type: ignore[arg-type]

    assert type(chosen).__name__ == router


def test_the_replicas_router_has_no_weight_to_read_or_write() -> None:
    spec = ServiceSpec.model_validate(
        {
            "template": {"spec": {"containers": [{"name": "a", "image": "i:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
        }
    )
    router = RouterFactory(api=None).for_spec(spec)  # type: ignore[arg-type]

    assert router.read_weight(REF, spec) is None
    assert router.read(REF, spec).weight is None


# ----------------------------------------------------------------------------- canary matches


def canary_matches() -> list[CanaryMatch]:
    return [
        CanaryMatch(
            headers=[HeaderMatch(name="X-Canary", value="always")],
            cookies=[CookieMatch(name="beta", value="1")],
        )
    ]


def test_canary_matches_add_a_rollwise_rule_narrowing_each_stable_rule() -> None:
    rules = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10, canary_matches())

    assert [r.get("name") for r in rules] == [None, None, "rollwise-canary-0"]
    added = rules[2]
    assert added["backendRefs"] == [{"name": CANARY, "port": 80}]
    [match] = added["matches"]
    assert match["path"] == {"type": "PathPrefix", "value": "/"}
    assert match["headers"][0] == {"name": "X-Canary", "value": "always", "type": "Exact"}
    cookie = match["headers"][1]
    assert cookie["name"] == "Cookie" and cookie["type"] == "RegularExpression"
    for header in ("beta=1", "a=b; beta=1", "beta=1; a=b", "a=b;beta=1;c=d"):
        assert re.fullmatch(cookie["value"], header), header
    for header in ("beta=10", "xbeta=1", "a=beta=1", "beta=2"):
        assert not re.fullmatch(cookie["value"], header), header


def test_canary_match_rules_are_removed_at_weight_zero_and_not_duplicated() -> None:
    at_10 = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10, canary_matches())
    at_50 = httproute_rules_with_weight(at_10, STABLE, CANARY, 50, canary_matches())
    drained = httproute_rules_with_weight(at_50, STABLE, CANARY, 0, canary_matches())

    assert [r.get("name") for r in at_50].count("rollwise-canary-0") == 1
    assert not any(r.get("name", "").startswith("rollwise-canary-") for r in drained)
    assert httproute_weight({"spec": {"rules": at_50}}, STABLE, CANARY, canary_matches()) == 50
    assert httproute_weight({"spec": {"rules": drained}}, STABLE, CANARY, canary_matches()) == 0


def test_weight_is_unknown_while_the_canary_match_rules_are_missing_or_stale() -> None:
    split_only = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10)
    other = [CanaryMatch(headers=[HeaderMatch(name="X-Other", value="1")])]
    stale = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10, other)

    assert (
        httproute_weight({"spec": {"rules": split_only}}, STABLE, CANARY, canary_matches()) is None
    )
    assert httproute_weight({"spec": {"rules": stale}}, STABLE, CANARY, canary_matches()) is None


def test_server_defaults_do_not_make_the_canary_rules_look_stale() -> None:
    rules = httproute_rules_with_weight(http_rules(), STABLE, CANARY, 10, canary_matches())
    rules[2]["backendRefs"][0].update({"group": "", "kind": "Service", "weight": 1})

    assert httproute_weight({"spec": {"rules": rules}}, STABLE, CANARY, canary_matches()) == 10


def test_a_canary_match_needs_a_header_or_a_cookie() -> None:
    with pytest.raises(ValueError, match="at least one header or cookie"):
        CanaryMatch()
    with pytest.raises(ValueError):
        CookieMatch(name="beta", value="a;b")
