"""Job gates at the adapter: the measurement Job rollwise writes, how its state and its failed
pod's log tail are read back, and that migrations never mistake one for theirs.

Objects are shaped like real API answers; creating them on a real API server (and kwok failing
their pods) is tested in tests/integration/test_job_web_gates.py.
"""

from __future__ import annotations

from typing import Any

from rollwise.adapters.manifests import readers as manifests
from rollwise.adapters.manifests.readers import LOG_TAIL_BYTES, job_states, log_tail
from rollwise.adapters.manifests.types import ServiceRef
from rollwise.adapters.providers.job import gate_job_manifest, gate_job_states
from rollwise.api.service import PodTemplate
from rollwise.core.model import CreateGateJob

REF = ServiceRef(namespace="shop", name="payment", uid="uid-1")
OWNER = {"apiVersion": "rollwise.dev/v1alpha1", "kind": "ProgressiveService", "uid": "uid-1"}
TEMPLATE = PodTemplate.model_validate(
    {
        "metadata": {"labels": {"team": "pay"}},
        "spec": {"containers": [{"name": "check", "image": "example/smoke:1"}]},
    }
)


def action(**overrides: Any) -> CreateGateJob:
    fields: dict[str, Any] = {
        "job_name": "payment-gate-bcdfghjk-1",
        "revision": "r2",
        "gate": "smoke",
        "template": TEMPLATE,
        "backoff_limit": 0,
        "active_deadline_seconds": 120,
        "ttl_seconds_after_finished": 600,
    }
    fields.update(overrides)
    return CreateGateJob(**fields)


def stored(manifest: dict[str, Any], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    body = {**manifest, "status": {"conditions": conditions}}
    body["metadata"] = {**manifest["metadata"], "creationTimestamp": "2026-01-01T10:00:00Z"}
    return body


def pod(job: str, created: str, phase: str, message: str = "smoke failed") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-{created[-3:-1]}",
            "uid": f"pod-{created[-3:-1]}",
            "creationTimestamp": created,
            "labels": {"batch.kubernetes.io/job-name": job, "rollwise.dev/role": "gate"},
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "check",
                    "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": message}},
                }
            ],
        },
    }


FAILED = [
    {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
        "lastTransitionTime": "2026-01-01T10:01:00Z",
    }
]


def test_a_measurement_job_is_owned_labelled_as_a_gate_and_cleaned_up_by_ttl() -> None:
    job = gate_job_manifest(REF, "2.0.0", action())

    meta = job["metadata"]
    assert meta["name"] == "payment-gate-bcdfghjk-1" and meta["namespace"] == "shop"
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert meta["labels"]["rollwise.dev/role"] == "gate"
    assert meta["labels"]["rollwise.dev/revision"] == "r2"
    assert meta["annotations"]["rollwise.dev/gate"] == "smoke"
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 120)
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "pay"
    assert template["metadata"]["labels"]["rollwise.dev/role"] == "gate", "never a serving pod"
    assert template["spec"]["restartPolicy"] == "Never"


def test_a_failed_measurement_job_reads_back_with_its_reason_and_log_tail() -> None:
    name = "payment-gate-bcdfghjk-1"
    job = stored(gate_job_manifest(REF, "2.0.0", action()), FAILED)
    pods = [pod(name, "2026-01-01T10:00:10Z", "Failed", "first")]

    state = gate_job_states([job], pods, "uid-1", log_tails={name: "p99 412ms | FAIL"})[name]

    assert state.failed and not state.succeeded and state.owned
    assert state.failure_reason is not None
    assert state.failure_reason.startswith("BackoffLimitExceeded: Job has reached")
    assert "container check terminated: Error (exit code 3): first" in state.failure_reason
    assert state.log_tail == "p99 412ms | FAIL"


def test_a_completed_measurement_job_is_succeeded() -> None:
    job = stored(
        gate_job_manifest(REF, "2.0.0", action()), [{"type": "Complete", "status": "True"}]
    )

    state = gate_job_states([job], [], "uid-1")["payment-gate-bcdfghjk-1"]

    assert state.succeeded and not state.failed and state.log_tail is None


def test_the_newest_failed_pod_is_the_one_whose_log_is_read() -> None:
    name = "payment-gate-bcdfghjk-1"
    pods = [
        pod(name, "2026-01-01T10:00:40Z", "Failed"),
        pod(name, "2026-01-01T10:00:10Z", "Failed"),
        pod(name, "2026-01-01T10:00:50Z", "Running"),
        pod("other-job", "2026-01-01T10:00:59Z", "Failed"),
    ]

    chosen = manifests.failed_pod(name, pods)

    assert chosen is not None and chosen["metadata"]["name"] == f"{name}-40"


def test_migrations_never_take_a_measurement_job_for_theirs() -> None:
    job = stored(gate_job_manifest(REF, "2.0.0", action()), [])

    assert job_states([job], [], "uid-1") == {}
    assert list(gate_job_states([job], [], "uid-1")) == ["payment-gate-bcdfghjk-1"]


def test_a_log_tail_keeps_the_last_twenty_lines_on_one_line() -> None:
    text = "".join(f"line {i}\n" for i in range(1, 41)) + "\n\n"

    tail = log_tail(text)

    assert tail.split(" | ") == [f"line {i}" for i in range(21, 41)]


def test_a_log_tail_is_at_most_one_kib_cut_at_a_line() -> None:
    text = "\n".join(f"{i:03d} " + "x" * 96 for i in range(20))

    tail = log_tail(text)

    assert len(tail.encode()) <= LOG_TAIL_BYTES
    assert tail.endswith("019 " + "x" * 96)
    assert tail.split(" | ")[0].startswith("0"), "whole lines only"


def test_one_overlong_line_keeps_its_end_without_splitting_a_character() -> None:
    text = "é" * 2000 + "END"

    tail = log_tail(text)

    assert tail.endswith("END") and len(tail.encode()) <= LOG_TAIL_BYTES
    assert "\ufffd" not in tail


def test_an_empty_log_has_an_empty_tail() -> None:
    assert log_tail("") == "" and log_tail("\n\r\n") == ""
