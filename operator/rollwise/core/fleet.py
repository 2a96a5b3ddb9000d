"""The fleet room: one FleetRollout's next step, from its spec, its status and what the hub saw
of each member cluster's ProgressiveService. Pure: no I/O, the clock is an argument.

The hub never runs a canary itself. It patches a member's ProgressiveService to the version
(and container changes), and the member's own rollwise migrates, canaries, analyses and
promotes or rolls back. The hub reads the outcome from the member's status.

Crash safety. Before the first patch of a member, a status write records the member's spec as
it was (`previous`) with phase Patching; the patch is written only after that. A restarted hub
re-observes: a member whose spec already asks for the version is not patched again (and
re-patching the same spec would change nothing in the member: no new generation, no new
revision, so no second migration). The outcome is judged only from a member status whose
observedGeneration reached the patched generation, never from the status before the patch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollwise.api.durations import parse_duration
from rollwise.api.fleet import (
    HISTORY_LIMIT,
    ContainerPatch,
    FailurePolicy,
    FleetHistoryEntry,
    FleetPhase,
    FleetRolloutSpec,
    FleetRolloutStatus,
    MemberPhase,
    MemberStatus,
    PreviousSpec,
    Wave,
    WavePhase,
    WaveStatus,
)
from rollwise.api.service import RequestAck
from rollwise.core.conditions import set_condition
from rollwise.core.model import Action, ManualRequest

Container = Mapping[str, Any]

# Member ProgressiveService phases that end a rollout without the new version.
MEMBER_FAILED_PHASES = frozenset({"RolledBack", "MigrationFailed"})
# A member phase that, once Healthy at the version, counts as having lost it during a soak.
MEMBER_UNHEALTHY_PHASES = frozenset({"RolledBack", "MigrationFailed", "Degraded"})


class Reason:
    """Fleet Event, history and condition reasons."""

    STARTED = "FleetStarted"
    WAVE_STARTED = "WaveStarted"
    APPROVAL_NEEDED = "ApprovalNeeded"
    APPROVED = "WaveApproved"
    MEMBER_PATCHING = "MemberPatching"
    MEMBER_PATCHED = "MemberPatched"
    MEMBER_SUCCEEDED = "MemberSucceeded"
    MEMBER_FAILED = "MemberFailed"
    MEMBER_ALREADY_AT_VERSION = "MemberAlreadyAtVersion"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    MEMBER_REACHABLE = "MemberReachable"
    MEMBER_ROLLING_BACK = "MemberRollingBack"
    MEMBER_ROLLED_BACK = "MemberRolledBack"
    SOAKING = "WaveSoaking"
    WAVE_SUCCEEDED = "WaveSucceeded"
    WAVE_FAILED = "WaveFailed"
    HALTED = "FleetHalted"
    ROLLING_BACK = "FleetRollingBack"
    ROLLED_BACK = "FleetRolledBack"
    SUCCEEDED = "FleetSucceeded"
    ABORTED = "Aborted"
    INVALID = "FleetInvalid"
    REQUEST_ACCEPTED = "RequestAccepted"
    REQUEST_IGNORED = "RequestIgnored"


class ConditionType:
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    WAITING_FOR_APPROVAL = "WaitingForApproval"


@dataclass(frozen=True)
class MemberSpec:
    """The parts of a member's ProgressiveService spec the fleet reads and writes."""

    version: str | None  # spec.version as written (None: absent)
    containers: tuple[Container, ...]

    @property
    def effective_version(self) -> str:
        """What rollwise calls the version: spec.version, else the first image's tag."""
        if self.version:
            return self.version
        image = str(self.containers[0].get("image", "")) if self.containers else ""
        tail = image.rsplit("/", 1)[-1]
        return tail.split(":", 1)[1] if ":" in tail else "latest"


@dataclass(frozen=True)
class MemberObservation:
    """One member cluster's ProgressiveService as the hub just read it, or why it could not."""

    cluster: str
    reachable: bool
    error: str | None = None  # unreachable: why; reachable but absent: what is missing
    found: bool = False
    spec: MemberSpec | None = None
    resource_version: str | None = None
    generation: int | None = None
    observed_generation: int | None = None
    phase: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    message: str | None = None

    @property
    def current(self) -> bool:
        """The member's status is about its current spec (its rollwise has seen the patch)."""
        return (
            self.generation is not None
            and self.observed_generation is not None
            and self.observed_generation >= self.generation
        )


