"""The influxdb and graphite gate providers against their real servers (Debian's InfluxDB 1.6
and Graphite: carbon-cache and graphite-web), started on loopback by the harness. A gate reads
the value the test wrote, through the core's query resolution and the operator's provider;
no data, several series and bad queries are what the core expects. Then whole rollouts on the
real control plane: an influxdb gate passes a canary, a graphite gate rolls one back."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.registry import MetricProviders
from rollwise.api.gates import MetricGateSpec
from rollwise.api.service_status import Verdict
from rollwise.core import gates as gatelib
from rollwise.core.analysis import due_gates
from rollwise.core.model import GateQuery
from tests.harness.metric_servers import GraphiteServer, InfluxDBServer, now_s
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import GROUP, VERSION, Rollouts, deploy_first_version, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for
from tests.unit.core.world import World, healthy_world, released, spec_from

INFLUX_QUERY = (
    'SELECT last("value") FROM "error_rate" WHERE "service" = \'{{args.service}}\' '
    "AND time > now() - 5m"
)
GRAPHITE_TARGET = "rollwise.{{args.service}}.error_rate"
STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "SERVICE"}}]}},
]


@pytest.fixture(scope="module")
def influxdb(harness_run: HarnessRun) -> Iterator[InfluxDBServer]:
    run = harness_run.child("influxdb")
    server = InfluxDBServer(run.state_dir, run.log_dir, run_id=run.run_id)
    server.start()
    try:
        server.create_database("rollwise")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def graphite(harness_run: HarnessRun) -> Iterator[GraphiteServer]:
    run = harness_run.child("graphite")
    server = GraphiteServer(run.state_dir, run.log_dir, run_id=run.run_id)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def influx_gate(address: str, query: str = INFLUX_QUERY) -> dict[str, Any]:
    return {
        "args": [{"name": "service"}],
        "interval": "2s",
        "count": 1,
        "provider": {"influxdb": {"address": address, "database": "rollwise", "query": query}},
        "thresholdRange": {"max": 0.05},
    }


def graphite_gate(address: str, target: str = GRAPHITE_TARGET) -> dict[str, Any]:
    return {
        "args": [{"name": "service"}],
        "interval": "2s",
        "count": 1,
        "provider": {"graphite": {"address": address, "target": target, "from": "-5min"}},
        "thresholdRange": {"max": 0.05},
    }


def measured(gate: dict[str, Any], service: str) -> tuple[GateQuery, Any, Verdict]:
    """The core's query for this gate at an analysis step (args.service = `service`), measured
    by the operator's provider: (query, sample, verdict)."""
    steps = [
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": "g", "args": {"service": service}}]}},
    ]
    spec = MetricGateSpec.model_validate(gate)
    world: World = healthy_world(
        spec_from(strategy={"canary": {"steps": steps}}), gates={"g": spec}
    )
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 1)
    [query] = due_gates(
        world.spec, world.status, world.observed(), world.now + timedelta(minutes=1)
    )
    # The harness' operator setting (tests/harness/operator_process.py): loopback allowed.
    policy = OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True)
    sample = MetricProviders.default(2, policy=policy).measure(query, world.now)
    return query, sample, gatelib.verdict_of(sample, spec)


# ----------------------------------------------------------------------------- InfluxDB


def test_an_influxdb_gate_reads_the_value_written_for_its_service(
    influxdb: InfluxDBServer,
) -> None:
    influxdb.write(
        "rollwise",
        [
            f"error_rate,service=checkout value=0.5 {now_s() - 30}",
            f"error_rate,service=checkout value=0.02 {now_s()}",
            f"error_rate,service=other value=0.9 {now_s()}",
        ],
    )

    query, sample, verdict = measured(influx_gate(influxdb.url), "checkout")

    assert "'checkout'" in query.query and query.params == (("db", "rollwise"),)
    assert sample.error is None and sample.value == 0.02
    assert verdict is Verdict.PASSED


def test_an_influxdb_gate_without_data_is_inconclusive_not_zero(influxdb: InfluxDBServer) -> None:
    _, sample, verdict = measured(influx_gate(influxdb.url), "nobody")

    assert sample.error is None and sample.value is None
    assert verdict is Verdict.INCONCLUSIVE


