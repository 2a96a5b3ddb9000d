"""Access to the API server: JSON in, JSON out, over ONE shared `kubernetes.client.ApiClient`.

Requests go through the official ApiClient (its configuration, auth and connection pool) by
resource path with plain JSON bodies, not through the generated typed methods: those validate
bodies against the client's own pydantic models, which reject any pod-spec field newer than the
client, and spec.template must pass through untouched. Exceptions are mapped once, here, to
`AdapterError`s that name the object and what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import kubernetes.config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from rollwise.adapters.errors import TRANSPORT_ERRORS, AdapterError, api_error, transport_error
from rollwise.adapters.manifests.types import Manifest
from rollwise.api import GROUP, VERSION
from rollwise.api import gates as gate_api
from rollwise.api import service as service_api
from rollwise.api import train as train_api

MERGE_PATCH = "application/merge-patch+json"
Page = list[Manifest]  # one LIST response's items (`KubeApi.list` shadows `list` in the class)
USER_AGENT = "rollwise"


@dataclass(frozen=True)
class Resource:
    """A resource type by its REST coordinates."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:  # None: across all namespaces (a LIST)
            root += f"/namespaces/{quote(namespace, safe='')}"
        root += f"/{self.plural}"
        if name is not None:
            root += f"/{quote(name, safe='')}"
        if sub is not None:
            root += f"/{sub}"
        return root

    def describe(self, namespace: str | None, name: str) -> str:
        return f"{self.kind} {namespace}/{name}" if self.namespaced else f"{self.kind} {name}"


PROGRESSIVE_SERVICES = Resource(service_api.KIND, GROUP, VERSION, service_api.PLURAL)
RELEASE_TRAINS = Resource(train_api.KIND, GROUP, VERSION, train_api.PLURAL)
METRIC_GATES = Resource(gate_api.KIND, GROUP, VERSION, gate_api.PLURAL)
CLUSTER_METRIC_GATES = Resource(
    gate_api.CLUSTER_KIND, GROUP, VERSION, gate_api.CLUSTER_PLURAL, namespaced=False
)
REPLICA_SETS = Resource("ReplicaSet", "apps", "v1", "replicasets")
DEPLOYMENTS = Resource("Deployment", "apps", "v1", "deployments")
JOBS = Resource("Job", "batch", "v1", "jobs")
PODS = Resource("Pod", "", "v1", "pods")
SERVICES = Resource("Service", "", "v1", "services")
EVENTS = Resource("Event", "", "v1", "events")
INGRESSES = Resource("Ingress", "networking.k8s.io", "v1", "ingresses")
HTTP_ROUTES = Resource("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes")
# Traefik's own kind, for mirrorWith: TraefikService (its Gateway API provider has no
# RequestMirror filter).
TRAEFIK_SERVICES = Resource("TraefikService", "traefik.io", "v1alpha1", "traefikservices")
# v1beta1 is served by every Istio release that has v1 (1.22+) and by the older ones too.
VIRTUAL_SERVICES = Resource("VirtualService", "networking.istio.io", "v1beta1", "virtualservices")


def connect(kubeconfig: str | None, pool_size: int) -> ApiClient:
    """The one ApiClient of the process: from `kubeconfig`, else in-cluster, else ~/.kube/config.

    `pool_size` bounds the connections to the API server; one per worker thread means no
    worker ever waits for, or discards, a connection.
    """
    config = Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=config, persist_config=False
            )
    except (kubernetes.config.ConfigException, OSError) as err:
        where = kubeconfig or "in-cluster config / ~/.kube/config"
        raise AdapterError(
            f"kubeconfig {where}",
            f"cannot load: {err}",
            fix="pass --kubeconfig or set KUBECONFIG",
        ) from err
    config.connection_pool_maxsize = max(1, pool_size)
    client = ApiClient(config)
    client.user_agent = USER_AGENT
    return client


class KubeApi:
    """JSON in, JSON out, over the shared ApiClient; every error mapped to an AdapterError."""

    def __init__(self, client: ApiClient, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        obj: str,
        verb: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Manifest:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method, url, headers, body, post = self.client.param_serialize(
                method,
                path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(
                method, url, headers, body, post, _request_timeout=self.timeout
            )
            data = response.read()  # type: ignore[no-untyped-call]
        except TRANSPORT_ERRORS as err:
            raise transport_error(err, obj, verb) from err
        if not 200 <= response.status <= 299:
            text = data.decode(errors="replace") if isinstance(data, bytes) else str(data or "")
            raise api_error(
                ApiException(status=response.status, reason=response.reason, body=text), obj, verb
            )
        if not data:
            return {}
        parsed: Manifest = json.loads(data)
        return parsed

    def get_text(
        self, res: Resource, namespace: str, name: str, sub: str, query: dict[str, str]
    ) -> str:
        """A subresource answering plain text (a pod's `log`); errors as `request`'s."""
        obj = res.describe(namespace, name) + f" {sub}"
        try:
            method, url, headers, body, post = self.client.param_serialize(
                "GET",
                res.path(namespace, name, sub),
                query_params=query or None,
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(
                method, url, headers, body, post, _request_timeout=self.timeout
            )
            data = response.read()  # type: ignore[no-untyped-call]
        except TRANSPORT_ERRORS as err:
            raise transport_error(err, obj, "get") from err
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data or "")
        if not 200 <= response.status <= 299:
            raise api_error(
                ApiException(status=response.status, reason=response.reason, body=text), obj, "get"
            )
        return text

    def get(self, res: Resource, namespace: str | None, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        try:
            return self.request(
                "GET", res.path(namespace, name), res.describe(namespace, name), "get"
            )
        except AdapterError as err:
            if err.status == 404:
                return None
            raise

    def list(self, res: Resource, namespace: str, selector: str) -> list[Manifest]:
        """Every matching object in one namespace (one request unless there are over 500)."""
        return [item for page in self.list_pages(res, namespace, selector) for item in page]

    def list_pages(
        self, res: Resource, namespace: str | None, selector: str | None, limit: int = 500
    ) -> Iterator[Page]:
        """Every matching object, `limit` per request (the API server's continue tokens), in
        one namespace or (None) all of them."""
        where = f"in {namespace}" if namespace else "in all namespaces"
        obj = f"{res.kind}s {where}" + (f" with {selector}" if selector else "")
        token: str | None = None
        while True:
            query = {"limit": str(limit)}
            if selector:
                query["labelSelector"] = selector
            if token:
                query["continue"] = token
            data = self.request("GET", res.path(namespace), obj, "list", query=query)
            yield data.get("items") or []
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return

    def create(self, res: Resource, namespace: str | None, body: Manifest) -> Manifest:
        name = str(body.get("metadata", {}).get("name", ""))
        return self.request(
            "POST", res.path(namespace), res.describe(namespace, name), "create", body=body
        )

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Manifest,
        *,
        sub: str | None = None,
    ) -> Manifest:
        """A JSON merge patch (RFC 7386): works the same for built-in and custom resources."""
        return self.request(
            "PATCH",
            res.path(namespace, name, sub),
            res.describe(namespace, name) + (f" {sub}" if sub else ""),
            "patch" if sub is None else f"patch {sub}",
            body=body,
            content_type=MERGE_PATCH,
        )

    def delete(self, res: Resource, namespace: str | None, name: str, body: Manifest) -> None:
        """Delete; an object already gone is fine."""
        try:
            self.request(
                "DELETE",
                res.path(namespace, name),
                res.describe(namespace, name),
                "delete",
                body=body,
            )
        except AdapterError as err:
            if err.status != 404:
                raise
