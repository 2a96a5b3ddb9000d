"""Leader election and the write fence: the pure decisions, the elector against an in-memory
Lease store with the API server's optimistic concurrency, and the fenced client."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.cache import ServiceBodies
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import KubeApi, Resource
from rollwise.adapters.manifests.types import Manifest
from rollwise.controller import handlers, readiness
from rollwise.controller.fencing import (
    FencedKubeApi,
    LeadershipMetrics,
    NotLeaderError,
    only_when_leading,
    take_over,
)
from rollwise.controller.leadership import (
    ElectionConfig,
    LeaderElector,
    LeaseRecord,
    claim,
    held_by_other,
    leads,
    micro_time,
    released,
)
from rollwise.controller.queue import Key, WorkerPool, WorkQueue
from rollwise.controller.readiness import LeaderRuntime
from rollwise.controller.settings import OperatorSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------- pure decisions


def test_a_lease_held_by_another_is_respected_until_unchanged_for_its_duration() -> None:
    record = LeaseRecord(holder="b", duration_s=15)
    assert held_by_other(record, "a", observed_at=100.0, now=100.0)
    assert held_by_other(record, "a", observed_at=100.0, now=114.9)
    assert not held_by_other(record, "a", observed_at=100.0, now=115.0)


def test_an_empty_or_own_lease_is_never_held_by_another() -> None:
    assert not held_by_other(LeaseRecord(holder=""), "a", observed_at=100.0, now=100.0)
    assert not held_by_other(LeaseRecord(holder="a"), "a", observed_at=100.0, now=100.0)


def test_expiry_counts_the_records_own_duration_so_a_released_lease_goes_at_once() -> None:
    record = released(LeaseRecord(holder="b", duration_s=15), T0)
    assert record.holder == "" and record.duration_s == 1
    assert not held_by_other(record, "a", observed_at=100.0, now=100.0)


def test_a_renewal_keeps_acquire_time_and_transitions() -> None:
    first = claim(None, "a", T0, 15)
    renewed = claim(first, "a", T0 + timedelta(seconds=2), 15)
    assert renewed.acquire_time == first.acquire_time == micro_time(T0)
    assert renewed.renew_time == micro_time(T0 + timedelta(seconds=2))
    assert renewed.transitions == first.transitions == 0


def test_a_takeover_starts_its_own_term_and_counts_a_transition() -> None:
    theirs = LeaseRecord(holder="b", duration_s=15, acquire_time="x", renew_time="x", transitions=4)
    mine = claim(theirs, "a", T0, 15)
    assert (mine.holder, mine.acquire_time, mine.transitions) == ("a", micro_time(T0), 5)
    # Taking a released (holderless) lease is no transition from anyone.
    assert claim(released(theirs, T0), "a", T0, 15).transitions == 4


def test_the_fence_closes_at_the_renew_deadline_counted_from_when_the_renewal_was_sent() -> None:
    assert leads(renewed_at=50.0, now=59.9, renew_deadline_s=10.0)
    assert not leads(renewed_at=50.0, now=60.0, renew_deadline_s=10.0)
    assert not leads(renewed_at=None, now=50.0, renew_deadline_s=10.0)


def test_micro_time_is_kubernetes_microtime_in_utc() -> None:
    assert micro_time(T0 + timedelta(microseconds=7)) == "2026-01-01T00:00:00.000007Z"


# ----------------------------------------------------------------------------- settings


def test_election_timing_follows_client_go_rules() -> None:
    OperatorSettings(namespaces=("shop",), leader_elect=True)
    with pytest.raises(ValueError, match="greater than the renew deadline"):
        OperatorSettings(namespaces=("shop",), leader_elect=True, renew_deadline_s=15.0)
    with pytest.raises(ValueError, match=r"1\.2 x the retry period"):
        OperatorSettings(namespaces=("shop",), leader_elect=True, retry_period_s=9.0)


def test_clusterwide_election_needs_a_lease_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    with pytest.raises(ValueError, match="needs the Lease's namespace"):
        OperatorSettings(clusterwide=True, leader_elect=True)
    monkeypatch.setenv("POD_NAMESPACE", "rollwise-system")
    settings = OperatorSettings(clusterwide=True, leader_elect=True)
    assert settings.election_namespace == "rollwise-system"


def test_identity_is_the_pod_name_else_hostname_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "rollwise-7d9-abcde")
    assert OperatorSettings(namespaces=("shop",)).election_identity == "rollwise-7d9-abcde"
    monkeypatch.delenv("POD_NAME")
    identity = OperatorSettings(namespaces=("shop",)).election_identity
    assert identity == f"{socket.gethostname()}-{os.getpid()}"


def test_leader_election_is_off_unless_asked_and_read_from_the_cli() -> None:
    from rollwise.cli.main import _parser

    off = OperatorSettings.from_args(_parser().parse_args(["run", "-n", "shop"]))
    assert not off.leader_elect
    on = OperatorSettings.from_args(
        _parser().parse_args(
            [
                "run",
                "-n",
                "shop",
                "--leader-elect",
                "--leader-elect-lease-duration",
                "6",
                "--leader-elect-renew-deadline",
                "4",
                "--leader-elect-retry-period",
                "1",
                "--leader-elect-identity",
                "op-a",
            ]
        )
    )
    assert (on.leader_elect, on.lease_duration_s, on.renew_deadline_s, on.retry_period_s) == (
        True,
        6.0,
        4.0,
        1.0,
    )
    assert (on.election_identity, on.election_namespace, on.lease_name) == (
        "op-a",
        "shop",
        "rollwise-leader",
    )


# ----------------------------------------------------------------------------- the elector


class LeaseStore(KubeApi):
    """One candidate's link to an in-memory API server for Leases (`objects`, shared by all
    links): resourceVersions, 409 on a stale update or on creating an existing name, a log of
    every write; `down` cuts this link only (a partition), `stale` serves one old read."""

    def __init__(self, objects: dict[str, Manifest], writes: list[tuple[str, str]]) -> None:
        self.objects = objects
        self.writes = writes  # (verb, holder)
        self.down = False
        self.stale: Manifest | None = None

    def _check(self) -> None:
        if self.down:
            raise AdapterError("Lease", "connection refused", transient=True)

    def get(self, res: Resource, namespace: str | None, name: str) -> Manifest | None:
        self._check()
        if self.stale is not None:
            old, self.stale = self.stale, None
            return old
        found = self.objects.get(name)
        return json.loads(json.dumps(found)) if found else None

    def _version(self) -> str:
        return str(
            1
            + max((int(o["metadata"]["resourceVersion"]) for o in self.objects.values()), default=0)
        )

    def create(self, res: Resource, namespace: str | None, body: Manifest) -> Manifest:
        self._check()
        name = body["metadata"]["name"]
        if name in self.objects:
            raise AdapterError("Lease", "already exists", status=409)
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": self._version()}}
        self.objects[name] = stored
        self.writes.append(("create", body["spec"]["holderIdentity"] or ""))
        return stored

    def request(
        self,
        method: str,
        path: str,
        obj: str,
        verb: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Manifest:
        assert method == "PUT", method  # get and create are above; the elector only updates
        self._check()
        name = path.rsplit("/", 1)[-1]
        current = self.objects[name]
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise AdapterError("Lease", "conflict", status=409)
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": self._version()}}
        self.objects[name] = stored
        self.writes.append(("update", body["spec"]["holderIdentity"]))
        return stored


@dataclass
class Clock:
    now: float = 1000.0
    wall: datetime = T0

    def monotonic(self) -> float:
        return self.now

    def walltime(self) -> datetime:
        return self.wall + timedelta(seconds=self.now - 1000.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Candidates:
    objects: dict[str, Manifest] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)
    links: dict[str, LeaseStore] = field(default_factory=dict)

    def elector(self, identity: str) -> LeaderElector:
        link = self.links[identity] = LeaseStore(self.objects, self.writes)
        config = ElectionConfig(namespace="ops", name="rollwise-leader", identity=identity)
        return LeaderElector(link, config, monotonic=self.clock.monotonic, wall=self.clock.walltime)

    @property
    def lease(self) -> Manifest:
        return self.objects["rollwise-leader"]


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    world = Candidates()
    a = world.elector("a")
    assert a.try_acquire_or_renew() and a.is_leader()
    lease = world.lease
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15


def test_a_standby_does_not_take_a_renewed_lease_and_writes_nothing() -> None:
    world = Candidates()
    a, b = world.elector("a"), world.elector("b")
    a.try_acquire_or_renew()
    writes = len(world.writes)
    for _ in range(30):  # a minute of 2 s tries, the leader renewing all along
        world.clock.advance(2.0)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
        assert a.is_leader() and not b.is_leader()
    assert all(holder == "a" for _, holder in world.writes[writes:])
    assert b.holder == "a"


def test_a_standby_takes_over_one_lease_duration_after_the_last_renewal_it_saw() -> None:
    world = Candidates()
    a, b = world.elector("a"), world.elector("b")
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees a's record now: t = 1000
    world.clock.advance(14.9)  # a has died without a word
    assert not b.try_acquire_or_renew()
    world.clock.advance(0.1)
    assert b.try_acquire_or_renew() and b.is_leader()
    assert world.lease["spec"]["leaseTransitions"] == 1


def test_a_partitioned_leader_is_fenced_before_the_standby_can_lead() -> None:
    world = Candidates()
    a, b = world.elector("a"), world.elector("b")
    a.try_acquire_or_renew()  # sent at 1000: a may write until 1010
    b.try_acquire_or_renew()  # b sees a's record at 1000: it may take over from 1015
    world.links["a"].down = True
    timeline: list[tuple[float, bool, bool]] = []
    for _ in range(16):
        world.clock.advance(1.0)
        a.try_acquire_or_renew()
        b_leads = b.is_leader() or b.try_acquire_or_renew()
        timeline.append((world.clock.now, a.is_leader(), b_leads))
    assert not any(a_leads and b_leads for _, a_leads, b_leads in timeline)
    last_a = max(t for t, a_leads, _ in timeline if a_leads)
    first_b = min(t for t, _, b_leads in timeline if b_leads)
    assert (last_a, first_b) == (1009.0, 1015.0)  # the 5 s margin between the two


def test_two_candidates_racing_for_an_expired_lease_never_both_win() -> None:
    world = Candidates()
    old, a, b = world.elector("old"), world.elector("a"), world.elector("b")
    old.try_acquire_or_renew()
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    world.clock.advance(16.0)  # old is gone; a and b both read the expired record...
    expired = json.loads(json.dumps(world.lease))
    assert a.try_acquire_or_renew()
    world.links["b"].stale = expired  # ...b's read happened before a's write landed
    assert not b.try_acquire_or_renew()  # its conditional update is a 409
    assert a.is_leader() and not b.is_leader()
    assert world.lease["spec"]["holderIdentity"] == "a"
    assert not b.try_acquire_or_renew()  # and now it sees a's fresh record


def test_a_conflicting_update_is_a_lost_try_not_a_win() -> None:
    world = Candidates()
    a = world.elector("a")
    a.try_acquire_or_renew()
    world.clock.advance(11.0)  # a's fence has closed meanwhile
    world.links["a"].stale = {**world.lease, "metadata": {"resourceVersion": "0"}}
    assert not a.try_acquire_or_renew() and not a.is_leader()
    assert a.try_acquire_or_renew() and a.is_leader()


def test_release_frees_the_lease_for_the_next_try_of_a_standby() -> None:
    world = Candidates()
    a, b = world.elector("a"), world.elector("b")
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.stop()
    assert not a.is_leader()
    assert a.release()
    world.clock.advance(2.0)
    assert b.try_acquire_or_renew() and b.is_leader()


def test_a_lost_leader_closes_its_fence_and_calls_back_once() -> None:
    world = Candidates()
    a = world.elector("a")
    lost: list[bool] = []
    a.on_stopped_leading = lambda: lost.append(True)
    a.try_acquire_or_renew()
    world.links["a"].down = True
    world.clock.advance(10.0)
    assert a._gave_up()
    a._lose()
    assert lost == [True] and a.lost and not a.is_leader()


# ----------------------------------------------------------------------------- the fence


class Response:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.reason, self._data = status, "OK", data

    def read(self) -> bytes:
        return self._data


class RecordingClient:
    """Just enough of kubernetes.client.ApiClient for KubeApi.request: records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def param_serialize(self, method: str, path: str, **kwargs: Any) -> tuple[Any, ...]:
        return method, path, {}, kwargs.get("body"), []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self.sent.append((method, url))
        return Response(200, b'{"metadata": {"resourceVersion": "1"}}')


