"""ReleaseTrain end to end: the operator as a process on the real control plane, three member
ProgressiveServices with real gates on real Prometheus. Order is read from the train's status
(startedAt / finishedAt), never from timings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kubernetes import client

from rollwise.cli.plugin_train import render_train
from tests.harness import argocd_lua, kstatus
from tests.harness.admission import status_writes_frozen
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import GROUP, VERSION, Rollouts, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

TRAINS = "releasetrains"
MEMBERS = ("a", "b", "c")


def member_manifest(rollouts: Rollouts, name: str) -> dict[str, Any]:
    steps = [
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": name}}]}},
    ]
    manifest = service_manifest(
        rollouts.ns, "1.0.0", name=name, replicas=2, migration=False, steps=steps
    )
    manifest["spec"]["releaseTrain"] = "shop"
    return manifest


def train_manifest(
    namespace: str,
    *,
    bad: str | None = None,
    policy: str = "Halt",
    members: tuple[str, ...] = MEMBERS,
    windows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    entries = []
    for i, name in enumerate(members):
        entry: dict[str, Any] = {
            "service": name,
            "version": "2.0.0",
            "image": f"example.com/{name}:2.0.0",
        }
        if i:
            entry["after"] = [members[i - 1]]
        if name == bad:
            entry["env"] = [{"name": "SIM_ERROR_RATE", "value": "0.5"}]
        entries.append(entry)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReleaseTrain",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": {
            "members": entries,
            "maxConcurrent": 1,
            "onFailure": {"policy": policy},
            "freezeWindows": windows or [],
        },
    }


class Train:
    def __init__(self, rollouts: Rollouts) -> None:
        self.rollouts = rollouts
        self.custom: client.CustomObjectsApi = rollouts.custom

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.rollouts.ns, TRAINS, manifest
        )

    def get(self) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.rollouts.ns, TRAINS, "shop"
        )
        assert isinstance(obj, dict)
        return obj

    def status(self) -> dict[str, Any]:
        return dict(self.get().get("status") or {})

    def wait(self, phase: str, timeout: float = 180) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status = self.status()
            return status if status.get("phase") == phase else None

        try:
            return wait_for(check, timeout=timeout, interval=0.5, message=f"train {phase}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nlast train status: {self.status()}") from None


def members_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["service"]: m for m in status.get("members") or []}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def deploy_members(rollouts: Rollouts, names: tuple[str, ...] = MEMBERS) -> None:
    for name in names:
        rollouts.apply(member_manifest(rollouts, name))
    for name in names:
        rollouts.wait_phase("Healthy", version="1.0.0", name=name, timeout=90)


def test_three_members_roll_out_one_after_another_in_after_order(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_members(rollouts)
    train = Train(rollouts)

    train.create(train_manifest(rollouts.ns))
    done = train.wait("Succeeded")

    members = members_of(done)
    assert [members[n]["phase"] for n in MEMBERS] == ["Promoted"] * 3
    assert [members[n]["promotedIndex"] for n in MEMBERS] == [1, 2, 3]
    assert at(members["b"]["startedAt"]) >= at(members["a"]["finishedAt"])
    assert at(members["c"]["startedAt"]) >= at(members["b"]["finishedAt"])
    started = [h["service"] for h in done["history"] if h["event"] == "MemberStarted"]
    assert started == list(MEMBERS)
    for name in MEMBERS:
        status = rollouts.status(name)
        assert status["phase"] == "Healthy"
        assert status["stable"]["version"] == "2.0.0"
        assert members[name]["previousVersion"] == "1.0.0"
    # The members' specs are untouched: the version came from the train's status.
    assert rollouts.get("a")["spec"]["version"] == "1.0.0"


def test_a_failing_second_member_halts_the_third_and_rolls_back_the_first(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, harness_run: HarnessRun
) -> None:
    deploy_members(rollouts)
    train = Train(rollouts)

    train.create(train_manifest(rollouts.ns, bad="b", policy="RollbackPromoted"))
    failed = train.wait("Failed", timeout=240)
    # What `kubectl rollwise train status shop` shows, kept with the run's logs.
    (harness_run.log_dir / "release-train-failed.txt").write_text(render_train(train.get()))

    members = members_of(failed)
    assert {n: members[n]["phase"] for n in MEMBERS} == {
        "a": "RolledBack",
        "b": "Failed",
        "c": "Halted",
    }
    assert failed["failure"]["service"] == "b"
    assert "error-rate" in members["b"]["message"]
    a = rollouts.wait_phase("Healthy", version="1.0.0", name="a", timeout=60)
    assert a["stable"]["version"] == "1.0.0"
    assert rollouts.wait_phase("Healthy", version="1.0.0", name="b", timeout=60)
    c = rollouts.status("c")
    assert c["stable"]["version"] == "1.0.0"
    assert "RolloutStarted" not in [h["event"] for h in c.get("history") or []]
    events = [h["event"] for h in failed["history"]]
    assert events.index("MemberFailed") < events.index("MemberRollingBack")
    assert events[-1] == "TrainFailed"
    assert at(members["a"]["finishedAt"]) >= at(members["b"]["finishedAt"])
    # What Flux (kstatus) and Argo CD make of the live train: failed now, not at a timeout.
    live = train.get()
    [computed] = kstatus.compute([live])
    assert computed["status"] == "Failed", computed
    assert argocd_lua.health(live)[0] == "Degraded"


def test_a_freeze_window_holds_a_new_version_until_it_ends(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_members(rollouts, ("a",))
    train = Train(rollouts)
    # A daily window that opened at the start of this very minute in Berlin and closes 12 s
    # from now.
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime.now(UTC)
    local = now.astimezone(berlin)
    opened = local.replace(second=0, microsecond=0)
    ends = now + timedelta(seconds=12)
    duration = int((ends - opened.astimezone(UTC)).total_seconds())
    window = {
        "name": "lunch",
        "schedule": f"{opened.minute} {opened.hour} * * *",
        "duration": f"{duration}s",
        "timeZone": "Europe/Berlin",
    }

    train.create(train_manifest(rollouts.ns, members=("a",), windows=[window]))
    frozen = train.wait("Frozen", timeout=30)

    until = at(frozen["frozenUntil"])
    assert abs((until - opened.astimezone(UTC) - timedelta(seconds=duration)).total_seconds()) < 1
    assert members_of(frozen)["a"]["phase"] == "Waiting"
    assert "lunch" in members_of(frozen)["a"]["message"]
    assert rollouts.status("a")["stable"]["version"] == "1.0.0"

    done = train.wait("Succeeded", timeout=120)
    assert at(members_of(done)["a"]["startedAt"]) >= until
    assert rollouts.status("a")["stable"]["version"] == "2.0.0"


def test_a_train_status_write_refused_by_admission_is_an_event_and_a_metric_and_recovers(
    rollouts: Rollouts, api_client: Any, operator: OperatorProcess
) -> None:
    """The skeleton every kind shares: a ReleaseTrain whose status writes an admission policy
    refuses gets a Warning Event naming the policy and the train's status resource, and the
    operator counts it by kind; once the policy is gone the status is written."""
    train = Train(rollouts)
    train.create(train_manifest(rollouts.ns))
    wait_for(lambda: train.status().get("observedGeneration") == 1, timeout=60, message="gen 1")

    with status_writes_frozen(api_client, rollouts.ns, TRAINS) as policy:
        wait_for(lambda: _train_status_refused(rollouts), timeout=30, message="the policy in force")
        rollouts.custom.patch_namespaced_custom_object(
            GROUP, VERSION, rollouts.ns, TRAINS, "shop", {"spec": {"maxConcurrent": 2}}
        )
        refused = wait_for(
            lambda: [
                e
                for e in rollouts.events("StatusRefusedByAdmission")
                if e.involved_object.kind == "ReleaseTrain"
            ],
            timeout=60,
            message="a StatusRefusedByAdmission Event on the train",
        )
        assert train.status().get("observedGeneration") == 1, "nothing written while frozen"
        metrics = operator.metrics()

    message = refused[0].message or ""
    assert refused[0].type == "Warning" and policy in message, message
    assert "releasetrains/status" in message and "the spec is not at fault" in message
    assert (
        'rollwise_status_write_failures_total{kind="ReleaseTrain",'
        'reason="StatusRefusedByAdmission"}' in metrics
    )
    wait_for(
        lambda: train.status().get("observedGeneration") == 2,
        timeout=60,
        message="the train's status written once the policy is gone",
    )


def _train_status_refused(rollouts: Rollouts) -> bool:
    """Whether a status write of the train (as admin) is refused now."""
    from kubernetes.client.exceptions import ApiException

    try:
        rollouts.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, rollouts.ns, TRAINS, "shop", {"status": {"message": "probe"}}
        )
    except ApiException as err:
        return err.status in (400, 403, 422)
    return False
