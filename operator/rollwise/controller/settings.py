"""The operator's settings in one place: one frozen dataclass from the CLI, and how it maps onto
Kopf's settings.

Kopf here only watches and calls `@kopf.on.event` handlers that enqueue keys; it must never write
to the cluster on its own: no annotations (progress, diff-base), no finalizers, no Events, no
peering objects. Everything rollwise writes goes through its adapters.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

import kopf
from kopf._core.engines.peering import Identity

from rollwise.adapters.cache import OWNED, OWNED_SELECTOR
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.core import naming

# Owned objects are watched through a server-side label selector: the API server sends only
# what rollwise made, never every Pod of the namespace.
# (group, plural) as Kopf names them ("v1" for the core group), from the watch cache's own list.
OWNED_RESOURCES: tuple[tuple[str, str], ...] = tuple(
    (res.group or res.version, res.plural) for res in OWNED
)
# The users' route objects rollwise writes weights to (docs/rollout-semantics.md, rule 9).
ROUTE_RESOURCES: tuple[tuple[str, str], ...] = (
    ("gateway.networking.k8s.io", "httproutes"),
    ("networking.istio.io", "virtualservices"),
)


@dataclass(frozen=True)
class OperatorSettings:
    """Everything `rollwise run` can be told, validated once."""

    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    workers: int = 8
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    metrics_port: int = 8080
    health_port: int = 8081
    kubeconfig: str | None = None
    api_timeout_s: float = 30.0  # one request of the adapters to the API server
    # Watches: the API server ends each watch after server_timeout (Kopf reconnects); the client
    # gives up a little later; a silent stream is dropped after Kopf's inactivity timeout.
    watch_server_timeout_s: int = 300
    watch_client_timeout_s: float = 330.0
    watch_connect_timeout_s: float = 10.0
    backoff_initial_s: float = 1.0  # after a failed pass; doubles per consecutive failure
    backoff_max_s: float = 300.0
    # A Healthy service's resync reads from the API server, not the watch cache, this often.
    fresh_observe_s: float = 3600.0
    # Leader election on a coordination.k8s.io/v1 Lease (controller/leadership.py). Off for a
    # single local run; on in the chart, where two replicas run and only the leader writes.
    leader_elect: bool = False
    lease_name: str = "rollwise-leader"
    lease_namespace: str = ""  # empty: $POD_NAMESPACE, else the first watched namespace
    # As client-go's defaults: a standby takes over `lease_duration_s` after it last saw the
    # lease renewed; the leader stops writing `renew_deadline_s` after its last renewal was
    # sent, so it is fenced `lease_duration_s - renew_deadline_s` before anyone can take over.
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0
    identity: str = ""  # empty: $POD_NAME, else <hostname>-<pid>
    # URL prefixes a namespaced MetricGate's web provider may call (adapters/web.py); a
    # ClusterMetricGate may call any URL. Empty: namespaced web gates are refused.
    web_gate_allow: tuple[str, ...] = ()
    # The one outbound policy (adapters/outbound.py): web_gate_allow is its allow-list for every
    # team-written URL; loopback only when this is set (local runs, the test harness).
    outbound_allow_loopback: bool = False

    def __post_init__(self) -> None:
        if self.clusterwide == bool(self.namespaces):
            raise ValueError("give either namespaces or clusterwide, not both or neither")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        for port in (self.metrics_port, self.health_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} is not in 0..65535")
        self.outbound_policy()  # raises ValueError naming a bad allow-list entry
        if self.leader_elect:
            check_election_timing(self.lease_duration_s, self.renew_deadline_s, self.retry_period_s)
            if not self.election_namespace:
                raise ValueError(
                    "--leader-elect with --all-namespaces needs the Lease's namespace: "
                    "pass --leader-elect-namespace or set POD_NAMESPACE"
                )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OperatorSettings:
        """From the parsed `rollwise run` arguments (see rollwise.cli.main)."""
        namespaces = () if args.all_namespaces else tuple(dict.fromkeys(args.namespaces))
        return cls(
            namespaces=namespaces,
            clusterwide=bool(args.all_namespaces),
            workers=int(args.workers),
            log_level=str(args.log_level).lower(),
            log_format="text" if args.log_format == "text" else "json",
            metrics_port=int(args.metrics_port),
            health_port=int(args.health_port),
            kubeconfig=args.kubeconfig or None,
            leader_elect=bool(getattr(args, "leader_elect", False)),
            lease_name=str(getattr(args, "leader_elect_lease_name", None) or "rollwise-leader"),
            lease_namespace=str(getattr(args, "leader_elect_namespace", None) or ""),
            lease_duration_s=float(getattr(args, "leader_elect_lease_duration", 15.0)),
            renew_deadline_s=float(getattr(args, "leader_elect_renew_deadline", 10.0)),
            retry_period_s=float(getattr(args, "leader_elect_retry_period", 2.0)),
            identity=str(getattr(args, "leader_elect_identity", None) or ""),
            web_gate_allow=tuple(
                entry.strip()
                for given in getattr(args, "web_gate_allow", None) or []
                for entry in str(given).split(",")
                if entry.strip()
            ),
            outbound_allow_loopback=bool(getattr(args, "outbound_allow_loopback", False)),
        )

    def outbound_policy(self) -> OutboundPolicy:
        """The policy for every URL the operator calls."""
        return OutboundPolicy(self.web_gate_allow, allow_loopback=self.outbound_allow_loopback)

    @property
    def election_namespace(self) -> str:
        """Where the Lease lives: as given, else the pod's own namespace (the chart sets
        POD_NAMESPACE), else the first watched namespace (a local run)."""
        return (
            self.lease_namespace
            or os.environ.get("POD_NAMESPACE", "")
            or (self.namespaces[0] if self.namespaces else "")
        )

    @property
    def election_identity(self) -> str:
        """This process in the Lease's holderIdentity: the pod name (a restarted container
        takes its own lease back at once), else hostname-pid (two local processes differ)."""
        return (
            self.identity
            or os.environ.get("POD_NAME", "")
            or f"{socket.gethostname()}-{os.getpid()}"
        )

    @property
    def kopf_identity(self) -> Identity:
        """Kopf's own identity (it names the process in its logs), given so that Kopf never
        guesses one: its guess asks getpass.getuser(), which raises KeyError for a uid without
        a passwd entry, as the image's 65532 is. The election identity needs no passwd entry."""
        return Identity(self.election_identity)

    @property
    def liveness_endpoint(self) -> str | None:
        """Kopf's /healthz: answers once the operator runs and its probes pass."""
        return f"http://0.0.0.0:{self.health_port}/healthz" if self.health_port else None

    def kopf_settings(self) -> kopf.OperatorSettings:
        """Kopf's settings for a watch-and-enqueue-only operator."""
        settings = kopf.OperatorSettings()
        # Events are posted by rollwise's own recorder (reportingComponent rollwise), never by
        # Kopf from log lines.
        settings.posting.enabled = False
        settings.posting.loggers = False
        # No peering objects to read or write: one replica, or several where only the holder
        # of rollwise's own Lease writes (controller/leadership.py). Kopf's peering freezes
        # every operator but one, so a standby would keep no warm cache, and fences nothing.
        settings.peering.standalone = True
        settings.peering.mandatory = False
        # Namespaced mode watches exactly the given namespaces, so the Role needs no cluster-wide
        # namespace list/watch.
        settings.scanning.disabled = not self.clusterwide
        # Kopf sends this verbatim as ?timeoutSeconds=, which the API server parses as an integer.
        settings.watching.server_timeout = int(self.watch_server_timeout_s)
        settings.watching.client_timeout = self.watch_client_timeout_s
        settings.watching.connect_timeout = self.watch_connect_timeout_s
        for resource in OWNED_RESOURCES:
            settings.watching.label_selectors[resource] = OWNED_SELECTOR
        # Of all route objects, only those rollwise sets weights on (labelled by rollwise).
        for resource in ROUTE_RESOURCES:
            settings.watching.label_selectors[resource] = naming.LABEL_ROUTE_OF
        # Of all Deployments, only those a workloadRef adopted (labelled by rollwise).
        settings.watching.label_selectors["apps", "deployments"] = naming.LABEL_ADOPTED_BY
        # With only event/startup/cleanup handlers Kopf has nothing to persist; these storages
        # make sure it never could: no progress or diff-base annotations, no status stanza.
        settings.persistence.progress_storage = NoProgressStorage()
        settings.persistence.diffbase_storage = NoDiffBaseStorage()
        return settings


