"""What the benchmark sees of the cluster, with the moment it saw it.

Two list-then-watch threads per namespace: ProgressiveServices (every status write, stamped
with the wall-clock time its watch event arrived here) and the workload pods (the moment each was
first seen Ready). Timestamps are `time.time()` seconds, comparable with the operator's own
RFC 3339 timestamps in status (same machine, same clock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.harness.rollouts import GROUP, PLURAL, VERSION

log = logging.getLogger("rollwise.bench.watch")


def ts(value: str | None) -> float | None:
    """An RFC 3339 timestamp from status as epoch seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class Snap:
    """One observed version of a ProgressiveService's status."""

    t: float  # when this benchmark received it
    generation: int
    observed_generation: int | None
    phase: str | None
    step: int | None
    weight: int | None
    canary: str | None
    stable: str | None
    pause_started_at: float | None
    step_started_at: float | None


def snap_of(obj: dict[str, Any], t: float) -> Snap:
    status = obj.get("status") or {}
    return Snap(
        t=t,
        generation=int((obj.get("metadata") or {}).get("generation") or 0),
        observed_generation=status.get("observedGeneration"),
        phase=status.get("phase"),
        step=status.get("currentStepIndex"),
        weight=status.get("canaryWeight"),
        canary=(status.get("canary") or {}).get("revision"),
        stable=(status.get("stable") or {}).get("revision"),
        pause_started_at=ts(status.get("pauseStartedAt")),
        step_started_at=ts(status.get("stepStartedAt")),
    )


class _ListWatch:
    """List, then watch from the list's resourceVersion; relist when the watch expires (410)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.events = 0

    def start(self) -> None:
        self._thread.start()
        if not self.synced.wait(120):
            raise TimeoutError(f"{self.name}: first list did not complete")

    def stop(self) -> None:
        self._stop.set()

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        raise NotImplementedError

    def _watch(self, resource_version: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _on(self, kind: str, obj: dict[str, Any], t: float) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    items, version = self._list()
                    now = time.time()
                    for item in items:
                        self._on("ADDED", item, now)
                    self.synced.set()
                for event in self._watch(version):
                    if self._stop.is_set():
                        return
                    now = time.time()
                    obj = event["object"]
                    if isinstance(obj, dict):
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events += 1
                        self._on(event["type"], obj, now)
                    elif event["type"] == "ERROR":
                        version = None
                        break
            except ApiException as exc:
                if self._stop.is_set():
                    return
                if exc.status == 410:
                    version = None
                else:
                    log.warning("%s: watch failed: %s", self.name, exc)
                    self._stop.wait(0.5)
            except Exception:
                if self._stop.is_set():
                    return  # the cluster is going away
                log.exception("%s: watch failed", self.name)
                self._stop.wait(0.5)


class ServiceWatch(_ListWatch):
    """Every observed status of every ProgressiveService in a namespace."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        super().__init__(f"psvc-watch-{namespace}")
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.lock = threading.Lock()
        self.timeline: dict[str, list[Snap]] = {}
        self.latest: dict[str, Snap] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.listeners: list[Callable[[str, Snap], None]] = []

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        data = cast(
            dict[str, Any],
            self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL),
        )
        return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> Iterator[dict[str, Any]]:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        yield from stream.stream(  # type: ignore[no-untyped-call]
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            resource_version=resource_version,
            timeout_seconds=240,
            allow_watch_bookmarks=True,
        )

    def _on(self, kind: str, obj: dict[str, Any], t: float) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name or kind == "DELETED":
            return
        snap = snap_of(obj, t)
        with self.lock:
            self.objects[name] = obj
            previous = self.latest.get(name)
            self.latest[name] = snap
            if previous is None or _differs(previous, snap):
                self.timeline.setdefault(name, []).append(snap)
        for listener in self.listeners:
            listener(name, snap)

    def count(self, predicate: Callable[[Snap], bool], names: list[str] | None = None) -> int:
        with self.lock:
            if names is None:
                return sum(1 for s in self.latest.values() if predicate(s))
            return sum(1 for n in names if n in self.latest and predicate(self.latest[n]))

    def status(self, name: str) -> dict[str, Any]:
        with self.lock:
            return dict((self.objects.get(name) or {}).get("status") or {})


def _differs(a: Snap, b: Snap) -> bool:
    return (a.phase, a.step, a.weight, a.canary, a.stable, a.pause_started_at) != (
        b.phase,
        b.step,
        b.weight,
        b.canary,
        b.stable,
        b.pause_started_at,
    ) or (a.observed_generation != b.observed_generation)


@dataclass(frozen=True, slots=True)
class PodReady:
    service: str
    revision: str
    seen_ready: float  # when this benchmark first saw Ready=True
    transition: float | None  # the Ready condition's lastTransitionTime (1 s resolution)


class PodWatch(_ListWatch):
    """When each workload pod (rollwise.dev/role=workload) of a namespace first became Ready."""

    SELECTOR = "rollwise.dev/role=workload"

    def __init__(self, api: ApiClient, namespace: str) -> None:
        super().__init__(f"pod-watch-{namespace}")
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.lock = threading.Lock()
        self.ready: dict[str, PodReady] = {}  # uid -> first Ready

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        import json

        response = self.core.list_namespaced_pod(
            self.namespace, label_selector=self.SELECTOR, _preload_content=False
        )
        data = json.loads(cast(Any, response).data)
        return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> Iterator[dict[str, Any]]:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        yield from stream.stream(  # type: ignore[no-untyped-call]
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=self.SELECTOR,
            resource_version=resource_version,
            timeout_seconds=240,
            allow_watch_bookmarks=True,
            deserialize=False,
        )

    def _on(self, kind: str, obj: dict[str, Any], t: float) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid or uid in self.ready or kind == "DELETED":
            return
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                labels = meta.get("labels") or {}
                with self.lock:
                    self.ready[uid] = PodReady(
                        service=labels.get("app.kubernetes.io/name", ""),
                        revision=labels.get("rollwise.dev/revision", ""),
                        seen_ready=t,
                        transition=ts(cond.get("lastTransitionTime")),
                    )
                return

    def ready_times(self) -> dict[tuple[str, str], list[float]]:
        """(service, revision) -> sorted first-Ready times of its pods."""
        out: dict[tuple[str, str], list[float]] = {}
        with self.lock:
            for pod in self.ready.values():
                out.setdefault((pod.service, pod.revision), []).append(pod.seen_ready)
        for times in out.values():
            times.sort()
        return out
