"""The Router Protocol every traffic router implements, and what it reads back.

Routers split between the Services `<name>-stable` and `<name>-canary` (their selectors are kept
by EnsureServices), so a router only ever moves weights. The user owns the route objects;
rollwise patches only the weights, except for nginx, where it owns the canary Ingress it creates
beside the user's, and the gatewayAPI router with `mirrorWith: TraefikService`, where it owns
the TraefikService `<name>-mirror`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rollwise.adapters.manifests.types import (
    ServiceRef,
)
from rollwise.api.service import ServiceSpec
from rollwise.core import naming
from rollwise.core.model import SetRouterWeight

ROUTING_FIELD = "spec.strategy.canary.trafficRouting"


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


def stable_canary(name: str) -> tuple[str, str]:
    _, stable, canary = naming.service_names(name)
    return stable, canary
