"""The fleet hub takes from a member's kubeconfig Secret only a server, CA data and a token or
client certificate data: an exec plugin whose command would create a marker file is refused
with a clear error, and the file is never created."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import kubernetes.config
import pytest
import yaml
from kubernetes.client import Configuration

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.fleet import SECRETS, MemberClients
from rollwise.adapters.kubeapi import Resource
from rollwise.adapters.member_kubeconfig import KubeconfigRefused, sanitised
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