def fenced(leading: list[bool]) -> tuple[FencedKubeApi, RecordingClient, LeadershipMetrics]:
    client = RecordingClient()
    metrics = LeadershipMetrics(CollectorRegistry(), lambda: leading[0])
    api = FencedKubeApi(client, lambda: leading[0], metrics)  # type: ignore[arg-type]
    return api, client, metrics


def test_a_non_leader_sends_no_write_but_may_read() -> None:
    leading = [False]
    api, client, metrics = fenced(leading)
    res = Resource("Job", "batch", "v1", "jobs")
    with pytest.raises(NotLeaderError, match="does not hold the leader lease"):
        api.create(res, "shop", {"metadata": {"name": "payment-migrate-abc"}})
    with pytest.raises(NotLeaderError):
        api.patch(res, "shop", "x", {"spec": {}})
    with pytest.raises(NotLeaderError):
        api.delete(res, "shop", "x", {})
    assert api.get(res, "shop", "x") is not None
    assert [method for method, _ in client.sent] == ["GET"]
    assert metrics.refused._value.get() == 3


def test_the_fence_is_asked_before_every_single_write() -> None:
    leading = [True]
    api, client, metrics = fenced(leading)
    res = Resource("Job", "batch", "v1", "jobs")
    api.create(res, "shop", {"metadata": {"name": "a"}})
    leading[0] = False  # lost between two writes of one pass
    with pytest.raises(NotLeaderError):
        api.create(res, "shop", {"metadata": {"name": "b"}})
    assert [method for method, _ in client.sent] == ["POST"]
    assert metrics.writes.labels(method="POST")._value.get() == 1
    assert api.drain(timeout=0.1)


