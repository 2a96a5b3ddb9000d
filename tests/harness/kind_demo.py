"""`make demo`: rollwise as users run it, on a real kind cluster with real pods.

The operator is installed from a release that `make release` builds (the image from the
Dockerfile, loaded from its archive; the chart package, installed by helm); the demo app
(deploy/kind/app/, a real HTTP server), Prometheus and Traefik run in the cluster. The story
is today's demo's (tests/harness/demo.py, now `make demo-sim` on the kwok proving ground): the
first version with its migration Job, 2.0.0 through the gateway step by step with the live
request split, 3.0.0 (30% of its requests answered 500) rolled back with the value the gate
measured; each rollout watched live with `kubectl rollwise watch`. Everything is stopped at
the end (the cluster, and the Docker daemon if the demo started it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

from tests.harness import kind, load, processes
from tests.harness.kind import KindCluster, Rollout
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

NAMESPACE = "shop"
PLUGIN = os.path.join(os.path.dirname(sys.executable), "kubectl-rollwise")


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def watch(cluster: KindCluster, timeout: int) -> int:
    """`kubectl rollwise watch` in the foreground, as a person would run it."""
    argv = [
        PLUGIN,
        "-n",
        NAMESPACE,
        "watch",
        "payment",
        "--until",
        ",".join(sorted(kind.SETTLED)),
        "--timeout",
        str(timeout),
    ]
    return subprocess.run(argv, env=cluster.env(), check=False).returncode


def learn_versions(rollout: Rollout, names: dict[str, str]) -> None:
    """Revision -> version of the stable and the canary, from the status."""
    status = rollout.status()
    for revision in (status.get("stable"), status.get("canary")):
        if revision:
            names[revision["revision"]] = revision.get("version") or "?"


class Traffic(threading.Thread):
    """Requests through the gateway, 10/s in 5 s batches (bounded: at most 120 batches), and
    after each batch which version answered them: the live request split."""

    BATCHES = 120

    def __init__(
        self, url: str, host: dict[str, str], names: dict[str, str], rollout: Rollout
    ) -> None:
        super().__init__(name="traffic", daemon=True)
        self.url, self.host, self.names, self.rollout = url, host, names, rollout
        self.done = threading.Event()
        self.responses: list[load.Response] = []

    def run(self) -> None:
        for _ in range(self.BATCHES):
            if self.done.is_set():
                return
            batch = load.send(self.url, requests=50, rate=10, headers=self.host, stop=self.done)
            self.responses += batch.responses
            if not batch.responses:
                continue
            learn_versions(self.rollout, self.names)
            by = Counter(
                self.names.get(r.revision, r.revision or "gateway") for r in batch.responses
            )
            errors = sum(1 for r in batch.responses if r.status != 200)
            n = len(batch.responses)
            split = ", ".join(f"{v} {100 * c // n}%" for v, c in sorted(by.items()))
            print(f"   [gateway] {n} requests: {split}; {errors} not 200", flush=True)

    def stop(self) -> list[load.Response]:
        self.done.set()
        self.join(timeout=10)
        return self.responses


def main() -> int:
    started = time.monotonic()
    processes.install_signal_handlers()
    run = HarnessRun()
    missing = kind.built()
    if missing:
        print("the kind tier is not built: " + ", ".join(missing) + " -- run `make tools`")
        return 2
    stage: kind.Stage | None = None
    summary: list[str] = []
    try:
        say(
            "kind cluster, a release built by `make release` (the image from the Dockerfile, "
            "the chart package), Prometheus and Traefik in the cluster, `kind load "
            "image-archive` and `helm install` of the release's files"
        )
        stage = kind.start_stage(run)
        cluster = stage.cluster
        for what, seconds in run.timings.items():
            print(f"   {what}: {seconds:.0f}s")
        cluster.kubectl("create", "namespace", NAMESPACE)
        wait_for(
            lambda: (
                cluster.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode
                == 0
            ),
            timeout=30,
            message="namespace shop ready",
        )
        route, service = kind.example_route_and_service(NAMESPACE)
        cluster.apply(kind.example_gate(NAMESPACE), route)
        host = {"Host": route["spec"]["hostnames"][0]}
        rollout = Rollout(cluster, NAMESPACE)
        # Revision -> version, for the split lines (learnt from the status as versions roll).
        names: dict[str, str] = {}
        stories = [
            ("1.0.0", "0", "Healthy", "1.0.0", "first version: its migration Job, then 2 pods"),
            (
                "2.0.0",
                "0",
                "Healthy",
                "2.0.0",
                "2.0.0, healthy: canary 25% -> 50% -> 75% through the gateway -> promoted",
            ),
            (
                "3.0.0",
                "0.3",
                "RolledBack",
                "2.0.0",
                "3.0.0, 30% errors: the gate on Prometheus fails, rolled back",
            ),
        ]
        for version, error_rate, until, expected_stable, what in stories:
            say(f"kubectl apply: payment {what}")
            t0 = time.monotonic()
            traffic = Traffic(cluster.gateway_url, host, names, rollout)
            if version != "1.0.0":  # nothing serves the route before the first version
                traffic.start()
            rollout.apply(kind.at_version(service, stage.app_image, version, error_rate=error_rate))
            code = watch(cluster, timeout=300)
            responses = traffic.stop() if traffic.is_alive() else []
            status = rollout.status()
            learn_versions(rollout, names)
            stable = (status.get("stable") or {}).get("version")
            line = (
                f"{version}: phase {status.get('phase')}, stable {stable}, "
                f"{time.monotonic() - t0:.0f}s"
            )
            if status.get("abort"):
                line += f" — {status['abort']['reason']}: {status['abort']['message']}"
            if responses:
                by = Counter(names.get(r.revision, "gateway") for r in responses)
                line += f"; requests answered by {dict(sorted(by.items()))}"
            if version == "1.0.0":
                (job,) = [j for j in rollout.jobs()]
                line += f"; migration Job {job['metadata']['name']} succeeded"
            summary.append(line)
            if code != 0 or status.get("phase") != until or stable != expected_stable:
                say(f"{version} did not reach {until} with stable {expected_stable} ({line})")
                return 1
            wait_for(
                lambda: any(
                    r.revision
                    for r in load.send(cluster.gateway_url, requests=1, headers=host).responses
                ),
                timeout=60,
                message="a pod answers through the gateway",
            )
        say("summary")
        for line in summary:
            print(f"  {line}")
        print(f"  demo wall time: {time.monotonic() - started:.0f}s; logs in {run.log_dir}")
        return 0
    finally:
        if stage is not None:
            kind.stop_stage(stage)
        processes.run_teardown()
        run.remove_state()


if __name__ == "__main__":
    sys.exit(main())