@dataclass(frozen=True)
class PatchMember:
    """Write `version` and `containers` into a member's ProgressiveService spec, on the
    condition that it is still at `resource_version` (else 409: re-observe, decide again)."""

    cluster: str
    version: str | None
    containers: tuple[Container, ...]
    resource_version: str | None
    rollback: bool = False

    def body(self) -> dict[str, Any]:
        """The JSON merge patch (a null version removes the field, as it was before)."""
        spec: dict[str, Any] = {"version": self.version}
        if self.containers:
            spec["template"] = {"spec": {"containers": [dict(c) for c in self.containers]}}
        patch: dict[str, Any] = {"spec": spec}
        if self.resource_version:
            patch["metadata"] = {"resourceVersion": self.resource_version}
        return patch


@dataclass(frozen=True)
class FleetEvent:
    reason: str
    message: str
    warning: bool = False
    actor: str = "rollwise"


@dataclass(frozen=True)
class FleetPlan:
    status: FleetRolloutStatus
    patches: tuple[PatchMember, ...] = ()
    events: tuple[FleetEvent, ...] = ()
    requeue_after: float | None = None


# ----------------------------------------------------------------------------- waves


def resolve_waves(spec: FleetRolloutSpec) -> list[tuple[Wave, list[str]]]:
    """Each wave with its clusters, in spec order. A cluster belongs to the first wave that
    names or selects it; a wave with neither takes every cluster no earlier wave took.
    ValueError when a wave gets no cluster or a cluster is in no wave."""
    taken: set[str] = set()
    out: list[tuple[Wave, list[str]]] = []
    for wave in spec.waves:
        if wave.clusters:
            names = [n for n in wave.clusters if n not in taken]
        elif wave.selector is not None:
            selector = wave.selector
            names = [
                c.name
                for c in spec.clusters
                if c.name not in taken
                and all(c.all_labels().get(k) == v for k, v in selector.items())
            ]
        else:
            names = [c.name for c in spec.clusters if c.name not in taken]
        if not names:
            raise ValueError(f"wave {wave.name} gets no cluster (an earlier wave took them)")
        taken.update(names)
        out.append((wave, names))
    left = [c.name for c in spec.clusters if c.name not in taken]
    if left:
        raise ValueError(
            f"cluster {', '.join(left)} is in no wave; add a last wave without clusters or "
            "selector to take the rest"
        )
    return out


def merged_containers(
    current: Sequence[Container], patches: Sequence[ContainerPatch]
) -> tuple[Container, ...]:
    """The member's containers with the fleet's image and env changes merged in by name.
    ValueError naming a container the member does not have."""
    names = {str(c.get("name")) for c in current}
    missing = [p.name for p in patches if p.name not in names]
    if missing:
        raise ValueError(f"the pod template has no container {', '.join(missing)}")
    by_name = {p.name: p for p in patches}
    out: list[Container] = []
    for container in current:
        patch = by_name.get(str(container.get("name")))
        if patch is None:
            out.append(container)
            continue
        merged = dict(container)
        if patch.image is not None:
            merged["image"] = patch.image
        if patch.env:
            env = [dict(e) for e in (container.get("env") or [])]
            for var in patch.env:
                entry = {"name": var.name, "value": var.value}
                index = next((i for i, e in enumerate(env) if e.get("name") == var.name), None)
                if index is None:
                    env.append(entry)
                else:
                    env[index] = entry
            merged["env"] = env
        out.append(merged)
    return tuple(out)


def _same(a: Sequence[Container], b: Sequence[Container]) -> bool:
    return json.dumps(list(a), sort_keys=True) == json.dumps(list(b), sort_keys=True)


def _at(observed: MemberSpec, version: str | None, containers: Sequence[Container]) -> bool:
    return observed.version == version and _same(observed.containers, containers)


# ----------------------------------------------------------------------------- the pass


@dataclass
class _Pass:
    spec: FleetRolloutSpec
    members: Mapping[str, MemberObservation]
    now: datetime
    generation: int | None
    poll_s: float
    waves: list[WaveStatus]
    status: FleetRolloutStatus
    patches: list[PatchMember] = field(default_factory=list)
    events: list[FleetEvent] = field(default_factory=list)
    history: list[FleetHistoryEntry] = field(default_factory=list)
    wake_at: datetime | None = None

    def tell(
        self,
        reason: str,
        message: str,
        *,
        wave: str | None = None,
        cluster: str | None = None,
        warning: bool = False,
        actor: str = "rollwise",
    ) -> None:
        self.events.append(FleetEvent(reason, message, warning=warning, actor=actor))
        self.history.append(
            FleetHistoryEntry(
                at=self.now, event=reason, actor=actor, wave=wave, cluster=cluster, message=message
            )
        )

    def wake(self, at: datetime) -> None:
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    def target_of(self, obs: MemberObservation) -> tuple[Container, ...]:
        assert obs.spec is not None
        if not self.spec.containers:
            return obs.spec.containers
        return merged_containers(obs.spec.containers, self.spec.containers)


