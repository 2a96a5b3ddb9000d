"""The replicas router: the weight is the canary's share of ready pods."""

from __future__ import annotations

from rollwise.adapters.manifests.types import (
    ServiceRef,
)
from rollwise.adapters.routers.router import RouterReading
from rollwise.api.service import ServiceSpec
from rollwise.core.model import SetRouterWeight

# ----------------------------------------------------------------------------- replicas


class ReplicasRouter:
    """The weight is the canary's share of ready pods; EnsureServices does all the routing."""

    def read_weight(self, ref: ServiceRef, spec: ServiceSpec) -> int | None:
        return None

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=None)

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        return None
