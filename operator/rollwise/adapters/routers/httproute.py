"""Gateway API HTTPRoute rules as plain data: canary match rules, weighted backendRefs, and
setMirror as a RequestMirror filter or an owned TraefikService. Pure functions over JSON dicts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rollwise.adapters.manifests.types import (
    Manifest,
    ServiceRef,
    is_owned_by,
    owner_reference,
    service_labels,
)
from rollwise.adapters.routers.router import stable_canary
from rollwise.adapters.routers.weights import split_weights, weight_of
from rollwise.api.routing import CanaryMatch, CookieMatch
from rollwise.api.service import ServiceSpec

# ----------------------------------------------------------------------------- Gateway API


def is_service_ref(ref: Manifest, name: str) -> bool:
    return (
        ref.get("name") == name
        and ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
    )


CANARY_RULE_PREFIX = "rollwise-canary-"


def is_canary_match_rule(rule: Manifest) -> bool:
    """A rule rollwise added for ``canaryMatches`` (it names them; Gateway API rule names are
    unique within a route)."""
    return str(rule.get("name", "")).startswith(CANARY_RULE_PREFIX)


def cookie_header_match(cookie: CookieMatch) -> Manifest:
    """``name=value`` anywhere in the Cookie header, as a header regular expression (RE2 and
    POSIX ERE alike; Gateway API has no cookie match)."""
    pattern = f"^(.*;[ ]*)?{re.escape(cookie.name)}={re.escape(cookie.value)}(;.*)?$"
    return {"type": "RegularExpression", "name": "Cookie", "value": pattern}


def canary_match_rules(
    rules: list[Manifest], stable: str, canary: str, matches: Sequence[CanaryMatch]
) -> list[Manifest]:
    """For every user rule routing to ``stable``: one rule with the same matches, each
    narrowed by every canary match's headers and cookies, routing only to ``canary``. More
    header matches take precedence in Gateway API, so matching requests reach the canary."""
    out: list[Manifest] = []
    if not matches:
        return out
    for rule in rules:
        targets = rule.get("backendRefs") or []
        stable_ref = next((t for t in targets if is_service_ref(t, stable)), None)
        if stable_ref is None or is_canary_match_rule(rule):
            continue
        narrowed = []
        for base in rule.get("matches") or [{}]:
            for match in matches:
                headers = [h.model_dump(by_alias=True) for h in match.headers or ()]
                headers += [cookie_header_match(c) for c in match.cookies or ()]
                narrowed.append({**base, "headers": [*(base.get("headers") or []), *headers]})
        canary_ref = {k: v for k, v in stable_ref.items() if k != "weight"}
        out.append(
            {
                "name": f"{CANARY_RULE_PREFIX}{len(out)}",
                "matches": narrowed,
                "backendRefs": [{**canary_ref, "name": canary}],
                **({"filters": rule["filters"]} if rule.get("filters") else {}),
            }
        )
    return out


def httproute_rules_with_weight(
    rules: list[Manifest],
    stable: str,
    canary: str,
    weight: int,
    matches: Sequence[CanaryMatch] = (),
) -> list[Manifest]:
    """The HTTPRoute's rules with backendRefs weights set: stable 100-weight, canary weight;
    with ``matches`` and a weight above 0, rollwise's canary match rules after them (and none
    at weight 0: nothing points at a drained canary)."""
    user_rules = [r for r in rules if not is_canary_match_rule(r)]
    split = split_weights(
        user_rules,
        "backendRefs",
        is_service_ref,
        stable,
        canary,
        weight,
        lambda ref: {**ref, "name": canary},
    )
    if weight > 0 and matches:
        split += canary_match_rules(user_rules, stable, canary, matches)
    return split


def httproute_weight(
    route: Manifest, stable: str, canary: str, matches: Sequence[CanaryMatch] = ()
) -> int | None:
    """The canary weight in force, or None if the split or the canary match rules are not
    what that weight calls for."""
    rules = (route.get("spec") or {}).get("rules") or []
    user_rules = [r for r in rules if not is_canary_match_rule(r)]
    # Gateway API: an unset backendRef weight means 1.
    weight = weight_of(user_rules, "backendRefs", is_service_ref, stable, canary, default=1)
    if weight is None:
        return None
    wanted = canary_match_rules(user_rules, stable, canary, matches) if weight > 0 else []
    owned = [r for r in rules if is_canary_match_rule(r)]
    return weight if _same_rules(owned, wanted) else None


def _same_rules(have: list[Manifest], wanted: list[Manifest]) -> bool:
    """Equal up to what the API server defaults (header match type, backendRef group/kind)."""

    def normal(rule: Manifest) -> Manifest:
        matches = [
            {
                **m,
                "headers": [{"type": "Exact", **h} for h in m.get("headers") or []],
                "path": m.get("path") or {"type": "PathPrefix", "value": "/"},
            }
            for m in rule.get("matches") or [{}]
        ]
        refs = [
            {"group": "", "kind": "Service", "weight": 1, **ref}
            for ref in rule.get("backendRefs") or []
        ]
        return {**rule, "matches": matches, "backendRefs": refs}

    return [normal(r) for r in have] == [normal(r) for r in wanted]


# ----------------------------------------------------------------------------- mirroring

MirrorWith = Literal["RequestMirror", "TraefikService"]
TRAEFIK_GROUP = "traefik.io"
TRAEFIK_SERVICE = "TraefikService"
_REF_IDENTITY = ("group", "kind", "name", "namespace", "port")


def mirror_service_name(name: str) -> str:
    """The TraefikService rollwise owns for `mirrorWith: TraefikService`."""
    return f"{name}-mirror"


@dataclass(frozen=True)
class Backends:
    """The Services a route splits and mirrors between, and how setMirror copies requests."""

    stable: str
    canary: str
    port: int
    mirror_with: MirrorWith = "RequestMirror"
    mirror_service: str = ""
    native_lb: bool = False  # Traefik's nativeLB on the TraefikService's Service references

    @classmethod
    def of(cls, ref: ServiceRef, spec: ServiceSpec) -> Backends:
        stable, canary = stable_canary(ref.name)
        route = spec.strategy.canary.traffic_routing.gateway_api
        return cls(
            stable=stable,
            canary=canary,
            port=spec.service.port,
            mirror_with=route.mirror_mode if route is not None else "RequestMirror",
            mirror_service=mirror_service_name(ref.name),
            native_lb=bool(route and route.traefik_native_lb),
        )


def request_mirror_filter(b: Backends, percent: int) -> Manifest:
    """The standard HTTPRequestMirrorFilter copying `percent` of a rule's requests to the
    canary Service (group and kind written out, as the API server would default them)."""
    return {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": b.canary, "port": b.port},
            "percent": percent,
        },
    }


def _is_canary_mirror_filter(f: Manifest, b: Backends) -> bool:
    """A RequestMirror filter to the canary Service: rollwise's (it owns that Service)."""
    mirror = f.get("requestMirror") or {}
    return f.get("type") == "RequestMirror" and is_service_ref(
        mirror.get("backendRef") or {}, b.canary
    )