def decide_fleet(
    spec: FleetRolloutSpec,
    status: FleetRolloutStatus,
    members: Mapping[str, MemberObservation],
    now: datetime,
    *,
    generation: int | None = None,
    request: ManualRequest | None = None,
    poll_s: float = 5.0,
) -> FleetPlan:
    """The patches to write, the next status, the Events and when to look again."""
    try:
        layout = resolve_waves(spec)
    except ValueError as err:
        return invalid_fleet(status, str(err), generation, now)
    fresh = status.version != spec.version or status.phase is FleetPhase.INVALID
    base = _fresh_status(status, spec, layout) if fresh else _aligned(status, spec, layout)
    p = _Pass(
        spec=spec,
        members=members,
        now=now,
        generation=generation,
        poll_s=poll_s,
        waves=[w.model_copy(deep=True) for w in base.waves],
        status=base,
    )
    if fresh:
        p.status = p.status.model_copy(update={"started_at": now, "finished_at": None})
        p.tell(
            Reason.STARTED,
            f"rolling {spec.version} to {len(spec.clusters)} clusters in {len(layout)} waves "
            f"({', '.join(f'{w.name}: {len(n)}' for w, n in layout)}); on failure "
            f"{spec.on_failure.value}",
        )
    _observe(p)
    phase = p.status.phase
    if request is not None and (
        status.last_request is None or status.last_request.id != request.id
    ):
        phase = _handle_request(p, request, phase)
    if phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
    ):
        phase = _advance(p)
    if phase is FleetPhase.ROLLING_BACK:
        phase = _roll_back(p)
    if phase is FleetPhase.FAILED:
        _halt_members(p)
    return _finish(p, phase)


def invalid_fleet(
    status: FleetRolloutStatus, message: str, generation: int | None, now: datetime
) -> FleetPlan:
    events: tuple[FleetEvent, ...] = ()
    history = list(status.history)
    if status.phase is not FleetPhase.INVALID or status.message != message:
        events = (FleetEvent(Reason.INVALID, message, warning=True),)
        history.append(FleetHistoryEntry(at=now, event=Reason.INVALID, message=message))
    out = status.model_copy(
        update={
            "phase": FleetPhase.INVALID,
            "message": message,
            "observed_generation": generation,
            "history": history[-HISTORY_LIMIT:],
        }
    )
    out = _conditions(out, FleetPhase.INVALID, [], generation, now)
    return FleetPlan(status=out, events=events)


def _member_status(spec: FleetRolloutSpec, name: str) -> MemberStatus:
    region = next((c.region for c in spec.clusters if c.name == name), None)
    return MemberStatus(name=name, region=region)


def _fresh_status(
    status: FleetRolloutStatus, spec: FleetRolloutSpec, layout: list[tuple[Wave, list[str]]]
) -> FleetRolloutStatus:
    """A new version (or the first pass): every wave Pending; history and requests kept."""
    waves = [
        WaveStatus(name=wave.name, clusters=[_member_status(spec, n) for n in names])
        for wave, names in layout
    ]
    return FleetRolloutStatus(
        phase=FleetPhase.PENDING,
        version=spec.version,
        waves=waves,
        conditions=status.conditions,
        history=status.history,
        last_request=status.last_request,
    )


def _aligned(
    status: FleetRolloutStatus, spec: FleetRolloutSpec, layout: list[tuple[Wave, list[str]]]
) -> FleetRolloutStatus:
    """The status with its waves in the spec's current layout; what is known of a cluster is
    kept by name (a spec edit that moves a cluster does not forget what was done to it)."""
    known = {m.name: m for w in status.waves for m in w.clusters}
    old = {w.name: w for w in status.waves}
    waves = []
    for wave, names in layout:
        previous = old.get(wave.name, WaveStatus(name=wave.name))
        members = [known.get(n, _member_status(spec, n)) for n in names]
        waves.append(previous.model_copy(update={"clusters": members}))
    return status.model_copy(update={"waves": waves})


def _set_member(p: _Pass, wave_i: int, member_i: int, **changes: Any) -> MemberStatus:
    member = p.waves[wave_i].clusters[member_i].model_copy(update=changes)
    p.waves[wave_i].clusters[member_i] = member
    return member


def _member_failed(
    p: _Pass,
    wave_i: int,
    member_i: int,
    reason: str,
    message: str | None,
    told: str | None = None,
) -> str:
    """The member Failed with `reason`; a Warning MemberFailed (`told`, else the message)
    in Events and history; returns the failure as the wave reports it."""
    name = p.waves[wave_i].clusters[member_i].name
    _set_member(p, wave_i, member_i, phase=MemberPhase.FAILED, reason=reason, message=message)
    p.tell(
        Reason.MEMBER_FAILED,
        f"cluster {name}: {told if told is not None else message}",
        wave=p.waves[wave_i].name,
        cluster=name,
        warning=True,
    )
    return f"cluster {name}: {message}"


