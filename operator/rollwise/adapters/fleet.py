"""The hub's I/O for FleetRollouts: the FleetRollout and its Events on the hub, and each member
cluster's ProgressiveService, reached with the kubeconfig in the Secret the cluster entry names.

Credentials (hub-push): the hub reads one Secret per member, by name, in the FleetRollout's own
namespace, and with it only gets and patches one ProgressiveService in the member. It never
lists Secrets, and no member credential ever leaves the hub.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from datetime import datetime

import kubernetes.config
import yaml
from kubernetes.client import ApiClient, Configuration

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.events import EventRecorder
from rollwise.adapters.kubeapi import PROGRESSIVE_SERVICES, KubeApi, Resource
from rollwise.adapters.manifests.types import COMPONENT, Manifest, ObjectRef
from rollwise.adapters.member_kubeconfig import KubeconfigRefused, sanitised
from rollwise.adapters.outbound import OutboundPolicy, OutboundRefused, guard_pool_manager
from rollwise.adapters.status_writer import StatusWriter
from rollwise.api import GROUP, VERSION
from rollwise.api import fleet as fleet_api
from rollwise.api.fleet import FleetCluster, FleetRolloutStatus, TargetRef
from rollwise.core.fleet.model import FleetEvent, FleetMemberSpec, MemberObservation, PatchMember
from rollwise.core.model import EventRecord

FLEET_ROLLOUTS = Resource(fleet_api.KIND, GROUP, VERSION, fleet_api.PLURAL)
SECRETS = Resource("Secret", "", "v1", "secrets")


@dataclass(frozen=True)
class FleetRef(ObjectRef):
    """A FleetRollout on the hub."""

    kind: str = fleet_api.KIND


class MemberClients:
    """One ApiClient per member kubeconfig, rebuilt when its Secret changes."""

    def __init__(self, hub: KubeApi, timeout: float, policy: OutboundPolicy | None = None) -> None:
        self._hub = hub
        self._timeout = timeout
        # The one outbound policy (adapters/outbound.py): a member's server is the platform's
        # (whoever writes the hub's Secrets), so any address but link-local and metadata ones,
        # and loopback only with --outbound-allow-loopback.
        self._policy = policy or OutboundPolicy()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str], tuple[str, KubeApi]] = {}

    def api_for(self, namespace: str, cluster: FleetCluster) -> KubeApi:
        ref = cluster.kubeconfig_secret_ref
        where = f"Secret {namespace}/{ref.name} (cluster {cluster.name})"
        secret = self._hub.get(SECRETS, namespace, ref.name)
        if secret is None:
            raise AdapterError(where, "not found", fix="create it with the member's kubeconfig")
        version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
        key = (namespace, ref.name, ref.key)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        data = (secret.get("data") or {}).get(ref.key)
        if not isinstance(data, str):
            raise AdapterError(where, f"has no key {ref.key!r}", field=f"data.{ref.key}")
        try:
            # Only server, CA data and a token or client certificate data: never an exec or
            # auth-provider plugin, a file path or a proxy (adapters/member_kubeconfig.py).
            config_dict = sanitised(yaml.safe_load(base64.b64decode(data)))
        except KubeconfigRefused as err:
            raise AdapterError(
                where,
                f"key {ref.key} is refused: {err}",
                fix="keep only server, certificate-authority-data and a token or client "
                "certificate data in the member's kubeconfig",
            ) from None
        except (ValueError, yaml.YAMLError):
            # Not the parser's text: it quotes the document, which holds the credential.
            raise AdapterError(where, f"key {ref.key} is not a kubeconfig (YAML)") from None
        server = str(config_dict["clusters"][0]["cluster"]["server"])
        try:
            self._policy.check(server, platform=True, what=f"cluster {cluster.name}")
        except OutboundRefused as err:
            raise AdapterError(
                where,
                f"its server is refused: {err}",
                fix="point the member's kubeconfig at the member's API server",
            ) from None
        try:
            configuration = Configuration()
            kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                config_dict, client_configuration=configuration, persist_config=False
            )
        except (ValueError, kubernetes.config.ConfigException) as err:
            raise AdapterError(
                where, f"key {ref.key} is not a usable kubeconfig ({type(err).__name__})"
            ) from None
        configuration.connection_pool_maxsize = 2
        # A stopped member must not hold a pass for long: connection refused is at once, a
        # silent network costs one timeout.
        configuration.retries = 0
        client = ApiClient(configuration)
        # Checked again on every connected socket: a name resolving elsewhere later gains nothing.
        guard_pool_manager(client.rest_client.pool_manager, self._policy.address_refusal)
        client.user_agent = f"{COMPONENT}-fleet-hub"
        api = KubeApi(client, timeout=self._timeout)
        with self._lock:
            old = self._clients.get(key)
            self._clients[key] = (version, api)
        if old is not None:
            old[1].client.close()  # type: ignore[no-untyped-call]
        return api

    def close(self) -> None:
        with self._lock:
            for _, api in self._clients.values():
                api.client.close()  # type: ignore[no-untyped-call]
            self._clients.clear()


def member_observation(cluster: str, obj: Manifest) -> MemberObservation:
    """A member's ProgressiveService, as the fleet room reads it."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    abort = status.get("abort") or {}
    message = status.get("message")
    if status.get("phase") in ("RolledBack", "MigrationFailed") and abort.get("message"):
        message = f"{abort.get('reason')}: {abort.get('message')}"
    return MemberObservation(
        cluster=cluster,
        reachable=True,
        found=True,
        spec=FleetMemberSpec(
            version=spec.get("version"),
            containers=tuple(c for c in containers if isinstance(c, dict)),
        ),
        resource_version=metadata.get("resourceVersion"),
        generation=metadata.get("generation"),
        observed_generation=status.get("observedGeneration"),
        phase=status.get("phase"),
        stable_version=(status.get("stable") or {}).get("version"),
        canary_version=(status.get("canary") or {}).get("version"),
        message=message,
    )


