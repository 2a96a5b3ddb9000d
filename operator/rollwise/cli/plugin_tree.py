"""`kubectl rollwise watch`: one ProgressiveService as a tree, redrawn as it changes.

The steps with the current one marked, the gates with their last values, the weight the router
actually holds (read from the route object, beside the weight status asks for), and per
revision its ReplicaSet and pods with readiness, restarts and images, as
`kubectl argo rollouts get rollout --watch` shows them. The rendering is a pure function of what
was read; `read_world` does the reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import urllib3.exceptions
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api
from kubernetes.client.exceptions import ApiException

from rollwise.adapters.routers.httproute import httproute_weight
from rollwise.adapters.routers.istio import virtualservice_weight
from rollwise.adapters.routers.nginx import NGINX_CANARY_WEIGHT, nginx_canary_name
from rollwise.api.routing import CanaryMatch
from rollwise.api.service import KIND, CanaryStep
from rollwise.cli.plugin_cluster import KubeSession
from rollwise.cli.plugin_render import (
    describe_step,
    format_age,
    format_time,
    format_value,
    read_service,
    step_number,
    table,
)
from rollwise.core.model import one_line
from rollwise.core.naming import LABEL_OWNER, LABEL_REVISION, service_names

_TIMEOUT = (5.0, 15.0)
HISTORY_SHOWN = 5
_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    ready: bool
    restarts: int
    images: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class ReplicaSetView:
    name: str
    revision: str
    replicas: int
    ready: int
    pods: tuple[PodView, ...] = ()


@dataclass(frozen=True)
class RouterView:
    """The router's kind, the object it acts on, and the canary weight it holds now (None:
    unreadable, or not what any weight calls for)."""

    kind: str
    target: str
    weight: int | None
    problem: str = ""


@dataclass(frozen=True)
class World:
    """What the tree shows besides the ProgressiveService itself."""

    replica_sets: tuple[ReplicaSetView, ...] = ()
    router: RouterView | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def _mark(index: int, current: int | None, total: int, settled: bool) -> str:
    if current is None:
        return "✔" if settled and total else " "
    if index < current:
        return "✔"
    return "►" if index == current else " "


def _pod_line(pod: PodView) -> str:
    ready = "ready" if pod.ready else "not ready"
    extra = f"  {pod.reason}" if pod.reason else ""
    images = ", ".join(pod.images)
    return f"pod {pod.name}  {pod.phase}  {ready}  restarts {pod.restarts}  {images}{extra}"


def _tree(children: Sequence[tuple[str, Sequence[Any]]], prefix: str = "") -> list[str]:
    """Lines of a tree: each child is (its line, its own children)."""
    lines: list[str] = []
    for index, (text, grandchildren) in enumerate(children):
        last = index == len(children) - 1
        lines.append(prefix + (_LAST if last else _BRANCH) + text)
        lines += _tree(grandchildren, prefix + (_SPACE if last else _PIPE))
    return lines


def render_tree(obj: Mapping[str, Any], world: World, now: datetime | None = None) -> str:
    """The frame `watch` draws (ages only when `now` is given)."""
    view = read_service(obj)
    status = view.reading.status
    lines = [f"{KIND} {view.namespace}/{view.name}", f"Phase:      {status.phase.value}"]
    if status.message:
        lines.append(f"Message:    {one_line(status.message)}")
    asked = f"{status.canary_weight}%"
    router = world.router
    if router is not None:
        held = "unknown" if router.weight is None else f"{router.weight}%"
        note = f" ({router.problem})" if router.problem else ""
        lines.append(
            f"Router:     {router.kind} {router.target}: canary weight {held} on the router, "
            f"{asked} in status{note}"
        )
    else:
        lines.append(f"Router:     replicas (share of ready pods): {asked} in status")
    steps: Sequence[CanaryStep | None] = view.steps or ()
    current = status.current_step_index
    settled = status.canary is None and status.stable is not None
    lines.append(f"Steps:      {status.current_step or '-'}")
    for index, step in enumerate(steps):
        marker = _mark(index, current, len(steps), settled)
        lines.append(f"  {marker} {index + 1}. {describe_step(step)}")
    if status.analysis:
        lines.append("Gates:")
        for result in status.analysis:
            scope = "background" if result.background else f"step {(result.step or 0) + 1}"
            verdict = result.verdict.value if result.verdict else "(none yet)"
            age = ""
            if now is not None and result.measured_at is not None:
                age = f"  {format_age((now - result.measured_at).total_seconds())} ago"
            lines.append(
                f"  {result.gate}  {scope}  {verdict}  value {format_value(result.value)}"
                f"  ({result.measurements} measured, {result.failures} failed){age}"
            )
    lines.append("Revisions:")
    roles = {}
    if status.stable is not None:
        roles[status.stable.revision] = ("stable", status.stable.version)
    if status.canary is not None:
        roles[status.canary.revision] = ("canary", status.canary.version)
    by_revision = {rs.revision: rs for rs in world.replica_sets}
    order = [r for r in (status.canary, status.stable) if r is not None]
    children: list[tuple[str, Sequence[Any]]] = []
    for revision in order:
        role, version = roles[revision.revision]
        rs = by_revision.pop(revision.revision, None)
        weight = f"  weight {status.canary_weight}%" if role == "canary" else ""
        label = f"{role} {revision.revision}  version {version or '-'}{weight}"
        children.append((label, _rs_children(rs)))
    for rs in sorted(by_revision.values(), key=lambda r: r.name):
        children.append((f"old {rs.revision}", _rs_children(rs)))
    lines += _tree(children, "  ") if children else ["  (none yet)"]
    history = sorted(status.history, key=lambda entry: entry.at.timestamp())[-HISTORY_SHOWN:]
    if history:
        lines.append(f"History (last {len(history)}):")
        lines += table(
            ("AT", "EVENT", "STEP", "WEIGHT", "MESSAGE"),
            [
                (
                    format_time(e.at),
                    e.event,
                    step_number(e.step),
                    "-" if e.weight is None else str(e.weight),
                    e.message or "-",
                )
                for e in history
            ],
            "  ",
        )
    lines += [f"unreadable: {problem}" for problem in (*view.reading.problems, *world.problems)]
    return "\n".join(lines) + "\n"


def _rs_children(rs: ReplicaSetView | None) -> list[tuple[str, Sequence[Any]]]:
    if rs is None:
        return [("no ReplicaSet", [])]
    pods: list[tuple[str, Sequence[Any]]] = [
        (_pod_line(p), []) for p in sorted(rs.pods, key=lambda p: p.name)
    ]
    return [(f"ReplicaSet {rs.name}  {rs.ready}/{rs.replicas} ready", pods)]


# ------------------------------------------------------------------------------------ reading


def _json(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A read as plain JSON (the client's models are not needed for what is shown)."""
    response = call(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
    data = json.loads(response.data)
    return data if isinstance(data, dict) else {}


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """The pod facts the tree shows, from a pod as JSON."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    waiting = {
        ((s.get("state") or {}).get("waiting") or {}).get("reason", "") for s in statuses
    } - {""}
    return PodView(
        name=str((pod.get("metadata") or {}).get("name", "?")),
        phase=str(status.get("phase") or "Unknown"),
        ready=bool(statuses) and all(s.get("ready") for s in statuses),
        restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
        images=tuple(str(c.get("image")) for c in (pod.get("spec") or {}).get("containers") or []),
        reason=", ".join(sorted(waiting)),
    )


def _router(session: KubeSession, obj: Mapping[str, Any]) -> RouterView | None:
    name = read_service(obj).name
    spec = obj.get("spec") or {}
    routing = ((spec.get("strategy") or {}).get("canary") or {}).get("trafficRouting") or {}
    _, stable, canary = service_names(name)
    namespace = session.namespace
    objects = CustomObjectsApi(session.api_client)
    try:
        if "gatewayAPI" in routing:
            ref = routing["gatewayAPI"] or {}
            route = _json(
                objects.get_namespaced_custom_object,
                "gateway.networking.k8s.io",
                "v1",
                namespace,
                "httproutes",
                ref.get("httpRoute", ""),
            )
            matches = [CanaryMatch.model_validate(m) for m in ref.get("canaryMatches") or []]
            weight = httproute_weight(route, stable, canary, matches)
            return RouterView("gatewayAPI", f"HTTPRoute {ref.get('httpRoute')}", weight)
        if "istio" in routing:
            vs_name = (routing["istio"] or {}).get("virtualService", "")
            vs = _json(
                objects.get_namespaced_custom_object,
                "networking.istio.io",
                "v1beta1",
                namespace,
                "virtualservices",
                vs_name,
            )
            weight = virtualservice_weight(vs, namespace, stable, canary)
            return RouterView("istio", f"VirtualService {vs_name}", weight)
        if "nginx" in routing:
            ingress = nginx_canary_name((routing["nginx"] or {}).get("ingress", ""))
            found = _json(
                NetworkingV1Api(session.api_client).read_namespaced_ingress, ingress, namespace
            )
            value = str(
                ((found.get("metadata") or {}).get("annotations") or {}).get(
                    NGINX_CANARY_WEIGHT, ""
                )
            )
            return RouterView(
                "nginx", f"Ingress {ingress}", int(value) if value.isdigit() else None
            )
    except ApiException as err:
        kind = next(iter(routing))
        problem = "not found" if err.status == 404 else f"HTTP {err.status}"
        return RouterView(kind, "", None, problem)
    return None


def read_world(session: KubeSession, obj: Mapping[str, Any]) -> World:
    """The ReplicaSets, pods and router of one ProgressiveService; what cannot be read is named
    in `problems`, never raised."""
    name = read_service(obj).name
    selector = f"{LABEL_OWNER}={name}"
    problems: list[str] = []
    sets: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    try:
        sets = (
            _json(
                AppsV1Api(session.api_client).list_namespaced_replica_set,
                session.namespace,
                label_selector=selector,
            ).get("items")
            or []
        )
        pods = (
            _json(
                CoreV1Api(session.api_client).list_namespaced_pod,
                session.namespace,
                label_selector=selector,
            ).get("items")
            or []
        )
    except (ApiException, urllib3.exceptions.HTTPError) as err:
        problems.append(f"ReplicaSets and pods: {getattr(err, 'status', err)}")
    replica_sets: list[ReplicaSetView] = []
    for rs in sets:
        metadata = rs.get("metadata") or {}
        revision = str((metadata.get("labels") or {}).get(LABEL_REVISION, "?"))
        mine = [
            pod_view(p)
            for p in pods
            if ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_REVISION) == revision
        ]
        replica_sets.append(
            ReplicaSetView(
                name=str(metadata.get("name", "?")),
                revision=revision,
                replicas=int((rs.get("spec") or {}).get("replicas") or 0),
                ready=int((rs.get("status") or {}).get("readyReplicas") or 0),
                pods=tuple(mine),
            )
        )
    try:
        router = _router(session, obj)
    except (urllib3.exceptions.HTTPError, ValueError) as err:
        router, problems = None, [*problems, f"router: {err}"]
    return World(tuple(replica_sets), router, tuple(problems))