def test_the_leader_gauge_follows_the_fence() -> None:
    leading = [True]
    registry = CollectorRegistry()
    LeadershipMetrics(registry, lambda: leading[0])
    assert registry.get_sample_value("rollwise_leader") == 1.0
    leading[0] = False
    assert registry.get_sample_value("rollwise_leader") == 0.0


def test_a_standby_runs_no_pass_and_a_leader_runs_every_one() -> None:
    passes: list[Key] = []
    leading = [False]

    def reconcile(key: Key) -> float | None:
        passes.append(key)
        return 5.0

    gated = only_when_leading(reconcile, lambda: leading[0])
    assert gated(("shop", "payment")) is None and passes == []
    leading[0] = True
    assert gated(("shop", "payment")) == 5.0 and passes == [("shop", "payment")]


def test_takeover_queues_every_known_service_and_reads_each_afresh() -> None:
    bodies = ServiceBodies()
    for name in ("payment", "orders"):
        bodies.put({"metadata": {"namespace": "shop", "name": name, "resourceVersion": "7"}})
    queue = WorkQueue()
    assert take_over(bodies, queue) == 2
    assert {queue.get(timeout=0), queue.get(timeout=0)} == {("shop", "payment"), ("shop", "orders")}
    # The previous leader's last write may not have reached this watch: the first pass GETs.
    assert bodies.get("shop", "payment") is None