class FleetAdapter:
    """Hub reads and writes, and member reads and patches."""

    def __init__(
        self,
        hub: KubeApi,
        member_timeout: float = 5.0,
        instance: str = "",
        policy: OutboundPolicy | None = None,
    ) -> None:
        self.hub = hub
        self.members = MemberClients(hub, member_timeout, policy)
        self.instance = instance or COMPONENT
        self.status = StatusWriter(hub, FLEET_ROLLOUTS)
        self.events = EventRecorder(hub, self.instance, component=f"{COMPONENT}-fleet-hub")

    def read_fleet(self, namespace: str, name: str) -> Manifest | None:
        return self.hub.get(FLEET_ROLLOUTS, namespace, name)

    def observe_member(
        self, namespace: str, cluster: FleetCluster, target: TargetRef
    ) -> MemberObservation:
        """The member's ProgressiveService, or why it cannot be read (never raises)."""
        try:
            api = self.members.api_for(namespace, cluster)
        except AdapterError as err:
            return MemberObservation(cluster=cluster.name, reachable=False, error=str(err))
        try:
            obj = api.get(PROGRESSIVE_SERVICES, target.namespace, target.service)
        except AdapterError as err:
            return MemberObservation(cluster=cluster.name, reachable=False, error=err.problem)
        if obj is None:
            return MemberObservation(
                cluster=cluster.name,
                reachable=True,
                found=False,
                error=f"ProgressiveService {target.namespace}/{target.service} not found",
            )
        return member_observation(cluster.name, obj)

    def patch_member(
        self, namespace: str, cluster: FleetCluster, target: TargetRef, patch: PatchMember
    ) -> int | None:
        """Write the patch; the member's new generation."""
        api = self.members.api_for(namespace, cluster)
        written = api.patch(PROGRESSIVE_SERVICES, target.namespace, target.service, patch.body())
        generation = (written.get("metadata") or {}).get("generation")
        return int(generation) if generation is not None else None

    def patch_status(
        self, ref: FleetRef, resource_version: str, old: Manifest, new: FleetRolloutStatus
    ) -> bool:
        """Merge-patch the status if it changed (the one StatusWriter: guarded by the
        resourceVersion read, conflicts re-read and retried). True when a patch was written."""
        return self.status.write(ref, resource_version, old, new)

    def post_event(self, ref: FleetRef, event: FleetEvent, now: datetime) -> None:
        """Through the one Event recorder (a repeat counts on the first Event)."""
        self.events.post(ref, EventRecord(event.reason, event.message, event.warning), now)
