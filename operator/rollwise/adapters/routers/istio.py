"""The istio router: destination weights in the user's VirtualService."""

from __future__ import annotations

from typing import Any

from rollwise.adapters.kubeapi import (
    VIRTUAL_SERVICES,
    KubeApi,
)
from rollwise.adapters.manifests.types import (
    Manifest,
    ServiceRef,
)
from rollwise.adapters.routers.router import ROUTING_FIELD, RouterReading, stable_canary
from rollwise.adapters.routers.weights import patch_weights, split_weights, weight_of
from rollwise.api.service import ServiceSpec
from rollwise.core.model import SetRouterWeight

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

    return split_weights(
        http, "route", _host_matches(namespace), stable, canary, weight, make_canary
    )


def virtualservice_weight(vs: Manifest, namespace: str, stable: str, canary: str) -> int | None:
    http = (vs.get("spec") or {}).get("http") or []
    # Istio: a single destination without weight takes 100; with several, weights are required.
    return weight_of(http, "route", _host_matches(namespace), stable, canary, default=0)


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
        return virtualservice_weight(vs, ref.namespace, *stable_canary(ref.name))

    def read(self, ref: ServiceRef, spec: ServiceSpec) -> RouterReading:
        return RouterReading(weight=self.read_weight(ref, spec))

    def set_weight(self, ref: ServiceRef, spec: ServiceSpec, action: SetRouterWeight) -> None:
        stable, canary = stable_canary(ref.name)
        patch_weights(
            self._api,
            VIRTUAL_SERVICES,
            ref,
            self._vs_name(spec),
            f"{ROUTING_FIELD}.istio.virtualService",
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