def _set_wave(p: _Pass, wave_i: int, **changes: Any) -> WaveStatus:
    wave = p.waves[wave_i].model_copy(update=changes)
    p.waves[wave_i] = wave
    return wave


def _observe(p: _Pass) -> None:
    """What each member runs, from this pass's observations; reachability changes told."""
    for wi, wave in enumerate(p.waves):
        for mi, member in enumerate(wave.clusters):
            obs = p.members.get(member.name)
            if obs is None:
                continue
            if not obs.reachable:
                if member.reachable is not False:
                    p.tell(
                        Reason.MEMBER_UNREACHABLE,
                        f"cluster {member.name} is unreachable: {obs.error}; the fleet waits for "
                        "it",
                        wave=wave.name,
                        cluster=member.name,
                        warning=True,
                    )
                _set_member(
                    p,
                    wi,
                    mi,
                    reachable=False,
                    unreachable_since=member.unreachable_since or p.now,
                    message=f"unreachable: {obs.error}",
                )
                continue
            if member.reachable is False:
                p.tell(
                    Reason.MEMBER_REACHABLE,
                    f"cluster {member.name} is reachable again",
                    wave=wave.name,
                    cluster=member.name,
                )
            _set_member(
                p,
                wi,
                mi,
                reachable=True,
                unreachable_since=None,
                last_seen=p.now,
                version=obs.stable_version,
                canary_version=obs.canary_version,
                member_phase=obs.phase,
                message=obs.message if obs.found else obs.error,
            )


def _handle_request(p: _Pass, request: ManualRequest, phase: FleetPhase) -> FleetPhase:
    def ack(result: str, accepted: bool) -> None:
        p.status = p.status.model_copy(
            update={
                "last_request": RequestAck(
                    id=request.id,
                    action=request.action.value,
                    by=request.by,
                    at=p.now,
                    result=result,
                )
            }
        )
        p.tell(
            Reason.REQUEST_ACCEPTED if accepted else Reason.REQUEST_IGNORED,
            f"{request.action.value} by {request.by}: {result}",
            actor=request.by,
            warning=not accepted,
        )

    if request.action is Action.PROMOTE:
        index = next(
            (i for i, w in enumerate(p.waves) if w.phase is WavePhase.WAITING_FOR_APPROVAL), None
        )
        if index is None:
            ack(f"no wave waits for approval (phase {phase})", accepted=False)
            return phase
        _set_wave(p, index, approved_by=request.by)
        ack(f"wave {p.waves[index].name} approved", accepted=True)
        p.tell(
            Reason.APPROVED,
            f"wave {p.waves[index].name} approved by {request.by}",
            wave=p.waves[index].name,
            actor=request.by,
        )
        return phase
    if request.action is Action.ABORT:
        if phase not in (
            FleetPhase.PENDING,
            FleetPhase.PROGRESSING,
            FleetPhase.SOAKING,
            FleetPhase.WAITING_FOR_APPROVAL,
        ):
            ack(f"nothing to abort in phase {phase}", accepted=False)
            return phase
        ack("fleet aborted", accepted=True)
        return _fail(p, None, f"aborted by {request.by}", actor=request.by)
    ack(f"{request.action.value} is not a fleet action (promote or abort)", accepted=False)
    return phase


def _fail(p: _Pass, wave_i: int | None, why: str, actor: str = "rollwise") -> FleetPhase:
    """Stop every later wave; by policy, start rolling back what the fleet patched."""
    name = p.waves[wave_i].name if wave_i is not None else None
    if wave_i is not None:
        _set_wave(p, wave_i, phase=WavePhase.FAILED, completed_at=p.now)
        p.tell(Reason.WAVE_FAILED, f"wave {name} failed: {why}", wave=name, warning=True)
    for wi, wave in enumerate(p.waves):
        if wave.phase in (WavePhase.PENDING, WavePhase.WAITING_FOR_APPROVAL):
            _set_wave(p, wi, phase=WavePhase.HALTED)
        elif wave.phase in (WavePhase.PROGRESSING, WavePhase.SOAKING):
            _set_wave(p, wi, phase=WavePhase.FAILED if wave_i is None else WavePhase.HALTED)
    stopped = [w.name for w in p.waves if w.phase is WavePhase.HALTED]
    later = f"; waves {', '.join(stopped)} will not get {p.spec.version}" if stopped else ""
    if p.spec.on_failure is FailurePolicy.ROLLBACK_PROMOTED:
        p.tell(
            Reason.ROLLING_BACK,
            f"{why}{later}; rolling back every cluster the fleet patched, latest wave first",
            warning=True,
            actor=actor,
        )
        p.status = p.status.model_copy(update={"message": why})
        return FleetPhase.ROLLING_BACK
    p.tell(Reason.HALTED, f"{why}{later} (onFailure Halt)", warning=True, actor=actor)
    p.status = p.status.model_copy(update={"message": why, "finished_at": p.now})
    return FleetPhase.FAILED


