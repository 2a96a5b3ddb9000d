"""Traffic routers: how a canary weight reaches the traffic.

One small Protocol, one implementation per `spec.strategy.canary.trafficRouting` kind, chosen by
a factory. Routers split between the Services `<name>-stable` and `<name>-canary` (their
selectors are kept by EnsureServices), so a router only ever moves weights. The user owns the
route objects; rollwise patches only the weights, except for nginx, where it owns the canary
Ingress it creates beside the user's, and the gatewayAPI router with
`mirrorWith: TraefikService`, where it owns the TraefikService `<name>-mirror`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rollwise.adapters.adoption import create_or_adopt
from rollwise.adapters.errors import AdapterError, NotOwnedError, ObjectMissingError
from rollwise.adapters.kubeapi import (
    HTTP_ROUTES,
    INGRESSES,
    TRAEFIK_SERVICES,
    VIRTUAL_SERVICES,
    KubeApi,
)
from rollwise.adapters.manifests import (
    Manifest,
    ServiceRef,
    is_owned_by,
    merge_patch,
    owner_reference,
    service_labels,
)
from rollwise.api.service import CanaryMatch, CookieMatch, ServiceSpec
from rollwise.core import naming
from rollwise.core.model import SetRouterWeight

NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
_ROUTING_FIELD = "spec.strategy.canary.trafficRouting"


class RouteError(ValueError):
    """A route object cannot be split between stable and canary as it is written."""


@dataclass(frozen=True)
class RouterReading:
    """What a router does now: the canary weight and the share of stable's requests it copies
    to the canary; each None when unknown, missing or inconsistent (a write repairs it)."""

    weight: int | None
    mirror: int | None = 0


class Router(Protocol):
    """Reads and sets the canary weight (0-100) of one traffic router."""

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        """The weight and mirror share in force."""
        ...

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        """Set the canary weight and mirror share; raises AdapterError naming the object and
        what to fix."""
        ...


def _stable_canary(name: str) -> tuple[str, str]:
    _, stable, canary = naming.service_names(name)
    return stable, canary


# ----------------------------------------------------------------------------- replicas


class ReplicasRouter:
    """The weight is the canary's share of ready pods; EnsureServices does all the routing."""

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        return None

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=None)

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        return None


# ----------------------------------------------------------------------------- shared shape


def _split(
    groups: list[Manifest],
    key: str,
    matches: Any,
    stable: str,
    canary: str,
    weight: int,
    make_canary: Any,
) -> list[Manifest]:
    """Within every group (an HTTPRoute rule, a VirtualService http route) whose `key` list
    targets stable: stable gets 100-weight, canary gets weight (added when missing)."""
    out: list[Manifest] = []
    found = False
    for group in groups:
        targets = group.get(key) or []
        stable_target = next((t for t in targets if matches(t, stable)), None)
        if stable_target is None:
            out.append(group)
            continue
        found = True
        new_targets = []
        for target in targets:
            if matches(target, stable):
                new_targets.append({**target, "weight": 100 - weight})
            elif matches(target, canary):
                new_targets.append({**target, "weight": weight})
            else:
                new_targets.append(target)
        if not any(matches(t, canary) for t in targets):
            new_targets.append({**make_canary(stable_target), "weight": weight})
        out.append({**group, key: new_targets})
    if not found:
        raise RouteError(f"nothing routes to Service {stable}")
    return out


def _weight_of(
    groups: list[Manifest], key: str, matches: Any, stable: str, canary: str, default: int
) -> int | None:
    """The canary weight when every group targeting stable splits stable/canary as 100-w / w."""
    seen: set[int] = set()
    for group in groups:
        targets = group.get(key) or []
        stable_target = next((t for t in targets if matches(t, stable)), None)
        if stable_target is None:
            continue
        canary_target = next((t for t in targets if matches(t, canary)), None)
        if canary_target is None:
            return None
        w = int(canary_target.get("weight", default))
        if int(stable_target.get("weight", default)) != 100 - w:
            return None
        seen.add(w)
    return seen.pop() if len(seen) == 1 else None


# ----------------------------------------------------------------------------- Gateway API


def _is_service_ref(ref: Manifest, name: str) -> bool:
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
        stable_ref = next((t for t in targets if _is_service_ref(t, stable)), None)
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
    split = _split(
        user_rules,
        "backendRefs",
        _is_service_ref,
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
    weight = _weight_of(user_rules, "backendRefs", _is_service_ref, stable, canary, default=1)
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
        stable, canary = _stable_canary(ref.name)
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
    return f.get("type") == "RequestMirror" and _is_service_ref(
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
        if is_canary_match_rule(rule) or not any(_is_service_ref(r, b.stable) for r in refs):
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
                        {**_rest(r), **mirror_ref} if _is_service_ref(r, b.stable) else r
                        for r in refs
                    ],
                }
            )
    return out


