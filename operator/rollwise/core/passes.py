"""One decision pass: the builder every phase writes to, and the pacing constants they share.

A phase never calls a phase above it; it changes the pass (status, wanted workloads, Events)
and returns what happened, and the caller above decides what comes next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict

from typing_extensions import Unpack

from rollwise.api.routing import RouterKind
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import (
    HISTORY_LIMIT,
    AbortStatus,
    AdaptiveStatus,
    Condition,
    FullPromotion,
    GateResult,
    HistoryEntry,
    MigrationStatus,
    Phase,
    RequestAck,
    RevisionStatus,
    ServiceStatus,
    WebhookStatus,
)
from rollwise.core.checked import KindPass
from rollwise.core.model import (
    DeleteReplicaSet,
    EnsureServices,
    EventRecord,
    HookCall,
    Observed,
    Plan,
    PlanAction,
    ScaleReplicaSet,
    SetRouterWeight,
)

ACTOR = "rollwise"
# How long a recorded migration Job may be unseen before it counts as deleted by someone.
MIGRATION_JOB_GRACE = timedelta(seconds=30)
RESYNC_HEALTHY_S = 300.0
POLL_S = 5.0
# Waiting for pods or a Job ends with the watch event of their ReplicaSet or Job, which wakes the
# service at once; this timer is only the fallback should an event be missed. (A 5 s poll here
# was most of the passes of a rollout once the control plane was slow: 23 per rollout at N=1000.)
WATCH_FALLBACK_S = 30.0


class StatusChanges(TypedDict, total=False):
    """The fields of ServiceStatus a pass may set: a mistyped name is a mypy error, and
    `Pass.set` rejects it at run time too (a unit test keeps this list equal to the model's)."""

    observed_generation: int | None
    phase: Phase
    replicas: int
    selector: str | None
    message: str | None
    stable: RevisionStatus | None
    canary: RevisionStatus | None
    canary_weight: int
    mirror_percent: int
    current_step_index: int | None
    current_step: str | None
    step_started_at: datetime | None
    pause_started_at: datetime | None
    paused_by_request: bool
    migration: MigrationStatus | None
    schema_ahead_of_app: bool
    analysis: list[GateResult]
    abort: AbortStatus | None
    scale_down_at: datetime | None
    conditions: list[Condition]
    history: list[HistoryEntry]
    last_request: RequestAck | None
    invalid_request: str | None
    webhooks: list[WebhookStatus]
    adaptive: AdaptiveStatus | None
    full_promotion: FullPromotion | None
    route_weight: int | None
    previous_stables: list[str]


STATUS_FIELDS = frozenset(ServiceStatus.model_fields)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@dataclass
class Pass(KindPass[ServiceStatus]):
    """One decision pass: accumulates actions, events, history and the earliest requeue."""

    spec: ServiceSpec
    observed: Observed
    actions: list[PlanAction] = field(default_factory=list)  # migration Jobs, in order
    events: list[EventRecord] = field(default_factory=list)
    # Desired workload state, last word wins; turned into ordered actions by ordered_actions().
    replicas: dict[str, int] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    wanted_services: EnsureServices | None = None
    router_weight: SetRouterWeight | None = None
    calls: list[HookCall] = field(default_factory=list)

    def set(self, **changes: Unpack[StatusChanges]) -> None:
        """Change status fields; an unknown name is an error (model_copy would drop it)."""
        self.update(changes)

    def act(self, action: PlanAction) -> None:
        self.actions.append(action)

    def event(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        actor: str = ACTOR,
        step: int | None = None,
        weight: int | None = None,
        revision: str | None = None,
    ) -> None:
        """An Event and a history entry for one transition."""
        self.events.append(EventRecord(reason=reason, message=message, warning=warning))
        entry = HistoryEntry(
            at=self.now,
            event=reason,
            actor=actor,
            revision=revision,
            step=step,
            weight=weight,
            message=message,
        )
        history = [*self.status.history, entry][-HISTORY_LIMIT:]
        self.set(history=history)

    def notice(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event without a history entry: for what is not a rollout transition (a webhook
        delivery that failed), so it never pushes the rollout's story out of history."""
        self.events.append(EventRecord(reason=reason, message=message, warning=warning))

    def warn_once(self, reason: str, message: str) -> None:
        """A warning Event and history entry, once per distinct message of that reason."""
        if message not in {h.message for h in self.status.history if h.event == reason}:
            self.event(reason, message, warning=True)

    def asked(self, revision: str) -> int:
        """A revision's size as asked for in this pass, else as observed (0 when absent)."""
        rs = self.observed.replica_sets.get(revision)
        return self.replicas.get(revision, rs.replicas if rs else 0)

    # ---- convergence helpers: plan an action only where the world differs

    def scale(self, revision: str, replicas: int, *, current: bool) -> None:
        """Want a revision at this size; only the spec's own revision may be created (the
        template of any other revision is not known any more)."""
        if revision not in self.observed.replica_sets and not (current and replicas > 0):
            self.replicas.pop(revision, None)
            return
        self.replicas[revision] = replicas

    def hold(self, revision: str) -> None:
        """Forget any size wanted earlier in this pass for a revision."""
        self.replicas.pop(revision, None)

    def services(self, stable: str, canary: str | None, include_canary: bool) -> None:
        main: tuple[str, ...] = () if include_canary and canary else (stable,)
        if include_canary and canary and self.spec.strategy.blue_green is not None:
            main = (canary,)  # the blue-green switch: the active Service moves in one write
        self.wanted_services = EnsureServices(
            stable_revision=stable, canary_revision=canary, main_revisions=main
        )

    def router(self, stable: str, canary: str | None, weight: int, mirror: int = 0) -> None:
        """Want the router at this weight and mirror share (no mirror unless asked for: a
        drain or a steady state copies nothing to any canary)."""
        if self.spec.strategy.canary.traffic_routing.kind is RouterKind.REPLICAS:
            return
        self.router_weight = SetRouterWeight(
            stable_revision=stable,
            canary_revision=canary,
            weight=weight,
            mirror=mirror if canary else 0,
        )

    def ordered_actions(self) -> tuple[PlanAction, ...]:
        """Scale-ups, then traffic (Services, router), then scale-downs, then deletions: capacity
        is there before traffic moves to it, and traffic is gone before capacity goes."""
        ups: list[PlanAction] = []
        downs: list[PlanAction] = []
        for revision, want in sorted(self.replicas.items()):
            rs = self.observed.replica_sets.get(revision)
            have = rs.replicas if rs else 0
            if rs is not None and want == have:
                continue
            (ups if want > have or rs is None else downs).append(
                ScaleReplicaSet(revision=revision, replicas=want)
            )
        traffic: list[PlanAction] = []
        if self.wanted_services is not None and self.observed.services != self.wanted_services:
            traffic.append(self.wanted_services)
        if self.router_weight is not None and (
            self.observed.router_weight != self.router_weight.weight
            or self.observed.router_mirror != self.router_weight.mirror
        ):
            traffic.append(self.router_weight)
        deletes: list[PlanAction] = [
            DeleteReplicaSet(revision=r) for r in self.deletes if r in self.observed.replica_sets
        ]
        return (*self.actions, *ups, *traffic, *downs, *deletes)

    def plan(self) -> Plan:
        """The pass as a Plan: ordered actions, the status, its Events and the requeue."""
        return Plan(
            actions=self.ordered_actions(),
            status=self.status,
            events=tuple(self.events),
            requeue_after=self.requeue,
            calls=tuple(self.calls),
        )