def _advance(p: _Pass) -> FleetPhase:
    """Move the first unfinished wave (and, when it finishes, the next) forward."""
    for wi in range(len(p.waves)):
        wave = p.waves[wi]
        if wave.phase is WavePhase.SUCCEEDED:
            continue
        spec = p.spec.waves[wi]
        p.status = p.status.model_copy(update={"current_wave": wave.name})
        if wave.phase in (WavePhase.PENDING, WavePhase.WAITING_FOR_APPROVAL):
            if spec.approval and wave.approved_by is None:
                if wave.phase is WavePhase.PENDING:
                    _set_wave(p, wi, phase=WavePhase.WAITING_FOR_APPROVAL)
                    p.tell(
                        Reason.APPROVAL_NEEDED,
                        f"wave {wave.name} waits for approval: kubectl rollwise fleet promote",
                        wave=wave.name,
                    )
                return FleetPhase.WAITING_FOR_APPROVAL
            _set_wave(p, wi, phase=WavePhase.PROGRESSING, started_at=p.now)
            p.tell(
                Reason.WAVE_STARTED,
                f"wave {wave.name} started: {', '.join(m.name for m in wave.clusters)}"
                + (f", {spec.max_parallel} at a time" if spec.max_parallel else ""),
                wave=wave.name,
            )
        if p.waves[wi].phase is WavePhase.PROGRESSING:
            outcome = _progress_wave(p, wi, spec)
            if outcome is not None:
                return outcome
            if p.waves[wi].phase is WavePhase.PROGRESSING:
                return FleetPhase.PROGRESSING
        if p.waves[wi].phase is WavePhase.SOAKING:
            outcome = _soak(p, wi)
            if outcome is not None:
                return outcome
            if p.waves[wi].phase is WavePhase.SOAKING:
                return FleetPhase.SOAKING
    p.status = p.status.model_copy(update={"finished_at": p.now, "current_wave": None})
    p.tell(
        Reason.SUCCEEDED,
        f"{p.spec.version} runs in every cluster ("
        + ", ".join(m.name for w in p.waves for m in w.clusters)
        + ")",
    )
    return FleetPhase.SUCCEEDED


def _progress_wave(p: _Pass, wi: int, spec: Wave) -> FleetPhase | None:
    """Start members up to maxParallel, judge those in flight; a failure fails the fleet."""
    wave = p.waves[wi]
    for mi in range(len(wave.clusters)):
        failure = _judge_member(p, wi, mi)
        if failure is not None:
            return _fail(p, wi, failure)
    limit = spec.max_parallel or len(wave.clusters)
    for mi in range(len(p.waves[wi].clusters)):
        in_flight = sum(
            m.phase in (MemberPhase.PATCHING, MemberPhase.PROGRESSING) for m in p.waves[wi].clusters
        )
        if in_flight >= limit:
            break
        if p.waves[wi].clusters[mi].phase is MemberPhase.PENDING:
            failure = _start_member(p, wi, mi)
            if failure is not None:
                return _fail(p, wi, failure)
    members = p.waves[wi].clusters
    if all(m.phase is MemberPhase.SUCCEEDED for m in members):
        soak_s = parse_duration(spec.soak)
        until = p.now + timedelta(seconds=soak_s)
        _set_wave(p, wi, phase=WavePhase.SOAKING, soak_until=until)
        if soak_s > 0:
            p.tell(
                Reason.SOAKING,
                f"wave {wave.name}: {p.spec.version} Healthy in every cluster; soaking for "
                f"{spec.soak}",
                wave=wave.name,
            )
    return None


