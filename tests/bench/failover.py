"""Failover benchmark: two operator processes with the chart's election settings (15/10/2 s),
the leader SIGKILLed `--kills` times at a random moment of its renew cycle.

    .venv/bin/python -m tests.bench.failover [--kills 10] [--services 20]

Per kill: `lease_won_s`, SIGKILL -> the standby holds the Lease (read from the Lease every
0.1 s); `first_pass_s`, SIGKILL -> the new leader has finished a pass over every service (its
`rollwise_reconcile_duration_seconds_count` grew by `--services`). The killed process is
started again as the standby, warm, before the next kill. The audit log checks that no
process wrote before it held the Lease. Writes `tests/bench/results/<timestamp>-failover.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.bench.run import RESULTS, machine
from tests.bench.stats import summary
from tests.harness import processes
from tests.harness.fixtures import CRDS
from tests.harness.ha import (
    audited_cluster,
    by,
    elected_operator,
    lease_holder,
    metric_value,
    wait_role,
    writes,
)
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

# The chart's defaults (charts/rollwise/values.yaml, leaderElection).
LEASE_S, RENEW_S, RETRY_S = 15.0, 10.0, 2.0
NAMESPACE = "failover"
PASSES = "rollwise_reconcile_duration_seconds_count"


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.failover", description=__doc__)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--services", type=int, default=20, help="ProgressiveServices mid-canary")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def paused_canaries(rollouts: Rollouts, count: int) -> None:
    """`count` services whose canary waits at an indefinite pause: work for every pass."""
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    for i in range(count):
        name = f"svc-{i}"
        for version in ("1.0.0", "2.0.0"):
            rollouts.apply(
                service_manifest(
                    NAMESPACE, version, name=name, replicas=2, migration=False, steps=steps
                )
            )
            if version == "1.0.0":
                rollouts.wait_phase("Healthy", version="1.0.0", timeout=120, name=name)
    for i in range(count):
        rollouts.wait_status(lambda s: s.get("phase") == "Paused", 120, "paused", name=f"svc-{i}")


def measure(args: argparse.Namespace, run: HarnessRun) -> dict[str, Any]:
    cluster = audited_cluster(run, f"rwbf-{os.getpid()}")
    cluster.start()
    try:
        cluster.install_crds(CRDS)
        api = cluster.api_client()
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        wait_for(
            lambda: core.read_namespaced_service_account("default", NAMESPACE),
            timeout=30,
            message="default ServiceAccount",
            ignore=(client.exceptions.ApiException,),
        )
        ops: dict[str, OperatorProcess] = {
            identity: elected_operator(
                run,
                cluster,
                NAMESPACE,
                identity,
                lease_duration=LEASE_S,
                renew_deadline=RENEW_S,
                retry_period=RETRY_S,
            )
            for identity in ("op-a", "op-b")
        }
        try:
            ops["op-a"].start()
            wait_role(ops["op-a"], leader=True, timeout=60)
            ops["op-b"].start()
            wait_role(ops["op-b"], leader=False, timeout=60)
            paused_canaries(Rollouts(api, NAMESPACE), args.services)
            return kill_loop(args, api, ops) | {
                "writes_before_leading": writes_before_leading(cluster),
            }
        finally:
            for operator in ops.values():
                operator.stop()
    finally:
        cluster.stop()


def kill_loop(
    args: argparse.Namespace, api: client.ApiClient, ops: dict[str, OperatorProcess]
) -> dict[str, Any]:
    won: list[float] = []
    passed: list[float] = []
    leader, standby = "op-a", "op-b"
    for kill in range(args.kills):
        lease_s, pass_s = one_failover(api, ops[leader], ops[standby], standby, args.services)
        won.append(lease_s)
        passed.append(pass_s)
        print(f"[failover] kill {kill + 1}: Lease won {lease_s:.2f}s, pass done {pass_s:.2f}s")
        ops[leader].start()
        leader, standby = standby, leader
    return {
        "kills": args.kills,
        "services": args.services,
        "lease_won_s": summary(won, 2) | {"samples": [round(x, 2) for x in won]},
        "first_pass_s": summary(passed, 2) | {"samples": [round(x, 2) for x in passed]},
    }


def one_failover(
    api: client.ApiClient,
    leader: OperatorProcess,
    standby: OperatorProcess,
    identity: str,
    services: int,
) -> tuple[float, float]:
    """SIGKILL the leader: seconds until the standby holds the Lease, and until its first
    pass over every service is done."""
    wait_role(standby, leader=False, timeout=60)
    passes_before = metric_value(standby.metrics(), PASSES)
    # A random moment of the leader's 2 s renew cycle (a benchmark's jitter, not a wait).
    time.sleep(random.uniform(0.0, RETRY_S))
    killed = time.monotonic()
    leader.kill()
    wait_for(
        lambda: lease_holder(api, NAMESPACE) == identity,
        timeout=LEASE_S * 3,
        interval=0.1,
        message=f"{identity} to hold the Lease",
    )
    won = time.monotonic() - killed
    wait_for(
        lambda: metric_value(standby.metrics(), PASSES) >= passes_before + services,
        timeout=60,
        interval=0.1,
        message=f"{identity}'s first pass over every service",
    )
    return won, time.monotonic() - killed


def writes_before_leading(cluster: Any) -> int:
    """Writes (not the Lease) that a process sent while another held the Lease: from the
    audit log, each process's writes must fall between its Lease wins and its SIGKILL."""
    found = writes(cluster, NAMESPACE)
    holder = ""
    bad = 0
    for write in found:
        identity = write.user_agent.removeprefix("rollwise/").split(" ")[0]
        if write.lease and write.code in (200, 201) and write.user_agent.startswith("rollwise/"):
            holder = identity
        elif write.user_agent.startswith("rollwise/") and identity != holder:
            bad += 1
    assert by("op-a", found), "the audit log holds no write of op-a: is it enabled?"
    return bad


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    processes.install_signal_handlers()
    run = HarnessRun()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}-failover.json"
    print(f"[failover] logs: {run.log_dir}\n[failover] results: {path}", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        failover = measure(args, run)
    finally:
        processes.run_teardown()
        run.remove_state()
    results = {
        "machine": machine(),
        "started": started,
        "failover": {
            "lease_duration_s": LEASE_S,
            "renew_deadline_s": RENEW_S,
            "retry_period_s": RETRY_S,
            **failover,
        },
    }
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["failover"], indent=2))
    return 0 if failover["writes_before_leading"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
