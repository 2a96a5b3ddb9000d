"""The one place where rollout decisions are made.

`decide(spec, status, observed, now)` is pure: it reads what the adapters observed and the status
the last pass wrote, and returns a Plan: the actions to converge the world, the next status, the
Events, and when to look again. Everything it needs to survive a crash lives in status (step
index, pause start, migration attempt, abort time) or can be observed (ReplicaSets and Jobs have
deterministic names), so a restarted operator continues exactly where the last status write was.

This module only routes a pass to its room; each room changes the pass and returns what
happened, and never calls a room above it (import-linter's layers contract checks it):

    decide -> rollout | adoption -> steps -> promotion -> analysis | abort -> migration
           -> steady -> workloads -> requests | hooks -> passes
"""

from __future__ import annotations

from datetime import datetime

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import Phase, ServiceStatus
from rollwise.core.abort import return_to_stable, supersede_canary
from rollwise.core.adoption import hand_over, release, workload_missing
from rollwise.core.analysis import inconclusive_gates
from rollwise.core.conditions import with_condition
from rollwise.core.hooks import announce, fold_outcomes, schedule_calls
from rollwise.core.migration import migrate, migration_done, needs_migration
from rollwise.core.model import Observed, Plan
from rollwise.core.naming import workload_selector
from rollwise.core.passes import Pass
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.references import describe_missing, missing_references
from rollwise.core.requests import ack_unhandled_request, report_invalid_request
from rollwise.core.revision import revision_of
from rollwise.core.rollout import run_rollout
from rollwise.core.steady import deploy_first_revision, keep_steady
from rollwise.core.step_label import step_label

_PROGRESSING_PHASES = {
    Phase.PENDING,
    Phase.MIGRATING,
    Phase.PROGRESSING,
    Phase.PAUSED,
    Phase.PROMOTING,
    Phase.ROLLING_BACK,
}
_DEGRADED_PHASES = {Phase.ROLLED_BACK, Phase.MIGRATION_FAILED, Phase.DEGRADED}
_SETTLED_PHASES = (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED)


def decide(spec: ServiceSpec, status: ServiceStatus, observed: Observed, now: datetime) -> Plan:
    """The next actions, status, Events and requeue delay for one ProgressiveService."""
    p = Pass(spec=spec, observed=observed, now=now, status=status)
    fold_outcomes(p)  # first: a blocking hook's answer decides this very pass
    report_invalid_request(p)
    if observed.deleting:
        release(p)
    elif spec.template is None:
        workload_missing(p)  # a workloadRef whose Deployment could not be read
    else:
        _route(p, revision_of(spec))
        hand_over(p)
    ack_unhandled_request(p)
    # The step as people count it ("2/6"), for the Step column; phases only set the index.
    p.set(current_step=step_label(p.status.current_step_index, len(p.spec.strategy.canary.steps)))
    announce(p, status)
    schedule_calls(p)
    _finish_status(p, status)
    return p.plan()


def _route(p: Pass, revision: str) -> None:
    """Send the pass to the room the declared revision and the recorded status call for."""
    status = p.status
    stable = status.stable
    if stable is None:
        # The very first revision: its migration, then straight to full replicas.
        if not needs_migration(p, revision) or migrate(p, revision):
            deploy_first_revision(p, revision)
        return
    canary = status.canary
    if canary is not None and stable.revision == revision:
        return_to_stable(p)  # a fast rollback: Healthy as soon as stable is
    elif canary is not None and canary.revision != revision and status.phase not in _SETTLED_PHASES:
        # A newer revision replaced the canary mid-rollout.
        if supersede_canary(p, revision):
            run_rollout(p, revision)
    elif stable.revision == revision:
        keep_steady(p, revision)
    else:
        run_rollout(p, revision)


