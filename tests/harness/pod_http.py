"""Real HTTP for kwok pods: a server on each ready pod's IP and a stand-in for kube-proxy.

kwok pods run no process, so nothing answers on their IPs. The harness gives pods addresses in
``POD_CIDR`` (from 127.100.0.0, one /16 per kwok node; Linux routes all of 127.0.0.0/8 to ``lo``, so
any of them can be bound without setup) and this module, run inside the simulator process:

- ``PodServers``: for each Running+Ready pod whose IP is in 127.0.0.0/8 and whose first container
  declares TCP ``containerPort`` s, a real HTTP server on ``podIP:port`` that answers every request
  after ``SIM_LATENCY_MS`` with 200, or with 500 for an exact ``SIM_ERROR_RATE`` fraction of the
  requests (request i fails when floor((i+1)*rate) > floor(i*rate)), and counts what it answered.
  The counts outlive the pod (bounded), so a test can count requests at a pod after it is gone.

- ``ServiceProxy``: the API server refuses loopback addresses in EndpointSlices
  (``ValidateEndpointIP``: "may not be in the loopback range"), so a data plane cannot learn
  loopback pod IPs from EndpointSlices. Instead the harness gives Services ClusterIPs in
  ``SERVICE_CIDR`` (127.20.0.0/16) and this proxy does kube-proxy's job: it listens on each
  Service's ``clusterIP:port`` and forwards every TCP connection, byte for byte, to one ready pod
  matching the Service's selector (round robin). The gateway (Traefik with ``nativeLB``) sends to
  a Service's ClusterIP; which Service a request goes to is the gateway's decision alone.

Only addresses in 127.0.0.0/8 are ever bound or connected to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("rollwise.simulator.http")

# Node i's pods get 127.(100+i).0.0/16: kwok hands out a node's addresses in order and does not
# stop at the end of its podCIDR, so each node gets far more room than it has pods.
POD_CIDR = "127.100.0.0/16"
SERVICE_CIDR = "127.20.0.0/16"
# Clusters running at the same time on one machine (pytest-xdist workers, the demo, another
# engineer's session) each take an address slot, so that their simulators never bind the same
# loopback address: slot s gives Services 127.(20+s).0.0/16 and node i's pods
# 127.(100 + s*NODES_PER_SLOT + i).0.0/16 (nodes past NODES_PER_SLOT share the slot's ranges;
# only the benchmark runs that many, and its pods declare no ports, so nothing is bound).
NODES_PER_SLOT = 12
ADDRESS_SLOTS = 13  # 100 + 13*12 = 256: the last slot ends at 127.255.255.255


def service_cidr(slot: int) -> str:
    if not 0 <= slot < ADDRESS_SLOTS:
        raise ValueError(f"address slot {slot} outside 0..{ADDRESS_SLOTS - 1}")
    return str(ipaddress.IPv4Network(SERVICE_CIDR).network_address + slot * 65536) + "/16"


def node_pod_cidr(index: int, slot: int = 0) -> str:
    """Node ``index``'s pod range in address slot ``slot``: a loopback /16."""
    if not 0 <= slot < ADDRESS_SLOTS:
        raise ValueError(f"address slot {slot} outside 0..{ADDRESS_SLOTS - 1}")
    start = ipaddress.IPv4Network(POD_CIDR).network_address
    offset = slot * NODES_PER_SLOT + index % NODES_PER_SLOT
    return str(start + offset * 65536) + "/16"


LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
KEPT_COUNTS = 2000  # request counts of pods that are gone, kept for tests to read
REVISION_LABEL = "rollwise.dev/revision"
SERVICE_LABEL = "app.kubernetes.io/name"


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address) in LOOPBACK
    except ValueError:
        return False


def fails(index: int, error_rate: float) -> bool:
    """Whether request ``index`` (0-based) is answered 500: exactly ``error_rate`` of any prefix
    of requests, spread evenly, so a short test sees the rate it asked for."""
    return math.floor((index + 1) * error_rate) > math.floor(index * error_rate)


@dataclass
class PodCounts:
    """Requests one pod answered, by status code."""

    namespace: str
    pod: str
    service: str
    revision: str
    codes: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.codes.values())


