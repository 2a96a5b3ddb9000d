"""FleetRollout end to end on real control planes: a hub and three member clusters, each member
with its own rollwise doing the canary and the analysis against a real Prometheus.

One proving ground for the module (tests/harness/fleet.py), shared by every test; each test
rolls its own service (`pay-*`) in the members' namespace `shop`, under its own FleetRollout.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import argocd_lua, kstatus
from tests.harness.fleet import (
    HUB_NS,
    FleetGround,
    condition,
    member_entry,
    three_waves,
    wave_phases,
)
from tests.harness.run import HarnessRun
from tests.harness.wait import hold_for

PLUGIN = Path(sys.executable).with_name("kubectl-rollwise")


@pytest.fixture(scope="module")
def fleet(harness_run: HarnessRun) -> Iterator[FleetGround]:
    ground = FleetGround(harness_run)
    ground.start()
    began, cpu_at_start = time.monotonic(), ground.cpu_seconds()
    harness_run.note(
        f"fleet proving ground (hub + 3 members, 3 simulators, Prometheus, 4 operators) up in "
        f"{ground.timings['start_s']:.1f}s; CPU {cpu_at_start:.1f}s to start; "
        f"RSS {ground.rss_mib():.0f} MiB"
    )
    try:
        yield ground
    finally:
        wall = time.monotonic() - began
        used = ground.cpu_seconds() - cpu_at_start
        harness_run.note(
            f"fleet tests: {wall:.0f}s wall, CPU {used:.1f}s ({100 * used / max(wall, 1):.0f}% "
            f"of one core) by the processes still alive at the end"
        )
        ground.stop()


def plugin(fleet: FleetGround, *args: str) -> str:
    result = subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(fleet.hub.kubeconfig), "-n", HUB_NS, "fleet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def gitops_health(fleet: FleetGround, name: str) -> tuple[str, str, str]:
    """(kstatus status, Argo CD health, Argo CD message) of the live FleetRollout, as Flux and
    Argo CD would read it (deploy/argocd/health-fleetrollout.lua run by a real Lua)."""
    obj = fleet.fleet(name)
    [computed] = kstatus.compute([obj])
    health, message = argocd_lua.health(obj)
    return computed["status"], health, message


def deploy_everywhere(fleet: FleetGround, service: str, **bad: float) -> None:
    for name, member in fleet.members.items():
        member.deploy(service, error_rate=bad.get(name.replace("-", "_"), 0.0))


def spec_version(fleet: FleetGround, member: str, service: str) -> tuple[str, int]:
    obj = fleet.members[member].service(service)
    return obj["spec"].get("version"), obj["metadata"]["generation"]


def test_a_three_wave_fleet_rollout_completes(fleet: FleetGround) -> None:
    service = "pay-ok"
    deploy_everywhere(fleet, service)
    fleet.apply_fleet(
        fleet.fleet_manifest("pay-ok", service, "2.0.0", waves=three_waves(approval=True))
    )

    # canary and us roll on their own; rest waits for a person.
    status = fleet.wait_fleet_phase("pay-ok", "WaitingForApproval")
    assert wave_phases(status) == ["Succeeded", "Succeeded", "WaitingForApproval"]
    assert spec_version(fleet, "member-c", service) == ("1.0.0", 1)
    view = plugin(fleet, "status", "pay-ok")
    assert "└─ member-a (eu)" in view and "WaitingForApproval" in view
    assert gitops_health(fleet, "pay-ok")[:2] == ("InProgress", "Suspended")

    promoted = plugin(fleet, "promote", "pay-ok", "--wait", "--timeout", "60")
    assert "wave rest approved" in promoted

    status = fleet.wait_fleet_phase("pay-ok", "Succeeded")
    for name, member in fleet.members.items():
        entry = member_entry(status, name)
        assert (entry["phase"], entry["version"], entry["previousVersion"]) == (
            "Succeeded",
            "2.0.0",
            "1.0.0",
        )
        member_status = member.service(service)["status"]
        assert (member_status["phase"], member_status["stable"]["version"]) == ("Healthy", "2.0.0")
        assert spec_version(fleet, name, service) == ("2.0.0", 2)  # patched exactly once
        assert len(member.migration_jobs(service)) == 2  # 1.0.0 and 2.0.0, once each
    approvals = [h for h in status["history"] if h["event"] == "WaveApproved"]
    assert approvals and "kubectl rollwise fleet promote" in approvals[0]["actor"]
    view = plugin(fleet, "status", "pay-ok")
    (fleet.run.log_dir / "fleet-status-succeeded.txt").write_text(view)
    assert view.count("Succeeded") >= 7  # the fleet, three waves, three clusters
    assert gitops_health(fleet, "pay-ok")[:2] == ("Current", "Healthy")


def test_a_bad_version_fails_in_wave_one_and_never_reaches_wave_two(fleet: FleetGround) -> None:
    service = "pay-bad"
    deploy_everywhere(fleet, service)
    fleet.apply_fleet(
        fleet.fleet_manifest(
            "pay-bad",
            service,
            "2.0.0",
            containers=[{"name": "app", "env": [{"name": "SIM_ERROR_RATE", "value": "0.5"}]}],
        )
    )

    status = fleet.wait_fleet_phase("pay-bad", "Failed")
    assert wave_phases(status) == ["Failed", "Halted", "Halted"]
    canary = member_entry(status, "member-a")
    assert canary["phase"] == "Failed" and canary["version"] == "1.0.0"
    assert "GateFailed" in canary["message"]
    member_a = fleet.members["member-a"].service(service)["status"]
    assert (member_a["phase"], member_a["stable"]["version"]) == ("RolledBack", "1.0.0")
    for name in ("member-b", "member-c"):
        assert member_entry(status, name)["phase"] == "Skipped"
        assert spec_version(fleet, name, service) == ("1.0.0", 1)  # never patched
    view = plugin(fleet, "status", "pay-bad")
    (fleet.run.log_dir / "fleet-status-failed.txt").write_text(view)
    assert "GateFailed" in view
    ks, health, message = gitops_health(fleet, "pay-bad")
    assert (ks, health) == ("Failed", "Degraded"), message
    assert "GateFailed" in message


def test_a_fleet_naming_an_unknown_cluster_is_invalid_and_patches_nothing(
    fleet: FleetGround,
) -> None:
    service = "pay-ok"  # Healthy at 2.0.0 in every member after the first test, or at 1.0.0
    before = {
        name: m.service(service)["metadata"]["generation"] for name, m in fleet.members.items()
    }
    manifest = fleet.fleet_manifest(
        "pay-invalid", service, "9.9.9", waves=[{"name": "all", "clusters": ["member-z"]}]
    )
    fleet.apply_fleet(manifest)  # the CRD cannot check names against spec.clusters; the hub does
    status = fleet.wait_fleet_phase("pay-invalid", "Invalid", timeout=60)
    assert "unknown cluster member-z" in status["message"]
    assert condition(status, "Degraded")["status"] == "True"
    ks, health, message = gitops_health(fleet, "pay-invalid")
    assert (ks, health) == ("Failed", "Degraded"), message
    after = {
        name: m.service(service)["metadata"]["generation"] for name, m in fleet.members.items()
    }
    assert after == before


def test_with_the_rollback_policy_the_promoted_cluster_returns_to_the_old_version(
    fleet: FleetGround,
) -> None:
    service = "pay-rb"
    # member-b answers half its requests with 500 whatever the version: any canary there fails.
    deploy_everywhere(fleet, service, member_b=0.5)
    fleet.apply_fleet(
        fleet.fleet_manifest("pay-rb", service, "2.0.0", on_failure="RollbackPromoted")
    )

    status = fleet.wait_fleet_phase("pay-rb", "RolledBack", timeout=300)
    assert wave_phases(status) == ["RolledBack", "RolledBack", "Halted"]
    canary = member_entry(status, "member-a")
    assert (canary["phase"], canary["version"]) == ("RolledBack", "1.0.0")
    member_a = fleet.members["member-a"].service(service)
    assert member_a["spec"]["version"] == "1.0.0"
    assert (member_a["status"]["phase"], member_a["status"]["stable"]["version"]) == (
        "Healthy",
        "1.0.0",
    )
    member_b = fleet.members["member-b"].service(service)
    assert member_b["spec"]["version"] == "1.0.0"  # its spec restored too, no drift left
    assert member_b["status"]["stable"]["version"] == "1.0.0"
    assert spec_version(fleet, "member-c", service) == ("1.0.0", 1)
    events = [h["event"] for h in status["history"]]
    assert events.index("MemberFailed") < events.index("FleetRollingBack")
    rolled = [h["cluster"] for h in status["history"] if h["event"] == "MemberRolledBack"]
    assert rolled[-1] == "member-a"  # the earlier wave last


def test_an_unreachable_member_pauses_the_fleet_and_a_killed_hub_repeats_nothing(
    fleet: FleetGround,
) -> None:
    service = "pay-rel"
    deploy_everywhere(fleet, service)
    fleet.apply_fleet(fleet.fleet_manifest("pay-rel", service, "2.0.0"))
    member_b = fleet.members["member-b"]

    # Wave 2 under way: member-b is patched, its rollwise rolling it out. Its apiserver stops.
    fleet.wait_fleet(
        "pay-rel",
        lambda s: member_entry(s, "member-b")["phase"] in ("Progressing", "Succeeded"),
        240,
        "member-b patched",
    )
    member_b.cluster.stop_components()
    try:
        status = fleet.wait_fleet(
            "pay-rel",
            lambda s: condition(s, "MemberUnreachable").get("status") == "True",
            60,
            "MemberUnreachable",
        )
        assert "member-b" in condition(status, "MemberUnreachable")["message"]
        assert member_entry(status, "member-b")["reachable"] is False

        def still_waiting() -> bool:
            s = fleet.fleet_status("pay-rel")
            return s["phase"] == "Progressing" and s.get("currentWave") == "us"

        hold_for(still_waiting, duration=5, message="the fleet waits in wave us")
        assert spec_version(fleet, "member-c", service) == ("1.0.0", 1)
    finally:
        member_b.cluster.start_components()

    fleet.wait_fleet(
        "pay-rel",
        lambda s: condition(s, "MemberUnreachable").get("status") == "False",
        120,
        "member-b reachable again",
    )
    # Wave 3: the hub dies (SIGKILL, from inside: the moments cannot be timed from outside)
    # once right after recording member-c's previous spec, before patching it; once right
    # after patching it, before recording that; then a third hub finishes the fleet.
    hub = fleet.hub_operator
    assert hub is not None
    hub.stop()
    assert member_entry(fleet.fleet_status("pay-rel"), "member-c")["phase"] == "Pending"
    for moment in ("patching:member-c", "patched:member-c"):
        with contextlib.suppress(RuntimeError):  # it may die before /healthz first answers
            hub.start(env={"ROLLWISE_FLEET_CRASH_AT": moment})
        hub.wait_exit(timeout=240)
        assert f"{moment}: SIGKILL" in hub.log_path.read_text()
        if moment.startswith("patching"):
            assert member_entry(fleet.fleet_status("pay-rel"), "member-c")["phase"] == "Patching"
            assert spec_version(fleet, "member-c", service) == ("1.0.0", 1)
        else:
            assert spec_version(fleet, "member-c", service) == ("2.0.0", 2)
    hub.start()

    status = fleet.wait_fleet_phase("pay-rel", "Succeeded")
    for name, member in fleet.members.items():
        assert member_entry(status, name)["version"] == "2.0.0"
        assert spec_version(fleet, name, service) == ("2.0.0", 2)  # one patch, never two
        jobs = member.migration_jobs(service)
        assert len(jobs) == 2, jobs  # the 2.0.0 migration ran once in every member
    history = [h["event"] for h in status["history"]]
    assert "MemberUnreachable" in history and "MemberReachable" in history
    assert fleet.members["member-b"].operator.alive()


def roll_member_a_with(
    fleet: FleetGround, kubeconfig: dict[str, Any], service: str, version: str
) -> tuple[dict[str, Any], int]:
    """A FleetRollout of `service` to member-a alone through `kubeconfig` (stored in a Secret
    of its own): its status once MemberUnreachable is True, and the member service's
    generation before (it must stay there: nothing patched)."""
    secret_name = f"member-a-{service}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": HUB_NS},
        "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()},
    }
    fleet.hub.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))
    member_a = fleet.members["member-a"]
    member_a.deploy(service)
    before = int(member_a.service(service)["metadata"]["generation"])
    manifest = fleet.fleet_manifest(
        service, service, version, waves=[{"name": "all", "clusters": ["member-a"]}]
    )
    manifest["spec"]["clusters"] = [
        {
            "name": "member-a",
            "region": "eu",
            "kubeconfigSecretRef": {"name": secret_name, "key": "kubeconfig"},
        }
    ]
    fleet.apply_fleet(manifest)
    status = fleet.wait_fleet(
        service,
        lambda s: condition(s, "MemberUnreachable").get("status") == "True",
        60,
        "MemberUnreachable",
    )
    return status, before


def test_a_member_kubeconfig_with_an_exec_plugin_is_refused_and_its_command_never_runs(
    fleet: FleetGround, tmp_path: Path
) -> None:
    """Issue 21: a kubeconfig Secret whose `users[].user.exec` would run a command in the hub.
    The hub refuses it naming the field; the marker file the command would create never
    appears; no member is patched."""
    marker = tmp_path / "exec-ran"
    credential = json.dumps(
        {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
         "status": {"token": "x"}}
    )  # fmt: skip
    member_a = fleet.members["member-a"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "m", "cluster": {"server": member_a.cluster.server}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "sh",
                        "args": ["-c", f"touch {marker}; echo '{credential}'"],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "m", "user": "u"}}],
        "current-context": "c",
    }
    service = "pay-exec"

    status, before = roll_member_a_with(fleet, kubeconfig, service, "9.9.8")

    message = condition(status, "MemberUnreachable")["message"]
    assert "user.exec is refused: an exec plugin would run a program in the hub" in message
    assert not marker.exists(), "the exec command ran in the hub"
    assert member_a.service(service)["metadata"]["generation"] == before


def test_a_member_server_at_a_refused_address_is_never_called_and_names_the_member(
    fleet: FleetGround,
) -> None:
    """Issue 21: member `server` addresses go through the operator's one outbound policy. A
    kubeconfig Secret (valid CA and token, taken from member-a's) whose server is
    https://0.0.0.0:<port> (on Linux that reaches the hub's own loopback listeners) is refused
    as an unspecified address: MemberUnreachable names the member and why, and the listener
    on that port never sees a connection. (Loopback members are allowed: the harness passes
    --outbound-allow-loopback to the hub, as to every operator.)"""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        secret = json.loads(
            fleet.hub.kubectl(
                "get", "secret", "member-a-kubeconfig", "-n", HUB_NS, "-o", "json"
            ).stdout
        )
        config = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
        for entry in config["clusters"]:
            entry["cluster"]["server"] = f"https://0.0.0.0:{port}"
        member_a = fleet.members["member-a"]
        service = "pay-zero"
        status, before = roll_member_a_with(fleet, config, service, "9.9.7")
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()

    message = condition(status, "MemberUnreachable")["message"]
    assert "member-a" in message and "its server is refused" in message, message
    assert "a link-local, metadata or unspecified address" in message, message
    assert accepted == [], "the hub connected to the refused address"
    assert member_a.service(service)["metadata"]["generation"] == before