def _start_member(p: _Pass, wi: int, mi: int) -> str | None:
    """Record the member's spec, then (this pass's status written first) patch it."""
    member = p.waves[wi].clusters[mi]
    wave = p.waves[wi].name
    obs = p.members.get(member.name)
    if obs is None or not obs.reachable:
        return None  # waits; the MemberUnreachable condition says so
    if not obs.found or obs.spec is None:
        return _member_failed(p, wi, mi, "ServiceNotFound", obs.error)
    try:
        target = p.target_of(obs)
    except ValueError as err:
        message = f"{p.spec.target.namespace}/{p.spec.target.service}: {err}"
        return _member_failed(p, wi, mi, "InvalidPatch", message)
    previous_version = obs.spec.effective_version
    if _at(obs.spec, p.spec.version, target):
        # Nothing to patch and nothing to restore: the member already asks for this version.
        _set_member(
            p,
            wi,
            mi,
            phase=MemberPhase.PROGRESSING,
            previous=None,
            previous_version=previous_version,
            patched_generation=obs.generation,
            reason=Reason.MEMBER_ALREADY_AT_VERSION,
        )
        p.tell(
            Reason.MEMBER_ALREADY_AT_VERSION,
            f"cluster {member.name} already asks for {p.spec.version}",
            wave=wave,
            cluster=member.name,
        )
        return _judge_member(p, wi, mi)
    _set_member(
        p,
        wi,
        mi,
        phase=MemberPhase.PATCHING,
        previous=PreviousSpec(
            version=obs.spec.version, containers=list(map(dict, obs.spec.containers))
        ),
        previous_version=previous_version,
        reason=Reason.MEMBER_PATCHING,
    )
    p.tell(
        Reason.MEMBER_PATCHING,
        f"cluster {member.name}: {previous_version} -> {p.spec.version}",
        wave=wave,
        cluster=member.name,
    )
    # No patch in this pass: the status with `previous` must be stored before the patch is.
    p.wake(p.now)
    return None


def _judge_member(p: _Pass, wi: int, mi: int) -> str | None:
    """A member in flight: patch it if its spec does not ask for the version yet; read its
    outcome once its rollwise has seen the patch. A failure's description, else None."""
    member = p.waves[wi].clusters[mi]
    wave = p.waves[wi].name
    obs = p.members.get(member.name)
    if member.phase not in (MemberPhase.PATCHING, MemberPhase.PROGRESSING):
        if member.phase is MemberPhase.FAILED:
            return f"cluster {member.name}: {member.message or member.reason}"
        return None
    if obs is None or not obs.reachable or obs.spec is None:
        if obs is not None and obs.reachable and not obs.found:
            _set_member(
                p, wi, mi, phase=MemberPhase.FAILED, reason="ServiceNotFound", message=obs.error
            )
            return f"cluster {member.name}: {obs.error}"
        return None
    target = p.target_of(obs) if member.phase is MemberPhase.PATCHING else None
    if member.phase is MemberPhase.PATCHING:
        assert target is not None
        if not _at(obs.spec, p.spec.version, target):
            p.patches.append(
                PatchMember(
                    member.name,
                    p.spec.version,
                    target if p.spec.containers else (),
                    obs.resource_version,
                )
            )
            p.wake(p.now)
            return None
        member = _set_member(
            p,
            wi,
            mi,
            phase=MemberPhase.PROGRESSING,
            patched_generation=obs.generation,
            patched_at=p.now,
            reason=Reason.MEMBER_PATCHED,
        )
        p.tell(
            Reason.MEMBER_PATCHED,
            f"cluster {member.name}: ProgressiveService {p.spec.target.namespace}/"
            f"{p.spec.target.service} asks for {p.spec.version} (generation "
            f"{obs.generation}); its rollwise rolls it out",
            wave=wave,
            cluster=member.name,
        )
    elif not _still_asks(p, obs):
        # Someone (a person, a GitOps sync) wrote the member's spec after the fleet did: the
        # fleet does not fight it, and says so instead of waiting forever.
        why = (
            f"its ProgressiveService no longer asks for {p.spec.version} (spec.version "
            f"{obs.spec.version}); changed outside the fleet"
        )
        return _member_failed(p, wi, mi, "SpecChanged", why)
    if not obs.current or (member.patched_generation or 0) > (obs.observed_generation or 0):
        return None  # the member's status is still about the spec before the patch
    if obs.phase == "Healthy" and obs.stable_version == p.spec.version:
        _set_member(p, wi, mi, phase=MemberPhase.SUCCEEDED, reason="Healthy")
        p.tell(
            Reason.MEMBER_SUCCEEDED,
            f"cluster {member.name}: {p.spec.version} is stable and Healthy",
            wave=wave,
            cluster=member.name,
        )
        return None
    if obs.phase in MEMBER_FAILED_PHASES:
        why = f"{obs.phase}: {obs.message}" if obs.message else str(obs.phase)
        told = f"{p.spec.version} did not take: {why}; stable there is {obs.stable_version}"
        return _member_failed(p, wi, mi, obs.phase, why, told)
    _set_member(p, wi, mi, reason=obs.phase)
    return None


def _still_asks(p: _Pass, obs: MemberObservation) -> bool:
    """The member's spec still asks for the fleet's version (and container changes)."""
    assert obs.spec is not None
    if obs.spec.version != p.spec.version:
        return False
    try:
        return _at(obs.spec, p.spec.version, p.target_of(obs))
    except ValueError:
        return False