@dataclass(frozen=True)
class PodEndpoint:
    """What the servers and the proxy need to know about one ready pod."""

    uid: str
    namespace: str
    pod: str
    ip: str
    labels: Mapping[str, str]
    ports: Mapping[str, int]  # container port name (or str(number)) -> number
    error_rate: float
    latency_ms: float

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], error_rate: float, latency_ms: float) -> PodEndpoint:
        meta = pod.get("metadata") or {}
        containers = (pod.get("spec") or {}).get("containers") or []
        ports: dict[str, int] = {}
        for port in (containers[0].get("ports") or []) if containers else []:
            if port.get("protocol", "TCP") != "TCP" or "containerPort" not in port:
                continue
            number = int(port["containerPort"])
            ports[str(number)] = number
            if port.get("name"):
                ports[str(port["name"])] = number
        return cls(
            uid=str(meta.get("uid")),
            namespace=str(meta.get("namespace", "")),
            pod=str(meta.get("name", "")),
            ip=str((pod.get("status") or {}).get("podIP") or ""),
            labels=dict(meta.get("labels") or {}),
            ports=ports,
            error_rate=error_rate,
            latency_ms=latency_ms,
        )


class _PodHandler(BaseHTTPRequestHandler):
    server: _PodHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a real service behind a gateway
    timeout = 60  # an idle kept-alive connection is closed after a minute

    def _answer(self) -> None:
        server = self.server
        server.begin(self.connection)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        index = server.next_index()
        code = 500 if fails(index, server.endpoint.error_rate) else 200
        if server.endpoint.latency_ms > 0:
            time.sleep(server.endpoint.latency_ms / 1000.0)
        server.count(code)
        body = json.dumps(
            {
                "pod": server.endpoint.pod,
                "revision": server.endpoint.labels.get(REVISION_LABEL, ""),
                "code": code,
            }
        ).encode()
        self.send_response(code)
        if server.draining(self.connection):
            # This pod is going away or no longer selected: answer, then close, so the client
            # reconnects elsewhere without losing a request (a graceful endpoint removal).
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Rollwise-Pod", server.endpoint.pod)
        self.send_header("X-Rollwise-Revision", server.endpoint.labels.get(REVISION_LABEL, ""))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        server.end(self.connection)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per request would drown the simulator log