def _is_mirror_service_ref(ref: Manifest, b: Backends) -> bool:
    return (
        ref.get("group") == TRAEFIK_GROUP
        and ref.get("kind") == TRAEFIK_SERVICE
        and ref.get("name") == b.mirror_service
    )


def _rest(ref: Manifest) -> Manifest:
    """A backendRef without what names its target (weight and filters stay)."""
    return {k: v for k, v in ref.items() if k not in _REF_IDENTITY}


def unmirrored_rules(rules: list[Manifest], b: Backends) -> list[Manifest]:
    """The rules as the user wrote them before any setMirror: rollwise's RequestMirror filters
    removed, and the mirror TraefikService in place of the stable Service put back."""
    out: list[Manifest] = []
    for rule in rules:
        if is_canary_match_rule(rule):
            out.append(rule)
            continue
        rule = dict(rule)
        if any(_is_mirror_service_ref(r, b) for r in rule.get("backendRefs") or []):
            rule["backendRefs"] = [
                {**_rest(r), "group": "", "kind": "Service", "name": b.stable, "port": b.port}
                if _is_mirror_service_ref(r, b)
                else r
                for r in rule["backendRefs"]
            ]
        filters = rule.get("filters") or []
        if any(_is_canary_mirror_filter(f, b) for f in filters):
            kept = [f for f in filters if not _is_canary_mirror_filter(f, b)]
            if kept:
                rule["filters"] = kept
            else:
                rule.pop("filters")
        out.append(rule)
    return out


def mirrored_rules(rules: list[Manifest], b: Backends, percent: int) -> list[Manifest]:
    """Every user rule routing to stable copies `percent` of its requests to the canary:
    with a RequestMirror filter, or through the mirror TraefikService in place of the stable
    Service (whose responses are the ones clients get)."""
    if percent <= 0:
        return rules
    out: list[Manifest] = []
    for rule in rules:
        refs = rule.get("backendRefs") or []
        if is_canary_match_rule(rule) or not any(is_service_ref(r, b.stable) for r in refs):
            out.append(rule)
        elif b.mirror_with == "RequestMirror":
            filters = [*(rule.get("filters") or []), request_mirror_filter(b, percent)]
            out.append({**rule, "filters": filters})
        else:
            mirror_ref = {"group": TRAEFIK_GROUP, "kind": TRAEFIK_SERVICE, "name": b.mirror_service}
            out.append(
                {
                    **rule,
                    "backendRefs": [
                        {**_rest(r), **mirror_ref} if is_service_ref(r, b.stable) else r
                        for r in refs
                    ],
                }
            )
    return out


