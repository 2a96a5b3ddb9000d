"""``python -m tests.harness.cli up|down|env|check-clean|reap``: the proving ground by hand.

``up`` starts a cluster, the simulator and Prometheus in the background and prints the shell
exports to use them (``eval "$(python -m tests.harness.cli up)"``); progress goes to stderr.
What was started is recorded in ``~/.cache/rollwise/harness-state.json`` so that ``down`` (from
any shell) stops exactly that, and ``check-clean`` exits 1 listing any process of ours still
running (CI runs it after the tests). ``reap`` lists what crashed or SIGKILLed test sessions
left behind (runs whose owner process is gone and that were not detached on purpose);
``reap --run ID`` stops one of them.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.harness import kind, paths, processes, stack
from tests.harness.cluster import LocalCluster
from tests.harness.run import HarnessRun

log = logging.getLogger("rollwise.harness.cli")

CLUSTER_NAME = "rollwise"


def state_file() -> Path:
    return paths.cache_dir() / "harness-state.json"


def read_state() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return data


def exports(state: dict[str, Any]) -> str:
    return (
        f"export KUBECONFIG={shlex.quote(state['kubeconfig'])}; "
        f"export PROMETHEUS_URL={shlex.quote(state['prometheus_url'])}"
    )


def cmd_up() -> int:
    existing = read_state()
    if existing is not None:
        if Path(existing["kubeconfig"]).exists():
            log.info("already up (run %s); `down` first to restart", existing["run_id"])
            print(exports(existing))
            return 0
        log.warning("stale state file from run %s: cleaning up first", existing["run_id"])
        cmd_down()
    processes.install_signal_handlers()
    run = HarnessRun()
    log.info("run %s: logs in %s", run.run_id, run.log_dir)
    cluster = stack.start_cluster(run, CLUSTER_NAME)
    simulator = stack.start_simulator(run, cluster)
    prometheus = stack.start_prometheus(run, simulator)
    # Hand everything over to `down`: nothing is stopped when this process exits.
    records = [r for r in (simulator.process.detach(), prometheus.process.detach()) if r]
    cluster.detach()
    state = {
        "run_id": run.run_id,
        "cluster": cluster.name,
        "kubeconfig": str(cluster.kubeconfig),
        "prometheus_url": prometheus.url,
        "simulator_url": simulator.url,
        "log_dir": str(run.log_dir),
        "state_dir": str(run.state_dir),
        "processes": [asdict(r) for r in records],
        "timings": run.timings,
    }
    state_file().write_text(json.dumps(state, indent=2))
    log.info(
        "up in %.1fs: %s",
        sum(run.timings.values()),
        ", ".join(f"{k} {v:.1f}s" for k, v in run.timings.items()),
    )
    print(exports(state))
    return 0


def cmd_down() -> int:
    state = read_state()
    if state is None:
        log.info("nothing is up (no %s)", state_file())
    else:
        for raw in state.get("processes", []):
            record = processes.ProcessRecord(**raw)
            log.info("stopping %s (pid %s)", record.name, record.pid)
            record.stop()
        log_dir = Path(state["log_dir"]) / "cluster"
        cluster = LocalCluster(state["cluster"], log_dir, run_id=state["run_id"])
        cluster.adopt()
        cluster.stop()
        strays = [p for p in processes.leftover_processes() if p.run_id == state["run_id"]]
        for stray in strays:
            log.warning("killing stray %s", stray)
            processes.terminate_pid(stray.pid)
        HarnessRun.remove_state_dir(Path(state["state_dir"]))
        state_file().unlink(missing_ok=True)
        log.info("down; logs kept in %s", state["log_dir"])
    return 0


def cmd_env() -> int:
    state = read_state()
    if state is None:
        log.error("nothing is up: run `python -m tests.harness.cli up`")
        return 1
    print(exports(state))
    return 0


def stale_runs() -> dict[str, list[processes.Leftover]]:
    """Runs whose owner process is gone but whose processes still run, minus detached ones
    (``cli up`` and anything else that called ``detach()``), by run id."""
    state = read_state()
    detached = state["run_id"] if state else None
    stale: dict[str, list[processes.Leftover]] = {}
    for proc in processes.leftover_processes():
        run_id = proc.run_id
        if not run_id or run_id == detached or processes.run_owner_alive(run_id):
            continue
        if (paths.runs_dir() / run_id / processes.DETACHED_MARKER).exists():
            continue
        stale.setdefault(run_id, []).append(proc)
    return stale


def reap_run(run_id: str, procs: list[processes.Leftover]) -> None:
    """Stop one run's clusters (through kwokctl) and processes, and remove its state."""
    clusters_dir = f"{paths.kwok_workdir() / 'clusters'}/"
    names = {part.split("/")[0] for p in procs for part in p.cmdline.split(clusters_dir)[1:]}
    for name in sorted(names):
        cluster = LocalCluster(name, paths.logs_root() / run_id / "cluster", run_id=run_id)
        cluster.adopt()
        cluster.stop()
    for proc in procs:
        processes.terminate_pid(proc.pid)
    HarnessRun.remove_state_dir(paths.runs_dir() / run_id)


def cmd_reap(run_ids: list[str]) -> int:
    """List (default) or stop (``--run ID``) what crashed or SIGKILLed sessions left behind.

    Listing only by default: on a shared machine a run whose owner exited may be someone's
    deliberately detached cluster, so stopping one needs its id, chosen by a person.
    """
    stale = stale_runs()
    if not run_ids:
        if not stale:
            print("no stale runs")
            return 0
        for run_id, procs in stale.items():
            print(f"{run_id}: owner gone, {len(procs)} process(es) running")
            for proc in procs:
                print(f"  {proc}")
        print("stop one with: python -m tests.harness.cli reap --run RUN_ID")
        return 1
    for run_id in run_ids:
        if run_id not in stale:
            log.error("%s is not a stale run (owner alive, detached, or nothing running)", run_id)
            return 1
        log.info("reaping run %s (%d processes)", run_id, len(stale[run_id]))
        reap_run(run_id, stale[run_id])
    return 0


def cmd_check_clean() -> int:
    leftovers = processes.leftover_processes()
    # The kind tier: its Docker daemon, node containers, host changes not restored.
    kind_left = kind.leftovers()
    if not leftovers and not kind_left:
        print("clean: no harness process is running")
        return 0
    if leftovers:
        print(f"{len(leftovers)} harness process(es) still running:")
    for leftover in leftovers:
        print(f"  {leftover}")
    if kind_left:
        print("the kind tier left (`bash deploy/kind/dockerd.sh stop` removes it):")
    for line in kind_left:
        print(f"  {line}")
    if read_state() is not None:
        print("(a `cli up` is active: `python -m tests.harness.cli down` stops it)")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.cli", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "check-clean", "reap"])
    parser.add_argument(
        "--run", action="append", default=[], help="reap: the stale run id to stop (repeatable)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    commands: dict[str, Callable[[], int]] = {
        "up": cmd_up,
        "down": cmd_down,
        "env": cmd_env,
        "check-clean": cmd_check_clean,
        "reap": functools.partial(cmd_reap, args.run),
    }
    try:
        return commands[args.command]()
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
