"""The fleet hub takes from a member's kubeconfig Secret only a server, CA data and a token or
client certificate data: an exec plugin whose command would create a marker file is refused
with a clear error, and the file is never created."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.config
import pytest
import yaml
from kubernetes.client import Configuration

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.fleet import SECRETS, MemberClients
from rollwise.adapters.kubeapi import PROGRESSIVE_SERVICES, Resource
from rollwise.adapters.member_kubeconfig import KubeconfigRefused, sanitised
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.api.fleet import FleetCluster

CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def kubeconfig(user: dict[str, Any], **cluster: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "m",
                "cluster": {
                    "server": "https://member.example:6443",
                    "certificate-authority-data": CA,
                    **cluster,
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "m", "user": "u"}}],
        "current-context": "c",
    }


CREDENTIAL = json.dumps(
    {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "x"},
    }
)


def exec_user(marker: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "sh",
            "args": ["-c", f"touch {marker}; echo '{CREDENTIAL}'"],
            "interactiveMode": "Never",
        }
    }


class Hub:
    """The hub's API as MemberClients reads it: one Secret."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.secret = {
            "metadata": {"name": "member-kubeconfig", "resourceVersion": "1"},
            "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(config).encode()).decode()},
        }

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert resource == SECRETS
        return self.secret


def cluster() -> FleetCluster:
    return FleetCluster.model_validate(
        {"name": "eu", "kubeconfigSecretRef": {"name": "member-kubeconfig", "key": "kubeconfig"}}
    )


def test_the_exec_kubeconfig_really_runs_its_command_when_loaded_as_it_was(tmp_path: Path) -> None:
    """The attack is real: the client library, given the kubeconfig as it was, runs it."""
    marker = tmp_path / "ran"
    configuration = Configuration()

    kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
        kubeconfig(exec_user(marker)), client_configuration=configuration, persist_config=False
    )

    assert marker.exists()


def test_an_exec_plugin_is_refused_with_a_clear_error_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    members = MemberClients(Hub(kubeconfig(exec_user(marker))), timeout=1.0)  # type: ignore[arg-type]

    with pytest.raises(AdapterError) as refused:
        members.api_for("fleet", cluster())

    assert "user.exec is refused: an exec plugin would run a program in the hub" in str(
        refused.value
    )
    assert "Secret fleet/member-kubeconfig (cluster eu)" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("user", "cluster_extra", "field"),
    [
        (
            {"auth-provider": {"name": "gcp", "config": {"cmd-path": "/bin/sh"}}},
            {},
            "user.auth-provider",
        ),
        (
            {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
            {},
            "user.tokenFile",
        ),
        (
            {"client-certificate": "/etc/x.crt", "client-key": "/etc/x.key"},
            {},
            "user.client-certificate",
        ),
        ({"token": "t"}, {"certificate-authority": "/etc/ca.crt"}, "cluster.certificate-authority"),
        ({"token": "t"}, {"proxy-url": "http://169.254.169.254"}, "cluster.proxy-url"),
        ({"token": "t"}, {"insecure-skip-tls-verify": True}, "cluster.insecure-skip-tls-verify"),
        ({"username": "admin", "password": "p"}, {}, "user.username"),
        ({"token": "t", "as": "system:admin"}, {}, "user.as"),
    ],
)
def test_plugins_file_paths_proxies_and_impersonation_are_refused_naming_the_field(
    user: dict[str, Any], cluster_extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(KubeconfigRefused, match=field.replace(".", r"\.")):
        sanitised(kubeconfig(user, **cluster_extra))


def test_a_token_or_client_certificate_data_with_ca_data_is_taken_and_nothing_else() -> None:
    config = kubeconfig({"token": "t0k", "extensions": [{"name": "x"}]}, **{"tls-server-name": "m"})

    clean = sanitised(config)

    assert clean["users"] == [{"name": "member", "user": {"token": "t0k"}}]
    assert clean["clusters"][0]["cluster"] == {
        "server": "https://member.example:6443",
        "certificate-authority-data": CA,
        "tls-server-name": "m",
    }
    cert = sanitised(kubeconfig({"client-certificate-data": "Yw==", "client-key-data": "aw=="}))
    assert set(cert["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}


@pytest.mark.parametrize(
    ("config", "why"),
    [
        ("just text", "not a kubeconfig"),
        (kubeconfig({}), "needs a token"),
        (kubeconfig({"token": "t"}, server="http://member:8080"), "https://"),
        ({**kubeconfig({"token": "t"}), "current-context": "other"}, "does not hold"),
    ],
)
def test_an_incomplete_kubeconfig_is_refused_saying_what_is_missing(config: Any, why: str) -> None:
    with pytest.raises(KubeconfigRefused, match=why):
        sanitised(config)


def test_a_yaml_error_never_quotes_the_secret(tmp_path: Path) -> None:
    hub = Hub({})
    hub.secret["data"]["kubeconfig"] = base64.b64encode(b"token: [s3cr3tT0kenXYZ\n").decode()

    with pytest.raises(AdapterError) as refused:
        MemberClients(hub, timeout=1.0).api_for("fleet", cluster())  # type: ignore[arg-type]

    assert "not a kubeconfig" in str(refused.value) and "s3cr3tT0kenXYZ" not in str(refused.value)


# ----------------------------------------------------------------------------- the server address


class Listener:
    """A TCP port on 127.0.0.1 that records every byte a client sends it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                try:
                    while chunk := conn.recv(4096):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize(
    ("server", "why"),
    [
        ("https://169.254.169.254", "a link-local, metadata or unspecified address"),
        ("https://[::ffff:a9fe:a9fe]:443", "a link-local, metadata or unspecified address"),
        ("https://metadata.google.internal", "a cloud metadata host is never called"),
        ("https://0.0.0.0:{port}", "a link-local, metadata or unspecified address"),
        ("https://127.0.0.1:{port}", "loopback address (operator setting"),
    ],
)
def test_a_member_server_the_outbound_policy_refuses_is_an_error_naming_the_cluster(
    listener: Listener, server: str, why: str
) -> None:
    config = kubeconfig({"token": "t"}, server=server.format(port=listener.port))
    members = MemberClients(Hub(config), timeout=1.0, policy=OutboundPolicy())  # type: ignore[arg-type]

    with pytest.raises(AdapterError) as refused:
        members.api_for("fleet", cluster())

    assert "Secret fleet/member-kubeconfig (cluster eu): its server is refused" in str(
        refused.value
    )
    assert "cluster eu: URL https://" in str(refused.value) and why in str(refused.value)
    assert listener.accepted == 0, "nothing connected to the address"


def test_a_member_server_resolving_to_a_refused_address_at_connect_time_gets_no_byte(
    listener: Listener,
) -> None:
    """The check at load time saw an allowed address (the name resolved elsewhere then); the
    connected socket is checked again and closed before TLS or HTTP sends anything."""
    lying = OutboundPolicy(resolver=lambda host, port: ["10.20.30.40"])
    config = kubeconfig({"token": "t"}, server=f"https://localhost:{listener.port}")
    api = MemberClients(Hub(config), timeout=2.0, policy=lying).api_for("fleet", cluster())  # type: ignore[arg-type]

    with pytest.raises(AdapterError) as refused:
        api.get(PROGRESSIVE_SERVICES, "shop", "payment")

    assert "connection refused by policy" in str(refused.value)
    assert "a loopback address" in str(refused.value)
    assert listener.received == b"", "no TLS hello, no request"
