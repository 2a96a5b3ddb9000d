"""The analysis room: which gates measure now, folding measurements into verdicts, and whether
step and background gates passed or breached. It reports outcomes; the caller aborts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rollwise.api.durations import parse_duration
from rollwise.api.gates import MetricGateSpec, PrometheusProvider, ProviderKind
from rollwise.api.service import CanaryStep, GateRef, ServiceSpec
from rollwise.api.service_status import GateResult, Phase, ServiceStatus, Verdict
from rollwise.core import gates as gatelib
from rollwise.core.gates import GateOutcome
from rollwise.core.model import (
    CreateGateJob,
    DeleteJob,
    EventRecord,
    GateQuery,
    MetricSample,
    Observed,
    RangeQuery,
)
from rollwise.core.naming import gate_job_name, gate_key, gate_spec_key
from rollwise.core.passes import POLL_S, WATCH_FALLBACK_S, Pass, seconds
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of


def step_gates(step: CanaryStep) -> list[GateRef]:
    """The gates a step measures: an analysis step's, an adaptive step's."""
    if step.analysis is not None:
        return list(step.analysis.gates)
    if step.adaptive is not None:
        return list(step.adaptive.gates)
    return []


def gate_refs(spec: ServiceSpec) -> list[tuple[str, bool]]:
    """Every MetricGate / ClusterMetricGate the spec refers to, as (name, cluster)."""
    canary = spec.strategy.canary
    refs: list[GateRef] = [g for s in canary.steps for g in step_gates(s)]
    if canary.analysis:
        refs.extend(canary.analysis.gates)
    seen: dict[tuple[str, bool], None] = {}
    for ref in refs:
        seen[(ref.name, ref.cluster)] = None
    return list(seen)


def due_gates(
    spec: ServiceSpec, status: ServiceStatus, observed: Observed, now: datetime
) -> list[GateQuery]:
    """The gate measurements to take in this pass, queries resolved; the controller runs them
    and hands the samples to decide() in the same pass."""
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING):
        return []
    canary = status.canary
    if canary is None or status.stable is None or status.current_step_index is None:
        return []
    if canary.revision != revision_of(spec) or status.full_promotion is not None:
        return []  # a full promotion skips every gate
    queries: list[GateQuery] = []
    for ref, background, started in active_gates(spec, status):
        gspec = observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if gspec is None:
            continue
        key = gate_key(ref.name, ref.cluster, background)
        result = _result(status, key)
        if gatelib.exhausted(result, gspec, not background):
            continue
        if gatelib.next_due(result, gspec, started) > now:
            continue
        provider = gspec.provider
        if provider.job is not None:
            continue  # measured by its Jobs, which decide() creates and follows
        context = _query_context(observed, status)
        # Every measurement names its gate's owner: the outbound policy lets a ClusterMetricGate
        # (platform-owned) call any address and a namespaced MetricGate only the allow-list.
        base = GateQuery(
            key=key,
            gate=ref.name,
            background=background,
            address="",
            query="",
            timeout_s=0.0,
            cluster=ref.cluster,
            namespace=observed.namespace,
        )
        try:
            if provider.web is not None:
                request = gatelib.resolve_web(ref.name, gspec, ref, context)
                query = replace(
                    base,
                    address=request.url,
                    query=gatelib.describe_web(request),
                    timeout_s=parse_duration(provider.web.timeout),
                    provider=ProviderKind.WEB,
                    web=request,
                )
            elif provider.influxdb is not None:
                query = replace(
                    base,
                    address=provider.influxdb.address,
                    query=gatelib.resolve_query(ref.name, gspec, ref, context),
                    timeout_s=parse_duration(provider.influxdb.timeout),
                    provider=ProviderKind.INFLUXDB,
                    params=(("db", provider.influxdb.database),),
                )
            elif provider.graphite is not None:
                query = replace(
                    base,
                    address=provider.graphite.address,
                    query=gatelib.resolve_query(ref.name, gspec, ref, context),
                    timeout_s=parse_duration(provider.graphite.timeout),
                    provider=ProviderKind.GRAPHITE,
                    params=(("from", provider.graphite.from_),),
                )
            elif gspec.comparison is not None and provider.prometheus is not None:
                query = comparison_query(
                    base, ref, gspec, context, provider.prometheus, started, now
                )
            elif provider.prometheus is not None:
                query = replace(
                    base,
                    address=provider.prometheus.address,
                    query=gatelib.resolve_query(ref.name, gspec, ref, context),
                    timeout_s=parse_duration(provider.prometheus.timeout),
                    auth=gatelib.prometheus_auth(provider.prometheus),
                )
            else:  # pragma: no cover - the provider is a closed one-of
                continue
        except gatelib.GateConfigError:
            continue  # decide() reports it
        queries.append(query)
    return queries


def comparison_query(
    base: GateQuery,
    ref: GateRef,
    gspec: MetricGateSpec,
    context: dict[str, str],
    prometheus: PrometheusProvider,
    started: datetime,
    now: datetime,
) -> GateQuery:
    """A comparison gate's measurement: both revisions sampled over the same window, the last
    `window` but never before the gate became active (the canary's traffic then was another)."""
    comparison = gspec.comparison
    assert comparison is not None
    canary_query, stable_query = gatelib.resolve_comparison(ref.name, gspec, ref, context)
    start = max(now - timedelta(seconds=parse_duration(comparison.window)), started)
    return replace(
        base,
        address=prometheus.address,
        query=canary_query,
        timeout_s=parse_duration(prometheus.timeout),
        provider=ProviderKind.PROMETHEUS,
        auth=gatelib.prometheus_auth(prometheus),
        comparison=RangeQuery(
            stable_query=stable_query,
            start=start,
            end=now,
            step_s=parse_duration(comparison.step),
        ),
    )


def active_gates(spec: ServiceSpec, status: ServiceStatus) -> list[tuple[GateRef, bool, datetime]]:
    """(gate, background?, active since) for every gate that measures now."""
    index = status.current_step_index
    if index is None:
        return []
    steps = spec.strategy.canary.steps
    started = status.step_started_at
    out: list[tuple[GateRef, bool, datetime]] = []
    if index < len(steps) and started is not None:
        for ref in step_gates(steps[index]):
            out.append((ref, False, started))
    background = spec.strategy.canary.analysis
    if background is not None and index >= background.starting_step:
        for ref in background.gates:
            out.append((ref, True, started or datetime.min))
    return out


def _result(status: ServiceStatus, key: str) -> GateResult | None:
    for result in status.analysis:
        if _key_of(result) == key:
            return result
    return None


def _key_of(result: GateResult) -> str:
    return result.gate + ("@bg" if result.background else "")


def _query_context(observed: Observed, status: ServiceStatus) -> dict[str, str]:
    return {
        "canary.revision": status.canary.revision if status.canary else "",
        "stable.revision": status.stable.revision if status.stable else "",
        "service.name": observed.name,
        "service.namespace": observed.namespace,
    }


def _gate_spec(p: Pass, ref: GateRef) -> MetricGateSpec | None:
    """The gate's spec; None, with the reason in status and one warning Event per distinct
    reason, when it does not exist or does not validate. The rollout then waits: a gate that
    cannot be measured never passes."""
    key = gate_spec_key(ref.name, ref.cluster)
    gspec = p.observed.gates.get(key)
    if gspec is None:
        kind = "ClusterMetricGate" if ref.cluster else "MetricGate"
        where = "" if ref.cluster else f"{p.observed.namespace}/"
        error = p.observed.gate_errors.get(key)
        if error is None:
            reason, problem, until = Reason.GATE_MISSING, "does not exist", "created"
        else:
            reason, problem, until = Reason.GATE_INVALID, f"is invalid: {error}", "fixed"
        message = (
            f"{kind} {where}{ref.name} {problem}; the rollout waits (it never passes a gate "
            f"it cannot measure) until it is {until}"
        )
        p.warn_once(reason, message)
        p.set(message=message)
        p.wake_in(POLL_S * 6)
    return gspec


def _fold_samples(
    p: Pass, ref: GateRef, background: bool, gspec: MetricGateSpec, step: int | None
) -> GateResult:
    """This gate's tally with this pass's samples folded in; the query checked for errors."""
    key = gate_key(ref.name, ref.cluster, background)
    # A step gate's tally begun in this pass takes none of this pass's samples: they were
    # measured before its step began (the same gate in an earlier step, before a switch).
    fresh_step_gate = not background and _result(p.status, key) is None
    result = _result(p.status, key) or GateResult(
        gate=gate_key(ref.name, ref.cluster, False),
        step=step,
        background=background,
        started_at=p.now,
    )
    if result.started_at is None:  # a tally begun by an operator before job gates
        result = result.model_copy(update={"started_at": p.now})
    running = False
    try:
        query = gatelib.resolve_query(ref.name, gspec, ref, _query_context(p.observed, p.status))
    except gatelib.GateConfigError as err:
        sample = MetricSample(key=key, query="", measured_at=p.now, error=str(err))
        samples: tuple[MetricSample, ...] = (sample,) if _due(result, gspec, p) else ()
    else:
        if gspec.provider.job is not None:
            result, samples, running = _job_measurement(p, ref, key, result, gspec)
        else:
            # Only measurements newer than the tally: folding is safe to repeat within a pass.
            samples = tuple(
                s
                for s in p.observed.samples
                if s.key == key
                and not fresh_step_gate
                and (result.measured_at is None or s.measured_at > result.measured_at)
            )
            if not result.query:
                result = result.model_copy(update={"query": query})
    for sample in samples:
        previous = result.verdict
        result = gatelib.record(result, sample, gspec)
        verdict = result.verdict
        # A step gate's pass is told by the StepCompleted it leads to; a background gate that
        # keeps passing is told once, when its verdict turns to Passed. Every other verdict is a
        # problem and an Event each time.
        if verdict is Verdict.PASSED and (not background or previous is Verdict.PASSED):
            continue
        reason = {
            "Passed": Reason.GATE_PASSED,
            "Failed": Reason.GATE_FAILED,
            "Inconclusive": Reason.GATE_INCONCLUSIVE,
            "Error": Reason.GATE_ERROR,
        }[verdict.value if verdict else "Error"]
        shown = "no data" if result.value is None else f"{result.value:.6g}"
        if sample.outcome is not None:
            shown = "-"
        p.events.append(
            EventRecord(
                reason=reason,
                message=f"gate {result.gate}{' (background)' if background else ''}: {verdict} "
                f"value={shown} query={sample.query}"
                + (f" ({result.message})" if result.message else ""),
                warning=verdict is not None and verdict.value != "Passed",
            )
        )
    # Replace in place: the list keeps its order from pass to pass.
    analysis = list(p.status.analysis)
    index = next((i for i, r in enumerate(analysis) if _key_of(r) == key), None)
    if index is None:
        analysis.append(result)
    else:
        analysis[index] = result
    p.set(analysis=analysis)
    if running:
        # The Job's watch events wake the service when it finishes; this is the fallback.
        p.wake_in(WATCH_FALLBACK_S)
    elif not gatelib.exhausted(result, gspec, not background):
        started = p.status.step_started_at or p.now
        p.wake_at(gatelib.next_due(result, gspec, started))
    return result


def _job_measurement(
    p: Pass, ref: GateRef, key: str, result: GateResult, gspec: MetricGateSpec
) -> tuple[GateResult, tuple[MetricSample, ...], bool]:
    """A job gate's measurement: (tally, samples to fold, a Job still running?).

    The n-th measurement is the Job named for (revision, gate, step, tally start, n). It is
    created once due, followed while it runs, and folded when it completed (Passed) or failed
    (Failed, with the Job's reason and its pod's log tail). Its name is known before it exists,
    so a pass after a crash finds (and adopts) the Job instead of starting another. A tally
    begun in this very pass is not in the stored status yet: its first Job waits one pass.
    """
    job_spec = gspec.provider.job
    canary = p.status.canary
    assert job_spec is not None
    since = result.started_at
    if canary is None or since is None:
        return result, (), False
    index = result.measurements + 1
    name = gate_job_name(
        p.observed.name,
        canary.revision,
        key,
        result.step,
        since.isoformat(),
        index,
    )
    job = p.observed.gate_jobs.get(name)
    query = f"Job {name}"
    if job is not None and not job.owned:
        sample = MetricSample(
            key=key,
            query=query,
            measured_at=p.now,
            error=f"Job {p.observed.namespace}/{name} exists and is not owned by this "
            "ProgressiveService; rollwise will not adopt it: delete it",
        )
        return result, (sample,) if _due(result, gspec, p) else (), False
    if job is not None and (job.succeeded or job.failed):
        if job.succeeded:
            sample = MetricSample(
                key=key,
                query=query,
                measured_at=p.now,
                outcome=Verdict.PASSED,
                message=f"Job {name} completed",
            )
        else:
            why = job.failure_reason or "the Job failed"
            message = f"Job {name} failed: {why}"
            if job.log_tail:
                message += f"; log tail: {job.log_tail}"
            sample = MetricSample(
                key=key,
                query=query,
                measured_at=p.now,
                outcome=Verdict.FAILED,
                message=message,
            )
        result = result.model_copy(update={"job": name})
        return result, (sample,), False
    if job is not None:
        message = f"Job {name} is running (measurement {index})"
        return result.model_copy(update={"job": name, "query": query, "message": message}), (), True
    if not _due(result, gspec, p) or since >= p.now:
        return result, (), False
    template = gatelib.resolve_job_template(
        ref.name, gspec, ref, _query_context(p.observed, p.status)
    )
    create = CreateGateJob(
        job_name=name,
        revision=canary.revision,
        gate=key,
        template=template,
        backoff_limit=job_spec.backoff_limit,
        active_deadline_seconds=job_spec.active_deadline_seconds,
        ttl_seconds_after_finished=job_spec.ttl_seconds_after_finished,
    )
    if create not in p.actions:  # background gates may be folded twice in one pass
        p.act(create)
    message = f"Job {name} is running (measurement {index})"
    return result.model_copy(update={"job": name, "query": query, "message": message}), (), True


def _due(result: GateResult, gspec: MetricGateSpec, p: Pass) -> bool:
    started = p.status.step_started_at or p.now
    return gatelib.next_due(result if result.measured_at else None, gspec, started) <= p.now


def measure_step_gates(p: Pass, index: int, refs: list[GateRef]) -> GateOutcome:
    """Fold this pass's samples into the step's gates: passed when every gate passed,
    breached (with why) as soon as one is, otherwise still measuring."""
    all_passed = True
    for ref in refs:
        gspec = _gate_spec(p, ref)
        if gspec is None:
            return GateOutcome()
        result = _fold_samples(p, ref, False, gspec, index)
        verdict = gatelib.outcome(result, gspec, step_gate=True)
        if verdict.breached:
            return replace(verdict, message=f"{verdict.message} at step {index + 1}")
        all_passed = all_passed and verdict.passed
    if not all_passed:
        p.set(
            phase=Phase.PROGRESSING,
            message=f"step {index + 1}: analysis running ({', '.join(r.name for r in refs)})",
        )
    return GateOutcome(passed=all_passed)


def passed_gates(p: Pass, refs: list[GateRef]) -> list[str]:
    """How each step gate passed (value against its threshold, the query as sent), for the
    StepCompleted Event: the results leave status when the step completes."""
    told: list[str] = []
    for ref in refs:
        result = _result(p.status, gate_key(ref.name, ref.cluster, False))
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if result is None or gspec is None:
            continue
        count = f"{result.measurements} measurement{'' if result.measurements == 1 else 's'}"
        if gspec.provider.job is not None:
            told.append(f"gate {result.gate} passed, Job {result.job} completed ({count})")
            continue
        if gspec.comparison is not None:
            told.append(f"gate {result.gate} passed, {result.message} ({count})")
            continue
        told.append(
            f"gate {result.gate} passed, {gatelib.describe_threshold(result.value, gspec)} "
            f"({count}, query {result.query})"
        )
    return told


def measure_background_gates(p: Pass) -> GateOutcome | None:
    """Measure background gates; the breach (with why) when one of them must abort."""
    background = p.spec.strategy.canary.analysis
    index = p.status.current_step_index
    if background is None or index is None or index < background.starting_step:
        return None
    for ref in background.gates:
        gspec = _gate_spec(p, ref)
        if gspec is None:
            continue
        result = _fold_samples(p, ref, True, gspec, None)
        verdict = gatelib.outcome(result, gspec, step_gate=False)
        if verdict.breached:
            return replace(
                verdict, message=f"{verdict.message} (background analysis, step {index + 1})"
            )
    return None


def background_passed(p: Pass) -> bool:
    """Promotion needs the latest measurement of every background gate to be a pass."""
    background = p.spec.strategy.canary.analysis
    if background is None:
        return True
    for ref in background.gates:
        result = _result(p.status, gate_key(ref.name, ref.cluster, True))
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if gspec is None or result is None:
            return False
        if not gatelib.outcome(result, gspec, step_gate=False).passed:
            return False
    return True


def inconclusive_gates(spec: ServiceSpec, status: ServiceStatus) -> list[str]:
    """The gates measuring now (the step's and the background ones) whose latest measurement is
    Inconclusive, as status names them. While there is one, no step completes."""
    keys = {gate_key(ref.name, ref.cluster, bg) for ref, bg, _ in active_gates(spec, status)}
    return [
        result.gate + (" (background)" if result.background else "")
        for result in status.analysis
        if _key_of(result) in keys and result.verdict is Verdict.INCONCLUSIVE
    ]


def hold_for_inconclusive(p: Pass) -> bool:
    """Inconclusive holds: no step completes (so no weight rises, no promotion begins) while a
    gate's latest measurement is Inconclusive. The rollout is Paused and says why until a later
    measurement decides, or inconclusiveLimit is passed and it aborts. True while held."""
    held = inconclusive_gates(p.spec, p.status)
    if not held:
        return False
    index = (p.status.current_step_index or 0) + 1
    where = f"step {index}" if index <= len(p.spec.strategy.canary.steps) else "all steps done"
    p.set(
        phase=Phase.PAUSED,
        message=f"{where}: held while {', '.join(held)} "
        f"{'is' if len(held) == 1 else 'are'} Inconclusive (no data); no weight rises until a "
        "later measurement decides (inconclusiveLimit aborts)",
    )
    return True


def await_in_flight(p: Pass) -> list[str]:
    """After the last step, a background measurement still running (a job gate's Job) is
    awaited, up to progressDeadlineSeconds after the steps ended; past that it is recorded
    Inconclusive and its Job deleted. Promotion never goes on an earlier result while a newer
    one is being taken. The Jobs still awaited."""
    background = p.spec.strategy.canary.analysis
    if background is None:
        return []
    ended = p.status.step_started_at or p.now
    deadline = ended + seconds(p.spec.progress_deadline_seconds)
    waiting: list[str] = []
    for ref in background.gates:
        key = gate_key(ref.name, ref.cluster, True)
        result = _result(p.status, key)
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if result is None or result.job is None or gspec is None:
            continue
        job = p.observed.gate_jobs.get(result.job)
        if job is None or not job.owned or job.succeeded or job.failed:
            continue
        if p.now < deadline:
            waiting.append(result.job)
            p.wake_at(deadline)
            continue
        message = (
            f"Job {result.job} was still running {p.spec.progress_deadline_seconds}s after the "
            "last step (progressDeadlineSeconds): recorded Inconclusive, Job deleted"
        )
        sample = MetricSample(
            key=key,
            query=f"Job {result.job}",
            measured_at=p.now,
            outcome=Verdict.INCONCLUSIVE,
            message=message,
        )
        recorded = gatelib.record(result, sample, gspec)
        p.act(DeleteJob(job_name=result.job))
        p.set(analysis=[recorded if _key_of(r) == key else r for r in p.status.analysis])
        p.events.append(
            EventRecord(
                reason=Reason.GATE_INCONCLUSIVE,
                message=f"gate {result.gate} (background): Inconclusive ({message})",
                warning=True,
            )
        )
    return waiting
