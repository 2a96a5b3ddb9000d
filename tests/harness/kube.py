"""Typed doorways into the kubernetes client, whose config helpers carry no type hints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def api_client_from_kubeconfig(kubeconfig: Path) -> ApiClient:
    """An ApiClient for the current context of ``kubeconfig`` (never touches global config)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    return client.ApiClient(configuration)
