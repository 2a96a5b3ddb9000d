"""A ProgressiveService's traffic routing: the one-of router (replicas, gatewayAPI, nginx,
istio) and the Gateway API's canary matches.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from rollwise.api.base import ApiModel, one_of

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"  # an RFC 7230 token, as Gateway API requires
COOKIE_VALUE = r"^[^;,\s\"\\]+$"  # RFC 6265 cookie-octets, no quoting


class HeaderMatch(ApiModel):
    """A request header the canary route requires (Gateway API HTTPHeaderMatch)."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    value: str = Field(min_length=1, max_length=4096)
    type: Literal["Exact", "RegularExpression"] = "Exact"


class CookieMatch(ApiModel):
    """A cookie the canary route requires, exactly name=value (on the Cookie header)."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    value: str = Field(min_length=1, max_length=1024, pattern=COOKIE_VALUE)


class CanaryMatch(ApiModel):
    """Requests with all these headers and cookies go to the canary while its weight is > 0."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.headers) ? size(self.headers) : 0)"
                    " + (has(self.cookies) ? size(self.cookies) : 0) >= 1",
                    "message": "a canary match needs at least one header or cookie",
                },
                {
                    "rule": "(has(self.headers) ? size(self.headers) : 0)"
                    " + (has(self.cookies) ? size(self.cookies) : 0) <= 16",
                    "message": "a canary match has at most 16 headers and cookies together "
                    "(Gateway API's limit of header matches)",
                },
            ]
        }
    )
    # None rather than [] when absent, so the wire form is what the user wrote.
    headers: list[HeaderMatch] | None = Field(default=None, max_length=16)
    cookies: list[CookieMatch] | None = Field(default=None, max_length=8)

    @model_validator(mode="after")
    def _not_empty(self) -> CanaryMatch:
        if not self.headers and not self.cookies:
            raise ValueError("a canary match needs at least one header or cookie")
        if len(self.headers or ()) + len(self.cookies or ()) > 16:
            raise ValueError("a canary match has at most 16 headers and cookies together")
        return self


class HTTPRouteRef(ApiModel):
    """The user's HTTPRoute: rollwise sets its stable/canary weights and owns its rules named
    rollwise-canary-<n> (canaryMatches)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.traefikNativeLB) || "
                    "(has(self.mirrorWith) && self.mirrorWith == 'TraefikService')",
                    "message": "traefikNativeLB applies to mirrorWith: TraefikService only",
                }
            ]
        }
    )

    http_route: str = Field(min_length=1)
    canary_matches: list[CanaryMatch] | None = Field(default=None, max_length=8)
    # None rather than the default when absent, so the wire form is what the user wrote.
    mirror_with: Literal["RequestMirror", "TraefikService"] | None = Field(
        default=None,
        description="How setMirror copies requests: RequestMirror, the standard "
        "HTTPRequestMirrorFilter (percent) on each rule routing to stable, for "
        "implementations that support it; TraefikService, a traefik.io TraefikService "
        "<name>-mirror (mirroring) that rollwise owns and puts in place of the stable "
        "backendRef while mirroring (Traefik implements no RequestMirror filter). "
        "Default RequestMirror.",
    )

    traefik_native_lb: bool | None = Field(
        default=None,
        alias="traefikNativeLB",
        description="mirrorWith: TraefikService only: set Traefik's nativeLB (the Services' "
        "ClusterIPs instead of their endpoints) on the TraefikService's Service references. Set "
        "it when your Traefik runs with nativeLBByDefault: Traefik v3.6 does not apply "
        "providers.kubernetesCRD.nativeLBByDefault to TraefikServices.",
    )

    @model_validator(mode="after")
    def _native_lb_with_traefik_service(self) -> HTTPRouteRef:
        if self.traefik_native_lb is not None and self.mirror_with != "TraefikService":
            raise ValueError("traefikNativeLB applies to mirrorWith: TraefikService only")
        return self

    @property
    def mirror_mode(self) -> Literal["RequestMirror", "TraefikService"]:
        """How setMirror copies requests; RequestMirror when mirrorWith is not set."""
        return self.mirror_with or "RequestMirror"


class IngressRef(ApiModel):
    ingress: str = Field(min_length=1)


class VirtualServiceRef(ApiModel):
    virtual_service: str = Field(min_length=1)


class ReplicaRouting(ApiModel):
    """Weight approximated by the canary's share of ready pods."""


class RouterKind(StrEnum):
    """A traffic router: the one-of of `trafficRouting`."""

    REPLICAS = "replicas"
    GATEWAY_API = "gatewayAPI"
    NGINX = "nginx"
    ISTIO = "istio"


# None given is the replicas router (the CRD defaults trafficRouting to it).
ONE_ROUTER = one_of("trafficRouting", *RouterKind, required=False)


class TrafficRouting(ApiModel):
    """Exactly one router. Immutable: switching routers mid-flight would orphan weights."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                ONE_ROUTER.rule(),
                {
                    "rule": "self == oldSelf",
                    "message": "trafficRouting is immutable; create a new ProgressiveService "
                    "to change the router",
                },
            ]
        }
    )
    replicas: ReplicaRouting | None = None
    gateway_api: HTTPRouteRef | None = Field(default=None, alias="gatewayAPI")
    nginx: IngressRef | None = None
    istio: VirtualServiceRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TrafficRouting:
        ONE_ROUTER.check(self)
        return self

    @property
    def kind(self) -> RouterKind:
        """The router: replicas (the default), gatewayAPI, nginx or istio."""
        if self.gateway_api is not None:
            return RouterKind.GATEWAY_API
        if self.nginx is not None:
            return RouterKind.NGINX
        if self.istio is not None:
            return RouterKind.ISTIO
        return RouterKind.REPLICAS