def _soak(p: _Pass, wi: int) -> FleetPhase | None:
    wave = p.waves[wi]
    for mi, member in enumerate(wave.clusters):
        obs = p.members.get(member.name)
        if obs is None or not obs.reachable:
            continue
        if obs.current and (
            obs.phase in MEMBER_UNHEALTHY_PHASES or obs.stable_version != p.spec.version
        ):
            why = f"cluster {member.name} left Healthy {p.spec.version} during the soak: " + (
                f"{obs.phase}: {obs.message}" if obs.message else str(obs.phase)
            )
            _set_member(p, wi, mi, phase=MemberPhase.FAILED, reason=obs.phase, message=why)
            return _fail(p, wi, why)
    assert wave.soak_until is not None
    if p.now < wave.soak_until:
        p.wake(wave.soak_until)
        return None
    if any(not m.reachable for m in wave.clusters):
        return None  # the soak ends only with every member seen Healthy at its end
    _set_wave(p, wi, phase=WavePhase.SUCCEEDED, completed_at=p.now)
    p.tell(
        Reason.WAVE_SUCCEEDED,
        f"wave {wave.name}: {p.spec.version} Healthy in {', '.join(m.name for m in wave.clusters)}",
        wave=wave.name,
    )
    return None


_TOUCHED = (
    MemberPhase.PATCHING,
    MemberPhase.PROGRESSING,
    MemberPhase.SUCCEEDED,
    MemberPhase.FAILED,
    MemberPhase.ROLLING_BACK,
)


def _roll_back(p: _Pass) -> FleetPhase:
    """Restore the previous spec of every member the fleet patched, one wave at a time, the
    latest first; a wave is rolled back when its members run their previous version again."""
    for wi in reversed(range(len(p.waves))):
        wave = p.waves[wi]
        todo = [
            mi
            for mi, m in enumerate(wave.clusters)
            if m.phase in _TOUCHED and m.previous is not None
        ]
        if not todo:
            if wave.phase is WavePhase.ROLLING_BACK:
                _set_wave(p, wi, phase=WavePhase.ROLLED_BACK)
            continue
        if wave.phase is not WavePhase.ROLLING_BACK:
            _set_wave(p, wi, phase=WavePhase.ROLLING_BACK)
        waiting = False
        for mi in todo:
            waiting |= not _roll_back_member(p, wi, mi)
        if waiting:
            return FleetPhase.ROLLING_BACK
        _set_wave(p, wi, phase=WavePhase.ROLLED_BACK, completed_at=p.now)
    p.status = p.status.model_copy(update={"finished_at": p.now, "current_wave": None})
    p.tell(
        Reason.ROLLED_BACK,
        "every cluster the fleet patched runs its previous version again",
        warning=True,
    )
    return FleetPhase.ROLLED_BACK


def _roll_back_member(p: _Pass, wi: int, mi: int) -> bool:
    """True once the member runs its previous version again (Healthy, status current)."""
    member = p.waves[wi].clusters[mi]
    previous = member.previous
    assert previous is not None
    obs = p.members.get(member.name)
    if obs is None or not obs.reachable or obs.spec is None:
        return False
    containers = tuple(previous.containers)
    if member.phase is not MemberPhase.ROLLING_BACK:
        member = _set_member(p, wi, mi, phase=MemberPhase.ROLLING_BACK, reason="RollingBack")
        p.tell(
            Reason.MEMBER_ROLLING_BACK,
            f"cluster {member.name}: back to {member.previous_version}",
            wave=p.waves[wi].name,
            cluster=member.name,
        )
    if not _at(obs.spec, previous.version, containers):
        p.patches.append(
            PatchMember(
                member.name, previous.version, containers, obs.resource_version, rollback=True
            )
        )
        p.wake(p.now)
        return False
    if obs.current and obs.phase == "Healthy" and obs.stable_version == member.previous_version:
        _set_member(p, wi, mi, phase=MemberPhase.ROLLED_BACK, reason="RolledBack")
        p.tell(
            Reason.MEMBER_ROLLED_BACK,
            f"cluster {member.name}: {member.previous_version} is stable and Healthy again",
            wave=p.waves[wi].name,
            cluster=member.name,
        )
        return True
    return False