class _PodHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, endpoint: PodEndpoint, port: int, counts: PodCounts) -> None:
        self.endpoint = endpoint
        self.counts = counts
        self._lock = threading.Lock()
        self._index = 0
        # Every open connection: [busy answering a request, draining]; by socket and by peer.
        self._open: dict[socket.socket, list[bool]] = {}
        self._peers: dict[Any, socket.socket] = {}
        super().__init__((endpoint.ip, port), _PodHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self._lock:
            self._open[conn] = [False, False]
            self._peers[address] = conn
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.pop(request, None)
            for peer in [p for p, c in self._peers.items() if c is request]:
                self._peers.pop(peer)
        super().shutdown_request(request)

    def begin(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._open:
                self._open[conn][0] = True

    def draining(self, conn: socket.socket) -> bool:
        with self._lock:
            return self._open.get(conn, [False, True])[1]

    def end(self, conn: socket.socket) -> None:
        """The answer is written. A drain that came while it was being written (the client
        may already hold the answer) closes the connection now: it is idle from here on."""
        with self._lock:
            state = self._open.get(conn)
            if state is None:
                return
            state[0] = False
            if state[1]:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def _drain(self, conn: socket.socket) -> None:
        """Close an idle connection now, a busy one after its answer (lock held)."""
        state = self._open.get(conn)
        if state is None:
            return
        state[1] = True
        if not state[0]:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def drain_peer(self, peer: Any) -> None:
        with self._lock:
            conn = self._peers.get(peer)
            if conn is not None:
                self._drain(conn)

    def drop_connections(self) -> None:
        """A pod that is gone takes no new request, not even on kept-alive connections; the
        ones it is answering finish first."""
        with self._lock:
            for conn in list(self._open):
                self._drain(conn)

    def next_index(self) -> int:
        with self._lock:
            index = self._index
            self._index += 1
            return index

    def count(self, code: int) -> None:
        with self._lock:
            self.counts.codes[str(code)] = self.counts.codes.get(str(code), 0) + 1


class PodServers:
    """One HTTP server per (ready loopback pod, declared port); counts kept per pod uid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, int], tuple[str, _PodHTTPServer]] = {}  # (ip,port)->uid
        self._endpoints: dict[str, PodEndpoint] = {}  # uid -> endpoint with live servers
        self._counts: OrderedDict[str, PodCounts] = OrderedDict()

    def _start(self, endpoint: PodEndpoint) -> None:
        counts = self._counts.setdefault(
            endpoint.uid,
            PodCounts(
                endpoint.namespace,
                endpoint.pod,
                endpoint.labels.get(SERVICE_LABEL, ""),
                endpoint.labels.get(REVISION_LABEL, ""),
            ),
        )
        for number in sorted(set(endpoint.ports.values())):
            previous = self._servers.pop((endpoint.ip, number), None)
            if previous is not None:  # kwok reused the IP of a pod whose deletion we missed
                self._close(previous[1])
            try:
                server = _PodHTTPServer(endpoint, number, counts)
            except OSError as exc:
                log.warning(
                    "pod %s/%s: cannot listen on %s:%d: %s",
                    endpoint.namespace,
                    endpoint.pod,
                    endpoint.ip,
                    number,
                    exc,
                )
                continue
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"pod-{endpoint.pod}-{number}",
                daemon=True,
            ).start()
            self._servers[(endpoint.ip, number)] = (endpoint.uid, server)
        self._endpoints[endpoint.uid] = endpoint
        log.info(
            "pod %s/%s serving HTTP on %s ports %s",
            endpoint.namespace,
            endpoint.pod,
            endpoint.ip,
            sorted(set(endpoint.ports.values())),
        )

    @staticmethod
    def _close(server: _PodHTTPServer) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()
        server.server_close()
        server.drop_connections()

    def _stop(self, uid: str) -> None:
        endpoint = self._endpoints.pop(uid, None)
        if endpoint is None:
            return
        for key in [k for k, (owner, _) in self._servers.items() if owner == uid]:
            self._close(self._servers.pop(key)[1])
        log.info("pod %s/%s stopped serving HTTP", endpoint.namespace, endpoint.pod)

    def update(self, endpoint: PodEndpoint | None, uid: str) -> None:
        """The pod ``uid`` is ready as ``endpoint`` (serve it) or not ready / gone (None)."""
        with self._lock:
            current = self._endpoints.get(uid)
            if endpoint is not None and (not is_loopback(endpoint.ip) or not endpoint.ports):
                endpoint = None
            if current == endpoint:
                return
            if current is not None:
                self._stop(uid)
            if endpoint is not None:
                self._start(endpoint)
            while len(self._counts) > KEPT_COUNTS:
                oldest = next(iter(self._counts))
                if oldest in self._endpoints:
                    break
                self._counts.pop(oldest)

    def retain(self, uids: Iterable[str]) -> None:
        """Stop serving every pod not in ``uids`` (after a relist)."""
        keep = set(uids)
        with self._lock:
            for uid in set(self._endpoints) - keep:
                self._stop(uid)

    def drain(self, ip: str, port: int, peer: Any) -> None:
        """Close the connection from ``peer`` to the pod server on ``ip:port`` gracefully."""
        with self._lock:
            entry = self._servers.get((ip, port))
        if entry is not None:
            entry[1].drain_peer(peer)

    def endpoints(self) -> list[PodEndpoint]:
        with self._lock:
            return list(self._endpoints.values())

    def counts(self) -> list[PodCounts]:
        with self._lock:
            return [
                PodCounts(c.namespace, c.pod, c.service, c.revision, dict(c.codes))
                for c in self._counts.values()
            ]

    def close(self) -> None:
        with self._lock:
            for uid in list(self._endpoints):
                self._stop(uid)


# ----------------------------------------------------------------------------- Service proxy


@dataclass(frozen=True)
class ServiceFrontend:
    """One Service port the proxy listens on."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    target_port: str  # a number or a container port name, as in the Service spec
    selector: Mapping[str, str]

    @classmethod
    def from_service(cls, svc: Mapping[str, Any]) -> list[ServiceFrontend]:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        selector = spec.get("selector") or {}
        if not is_loopback(ip) or not selector:
            return []
        return [
            cls(
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                cluster_ip=str(ip),
                port=int(port["port"]),
                target_port=str(port.get("targetPort", port["port"])),
                selector=dict(selector),
            )
            for port in spec.get("ports") or []
            if port.get("protocol", "TCP") == "TCP"
        ]


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Listener:
    """Accepts on one ClusterIP:port and forwards each connection to a chosen pod."""

    def __init__(self, frontend: ServiceFrontend, proxy: ServiceProxy) -> None:
        self.frontend = frontend
        self._proxy = proxy
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((frontend.cluster_ip, frontend.port))
        self._sock.listen(128)
        self._closed = False
        self._next = 0
        self._lock = threading.Lock()
        # Every forwarded connection: client socket -> (upstream socket, pod uid it reaches).
        self._open: dict[socket.socket, tuple[socket.socket, str]] = {}
        threading.Thread(
            target=self._accept, name=f"svc-{frontend.name}-{frontend.port}", daemon=True
        ).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _selected(self) -> list[PodEndpoint]:
        f = self.frontend
        return sorted(
            (
                e
                for e in self._proxy.pods.endpoints()
                if e.namespace == f.namespace
                and f.target_port in e.ports
                and all(e.labels.get(k) == v for k, v in f.selector.items())
            ),
            key=lambda e: e.pod,
        )

    def _choose(self) -> tuple[str, int, str] | None:
        backends = self._selected()
        if not backends:
            return None
        self._next += 1
        chosen = backends[self._next % len(backends)]
        return chosen.ip, chosen.ports[self.frontend.target_port], chosen.uid

    def _forward(self, client: socket.socket) -> None:
        backend = self._choose()
        if backend is None:  # like kube-proxy with no endpoints: refuse
            client.close()
            return
        ip, port, uid = backend
        try:
            upstream = socket.create_connection((ip, port), timeout=5)
            upstream.settimeout(None)
        except OSError as exc:
            log.warning(
                "service %s/%s: %s:%d unreachable: %s",
                self.frontend.namespace,
                self.frontend.name,
                ip,
                port,
                exc,
            )
            client.close()
            return
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._open[client] = (upstream, uid)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._open.pop(client, None)
        client.close()
        upstream.close()

    def retarget(self, frontend: ServiceFrontend) -> None:
        """The Service changed (its selector, on a rollout): new connections go to the pods it
        selects now, and kept-alive ones to pods it no longer selects are closed gracefully by
        those pods (after the answer in progress), as a data plane following the Service's
        endpoints would stop using them."""
        self.frontend = frontend
        self.drain_unselected()

    def drain_unselected(self) -> None:
        selected = {e.uid for e in self._selected()}
        with self._lock:
            stale = [(up, uid) for up, uid in self._open.values() if uid not in selected]
        for upstream, _ in stale:
            with contextlib.suppress(OSError):
                ip, port = upstream.getpeername()[:2]
                self._proxy.pods.drain(ip, port, upstream.getsockname())

    def close(self) -> None:
        """Stop listening; forwarded connections are closed gracefully by their pods."""
        with self._lock:
            self._closed = True
            open_connections = list(self._open.values())
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for upstream, _ in open_connections:
            with contextlib.suppress(OSError):
                ip, port = upstream.getpeername()[:2]
                self._proxy.pods.drain(ip, port, upstream.getsockname())


class ServiceProxy:
    """kube-proxy's part for Services with a loopback ClusterIP: listen, pick a pod, forward."""

    def __init__(self, pods: PodServers) -> None:
        self.pods = pods
        self._lock = threading.Lock()
        self._listeners: dict[str, list[_Listener]] = {}  # service uid -> listeners

    def update(self, svc: Mapping[str, Any], deleted: bool = False) -> None:
        uid = str((svc.get("metadata") or {}).get("uid"))
        wanted = [] if deleted else ServiceFrontend.from_service(svc)
        with self._lock:
            current = {
                (e.frontend.cluster_ip, e.frontend.port): e for e in self._listeners.get(uid, [])
            }
            listeners = []
            for frontend in wanted:
                kept = current.pop((frontend.cluster_ip, frontend.port), None)
                if kept is not None:  # same address: keep listening, follow the new selector
                    if kept.frontend != frontend:
                        kept.retarget(frontend)
                    listeners.append(kept)
                    continue
                try:
                    listeners.append(_Listener(frontend, self))
                except OSError as exc:
                    log.warning(
                        "service %s/%s: cannot listen on %s:%d: %s",
                        frontend.namespace,
                        frontend.name,
                        frontend.cluster_ip,
                        frontend.port,
                        exc,
                    )
            for gone in current.values():
                gone.close()
            if listeners:
                self._listeners[uid] = listeners
            else:
                self._listeners.pop(uid, None)

    def retain(self, uids: Iterable[str]) -> None:
        keep = set(uids)
        with self._lock:
            for uid in set(self._listeners) - keep:
                for entry in self._listeners.pop(uid):
                    entry.close()

    def close(self) -> None:
        with self._lock:
            for listeners in self._listeners.values():
                for entry in listeners:
                    entry.close()
            self._listeners.clear()
