"""`make demo`: rollwise doing a real canary and a real rollback on the local control plane.

Starts the control plane (kwok), the pod-traffic simulator, Prometheus, Traefik as the Gateway
API data plane and the operator; applies the gateway example in deploy/examples/ at 1.0.0 with
real HTTP requests flowing through the gateway (a bounded load generator); rolls out 2.0.0
(healthy) to Healthy and 3.0.0 (30% of its requests answered 500) which the gate on the
gateway's own metrics rolls back; shows each rollout live with `kubectl rollwise watch`; prints a
summary with the requests each version answered. Everything is stopped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from tests.harness import cli, load, processes, stack
from tests.harness.cluster import KubectlError, LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import SETTLED, Rollouts
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
NAMESPACE = "shop"
PLUGIN = Path(sys.executable).with_name("kubectl-rollwise")


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def version_of(manifest: dict[str, Any], version: str, error_rate: str) -> dict[str, Any]:
    """The example at another version: image tag, version, migration, simulated error rate."""
    out = copy.deepcopy(manifest)
    spec = out["spec"]
    spec["version"] = version
    container = spec["template"]["spec"]["containers"][0]
    container["image"] = container["image"].rsplit(":", 1)[0] + f":{version}"
    for env in container.get("env", []):
        if env["name"] == "SIM_ERROR_RATE":
            env["value"] = error_rate
    migrate = spec["migration"]["template"]["spec"]["containers"][0]
    migrate["image"] = container["image"]
    migrate["command"] = ["migrate", "--to", version]
    return out


def traffic_summary(sent: load.LoadResult) -> str:
    """What the requests sent through the gateway got, and from whom."""
    by_pods: dict[int, int] = {}
    by_gateway: dict[int, int] = {}
    for response in sent.responses:
        table = by_pods if response.revision else by_gateway
        table[response.status] = table.get(response.status, 0) + 1

    def codes(table: dict[int, int]) -> str:
        return ", ".join(f"{n} x {c or 'no answer'}" for c, n in sorted(table.items()))

    line = f"{len(sent.responses)} requests through the gateway; pods answered {codes(by_pods)}"
    return line + (f"; the gateway itself {codes(by_gateway)}" if by_gateway else "")


def watch(kubeconfig: Path, until: str, timeout: int) -> int:
    """`kubectl rollwise watch` in the foreground, as a person would run it."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    argv = [
        str(PLUGIN),
        "-n",
        NAMESPACE,
        "watch",
        "payment",
        "--until",
        until,
        "--timeout",
        str(timeout),
    ]
    return subprocess.run(argv, env=env, check=False).returncode


