"""Pod logs on kwok: kwok's kubelet server answers `GET .../pods/<pod>/log` from a file in
the CRI log format (`<RFC3339Nano> stdout F <line>`), for the pods and containers a
cluster-scoped `ClusterLogs` object selects. No container ever runs; the test writes the log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "clusterlogs"


def write_cri_log(path: Path, lines: Iterable[str]) -> Path:
    """`lines` as a container's stdout, one CRI log record each."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{stamp} stdout F {line}\n" for line in lines))
    return path


class PodLogs:
    """ClusterLogs objects: which containers of which namespaces' pods answer with a file."""

    def __init__(self, api: ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)

    def serve(self, name: str, namespace: str, containers: list[str], logs_file: Path) -> None:
        """Every pod of `namespace`: these containers' logs are `logs_file`."""
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterLogs",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchNamespaces": [namespace]},
                "logs": [{"containers": containers, "logsFile": str(logs_file), "follow": False}],
            },
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

    def remove(self, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