def check_election_timing(lease_duration_s: float, renew_deadline_s: float, retry_s: float) -> None:
    """The rules client-go enforces, for the same reasons: the leader must give up before a
    standby may take over, and must get more than one try to renew before it gives up."""
    if not lease_duration_s > renew_deadline_s:
        raise ValueError("--leader-elect-lease-duration must be greater than the renew deadline")
    if not renew_deadline_s > 1.2 * retry_s:
        raise ValueError("--leader-elect-renew-deadline must exceed 1.2 x the retry period")
    if retry_s <= 0:
        raise ValueError("--leader-elect-retry-period must be positive")


class NoProgressStorage(kopf.ProgressStorage):
    """Stores no handler progress anywhere: rollwise's state lives in its status."""

    def fetch(self, *, key: Any, body: Any) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        return None

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        return None

    def touch(self, *, body: Any, patch: Any, value: Any) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return essence


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Keeps no last-handled-configuration: change detection is rollwise's level-based pass."""

    def fetch(self, *, body: Any) -> None:
        return None

    def build(self, *, body: Any, extra_fields: Any = None) -> None:  # type: ignore[override]
        """No essence at all. Kopf builds one (a deep copy of the body) on every watch event,
        only for create/update/field and daemon/timer handlers, none of which rollwise has; the
        copies were a tenth of the operator's CPU with 2,000 rollouts in flight."""
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None