def test_an_influxdb_query_with_several_series_or_bad_syntax_is_an_error(
    influxdb: InfluxDBServer,
) -> None:
    influxdb.write("rollwise", [f"error_rate,service=a value=1 {now_s()}"])
    grouped = 'SELECT last("value") FROM "error_rate" WHERE time > now() - 5m GROUP BY "service"'

    _, several, several_verdict = measured(influx_gate(influxdb.url, grouped), "a")
    _, bad, bad_verdict = measured(influx_gate(influxdb.url, "SELEC nothing"), "a")

    assert several.error is not None and "aggregate them to one" in several.error
    assert bad.error is not None and "HTTP 400" in bad.error
    assert "parsing" not in bad.error  # no part of the server's answer reaches status
    assert several_verdict is bad_verdict is Verdict.ERROR


# ----------------------------------------------------------------------------- Graphite


def test_a_graphite_gate_reads_the_newest_value_written_for_its_service(
    graphite: GraphiteServer,
) -> None:
    graphite.write(
        [
            f"rollwise.checkout.error_rate 0.5 {now_s() - 30}",
            f"rollwise.checkout.error_rate 0.02 {now_s()}",
            f"rollwise.other.error_rate 0.9 {now_s()}",
        ]
    )
    wait_for(
        lambda: any(
            p[0] == 0.02
            for s in graphite.render("rollwise.checkout.error_rate")
            for p in s["datapoints"]
        ),
        timeout=30,
        message="graphite-web to render what carbon received",
    )

    query, sample, verdict = measured(graphite_gate(graphite.url), "checkout")

    assert query.query == "rollwise.checkout.error_rate"
    assert sample.error is None and sample.value == 0.02
    assert verdict is Verdict.PASSED


def test_a_graphite_gate_without_data_is_inconclusive_not_zero(graphite: GraphiteServer) -> None:
    _, sample, verdict = measured(graphite_gate(graphite.url), "nobody")

    assert sample.error is None and sample.value is None
    assert verdict is Verdict.INCONCLUSIVE


def test_a_graphite_target_matching_several_series_is_an_error(graphite: GraphiteServer) -> None:
    graphite.write([f"rollwise.x1.error_rate 1 {now_s()}", f"rollwise.x2.error_rate 1 {now_s()}"])
    wait_for(
        lambda: len(graphite.render("rollwise.x*.error_rate")) == 2,
        timeout=30,
        message="both series rendered",
    )

    _, sample, verdict = measured(graphite_gate(graphite.url, "rollwise.x*.error_rate"), "x1")

    assert sample.error is not None and "sumSeries" in sample.error
    assert verdict is Verdict.ERROR


@pytest.mark.parametrize("value", ["*", "a.b", "x{1,2}", "sum(x)"])
def test_a_graphite_arg_can_never_widen_the_target(value: str) -> None:
    spec = MetricGateSpec.model_validate(graphite_gate("http://127.0.0.1:1"))
    from rollwise.api.service import GateRef

    with pytest.raises(gatelib.GateConfigError, match="one Graphite path node"):
        gatelib.resolve_query("g", spec, GateRef(name="g", args={"service": value}), {})


# ----------------------------------------------------------------------------- rollouts


def create_gate(rollouts: Rollouts, spec: dict[str, Any]) -> None:
    rollouts.create_gate(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MetricGate",
            "metadata": {"name": "error-rate", "namespace": rollouts.ns},
            "spec": spec,
        }
    )


def steps_for(service: str) -> list[dict[str, Any]]:
    return [
        STEPS[0],
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": service}}]}},
    ]


def test_a_canary_whose_influxdb_gate_passes_is_promoted(
    rollouts: Rollouts, influxdb: InfluxDBServer, operator: OperatorProcess
) -> None:
    service = f"svc-{rollouts.ns}"
    create_gate(rollouts, influx_gate(influxdb.url))
    deploy_first_version(rollouts, steps=steps_for(service), migration=False)
    influxdb.write("rollwise", [f"error_rate,service={service} value=0.01 {now_s()}"])

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=steps_for(service), migration=False)
    )
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    assert done.get("abort") is None
    told = [e.message or "" for e in rollouts.events("StepCompleted")]
    assert any("gate error-rate passed, 0.01 within" in m for m in told), told


def test_a_canary_whose_graphite_gate_fails_is_rolled_back_with_the_value(
    rollouts: Rollouts, graphite: GraphiteServer, operator: OperatorProcess
) -> None:
    service = f"svc-{rollouts.ns}"
    create_gate(rollouts, graphite_gate(graphite.url))
    deploy_first_version(rollouts, steps=steps_for(service), migration=False)
    graphite.write([f"rollwise.{service}.error_rate 0.3 {now_s()}"])

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=steps_for(service), migration=False)
    )
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateFailed"
    assert "0.3 > max 0.05" in rolled["abort"]["message"]
    assert math.isclose(
        next(r for r in rolled["analysis"] if r["gate"] == "error-rate")["value"], 0.3
    )