def _routes_stable(rule: Manifest, b: Backends) -> bool:
    refs = rule.get("backendRefs") or []
    return not is_canary_match_rule(rule) and any(
        _is_service_ref(r, b.stable) or _is_mirror_service_ref(r, b) for r in refs
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


class GatewayAPIRouter:
    """backendRefs weights on `<name>-stable` / `<name>-canary` in the user's HTTPRoute, and
    setMirror as a RequestMirror filter or through a TraefikService rollwise owns."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def _route_name(self, spec: ServiceSpec) -> str:
        ref = spec.strategy.canary.traffic_routing.gateway_api
        assert ref is not None
        return ref.http_route

    def _matches(self, spec: ServiceSpec) -> Sequence[CanaryMatch]:
        ref = spec.strategy.canary.traffic_routing.gateway_api
        assert ref is not None
        return ref.canary_matches or ()

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        return self.read(ref, spec).weight

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        route = self._api.get(HTTP_ROUTES, ref.namespace, self._route_name(spec))
        if route is None:
            return RouterReading(weight=None, mirror=None)
        b = Backends.of(ref, spec)
        rules = (route.get("spec") or {}).get("rules") or []
        base = {"spec": {"rules": unmirrored_rules(rules, b)}}
        weight = httproute_weight(base, b.stable, b.canary, self._matches(spec))
        filters, through = filter_mirror(rules, b), service_mirror_refs(rules, b)
        if b.mirror_with == "RequestMirror":
            return RouterReading(weight, filters if through is False else None)
        if filters != 0 or through is None:
            return RouterReading(weight, None)
        # The TraefikService is kept from the first pass on (with no mirror while not
        # mirroring): missing, foreign or edited, it reads as unknown and is written again.
        service = self._api.get(TRAEFIK_SERVICES, ref.namespace, b.mirror_service)
        return RouterReading(
            weight, service_mirror(through, traefik_service_percent(service, ref, b))
        )

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        name = self._route_name(spec)
        b = Backends.of(ref, spec)
        field = f"{_ROUTING_FIELD}.gatewayAPI.httpRoute"
        traefik = b.mirror_with == "TraefikService"
        route_mirror = action.mirror
        # Traefik loads the route (Gateway provider) and the TraefikService (CRD provider)
        # independently, and a route naming a service it has not loaded answers 404. So the
        # TraefikService is never deleted (at 0 it has no mirror; the garbage collector takes
        # it with the ProgressiveService), it exists long before a setMirror step (from the
        # first pass), and one created just now is pointed at only by a later pass.
        if traefik and action.mirror > 0 and self._ensure_mirror_service(ref, b, action.mirror):
            route_mirror = 0
        _patch_weights(
            self._api,
            HTTP_ROUTES,
            ref,
            name,
            field,
            lambda route: {
                "rules": httproute_rules(
                    (route.get("spec") or {}).get("rules") or [],
                    b,
                    action.weight,
                    route_mirror,
                    self._matches(spec),
                )
            },
            fix=f"add a rule with backendRefs to Service {b.stable} (rollwise adds {b.canary})",
        )
        if traefik and action.mirror == 0:
            self._ensure_mirror_service(ref, b, 0)

    def _ensure_mirror_service(self, ref: ServiceRef, b: Backends, percent: int) -> bool:
        """The mirror TraefikService at `percent`; True when it was created just now."""
        wanted = traefik_mirror_service(ref, b, percent)
        obj = TRAEFIK_SERVICES.describe(ref.namespace, b.mirror_service)
        try:
            current = self._api.get(TRAEFIK_SERVICES, ref.namespace, b.mirror_service)
            if current is None:
                current = create_or_adopt(self._api, TRAEFIK_SERVICES, ref, wanted)
                if current is None:
                    return True
        except AdapterError as err:
            if err.status != 404:
                raise
            raise AdapterError(
                obj,
                "the TraefikService kind (traefik.io/v1alpha1) is not served",
                field=f"{_ROUTING_FIELD}.gatewayAPI.mirrorWith",
                fix="install Traefik's CRDs and enable its kubernetesCRD provider, "
                "or use mirrorWith: RequestMirror",
            ) from err
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(obj)
        patch = merge_patch(current.get("spec") or {}, wanted["spec"])
        if patch:
            self._api.patch(TRAEFIK_SERVICES, ref.namespace, b.mirror_service, {"spec": patch})
        return False


# ----------------------------------------------------------------------------- Istio


def _host_matches(namespace: str) -> Any:
    def matches(route: Manifest, service: str) -> bool:
        host = str((route.get("destination") or {}).get("host", ""))
        return host == service or host.startswith(f"{service}.{namespace}")

    return matches


def virtualservice_http_with_weight(
    http: list[Manifest], namespace: str, stable: str, canary: str, weight: int
) -> list[Manifest]:
    """The VirtualService's http routes with destination weights set."""

    def make_canary(route: Manifest) -> Manifest:
        destination = dict(route.get("destination") or {})
        host = str(destination.get("host", ""))
        destination["host"] = canary + host[len(stable) :]
        return {**route, "destination": destination}

    return _split(http, "route", _host_matches(namespace), stable, canary, weight, make_canary)


def virtualservice_weight(vs: Manifest, namespace: str, stable: str, canary: str) -> int | None:
    http = (vs.get("spec") or {}).get("http") or []
    # Istio: a single destination without weight takes 100; with several, weights are required.
    return _weight_of(http, "route", _host_matches(namespace), stable, canary, default=0)


class IstioRouter:
    """Destination weights for `<name>-stable` / `<name>-canary` in the user's VirtualService."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def _vs_name(self, spec: ServiceSpec) -> str:
        ref = spec.strategy.canary.traffic_routing.istio
        assert ref is not None
        return ref.virtual_service

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        vs = self._api.get(VIRTUAL_SERVICES, ref.namespace, self._vs_name(spec))
        if vs is None:
            return None
        return virtualservice_weight(vs, ref.namespace, *_stable_canary(ref.name))

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=self.read_weight(ref, spec))

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        stable, canary = _stable_canary(ref.name)
        _patch_weights(
            self._api,
            VIRTUAL_SERVICES,
            ref,
            self._vs_name(spec),
            f"{_ROUTING_FIELD}.istio.virtualService",
            lambda vs: {
                "http": virtualservice_http_with_weight(
                    (vs.get("spec") or {}).get("http") or [],
                    ref.namespace,
                    stable,
                    canary,
                    action.weight,
                )
            },
            fix=f"add an http route with a destination host {stable} (rollwise adds {canary})",
        )


def _patch_weights(
    api: KubeApi,
    res: Any,
    ref: ServiceRef,
    name: str,
    field: str,
    new_spec: Any,
    fix: str,
) -> None:
    """Read the user's route object, compute its weighted spec part and patch it with the
    resourceVersion read, so a concurrent edit by its owner is retried, never overwritten."""
    obj = res.describe(ref.namespace, name)
    for attempt in (1, 2):
        current = api.get(res, ref.namespace, name)
        if current is None:
            raise ObjectMissingError(
                obj,
                "does not exist",
                field=field,
                fix=f"create it, or point {field} at an existing {res.kind}",
            )
        try:
            wanted = new_spec(current)
        except RouteError as err:
            raise AdapterError(obj, str(err), field=field, fix=fix) from err
        spec = current.get("spec") or {}
        labels = (current.get("metadata") or {}).get("labels") or {}
        labelled = labels.get(naming.LABEL_ROUTE_OF) == ref.name
        if labelled and all(spec.get(k) == v for k, v in wanted.items()):
            return
        # The label makes the route's own watch wake this service on any change to it.
        body = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "labels": {naming.LABEL_ROUTE_OF: ref.name},
            },
            "spec": wanted,
        }
        try:
            api.patch(res, ref.namespace, name, body)
            return
        except AdapterError as err:
            if err.status != 409 or attempt == 2:
                raise


# ----------------------------------------------------------------------------- nginx


def nginx_canary_name(ingress: str) -> str:
    return ingress[: 253 - len("-canary")] + "-canary"


def _rewrite_backend(backend: Manifest, stable: str, canary: str) -> tuple[Manifest, bool]:
    service = backend.get("service") or {}
    if service.get("name") != stable:
        return backend, False
    return {**backend, "service": {**service, "name": canary}}, True


def _copied_annotation(key: str) -> bool:
    """The user's ingress-nginx settings (rewrites, timeouts, ...) and class apply to the canary
    too; the user's own canary annotations never do."""
    if key == "kubernetes.io/ingress.class":
        return True
    return key.startswith("nginx.ingress.kubernetes.io/") and not key.startswith(NGINX_CANARY)


def nginx_canary_ingress(
    ref: ServiceRef, ingress: Manifest, stable: str, canary: str, weight: int
) -> Manifest:
    """A copy of the user's Ingress whose backends on `stable` point at `canary`, marked as an
    ingress-nginx canary with `weight`; owned by the ProgressiveService."""
    spec = ingress.get("spec") or {}
    found = False
    rules = []
    for rule in copy.deepcopy(spec.get("rules") or []):
        for path in (rule.get("http") or {}).get("paths") or []:
            path["backend"], hit = _rewrite_backend(path.get("backend") or {}, stable, canary)
            found = found or hit
        rules.append(rule)
    canary_spec: Manifest = {"rules": rules}
    if spec.get("ingressClassName"):
        canary_spec["ingressClassName"] = spec["ingressClassName"]
    if spec.get("defaultBackend"):
        canary_spec["defaultBackend"], hit = _rewrite_backend(
            spec["defaultBackend"], stable, canary
        )
        found = found or hit
    if not found:
        raise RouteError(f"no backend points at Service {stable}")
    metadata = ingress.get("metadata") or {}
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if _copied_annotation(k)
    }
    annotations[NGINX_CANARY] = "true"
    annotations[NGINX_CANARY_WEIGHT] = str(weight)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": nginx_canary_name(str(metadata.get("name"))),
            "namespace": ref.namespace,
            "labels": service_labels(ref.name),
            "annotations": annotations,
            "ownerReferences": [owner_reference(ref)],
        },
        "spec": canary_spec,
    }


