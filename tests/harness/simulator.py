"""Pod-traffic simulator: the request metrics a real service mesh would give Prometheus.

kwok pods run nothing, so nothing serves traffic. This process watches the pods that carry a
``rollwise.dev/revision`` label and, for each Running+Ready one, exports the counters a service
would: ``http_requests_total{namespace,service,pod,revision,code}`` and the
``http_request_duration_seconds`` histogram. A test sets the traffic through the pod
template's first container env: ``SIM_RPS`` (default 20 requests/s), ``SIM_ERROR_RATE``
(default 0, fraction answered with 500) and ``SIM_LATENCY_MS`` (default 20, every request).

Counters are a pure function of wall time since the pod was first seen ready
(count = rps * elapsed), so any ``rate()`` over them is exact: a gate under test sees exactly
the error rate the test asked for. ``SIM_RPS=0`` exports no series at all ("no data").

Pods with a loopback IP (the harness gives them 127.100.0.0/16 and up) and declared container ports
also get real HTTP servers on ``podIP:port``, and Services with a loopback ClusterIP a stand-in
for kube-proxy: see ``tests/harness/pod_http.py``. Requests those servers really answered are
exported as ``rollwise_pod_requests_total{namespace,service,pod,revision,code}``.

Run: ``python -m tests.harness.simulator --kubeconfig K --port P [--log-file F]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tests.harness.pod_http import PodEndpoint, PodServers, ServiceProxy

log = logging.getLogger("rollwise.simulator")

REVISION_LABEL = "rollwise.dev/revision"
SERVICE_LABEL = "app.kubernetes.io/name"
DEFAULT_RPS = 20.0
DEFAULT_ERROR_RATE = 0.0
DEFAULT_LATENCY_MS = 20.0
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SERIES_LABELS = ("namespace", "service", "pod", "revision")


@dataclass(frozen=True)
class TrafficProfile:
    """What a pod's simulated traffic looks like (from its first container's env)."""

    rps: float = DEFAULT_RPS
    error_rate: float = DEFAULT_ERROR_RATE
    latency_ms: float = DEFAULT_LATENCY_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrafficProfile:
        def number(key: str, default: float, low: float, high: float) -> float:
            raw = env.get(key)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                log.warning("ignoring %s=%r: not a number", key, raw)
                return default
            if not math.isfinite(value):
                return default
            return min(max(value, low), high)

        return cls(
            rps=number("SIM_RPS", DEFAULT_RPS, 0.0, 1e6),
            error_rate=number("SIM_ERROR_RATE", DEFAULT_ERROR_RATE, 0.0, 1.0),
            latency_ms=number("SIM_LATENCY_MS", DEFAULT_LATENCY_MS, 0.0, 1e6),
        )


@dataclass(frozen=True)
class PodTraffic:
    """One ready pod's identity, profile and the moment it was first seen ready."""

    namespace: str
    pod: str
    service: str
    revision: str
    profile: TrafficProfile
    ready_since: float

    def labels(self) -> list[str]:
        return [self.namespace, self.service, self.pod, self.revision]

    def requests(self, now: float) -> tuple[float, float]:
        """(successful, failed) request counts up to ``now``."""
        total = self.profile.rps * max(0.0, now - self.ready_since)
        errors = total * self.profile.error_rate
        return total - errors, errors


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Running with condition Ready=True and not being deleted."""
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def first_container_env(pod: Mapping[str, Any]) -> dict[str, str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return {}
    return {
        e["name"]: str(e["value"])
        for e in containers[0].get("env") or []
        if "name" in e and e.get("value") is not None
    }


class TrafficBook:
    """Thread-safe table of pods and their traffic, fed by the watch, read by the scrape."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._first_ready: dict[str, float] = {}  # uid -> wall time first seen ready
        self._ready: dict[str, PodTraffic] = {}  # uid -> currently ready pods
        self.synced = False

    def observe(self, pod: Mapping[str, Any]) -> None:
        """Record a pod's latest state (ADDED/MODIFIED or a list item)."""
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        with self._lock:
            if not pod_is_ready(pod):
                self._ready.pop(uid, None)
                return
            since = self._first_ready.setdefault(uid, self._clock())
            labels = meta.get("labels") or {}
            self._ready[uid] = PodTraffic(
                namespace=meta.get("namespace", ""),
                pod=meta.get("name", ""),
                service=labels.get(SERVICE_LABEL, ""),
                revision=labels.get(REVISION_LABEL, ""),
                profile=TrafficProfile.from_env(first_container_env(pod)),
                ready_since=since,
            )

    def forget(self, pod: Mapping[str, Any]) -> None:
        """A pod was deleted: its series disappear."""
        uid = str((pod.get("metadata") or {}).get("uid"))
        with self._lock:
            self._ready.pop(uid, None)
            self._first_ready.pop(uid, None)

    def replace_all(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list: forget pods that no longer exist, keep first-ready times of the rest."""
        pods = list(pods)
        alive = {(p.get("metadata") or {}).get("uid") for p in pods}
        with self._lock:
            for uid in set(self._first_ready) - alive:
                self._first_ready.pop(uid, None)
            for uid in set(self._ready) - alive:
                self._ready.pop(uid, None)
        for pod in pods:
            self.observe(pod)
        self.synced = True

    def snapshot(self) -> tuple[float, list[PodTraffic]]:
        with self._lock:
            return self._clock(), list(self._ready.values())


def pod_endpoint(pod: Mapping[str, Any]) -> PodEndpoint | None:
    """What a ready pod serves over real HTTP (None when not ready)."""
    if not pod_is_ready(pod):
        return None
    profile = TrafficProfile.from_env(first_container_env(pod))
    return PodEndpoint.from_pod(pod, profile.error_rate, profile.latency_ms)


class TrafficCollector(Collector):
    """Renders the book (and the real requests pods answered) as metrics at scrape time."""

    def __init__(self, book: TrafficBook, servers: PodServers | None = None) -> None:
        self.book = book
        self.servers = servers

    def collect(self) -> Iterator[Metric]:
        now, pods = self.book.snapshot()
        requests = CounterMetricFamily(
            "http_requests_total",
            "Simulated HTTP requests served by the pod.",
            labels=[*SERIES_LABELS, "code"],
        )
        duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Simulated HTTP request latency.",
            labels=list(SERIES_LABELS),
        )
        exported = 0
        for pod in pods:
            if pod.profile.rps <= 0:
                continue
            exported += 1
            ok, failed = pod.requests(now)
            requests.add_metric([*pod.labels(), "200"], ok)
            requests.add_metric([*pod.labels(), "500"], failed)
            total = ok + failed
            latency_s = pod.profile.latency_ms / 1000.0
            buckets = [(str(le), total if latency_s <= le else 0.0) for le in LATENCY_BUCKETS_S]
            buckets.append(("+Inf", total))
            duration.add_metric(pod.labels(), buckets, sum_value=total * latency_s)
        yield requests
        yield duration
        if self.servers is not None:
            answered = CounterMetricFamily(
                "rollwise_pod_requests",
                "Real HTTP requests the pod's server answered (tests/harness/pod_http.py).",
                labels=[*SERIES_LABELS, "code"],
            )
            for counts in self.servers.counts():
                labels = [counts.namespace, counts.service, counts.pod, counts.revision]
                for code, n in sorted(counts.codes.items()):
                    answered.add_metric([*labels, code], n)
            yield answered
        yield GaugeMetricFamily(
            "rollwise_sim_pods", "Ready pods with traffic being simulated.", value=exported
        )
        yield GaugeMetricFamily(
            "rollwise_sim_synced",
            "1 once the simulator has listed the pods at least once.",
            value=1.0 if self.book.synced else 0.0,
        )


def watch_pods(
    book: TrafficBook,
    kubeconfig: str,
    stop: threading.Event,
    servers: PodServers | None = None,
) -> None:
    """List-then-watch pods with a revision label in all namespaces, forever; relist on error.
    With ``servers``, ready pods with a loopback IP and declared ports also serve HTTP."""
    from kubernetes import client, watch
    from kubernetes.client.exceptions import ApiException

    from tests.harness.kube import api_client_from_kubeconfig

    api = client.CoreV1Api(api_client_from_kubeconfig(Path(kubeconfig)))
    backoff = 0.5
    while not stop.is_set():
        try:
            listing = api.list_pod_for_all_namespaces(
                label_selector=REVISION_LABEL, _preload_content=False
            )
            data = json.loads(cast(Any, listing).data)
            book.replace_all(data.get("items") or [])
            if servers is not None:
                items = data.get("items") or []
                servers.retain(str(p["metadata"]["uid"]) for p in items)
                for item in items:
                    servers.update(pod_endpoint(item), str(item["metadata"]["uid"]))
            version = data["metadata"]["resourceVersion"]
            log.info("listed %d pods at resourceVersion %s", len(data["items"]), version)
            backoff = 0.5
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(  # type: ignore[no-untyped-call]
                api.list_pod_for_all_namespaces,
                label_selector=REVISION_LABEL,
                resource_version=version,
                timeout_seconds=300,
                allow_watch_bookmarks=True,
                deserialize=False,  # plain dicts: faster, and what the book reads
            ):
                if stop.is_set():
                    stream.stop()  # type: ignore[no-untyped-call]
                    break
                pod = event["object"]
                uid = str((pod.get("metadata") or {}).get("uid"))
                if event["type"] == "DELETED":
                    book.forget(pod)
                    if servers is not None:
                        servers.update(None, uid)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    book.observe(pod)
                    if servers is not None:
                        servers.update(pod_endpoint(pod), uid)
            continue  # the server ended the watch (timeout): relist at once
        except ApiException as exc:
            log.warning("pod watch failed (%s %s); relisting", exc.status, exc.reason)
        except Exception:
            log.exception("pod watch failed; relisting")
        stop.wait(backoff)
        backoff = min(backoff * 2, 5.0)


def watch_services(proxy: ServiceProxy, kubeconfig: str, stop: threading.Event) -> None:
    """List-then-watch Services in all namespaces for the kube-proxy stand-in; relist on error."""
    from kubernetes import client, watch
    from kubernetes.client.exceptions import ApiException

    from tests.harness.kube import api_client_from_kubeconfig

    api = client.CoreV1Api(api_client_from_kubeconfig(Path(kubeconfig)))
    backoff = 0.5
    while not stop.is_set():
        try:
            listing = api.list_service_for_all_namespaces(_preload_content=False)
            data = json.loads(cast(Any, listing).data)
            items = data.get("items") or []
            proxy.retain(str(s["metadata"]["uid"]) for s in items)
            for item in items:
                proxy.update(item)
            backoff = 0.5
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(  # type: ignore[no-untyped-call]
                api.list_service_for_all_namespaces,
                resource_version=data["metadata"]["resourceVersion"],
                timeout_seconds=300,
                allow_watch_bookmarks=True,
                deserialize=False,
            ):
                if stop.is_set():
                    stream.stop()  # type: ignore[no-untyped-call]
                    break
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    proxy.update(event["object"], deleted=event["type"] == "DELETED")
            continue
        except ApiException as exc:
            log.warning("service watch failed (%s %s); relisting", exc.status, exc.reason)
        except Exception:
            log.exception("service watch failed; relisting")
        stop.wait(backoff)
        backoff = min(backoff * 2, 5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--log-file", default=None, help="default: stderr")
    args = parser.parse_args(argv)

    logging.basicConfig(
        filename=args.log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    book = TrafficBook()
    servers = PodServers()
    proxy = ServiceProxy(servers)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrafficCollector(book, servers))
    server, _thread = start_http_server(args.port, addr=args.address, registry=registry)
    log.info("serving metrics on http://%s:%d/metrics", args.address, args.port)
    watcher = threading.Thread(
        target=watch_pods,
        args=(book, args.kubeconfig, stop, servers),
        name="pod-watch",
        daemon=True,
    )
    watcher.start()
    threading.Thread(
        target=watch_services,
        args=(proxy, args.kubeconfig, stop),
        name="service-watch",
        daemon=True,
    ).start()
    stop.wait()
    proxy.close()
    servers.close()
    server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