def _finish_status(p: Pass, before: ServiceStatus) -> None:
    """The conditions from the phase and the spec's references, the scale subresource's
    replicas and selector, then observedGeneration, written last.

    For kstatus (Flux, kubectl wait, cli-utils): Reconciling is True while a rollout moves
    (InProgress), Stalled is True once it settled on a failure (RolledBack, MigrationFailed,
    Degraded) or the spec names an object that does not exist (InvalidSpec): Failed, at
    once, not at the reader's timeout."""
    status = p.status
    phase = status.phase
    generation = p.observed.generation
    missing = (
        []
        if p.observed.deleting
        else missing_references(p.spec, p.observed, gates=status.canary is not None)
    )
    invalid = bool(missing)
    ready = phase is Phase.HEALTHY and not invalid
    reason = status.abort.reason if status.abort and phase in _DEGRADED_PHASES else phase.value
    if invalid:
        reason = Reason.INVALID_SPEC
    stalled = invalid or phase in _DEGRADED_PHASES
    message = status.message or ""
    migration_ok = p.spec.migration is None or (
        p.spec.template is not None and migration_done(p.status, revision_of(p.spec))
    )
    wanted = [
        (ConditionType.READY, ready, reason if invalid else phase.value),
        (ConditionType.PROGRESSING, phase in _PROGRESSING_PHASES, phase.value),
        (ConditionType.DEGRADED, stalled, reason),
        (ConditionType.PAUSED, phase is Phase.PAUSED, _paused_reason(p)),
        (
            ConditionType.MIGRATION_COMPLETE,
            migration_ok,
            Reason.NO_MIGRATION
            if p.spec.migration is None
            else (status.migration.phase.value if status.migration else "NotStarted"),
        ),
        (ConditionType.RECONCILING, phase in _PROGRESSING_PHASES and not stalled, phase.value),
        (ConditionType.STALLED, stalled, reason if stalled else phase.value),
        (ConditionType.INVALID_SPEC, invalid, Reason.INVALID_SPEC if invalid else "Valid"),
    ]
    if invalid:
        message = describe_missing(missing)
    # Always the same eight, in the same order: any condition of an older operator is dropped.
    out = status.model_copy(
        update={"conditions": [c for c in status.conditions if c.type in {w[0] for w in wanted}]}
    )
    for ctype, value, why in wanted:
        out = with_condition(out, ctype, value, why, message, generation, p.now)
    order: list[str] = [w[0] for w in wanted]
    conditions = sorted(out.conditions, key=lambda c: order.index(c.type))
    stable, canary = status.stable, status.canary
    p.set(
        conditions=conditions,
        replicas=(stable.replicas if stable else 0) + (canary.replicas if canary else 0),
        selector=workload_selector(p.observed.name),
        route_weight=_route_weight(p, before),
        observed_generation=generation,
    )


def _paused_reason(p: Pass) -> str:
    """Why Paused: a gate without data holds the rollout (GateInconclusive), else the phase."""
    if p.status.phase is Phase.PAUSED and inconclusive_gates(p.spec, p.status):
        return Reason.GATE_INCONCLUSIVE
    return p.status.phase.value


def _route_weight(p: Pass, before: ServiceStatus) -> int | None:
    """The canary weight on the route object once this pass's writes are done (None under the
    replicas router). A route that had this weight at the last pass and reads otherwise now was
    changed by someone else (a GitOps re-sync of the user's manifest): one warning Event says
    so as the weight is set back."""
    if p.spec.strategy.canary.traffic_routing.kind == "replicas":
        return None
    wanted = p.router_weight
    observed = p.observed.router_weight
    if wanted is None:
        return observed
    if before.route_weight == wanted.weight and observed != wanted.weight:
        shown = "unreadable" if observed is None else f"{observed}%"
        p.event(
            Reason.ROUTE_REASSERTED,
            f"the route's canary weight was changed outside rollwise ({shown}); set back to "
            f"{wanted.weight}%",
            warning=True,
            weight=wanted.weight,
        )
    return wanted.weight
