"""The kubectl plugin's views, rendered from status samples built with the API models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwise.api.service import CanaryStep
from rollwise.api.service_status import (
    AbortStatus,
    Condition,
    GateResult,
    HistoryEntry,
    MigrationPhase,
    MigrationStatus,
    Phase,
    RequestAck,
    RevisionStatus,
    ServiceStatus,
    Verdict,
)
from rollwise.api.stored_status import read_stored_status as read_status
from rollwise.cli.plugin_render import (
    describe_progress,
    render_history,
    render_status,
    status_is_current,
)

T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
QUERY = (
    'sum(rate(http_requests_total{service="payment",revision="85c4d7f9a",code=~"5.."}[1m]))\n'
    '/ sum(rate(http_requests_total{service="payment",revision="85c4d7f9a"}[1m]))'
)
STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"pause": {"duration": "2m"}},
    {"analysis": {"gates": [{"name": "error-rate"}]}},
    {"setWeight": 50},
    {"pause": {}},
]


def service(status: ServiceStatus | dict[str, Any] | None, generation: int = 7) -> dict[str, Any]:
    """A ProgressiveService as the API server returns it."""
    obj: dict[str, Any] = {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "ProgressiveService",
        "metadata": {"name": "payment", "namespace": "shop", "generation": generation},
        "spec": {
            "template": {"spec": {"containers": [{"name": "app", "image": "shop/pay:2.4.0"}]}},
            "strategy": {"canary": {"steps": STEPS}},
        },
    }
    if status is not None:
        obj["status"] = status.to_wire() if isinstance(status, ServiceStatus) else status
    return obj


def history(count: int) -> list[HistoryEntry]:
    return [
        HistoryEntry(at=T0 + timedelta(seconds=i), event=f"Event{i}", step=i % 5, weight=10)
        for i in range(count)
    ]


def analysing() -> ServiceStatus:
    """Mid-rollout: the analysis step of a canary at 10%, after a migration."""
    return ServiceStatus(
        observed_generation=7,
        phase=Phase.PROGRESSING,
        message="running analysis error-rate",
        stable=RevisionStatus(revision="6d9f8c7b4", version="2.3.1", replicas=9, ready_replicas=9),
        canary=RevisionStatus(revision="85c4d7f9a", version="2.4.0", replicas=1, ready_replicas=0),
        canary_weight=10,
        current_step_index=2,
        migration=MigrationStatus(
            revision="85c4d7f9a",
            version="2.4.0",
            job="payment-migrate-85c4d7f9a",
            phase=MigrationPhase.SUCCEEDED,
            attempts=2,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=42),
        ),
        analysis=[
            GateResult(
                gate="error-rate",
                step=2,
                query=QUERY,
                value=0.0042,
                verdict=Verdict.PASSED,
                measured_at=T0 + timedelta(minutes=9),
                measurements=3,
                failures=1,
                inconclusive=2,
                errors=3,
            ),
            GateResult(gate="latency-p99", background=True, query="histogram_quantile(0.99, x)"),
        ],
        conditions=[
            Condition(type="Ready", status="False", reason="Progressing", observed_generation=7)
        ],
        history=history(8),
    )


def test_status_shows_each_gates_resolved_query_in_full_and_its_value() -> None:
    text = render_status(service(analysing()), NOW)

    for query_line in QUERY.splitlines():
        assert query_line in text
    assert "0.0042" in text
    assert "histogram_quantile(0.99, x)" in text


def test_status_puts_the_query_on_its_own_indented_line() -> None:
    lines = render_status(service(analysing()), NOW).splitlines()

    query_lines = [line for line in lines if "query: " in line]
    assert query_lines[0].startswith("    query: sum(rate(")
    assert query_lines[0].endswith('code=~"5.."}[1m]))')


def test_status_shows_gate_verdict_counts_and_scope() -> None:
    text = render_status(service(analysing()), NOW)

    assert "error-rate  step 3  Passed  value 0.0042" in text
    assert "failures 1  inconclusive 2  errors 3" in text
    assert "latency-p99  background  (none yet)  value -" in text
    assert "measured 2025-03-01T10:09:00Z (1m ago)" in text


def test_status_describes_the_current_step_as_k_of_n() -> None:
    text = render_status(service(analysing()), NOW)

    assert "Step:       3/5 analysis error-rate" in text
    assert "Weight:     10% to canary" in text


def test_status_shows_revisions_with_versions_and_ready_replicas() -> None:
    text = render_status(service(analysing()), NOW)

    assert any(
        line.split() == ["stable", "6d9f8c7b4", "2.3.1", "9/9"] for line in text.splitlines()
    )
    assert any(
        line.split() == ["canary", "85c4d7f9a", "2.4.0", "0/1"] for line in text.splitlines()
    )


def test_status_shows_the_migration_job_phase_attempts_and_times() -> None:
    text = render_status(service(analysing()), NOW)

    assert "job payment-migrate-85c4d7f9a  Succeeded  attempts 2" in text
    assert "finished 2025-03-01T10:00:42Z" in text
    assert "schema ahead of app" not in text


def test_status_warns_when_the_schema_is_ahead_of_the_app() -> None:
    rolled_back = analysing().model_copy(
        update={"phase": Phase.ROLLED_BACK, "schema_ahead_of_app": True}
    )

    text = render_status(service(rolled_back), NOW)

    assert "WARNING:    schema ahead of app" in text


def test_status_shows_the_abort_reason_and_message() -> None:
    aborted = analysing().model_copy(
        update={
            "phase": Phase.ROLLED_BACK,
            "abort": AbortStatus(
                reason="GateFailed", message="error-rate 0.041 > max 0.01 at step 3", at=T0
            ),
        }
    )

    text = render_status(service(aborted), NOW)

    assert "Abort:      GateFailed at 2025-03-01T10:00:00Z" in text
    assert "error-rate 0.041 > max 0.01 at step 3" in text


def test_status_shows_only_the_last_five_history_entries_oldest_first() -> None:
    text = render_status(service(analysing()), NOW)

    assert "History (last 5 of 8):" in text
    assert "Event2" not in text
    shown = [word for word in text.split() if word.startswith("Event")]
    assert shown == ["Event3", "Event4", "Event5", "Event6", "Event7"]


def test_status_shows_conditions_and_the_last_acknowledged_request() -> None:
    acknowledged = analysing().model_copy(
        update={
            "last_request": RequestAck(
                id="abc123",
                action="promote",
                by="alice (kubectl rollwise promote)",
                at=T0,
                result="accepted",
            )
        }
    )

    text = render_status(service(acknowledged), NOW)

    assert "Ready  False   Progressing" in text
    assert "promote by alice (kubectl rollwise promote)" in text
    assert "accepted" in text


def test_status_says_when_it_describes_an_older_generation() -> None:
    text = render_status(service(analysing(), generation=8), NOW)

    assert "status is for generation 7, spec is at 8" in text
    assert not status_is_current(service(analysing(), generation=8))
    assert status_is_current(service(analysing(), generation=7))


@pytest.mark.parametrize("status", [None, {}, ServiceStatus()])
def test_status_of_a_service_the_operator_has_not_seen_yet_renders(
    status: ServiceStatus | dict[str, Any] | None,
) -> None:
    text = render_status(service(status), NOW)

    assert "ProgressiveService shop/payment" in text
    assert "Phase:      Pending" in text
    assert "Analysis:   no measurements" in text


def test_status_renders_an_object_with_no_metadata_spec_or_status() -> None:
    text = render_status({})

    assert "Phase:      Pending" in text


def test_unreadable_status_fields_are_named_and_the_rest_still_shown() -> None:
    raw = analysing().to_wire()
    raw["stable"] = {"version": "2.3.1"}  # revision missing
    raw["history"].append({"event": "NoTime"})  # at missing
    raw["canaryWeight"] = "lots"

    text = render_status(service(raw), NOW)

    assert "unreadable: status.stable.revision: Field required" in text
    assert "unreadable: status.history: 1 unreadable entries skipped" in text
    assert "unreadable: status.canaryWeight" in text
    assert "Weight:     0% to canary" in text
    assert QUERY.splitlines()[0] in text
    assert "Event7" in text


def test_fields_written_by_a_newer_operator_are_ignored() -> None:
    raw = analysing().to_wire()
    raw["somethingNew"] = {"x": 1}
    raw["analysis"][0]["newCounter"] = 5

    reading = read_status(raw)

    assert reading.problems == ()
    assert reading.status.analysis[0].value == 0.0042


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, "1/5 setWeight 10"),
        (1, "2/5 pause 2m"),
        (4, "5/5 pause (until promote)"),
        (5, "5/5 done"),
        (None, "-"),
    ],
)
def test_progress_describes_every_kind_of_step(index: int | None, expected: str) -> None:
    steps = [CanaryStep.model_validate(step) for step in STEPS]

    assert describe_progress(index, steps) == expected


def test_progress_without_a_readable_step_list_still_counts() -> None:
    assert describe_progress(2, None) == "3/?"


def test_history_lists_every_entry_with_actor_step_weight_and_message() -> None:
    entries = [
        *history(3),
        HistoryEntry(
            at=T0 + timedelta(minutes=5),
            event="Promoted",
            actor="alice@example.com (kubectl rollwise promote)",
            message="promoted by request",
        ),
    ]
    status = ServiceStatus(history=entries)

    lines = render_history(service(status), NOW).splitlines()

    assert lines[0].split() == ["AT", "EVENT", "ACTOR", "STEP", "WEIGHT", "MESSAGE"]
    assert len(lines) == 1 + 4
    assert "alice@example.com (kubectl rollwise promote)" in lines[-1]
    assert lines[-1].endswith("promoted by request")
    assert lines[1].split()[:6] == [
        "2025-03-01T10:00:00Z",
        "(10m",
        "ago)",
        "Event0",
        "rollwise",
        "1",
    ]


def test_history_of_a_new_service_says_there_is_none() -> None:
    assert render_history(service(None)) == "ProgressiveService shop/payment: no history yet\n"


def test_a_train_renders_as_a_tree_of_its_members_with_history() -> None:
    from rollwise.cli.plugin_train import render_train

    obj = {
        "metadata": {"namespace": "shop", "name": "release"},
        "spec": {
            "members": [
                {"service": "db", "version": "2"},
                {"service": "api", "version": "2", "after": ["db"]},
                {"service": "web", "version": "2", "after": ["api", "db"]},
            ],
            "onFailure": {"policy": "RollbackPromoted"},
        },
        "status": {
            "phase": "Progressing",
            "message": "1/3 done; rolling out api 2",
            "members": [
                {"service": "db", "phase": "Promoted", "version": "2", "previousVersion": "1"},
                {"service": "api", "phase": "Progressing", "version": "2"},
                {
                    "service": "web",
                    "phase": "Waiting",
                    "version": "2",
                    "message": "waiting for api",
                },
            ],
            "history": [
                {
                    "at": "2026-01-01T10:00:00Z",
                    "event": "MemberStarted",
                    "actor": "alice",
                    "service": "api",
                    "message": "releasing 2 to api",
                }
            ],
        },
    }

    text = render_train(obj)

    lines = text.splitlines()
    assert "phase Progressing" in lines[0] and "onFailure RollbackPromoted" in lines[0]
    db = next(i for i, line in enumerate(lines) if "db " in line and "Promoted" in line)
    assert "└─ db" in lines[db] and "2 (was 1)" in lines[db]
    assert "└─ api" in lines[db + 1] and lines[db + 1].startswith("     ")
    assert "└─ web" in lines[db + 2] and "[after api, db]" in lines[db + 2]
    assert "waiting for api" in lines[db + 2]
    assert "MemberStarted" in text and "alice" in text


def test_status_shows_the_mirror_share_only_while_mirroring() -> None:
    mirroring = analysing().model_copy(update={"mirror_percent": 50, "canary_weight": 0})

    assert "Mirror:     50% of stable's requests copied to canary" in render_status(
        service(mirroring), NOW
    )
    assert "Mirror:" not in render_status(service(analysing()), NOW)
    assert describe_progress(0, [CanaryStep(set_mirror=50)]) == "1/1 setMirror 50"
