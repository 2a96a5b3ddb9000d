"""The proving ground's pod HTTP servers and kube-proxy stand-in, on real loopback sockets."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from tests.harness import load
from tests.harness.pod_http import PodEndpoint, PodServers, ServiceProxy, fails
from tests.harness.simulator import pod_endpoint


def free_loopback_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def pod(uid: str, ip: str, port: int, revision: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "uid": uid,
            "name": f"payment-{uid}",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "payment", "rollwise.dev/revision": revision},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "ports": [{"name": "http", "containerPort": port}],
                }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def get(ip: str, port: int) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        conn.request("GET", "/")
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.25, 1.0])
def test_exactly_the_error_rate_of_any_prefix_of_requests_fails(rate: float) -> None:
    for n in (10, 100, 1000):
        assert sum(fails(i, rate) for i in range(n)) == int(n * rate)


def test_a_ready_pod_answers_on_its_loopback_ip_and_counts_what_it_answered() -> None:
    servers = PodServers()
    ip = "127.100.250.7"
    port = free_loopback_port(ip)
    item = pod("a", ip, port, "rev1", {"SIM_ERROR_RATE": "0.5", "SIM_LATENCY_MS": "0"})
    try:
        servers.update(pod_endpoint(item), "a")
        codes = [get(ip, port)[0] for _ in range(10)]
        assert sorted(codes) == [200] * 5 + [500] * 5
        [counts] = servers.counts()
        assert counts.codes == {"200": 5, "500": 5} and counts.revision == "rev1"

        servers.update(None, "a")  # not ready any more: nothing answers
        with pytest.raises(OSError):
            get(ip, port)
        assert servers.counts()[0].total() == 10, "counts outlive the server"
    finally:
        servers.close()


def test_a_pod_without_a_loopback_ip_or_declared_port_gets_no_server() -> None:
    servers = PodServers()
    outside = pod("b", "10.0.0.5", 8080, "rev1", {})
    no_port = pod("c", "127.100.250.8", 8080, "rev1", {})
    no_port["spec"]["containers"][0]["ports"] = []
    servers.update(pod_endpoint(outside), "b")
    servers.update(pod_endpoint(no_port), "c")
    assert servers.endpoints() == []


def test_the_service_proxy_forwards_to_the_selected_ready_pods_only() -> None:
    servers = PodServers()
    proxy = ServiceProxy(servers)
    stable_ip, canary_ip, cluster_ip = "127.100.250.9", "127.100.250.10", "127.20.250.1"
    port = free_loopback_port(stable_ip)
    service_port = free_loopback_port(cluster_ip)
    service = {
        "metadata": {"uid": "s1", "name": "payment-stable", "namespace": "shop"},
        "spec": {
            "clusterIP": cluster_ip,
            "selector": {"app.kubernetes.io/name": "payment", "rollwise.dev/revision": "rev1"},
            "ports": [{"port": service_port, "targetPort": "http"}],
        },
    }
    try:
        for uid, ip, rev in (("s", stable_ip, "rev1"), ("c", canary_ip, "rev2")):
            servers.update(pod_endpoint(pod(uid, ip, port, rev, {"SIM_LATENCY_MS": "0"})), uid)
        proxy.update(service)
        result = load.send(f"http://{cluster_ip}:{service_port}/", requests=50, rate=500)
        assert result.by_status() == {200: 50}
        assert result.by_revision() == {"rev1": 50}
    finally:
        proxy.close()
        servers.close()


def test_the_load_generator_refuses_addresses_outside_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        load.send("http://10.0.0.1/", requests=1)


def test_pod_endpoint_reads_named_and_numbered_ports() -> None:
    endpoint = PodEndpoint.from_pod(pod("d", "127.100.250.11", 8080, "r", {}), 0.0, 0.0)
    assert endpoint.ports == {"8080": 8080, "http": 8080}


def test_a_selector_change_closes_idle_kept_alive_connections_to_pods_no_longer_selected() -> None:
    servers = PodServers()
    proxy = ServiceProxy(servers)
    old_ip, new_ip, cluster_ip = "127.100.250.12", "127.100.250.13", "127.20.250.2"
    port = free_loopback_port(old_ip)
    service_port = free_loopback_port(cluster_ip)

    def service(revision: str) -> dict[str, Any]:
        return {
            "metadata": {"uid": "s2", "name": "payment-canary", "namespace": "shop"},
            "spec": {
                "clusterIP": cluster_ip,
                "selector": {"rollwise.dev/revision": revision},
                "ports": [{"port": service_port, "targetPort": port}],
            },
        }

    try:
        for uid, ip, rev in (("o", old_ip, "rev1"), ("n", new_ip, "rev2")):
            servers.update(pod_endpoint(pod(uid, ip, port, rev, {"SIM_LATENCY_MS": "0"})), uid)
        proxy.update(service("rev1"))
        kept = http.client.HTTPConnection(cluster_ip, service_port, timeout=5)
        kept.request("GET", "/")
        assert json.loads(kept.getresponse().read())["revision"] == "rev1"

        proxy.update(service("rev2"))

        with pytest.raises((OSError, http.client.HTTPException)):
            kept.request("GET", "/")
            kept.getresponse().read()
        kept.close()
        assert get(cluster_ip, service_port)[1]["revision"] == "rev2"
    finally:
        proxy.close()
        servers.close()