def _nginx_patch(current: Manifest, wanted: Manifest) -> Manifest:
    """Only what rollwise owns: its labels and annotations, and the whole spec."""
    patch: Manifest = {}
    metadata = current.get("metadata") or {}
    meta_patch: Manifest = {}
    for key in ("labels", "annotations"):
        have = metadata.get(key) or {}
        diff = {k: v for k, v in wanted["metadata"][key].items() if have.get(k) != v}
        if diff:
            meta_patch[key] = diff
    if meta_patch:
        patch["metadata"] = meta_patch
    spec_patch = merge_patch(current.get("spec") or {}, wanted["spec"])
    if spec_patch:
        patch["spec"] = spec_patch
    return patch


class NginxRouter:
    """A canary Ingress beside the user's, with ingress-nginx's canary-weight annotation."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def _ingress_name(self, spec: ServiceSpec) -> str:
        ref = spec.strategy.canary.traffic_routing.nginx
        assert ref is not None
        return ref.ingress

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        """The canary Ingress's weight, if it is ours and still a faithful copy of the user's
        Ingress (an edited user Ingress makes it None, so the copy is rewritten)."""
        name = self._ingress_name(spec)
        user = self._api.get(INGRESSES, ref.namespace, name)
        current = self._api.get(INGRESSES, ref.namespace, nginx_canary_name(name))
        if user is None or current is None or not is_owned_by(current, ref.uid):
            return None
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        try:
            weight = int(annotations.get(NGINX_CANARY_WEIGHT, ""))
        except ValueError:
            return None
        try:
            wanted = nginx_canary_ingress(ref, user, *_stable_canary(ref.name), weight)
        except RouteError:
            return None
        return None if _nginx_patch(current, wanted) else weight

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=self.read_weight(ref, spec))

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        name = self._ingress_name(spec)
        field = f"{_ROUTING_FIELD}.nginx.ingress"
        user = self._api.get(INGRESSES, ref.namespace, name)
        obj = INGRESSES.describe(ref.namespace, name)
        if user is None:
            raise ObjectMissingError(
                obj,
                "does not exist",
                field=field,
                fix=f"create it, or point {field} at an existing Ingress",
            )
        stable, canary = _stable_canary(ref.name)
        try:
            wanted = nginx_canary_ingress(ref, user, stable, canary, action.weight)
        except RouteError as err:
            raise AdapterError(
                obj,
                str(err),
                field=field,
                fix=f"point the Ingress at Service {stable}; rollwise adds the canary Ingress",
            ) from err
        canary_name = wanted["metadata"]["name"]
        current = self._api.get(INGRESSES, ref.namespace, canary_name)
        if current is None:
            current = create_or_adopt(self._api, INGRESSES, ref, wanted)
            if current is None:
                return
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(ref.child("Ingress", canary_name))
        patch = _nginx_patch(current, wanted)
        if patch:
            self._api.patch(INGRESSES, ref.namespace, canary_name, patch)


# ----------------------------------------------------------------------------- factory


class RouterFactory:
    """One router per kind, keyed by `spec.strategy.canary.trafficRouting`'s one-of."""

    def __init__(self, api: KubeApi) -> None:
        self._routers: dict[str, Router] = {
            "replicas": ReplicasRouter(),
            "gatewayAPI": GatewayAPIRouter(api),
            "nginx": NginxRouter(api),
            "istio": IstioRouter(api),
        }

    def for_spec(self, spec: ServiceSpec) -> Router:
        return self._routers[spec.strategy.canary.traffic_routing.kind]