def _routes_stable(rule: Manifest, b: Backends) -> bool:
    refs = rule.get("backendRefs") or []
    return not is_canary_match_rule(rule) and any(
        is_service_ref(r, b.stable) or _is_mirror_service_ref(r, b) for r in refs
    )


def filter_mirror(rules: list[Manifest], b: Backends) -> int | None:
    """The share rollwise's RequestMirror filters copy: p when every rule routing to stable
    has one at p, 0 when none has any, None otherwise."""
    seen: list[tuple[int, ...]] = []
    for rule in rules:
        if _routes_stable(rule, b):
            ours = [f for f in rule.get("filters") or [] if _is_canary_mirror_filter(f, b)]
            seen.append(tuple(int((f["requestMirror"]).get("percent", -1)) for f in ours))
    if all(not s for s in seen):
        return 0
    shares = {s for s in seen}
    if len(shares) != 1:
        return None
    [only] = shares
    return only[0] if len(only) == 1 and 0 < only[0] <= 100 else None


def service_mirror_refs(rules: list[Manifest], b: Backends) -> bool | None:
    """True when every rule routing to stable goes through the mirror TraefikService, False
    when none does, None when some do."""
    through = [
        any(_is_mirror_service_ref(r, b) for r in rule.get("backendRefs") or [])
        for rule in rules
        if _routes_stable(rule, b)
    ]
    if all(through) and through:
        return True
    return None if any(through) else False


def traefik_mirror_service(ref: ServiceRef, b: Backends, percent: int) -> Manifest:
    """The TraefikService that answers from stable and copies `percent` of those requests to
    the canary (Traefik discards the copies' responses); at 0 it has no mirror at all. Owned
    by the ProgressiveService."""
    lb: Manifest = {"nativeLB": True} if b.native_lb else {}
    mirrors = [{"name": b.canary, "port": b.port, **lb, "percent": percent}] if percent else []
    return {
        "apiVersion": f"{TRAEFIK_GROUP}/v1alpha1",
        "kind": TRAEFIK_SERVICE,
        "metadata": {
            "name": b.mirror_service,
            "namespace": ref.namespace,
            "labels": service_labels(ref.name),
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": {
            "mirroring": {
                "name": b.stable,
                "port": b.port,
                **lb,
                **({"mirrors": mirrors} if mirrors else {}),
            }
        },
    }


def traefik_service_percent(obj: Manifest | None, ref: ServiceRef, b: Backends) -> int | None:
    """The share the mirror TraefikService copies (0: no mirror), if it is ours and exactly as
    rollwise writes it; None otherwise."""
    if obj is None or not is_owned_by(obj, ref.uid):
        return None
    mirrors = ((obj.get("spec") or {}).get("mirroring") or {}).get("mirrors") or []
    percent = mirrors[0].get("percent") if len(mirrors) == 1 else 0 if not mirrors else None
    if not isinstance(percent, int) or not 0 <= percent <= 100:
        return None
    spec = obj.get("spec") or {}
    if spec.get("mirroring", {}).get("mirrors") == []:  # an empty list is no mirror too
        spec = {**spec, "mirroring": {k: v for k, v in spec["mirroring"].items() if k != "mirrors"}}
    return percent if spec == traefik_mirror_service(ref, b, percent)["spec"] else None


def service_mirror(through: bool, percent: int | None) -> int | None:
    """The share mirrored with mirrorWith: TraefikService: the TraefikService's when the route
    goes through it, 0 when neither mirrors; None for a half-done change (a crash between the
    two writes), a TraefikService that is missing, foreign or edited, or a route through one
    that mirrors nothing: the next write completes it."""
    if percent is None or through != (percent > 0):
        return None
    return percent


def httproute_rules(
    rules: list[Manifest],
    b: Backends,
    weight: int,
    mirror: int,
    matches: Sequence[CanaryMatch] = (),
) -> list[Manifest]:
    """The whole rule set for a weight and a mirror share: the split (and canary match rules)
    computed on the rules as the user wrote them, then the mirroring, if any."""
    split = httproute_rules_with_weight(
        unmirrored_rules(rules, b), b.stable, b.canary, weight, matches
    )
    return mirrored_rules(split, b, mirror)