def _halt_members(p: _Pass) -> None:
    """Halted: members never patched are Skipped; those patched keep being watched (their own
    rollwise finishes or rolls back what it started), none is patched any more."""
    for wi, wave in enumerate(p.waves):
        for mi, member in enumerate(wave.clusters):
            obs = p.members.get(member.name)
            if member.phase is MemberPhase.PENDING:
                _set_member(p, wi, mi, phase=MemberPhase.SKIPPED, reason="FleetStopped")
            elif member.phase is MemberPhase.PATCHING:
                landed = (
                    obs is not None
                    and obs.spec is not None
                    and obs.reachable
                    and _at(obs.spec, p.spec.version, p.target_of(obs))
                )
                if obs is not None and obs.reachable and not landed:
                    _set_member(p, wi, mi, phase=MemberPhase.SKIPPED, reason="FleetStopped")
                elif landed:
                    _set_member(
                        p,
                        wi,
                        mi,
                        phase=MemberPhase.PROGRESSING,
                        patched_generation=obs.generation if obs else None,
                    )
            elif member.phase is MemberPhase.PROGRESSING and obs is not None and obs.current:
                if obs.phase == "Healthy" and obs.stable_version == p.spec.version:
                    _set_member(p, wi, mi, phase=MemberPhase.SUCCEEDED, reason="Healthy")
                elif obs.phase in MEMBER_FAILED_PHASES:
                    _set_member(p, wi, mi, phase=MemberPhase.FAILED, reason=obs.phase)


def _finish(p: _Pass, phase: FleetPhase) -> FleetPlan:
    unreachable = [m for w in p.waves for m in w.clusters if m.reachable is False]
    message = p.status.message
    if phase in (
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
        FleetPhase.SUCCEEDED,
        FleetPhase.PENDING,
    ):
        message = _progress_message(p, phase, unreachable)
    status = p.status.model_copy(
        update={
            "phase": phase,
            "waves": p.waves,
            "message": message,
            "history": [*p.status.history, *p.history][-HISTORY_LIMIT:],
            "observed_generation": p.generation,
        }
    )
    status = _conditions(status, phase, unreachable, p.generation, p.now)
    active = phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.ROLLING_BACK,
    )
    requeue: float | None = p.poll_s if active or unreachable else None
    if phase is FleetPhase.WAITING_FOR_APPROVAL:
        requeue = p.poll_s
    if p.wake_at is not None:
        soon = max(0.0, (p.wake_at - p.now).total_seconds())
        requeue = soon if requeue is None else min(requeue, soon)
    return FleetPlan(
        status=status, patches=tuple(p.patches), events=tuple(p.events), requeue_after=requeue
    )


def _progress_message(p: _Pass, phase: FleetPhase, unreachable: list[MemberStatus]) -> str:
    done = sum(m.phase is MemberPhase.SUCCEEDED for w in p.waves for m in w.clusters)
    total = sum(len(w.clusters) for w in p.waves)
    text = f"{p.spec.version}: {done}/{total} clusters"
    if phase is not FleetPhase.SUCCEEDED and p.status.current_wave:
        text += f", wave {p.status.current_wave} {phase.value}"
    if unreachable:
        text += "; waiting for unreachable " + ", ".join(m.name for m in unreachable)
    return text


def _conditions(
    status: FleetRolloutStatus,
    phase: FleetPhase,
    unreachable: list[MemberStatus],
    generation: int | None,
    now: datetime,
) -> FleetRolloutStatus:
    message = status.message or ""
    active = phase in (
        FleetPhase.PENDING,
        FleetPhase.PROGRESSING,
        FleetPhase.SOAKING,
        FleetPhase.WAITING_FOR_APPROVAL,
        FleetPhase.ROLLING_BACK,
    )
    degraded = phase in (
        FleetPhase.FAILED,
        FleetPhase.ROLLED_BACK,
        FleetPhase.ROLLING_BACK,
        FleetPhase.INVALID,
    )
    if unreachable:
        names = ", ".join(
            f"{m.name} (since {m.unreachable_since.isoformat() if m.unreachable_since else '?'}"
            f"{': ' + m.message if m.message else ''})"
            for m in unreachable
        )
        unreachable_text = f"unreachable: {names}"
    else:
        unreachable_text = "every member cluster answered"
    conditions = list(status.conditions)
    for ctype, value, reason, text in (
        (ConditionType.READY, phase is FleetPhase.SUCCEEDED, phase.value, message),
        (ConditionType.PROGRESSING, active, phase.value, message),
        (ConditionType.DEGRADED, degraded, phase.value, message),
        (
            ConditionType.WAITING_FOR_APPROVAL,
            phase is FleetPhase.WAITING_FOR_APPROVAL,
            phase.value,
            message,
        ),
        (
            ConditionType.MEMBER_UNREACHABLE,
            bool(unreachable),
            Reason.MEMBER_UNREACHABLE if unreachable else Reason.MEMBER_REACHABLE,
            unreachable_text,
        ),
    ):
        conditions = set_condition(conditions, ctype, value, reason, text, generation, now)
    return status.model_copy(update={"conditions": conditions})