def keep_running(
    run: HarnessRun,
    cluster: LocalCluster,
    managed: list[processes.ManagedProcess],
    operator: OperatorProcess,
    prometheus_url: str,
    simulator_url: str,
) -> None:
    """Hand everything to `make demo-down` (tests.harness.cli down), as `cli up` does."""
    records = [r for r in (*(m.detach() for m in managed), operator.detach()) if r]
    cluster.detach()
    state = {
        "run_id": run.run_id,
        "cluster": cluster.name,
        "kubeconfig": str(cluster.kubeconfig),
        "prometheus_url": prometheus_url,
        "simulator_url": simulator_url,
        "log_dir": str(run.log_dir),
        "state_dir": str(run.state_dir),
        "processes": [asdict(r) for r in records],
        "timings": run.timings,
    }
    cli.state_file().write_text(json.dumps(state, indent=2))
    say("left running; `make demo-down` stops everything")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  {PLUGIN.name} -n {NAMESPACE} status payment")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave everything running")
    args = parser.parse_args(argv)
    if args.keep and (active := cli.read_state()) is not None:
        # Only one set of processes can be handed to `cli down` (one state file): keeping the
        # demo running would overwrite the record of the running one, which would then never
        # be stopped.
        print(
            f"make demo KEEP=1: a proving ground is already up (run {active['run_id']}, "
            f"cluster {active['cluster']}); stop it first with `make demo-down`",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    processes.install_signal_handlers()
    run = HarnessRun()
    summary: list[str] = []
    traffic_lines: list[str] = []
    try:
        say(
            "starting the local control plane (kube-apiserver, etcd, kwok), simulator, "
            "Prometheus, Traefik (Gateway API)"
        )
        cluster = stack.start_cluster(run, "rollwise-demo")
        simulator = stack.start_simulator(run, cluster)
        prometheus = stack.start_prometheus(run, simulator)
        gateway = stack.start_traefik(run, cluster, prometheus)
        cluster.install_crds(ROOT / "crds")
        cluster.kubectl("create", "namespace", NAMESPACE)
        wait_for(
            lambda: cluster.kubectl("get", "sa", "default", "-n", NAMESPACE),
            timeout=30,
            message="namespace shop ready",
            ignore=(KubectlError,),
        )

        say("starting the operator: rollwise run --namespace shop")
        operator = OperatorProcess(run, cluster.kubeconfig, [NAMESPACE])
        operator.start()

        api = cluster.api_client()
        rollouts = Rollouts(api, NAMESPACE)
        gate = yaml.safe_load((EXAMPLES / "gateway-error-rate-gate.yaml").read_text())
        gate["spec"]["provider"]["prometheus"]["address"] = prometheus.url
        rollouts.create_gate(gate)
        route, example = yaml.safe_load_all((EXAMPLES / "payment-gateway.yaml").read_text())
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(route))
        host = {"Host": route["spec"]["hostnames"][0]}

        # (version, simulated error rate, phase it must reach, stable version then, what)
        stories = [
            ("1.0.0", "0", "Healthy", "1.0.0", "first version: migration, then 4 replicas"),
            (
                "2.0.0",
                "0",
                "Healthy",
                "2.0.0",
                "2.0.0, healthy: canary 25% -> 50% -> 75% -> promoted",
            ),
            (
                "3.0.0",
                "0.3",
                "RolledBack",
                "2.0.0",
                "3.0.0, 30% errors: the gate fails, traffic drains, rolled back",
            ),
        ]
        for version, error_rate, until, expected_stable, what in stories:
            say(f"kubectl apply: payment {what}")
            t0 = time.monotonic()
            # Real requests through the gateway while the rollout runs (20/s, at most 110 s);
            # none before the first version, when nothing serves the route yet.
            seconds = 110 if version != "1.0.0" else 0
            with load.BackgroundLoad(
                gateway.url, rate=20, seconds=seconds, headers=host
            ) as traffic:
                rollouts.apply(version_of(example, version, error_rate))
                # Stop at any settled phase, not only the expected one: a wrong outcome is
                # then reported at once instead of after the whole timeout.
                code = watch(cluster.kubeconfig, ",".join(sorted(SETTLED)), timeout=240)
                sent = traffic.stop()
            status = rollouts.status()
            took = time.monotonic() - t0
            stable = (status.get("stable") or {}).get("version")
            line = f"{version}: phase {status.get('phase')}, stable {stable}, {took:.0f}s"
            if status.get("abort"):
                line += f" — {status['abort']['reason']}: {status['abort']['message']}"
            if sent.responses:
                traffic_lines.append(f"{version}: {traffic_summary(sent)}")
            # The gateway applies a route change a moment after the API has it: wait until a
            # pod answers through it, so the next story's first requests do not find the route
            # still without a backend (Traefik answers 500 for a backendRef it cannot load).
            wait_for(
                lambda: any(
                    r.revision for r in load.send(gateway.url, requests=1, headers=host).responses
                ),
                timeout=30,
                message="a pod answers through the gateway",
            )
            summary.append(line)
            if code != 0 or status.get("phase") != until or stable != expected_stable:
                say(
                    f"{version} did not reach {until} with stable {expected_stable} ({line}); "
                    f"operator log: {operator.log_path}"
                )
                return 1
        api.close()  # type: ignore[no-untyped-call]

        say("summary")
        for line in summary:
            print(f"  {line}")
        for line in traffic_lines:
            print(f"  {line}")
        print(f"  demo wall time: {time.monotonic() - started:.0f}s; logs in {run.log_dir}")
        if args.keep:
            keep_running(
                run,
                cluster,
                [simulator.process, prometheus.process, gateway.process],
                operator,
                prometheus.url,
                simulator.url,
            )
        return 0
    finally:
        if not args.keep:
            processes.run_teardown()
            run.remove_state()


if __name__ == "__main__":
    sys.exit(main())
