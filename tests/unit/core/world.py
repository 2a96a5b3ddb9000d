"""A pure, in-memory world for driving decide() through whole rollouts in unit tests.

It is not a fake of Kubernetes: it only applies the core's own actions to the core's own
`Observed` shape. The test sets the rules: whether pods become ready (and how many), how Jobs
end, and the one value or error every due gate measures. Pods become ready and Jobs finish at
the start of the next pass, never within the pass that created them; a scale-down takes ready
pods away at once. Every pass is recorded with what it observed and the status it started from,
so tests can check what was planned from what. Cluster behaviour is tested on the real control
plane in tests/integration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import ServiceStatus
from rollwise.core.analysis import due_gates
from rollwise.core.decide import decide
from rollwise.core.model import (
    AdoptWorkload,
    CreateGateJob,
    CreateMigrationJob,
    DeleteJob,
    DeleteReplicaSet,
    EnsureServices,
    GateJobState,
    HookCall,
    HookOutcome,
    JobState,
    ManualRequest,
    MetricSample,
    Observed,
    Plan,
    PlanAction,
    ReleaseWorkload,
    ReplicaSetState,
    ScaleReplicaSet,
    ScaleWorkload,
    SetRouterWeight,
    WorkloadState,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = TypeVar("A")


def spec_from(**overrides: Any) -> ServiceSpec:
    """A small valid spec; keyword arguments replace top-level wire fields."""
    wire: dict[str, Any] = {
        "replicas": 4,
        "version": "1.0.0",
        "template": {"spec": {"containers": [{"name": "app", "image": "example/app:1.0.0"}]}},
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 25},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"gates": [{"name": "error-rate"}]}},
                    {"setWeight": 50},
                ]
            }
        },
        "abortScaleDownDelaySeconds": 10,
        "progressDeadlineSeconds": 120,
    }
    wire.update(overrides)
    return ServiceSpec.model_validate(wire)


def gate_from(**overrides: Any) -> MetricGateSpec:
    wire: dict[str, Any] = {
        "interval": "10s",
        "count": 1,
        "failureLimit": 0,
        "inconclusiveLimit": 1,
        "consecutiveErrorLimit": 2,
        "provider": {
            "prometheus": {
                "address": "http://prom:9090",
                "query": 'sum(rate(errors{revision="{{canary.revision}}"}[1m]))',
            }
        },
        "thresholdRange": {"max": 0.05},
    }
    wire.update(overrides)
    return MetricGateSpec.model_validate(wire)


def released(spec: ServiceSpec, version: str, **overrides: Any) -> ServiceSpec:
    """The same spec with the image and version of `version` (a new revision), and any
    top-level wire fields replaced."""
    wire = spec.to_wire()
    wire["version"] = version
    wire["template"]["spec"]["containers"][0]["image"] = f"example/app:{version}"
    wire.update(overrides)
    return ServiceSpec.model_validate(wire)


@dataclass(frozen=True)
class Pass:
    """One reconcile pass: what it observed, the status it started from, and what it decided."""

    before: ServiceStatus
    observed: Observed
    now: datetime
    plan: Plan


@dataclass
class World:
    """Observed state plus the rules the tests choose: are pods ready, do Jobs succeed, what do
    gates return."""

    spec: ServiceSpec
    status: ServiceStatus = field(default_factory=ServiceStatus)
    now: datetime = T0
    generation: int = 1
    replica_sets: dict[str, ReplicaSetState] = field(default_factory=dict)
    jobs: dict[str, JobState] = field(default_factory=dict)
    services: EnsureServices | None = None
    router_weight: int | None = None
    router_mirror: int | None = 0
    gates: dict[str, MetricGateSpec | None] = field(
        default_factory=lambda: {"error-rate": gate_from()}
    )
    gate_errors: dict[str, str] = field(default_factory=dict)  # gates whose spec is invalid
    gate_value: float | None = 0.01
    gate_error: str | None = None
    pods_ready: bool = True
    ready_cap: int | None = None  # at most this many ready pods per revision
    not_ready: str = ""  # what a revision's pods that are not ready are doing, in words
    job_outcome: str = "succeeded"  # succeeded | failed | running
    gate_jobs: dict[str, GateJobState] = field(default_factory=dict)  # job gates' Jobs
    gate_job_outcome: str = "succeeded"  # succeeded | failed | running
    gate_job_log: str | None = "check failed: p99 412ms > 300ms"
    request: ManualRequest | None = None
    request_error: str | None = None  # an unreadable request annotation
    workload: WorkloadState | None = None  # a workloadRef's Deployment
    deleting: bool = False
    released: bool = False  # ReleaseWorkload applied: the finalizer is gone
    passes: list[Pass] = field(default_factory=list)
    job_creations: list[str] = field(default_factory=list)
    log: list[PlanAction] = field(default_factory=list)
    # Webhook receivers: the HTTP status every call gets (None: no answer, a timeout). Calls
    # are answered at the start of the next pass, like the sender's outcomes.
    hook_answer: Callable[[HookCall], int | None] = lambda call: 200
    calls: list[HookCall] = field(default_factory=list)
    outcomes: tuple[HookOutcome, ...] = ()
    missing_references: tuple[str, ...] = ()  # what the adapter found missing (a route)

    def observed(self, samples: tuple[MetricSample, ...] = ()) -> Observed:
        return Observed(
            namespace="shop",
            name="payment",
            generation=self.generation,
            replica_sets=dict(self.replica_sets),
            jobs=dict(self.jobs),
            gate_jobs=dict(self.gate_jobs),
            gates=dict(self.gates),
            gate_errors=dict(self.gate_errors),
            samples=samples,
            request=self.request,
            request_error=self.request_error,
            services=self.services,
            router_weight=self.router_weight,
            router_mirror=self.router_mirror,
            workload=self.workload,
            deleting=self.deleting,
            hook_outcomes=self.outcomes,
            missing_references=self.missing_references,
        )

    def step(self, advance: float = 0.0) -> Plan:
        """One reconcile pass at now + advance: measure due gates, decide, apply the plan."""
        self.now += timedelta(seconds=advance)
        self._settle()
        base = self.observed()
        samples = tuple(
            MetricSample(
                key=q.key,
                query=q.query,
                measured_at=self.now,
                value=self.gate_value,
                error=self.gate_error,
            )
            for q in due_gates(self.spec, self.status, base, self.now)
        )
        observed = self.observed(samples)
        plan = decide(self.spec, self.status, observed, self.now)
        self.passes.append(Pass(before=self.status, observed=observed, now=self.now, plan=plan))
        self.apply(plan)
        return plan

    def decide_again(self) -> Plan:
        """decide() once more on the world as the last pass left it: same now, nothing settled,
        no samples; the plan is returned, not applied."""
        return decide(self.spec, self.status, self.observed(), self.now)

    def restart(self) -> None:
        """An operator restart: nothing survives but the status, read back from the API."""
        self.status = ServiceStatus.model_validate(self.status.to_wire())

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            self.log.append(action)
            if isinstance(action, ScaleReplicaSet):
                old = self.replica_sets.get(action.revision)
                ready = old.ready_replicas if old else 0
                self.replica_sets[action.revision] = ReplicaSetState(
                    revision=action.revision,
                    replicas=action.replicas,
                    ready_replicas=min(ready, action.replicas),
                )
            elif isinstance(action, DeleteReplicaSet):
                self.replica_sets.pop(action.revision, None)
            elif isinstance(action, EnsureServices):
                self.services = action
            elif isinstance(action, SetRouterWeight):
                self.router_weight = action.weight
                self.router_mirror = action.mirror
            elif isinstance(action, AdoptWorkload) and self.workload is not None:
                self.workload = replace(self.workload, adopted=True)
            elif isinstance(action, ScaleWorkload) and self.workload is not None:
                self.workload = replace(
                    self.workload,
                    replicas=action.replicas,
                    ready_replicas=min(self.workload.ready_replicas, action.replicas),
                )
            elif isinstance(action, ReleaseWorkload):
                self.released = True
            elif isinstance(action, CreateGateJob):
                self.job_creations.append(action.job_name)
                # AlreadyExists is adopted: a second create of one name changes nothing.
                self.gate_jobs.setdefault(
                    action.job_name, GateJobState(name=action.job_name, owned=True)
                )
            elif isinstance(action, DeleteJob):
                self.gate_jobs.pop(action.job_name, None)
                for revision, job in list(self.jobs.items()):
                    if job.name == action.job_name:
                        del self.jobs[revision]
            elif isinstance(action, CreateMigrationJob):
                self.job_creations.append(action.job_name)
                self.jobs[action.revision] = JobState(
                    name=action.job_name,
                    revision=action.revision,
                    owned=True,
                    started_at=self.now,
                )
        self.status = plan.status
        self.calls.extend(plan.calls)
        answers = []
        for call in plan.calls:
            code = self.hook_answer(call)
            answers.append(
                HookOutcome(
                    id=call.id,
                    attempt=call.attempt,
                    at=self.now,
                    code=code,
                    error=None if code is not None else "no answer within 10s",
                )
            )
        self.outcomes = tuple(answers)

    def actions(self, kind: type[A]) -> list[A]:
        """Every applied action of one kind, in order."""
        return [a for a in self.log if isinstance(a, kind)]

    def events(self) -> list[str]:
        """The reasons of every Event planned so far, in order."""
        return [e.reason for p in self.passes for e in p.plan.events]

    def messages(self, reason: str) -> list[str]:
        """The messages of every Event with this reason planned so far, in order."""
        return [e.message for p in self.passes for e in p.plan.events if e.reason == reason]

    def _settle(self) -> None:
        """Pods become ready and Jobs finish according to the test's rules."""
        for rev, rs in list(self.replica_sets.items()):
            ready = rs.replicas if self.pods_ready else 0
            if self.ready_cap is not None:
                ready = min(ready, self.ready_cap)
            self.replica_sets[rev] = replace(
                rs, ready_replicas=ready, not_ready=self.not_ready if ready < rs.replicas else ""
            )
        if self.workload is not None and self.pods_ready:
            self.workload = replace(self.workload, ready_replicas=self.workload.replicas)
        for rev, job in list(self.jobs.items()):
            if job.succeeded or job.failed or self.job_outcome == "running":
                continue
            failed = self.job_outcome == "failed"
            self.jobs[rev] = replace(
                job,
                succeeded=not failed,
                failed=failed,
                finished_at=self.now,
                failure_reason="BackoffLimitExceeded: exit code 1" if failed else None,
            )

        for name, gate_job in list(self.gate_jobs.items()):
            if gate_job.succeeded or gate_job.failed or self.gate_job_outcome == "running":
                continue
            failed = self.gate_job_outcome == "failed"
            self.gate_jobs[name] = replace(
                gate_job,
                succeeded=not failed,
                failed=failed,
                finished_at=self.now,
                failure_reason="BackoffLimitExceeded: Job has reached the specified backoff "
                "limit; pod x: container check terminated: Error (exit code 1)"
                if failed
                else None,
                log_tail=self.gate_job_log if failed else None,
            )

    def run(self, passes: int = 60, advance: float = 5.0, until: str | None = None) -> None:
        """Up to `passes` passes, `advance` seconds apart; stop early once phase is `until`."""
        for _ in range(passes):
            self.step(advance)
            if until is not None and self.status.phase == until:
                return

    def until(self, check: Callable[[World], bool], passes: int = 60, advance: float = 5.0) -> None:
        """Run passes until `check(world)` holds; fail with where the rollout got stuck if not."""
        for _ in range(passes):
            if check(self):
                return
            self.step(advance)
        assert check(self), f"stuck in {self.status.phase}: {self.status.message}"

    def reach(self, phase: str, passes: int = 60, advance: float = 5.0) -> None:
        """Run until the phase is reached; fail with where the rollout got stuck if it is not."""
        self.run(passes, advance, until=phase)
        assert self.status.phase == phase, (
            f"wanted {phase}, got {self.status.phase}: {self.status.message}"
        )


def healthy_world(spec: ServiceSpec | None = None, **rules: Any) -> World:
    """A world whose first revision is deployed and Healthy, with these rules set."""
    world = World(spec=spec or spec_from(), **rules)
    world.reach("Healthy")
    return world
