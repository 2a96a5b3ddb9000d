"""Job and web gates in the core: a Job per measurement (created once, followed, folded), web
requests resolved without injection, and no data never passing."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.service import GateRef
from rollwise.api.service_status import GateResult, Phase, Verdict
from rollwise.core import gates as gatelib
from rollwise.core.analysis import due_gates
from rollwise.core.gates import GateConfigError
from rollwise.core.model import CreateGateJob, MetricSample
from rollwise.core.naming import gate_job_name
from rollwise.core.reasons import Reason
from tests.unit.core.world import T0, World, gate_from, healthy_world, released, spec_from

CONTEXT = {
    "canary.revision": "abc",
    "stable.revision": "def",
    "service.name": "payment",
    "service.namespace": "shop",
}
CHECK = {
    "name": "check",
    "image": "example/smoke:1",
    "command": ["/bin/sh", "-c", "smoke --target $TARGET"],
    "env": [
        {"name": "TARGET", "value": "http://{{args.service}}-canary/{{canary.revision}}"},
        {"name": "FIXED", "value": "1"},
    ],
}


def job_gate(**extra: Any) -> Any:
    wire = {
        "interval": "5s",
        "count": 1,
        "args": [{"name": "service", "default": "payment"}],
        "provider": {"job": {"template": {"spec": {"containers": [CHECK]}}}},
        "thresholdRange": None,
        **extra,
    }
    return gate_from(**wire)


def web_gate(**extra: Any) -> Any:
    web = {
        "url": "https://slo.example/api/v1/{{args.service}}?rev={{canary.revision}}",
        "method": "POST",
        "headers": [{"name": "X-Team", "value": "{{args.service}}"}],
        "body": '{"service": "{{args.service}}"}',
        "jsonPath": "$.errorRate",
    }
    wire = {
        "interval": "5s",
        "count": 1,
        "args": [{"name": "service", "default": "payment"}],
        "provider": {"web": {**web, **extra.pop("web", {})}},
        **extra,
    }
    return gate_from(**wire)


def one_analysis_step(gate: str = "smoke") -> Any:
    steps = [{"setWeight": 25}, {"analysis": {"gates": [{"name": gate}]}}, {"setWeight": 50}]
    return spec_from(strategy={"canary": {"steps": steps}})


def canary_world(gate: Any, name: str = "smoke", **rules: Any) -> World:
    world = healthy_world(one_analysis_step(name), gates={name: gate}, **rules)
    world.spec = released(world.spec, "2.0.0")
    return world


def gate_job_creations(world: World) -> list[CreateGateJob]:
    return world.actions(CreateGateJob)


# ----------------------------------------------------------------------------- job gates


def test_a_job_gate_runs_one_job_and_passes_when_it_completes() -> None:
    world = canary_world(job_gate())

    world.reach("Healthy")

    created = gate_job_creations(world)
    assert len(created) == 1
    assert created[0].job_name.startswith("payment-gate-") and created[0].job_name.endswith("-1")
    assert created[0].revision == world.status.stable.revision  # type: ignore[union-attr]
    told = [m for m in world.messages(Reason.STEP_COMPLETED) if "(analysis) completed" in m]
    assert told and f"gate smoke passed, Job {created[0].job_name} completed" in told[0]


def test_a_running_job_is_waited_for_created_once_and_never_passes() -> None:
    world = canary_world(job_gate(), gate_job_outcome="running")

    world.run(passes=30, advance=5.0)

    assert len(gate_job_creations(world)) == 1
    assert world.status.phase is Phase.PROGRESSING
    (result,) = world.status.analysis
    assert result.verdict is None and result.measurements == 0
    assert result.job is not None and "is running" in (result.message or "")
    # The Job's events wake the pass; no busy polling while it runs.
    last = world.passes[-1].plan.requeue_after
    assert last is not None and last >= 5.0


def test_a_failed_job_rolls_back_with_the_jobs_reason_and_log_tail() -> None:
    world = canary_world(job_gate(), gate_job_outcome="failed")

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_FAILED
    (job,) = gate_job_creations(world)
    assert f"Job {job.job_name} failed: BackoffLimitExceeded" in abort.message
    assert "log tail: check failed: p99 412ms > 300ms" in abort.message
    failed = [m for m in world.messages(Reason.GATE_FAILED) if "smoke" in m]
    assert failed and "log tail" in failed[0]


def test_failures_within_the_failure_limit_run_a_new_job_each_time() -> None:
    world = canary_world(job_gate(failureLimit=2, count=5), gate_job_outcome="failed")

    world.reach("RollingBack")

    names = [a.job_name for a in gate_job_creations(world)]
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2", "3"]
    assert len(set(names)) == 3
    assert world.status.analysis[0].failures == 3


def test_a_count_of_two_passes_after_two_completed_jobs() -> None:
    world = canary_world(job_gate(count=2))

    world.reach("Healthy")

    names = [a.job_name for a in gate_job_creations(world)]
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2"]


def test_a_restart_before_the_status_write_adopts_the_job_instead_of_creating_another() -> None:
    world = canary_world(job_gate(), gate_job_outcome="running")
    world.until(lambda w: bool(gate_job_creations(w)))
    # The pass that created the Job crashed before its status write: the stored status is the
    # one it started from, and nothing else survives the restart.
    world.status = world.passes[-1].before
    world.restart()

    world.run(passes=5, advance=1.0)
    world.gate_job_outcome = "succeeded"
    world.reach("Healthy")

    assert len(set(world.job_creations)) == 1
    names = {a.job_name for a in gate_job_creations(world)}
    assert len(names) == 1, "the same deterministic name, adopted"


def test_the_first_job_waits_until_its_tally_is_stored() -> None:
    world = canary_world(job_gate(interval="0s"))

    world.until(lambda w: bool(gate_job_creations(w)))

    creating = next(
        p for p in world.passes if any(isinstance(a, CreateGateJob) for a in p.plan.actions)
    )
    assert creating.before.analysis, "the tally (and its start) was stored by an earlier pass"


def test_job_names_are_deterministic_bounded_and_differ_per_attempt() -> None:
    base = ("payment", "abc", "smoke", 1, "2026-01-01T00:00:00+00:00", 1)
    name = gate_job_name(*base)

    assert name == gate_job_name(*base)
    assert len(name) <= 63
    others = {
        gate_job_name("payment", "xyz", "smoke", 1, base[4], 1),  # another revision
        gate_job_name("payment", "abc", "smoke@bg", 1, base[4], 1),  # background
        gate_job_name("payment", "abc", "smoke", 3, base[4], 1),  # a later step
        gate_job_name("payment", "abc", "smoke", 1, "2026-01-01T00:05:00+00:00", 1),  # retry
        gate_job_name("payment", "abc", "smoke", 1, base[4], 2),  # the next measurement
    }
    assert name not in others and len(others) == 5
    assert len(gate_job_name("p" * 40, "abc", "g" * 200, None, base[4], 999)) <= 63


def test_job_env_values_get_placeholders_but_command_and_args_never_do() -> None:
    template = gatelib.resolve_job_template(
        "smoke", job_gate(), GateRef(name="smoke", args={"service": "pay; rm -rf /"}), CONTEXT
    )

    container = template.to_wire()["spec"]["containers"][0]
    assert container["env"][0] == {"name": "TARGET", "value": "http://pay; rm -rf /-canary/abc"}
    assert container["env"][1] == {"name": "FIXED", "value": "1"}
    assert container["command"] == CHECK["command"]


def test_a_job_gate_arg_with_a_control_character_is_rejected() -> None:
    with pytest.raises(GateConfigError, match="control character"):
        gatelib.resolve_job_template(
            "smoke", job_gate(), GateRef(name="smoke", args={"service": "a\nb"}), CONTEXT
        )


def test_job_gates_are_never_measured_by_a_provider() -> None:
    world = canary_world(job_gate(), gate_job_outcome="running")

    world.run(passes=10)

    assert not [q for p in world.passes for q in due_gates(world.spec, p.before, p.observed, p.now)]


def test_a_job_outcome_decides_the_verdict_without_a_threshold() -> None:
    gate = job_gate()
    passed = MetricSample(key="g", query="Job x", measured_at=T0, outcome=Verdict.PASSED)
    failed = MetricSample(key="g", query="Job x", measured_at=T0, outcome=Verdict.FAILED)

    assert gatelib.verdict_of(passed, gate) is Verdict.PASSED
    assert gatelib.verdict_of(failed, gate) is Verdict.FAILED


# ----------------------------------------------------------------------------- web gates


def test_web_placeholders_are_percent_encoded_in_the_url_and_escaped_in_the_body() -> None:
    ref = GateRef(name="slo", args={"service": 'a/b?c=1&d#"x"'})

    request = gatelib.resolve_web("slo", web_gate(), ref, CONTEXT)

    assert request.url == "https://slo.example/api/v1/a%2Fb%3Fc%3D1%26d%23%22x%22?rev=abc"
    assert request.body == '{"service": "a/b?c=1&d#\\"x\\""}'
    assert request.headers == (("X-Team", "{{args.service}}"),), "headers are sent as written"
    assert (request.method, request.json_path) == ("POST", "$.errorRate")


def test_a_web_gate_is_measured_as_a_web_query_naming_its_scope() -> None:
    world = canary_world(web_gate(), name="slo")

    world.reach("Healthy")

    queries = [q for p in world.passes for q in due_gates(world.spec, p.before, p.observed, p.now)]
    assert queries and {q.provider for q in queries} == {"web"}
    query = queries[0]
    assert query.web is not None and query.address == query.web.url
    assert query.cluster is False and query.namespace == "shop"
    assert query.query.startswith("POST https://slo.example/api/v1/payment?rev=")
    assert query.query.endswith("jsonPath $.errorRate")


def test_a_web_gate_without_a_value_is_inconclusive_and_never_passes() -> None:
    world = canary_world(web_gate(inconclusiveLimit=2, count=1), name="slo", gate_value=None)

    world.reach("RollingBack")

    verdicts = {r.verdict for p in world.passes for r in p.plan.status.analysis}
    assert Verdict.PASSED not in verdicts
    assert Verdict.INCONCLUSIVE in verdicts
    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_INCONCLUSIVE
    assert not [m for m in world.messages(Reason.STEP_COMPLETED) if "(analysis)" in m]


def test_a_web_gate_value_outside_its_range_fails_it() -> None:
    world = canary_world(web_gate(), name="slo", gate_value=0.5)

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_FAILED
    assert "0.5 > max 0.05" in abort.message


def test_web_errors_count_against_the_consecutive_error_limit() -> None:
    world = canary_world(web_gate(), name="slo", gate_value=None, gate_error="refused")

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_ERROR
    assert "refused" in abort.message


def test_an_inconclusive_web_sample_keeps_the_providers_reason() -> None:
    gate = web_gate()
    sample = MetricSample(
        key="slo", query="GET u", measured_at=T0, message="jsonPath $.x matched nothing: no data"
    )
    result = gatelib.record(
        GateResult(gate="slo"),
        sample,
        gate,
    )

    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.message == "jsonPath $.x matched nothing: no data"