# ----------------------------------------------------------------------------- probes


def runtime_with(elector: LeaderElector | None, *, workers_running: bool) -> LeaderRuntime:
    queue = WorkQueue()
    pool = WorkerPool(queue, lambda key: None, 1)
    if workers_running:
        pool.start()
    return LeaderRuntime(queue=queue, pool=pool, api_client=None, elector=elector)  # type: ignore[arg-type]


def get(app: Any, path: str) -> tuple[str, dict[str, Any] | str]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = status

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    text = body.decode()
    return answer["status"], json.loads(text) if path == "/readyz" else text


def test_readyz_is_ready_for_a_warm_standby_and_says_it_does_not_lead() -> None:
    world = Candidates()
    a, b = world.elector("a"), world.elector("b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    runtime = runtime_with(b, workers_running=True)
    try:
        status, body = get(readiness.app(runtime, CollectorRegistry()), "/readyz")
    finally:
        runtime.pool.stop(1.0)
    assert status == "200 OK"
    assert body == {
        "ready": True,
        "election": True,
        "leader": False,
        "identity": "b",
        "holder": "a",
        "lost": False,
    }


def test_readyz_is_not_ready_before_the_cache_is_filled_nor_after_the_lease_is_lost() -> None:
    world = Candidates()
    a = world.elector("a")
    a.try_acquire_or_renew()
    cold = runtime_with(a, workers_running=False)
    assert get(readiness.app(cold, CollectorRegistry()), "/readyz")[0].startswith("503")
    warm = runtime_with(a, workers_running=True)
    try:
        status, body = get(readiness.app(warm, CollectorRegistry()), "/readyz")
        assert status == "200 OK" and isinstance(body, dict) and body["leader"] is True
        a._lose()
        status, body = get(readiness.app(warm, CollectorRegistry()), "/readyz")
        assert status.startswith("503") and isinstance(body, dict) and body["lost"] is True
    finally:
        warm.pool.stop(1.0)


def test_without_election_the_only_process_leads_and_metrics_still_answer() -> None:
    registry = CollectorRegistry()
    LeadershipMetrics(registry, lambda: True)
    runtime = runtime_with(None, workers_running=False)
    app = readiness.app(runtime, registry)
    assert get(app, "/readyz")[1] == {"ready": False, "election": False, "leader": True}
    status, text = get(app, "/metrics")
    assert status == "200 OK" and "rollwise_leader 1.0" in str(text)


def test_healthz_carries_leadership_through_a_kopf_probe() -> None:
    world = Candidates()
    a = world.elector("a")
    a.try_acquire_or_renew()
    result = readiness.leadership(runtime_with(a, workers_running=False))
    assert result["leader"] is True and result["identity"] == "a"
    probes = [h.id for h in handlers.registry._activities.get_all_handlers()]
    assert "leadership" in probes


def test_a_try_in_flight_when_stopped_does_not_reopen_the_fence() -> None:
    world = Candidates()
    a = world.elector("a")
    link = world.links["a"]
    real_get = link.get

    def get_then_stop(*args: Any, **kwargs: Any) -> Manifest | None:
        found = real_get(*args, **kwargs)
        a.stop()  # SIGTERM arrives while the renewal is on its way
        return found

    link.get = get_then_stop  # type: ignore[method-assign]
    a.try_acquire_or_renew()
    assert not a.is_leader()
