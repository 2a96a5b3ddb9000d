"""`python -m tests.bench.run --n 100,500,1000,2000`: the benchmarks, JSON as in DESIGN §5.

Parts (all by default; `--parts` picks some):
  scale     N ProgressiveServices roll a new version at once through 3 weight steps, a short
            pause and one Prometheus gate, one operator: Healthy count, total time, step-transition
            latency (definition in tests/bench/stats.py), operator peak RSS and CPU, its API
            requests per rollout by verb and writes per step (apiserver /metrics).
  idle      many Healthy services: operator RSS and CPU per minute over a window.
  reaction  background gate every 5 s; errors injected into each canary at a random moment;
            from Prometheus first answering the breach to canary weight 0 in status.
  restart   operator SIGKILLed with rollouts in flight: time until all progress again; no step
            may be completed twice.

Sizes follow the largest --n unless given: idle 10,000 (if max N >= 1000, else max N),
restart min(1000, max N), reaction min(50, max N). Each scale N, idle, and reaction+restart
get a fresh local control plane (tuned: tests/bench/env.py TUNING). Everything runs niced
by the caller if wanted (`nice -n 10 python -m tests.bench.run ...`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.bench import compare, parts
from tests.bench.env import TUNING, Environment, nodes_for
from tests.harness import paths, processes
from tests.harness.run import HarnessRun

RESULTS = Path(__file__).resolve().parent / "results"
FULL = (100, 500, 1000, 2000)

EnvProvider = Callable[[str, int], AbstractContextManager[Environment]]

DEFINITIONS = {
    "total_s": "first v2 spec patch sent -> last service observed Healthy at v2 (watch time)",
    "p50_step_s/p99_step_s": "step-transition latency over all N x 5 steps: condition true "
    "(pods Ready seen by a pod watch / pauseStartedAt+duration / gate measurement time) -> "
    "status with the next step received by a watch; see tests/bench/stats.py",
    "peak_rss_mib": "max VmRSS of the operator process sampled every 0.5 s during the rollout",
    "cpu_s": "operator utime+stime (/proc/<pid>/stat) from the first patch to the last Healthy",
    "writes_per_step": "operator's create/update/patch/delete requests (status and Events "
    "included) / completed steps; counted by the apiserver per FlowSchema matching only the "
    "operator's ServiceAccount",
    "api_requests_per_rollout": "operator's requests / N by verb; 'status' = patches of "
    "progressiveservices/status, 'events' = Event writes (apiserver_flowcontrol_dispatched_"
    "requests_total of per-verb FlowSchemas)",
    "apiserver_requests_per_rollout_all_clients": "apiserver_request_total delta / N by verb: "
    "every client (kube-controller-manager, scheduler, kwok, simulator, benchmark, operator)",
    "idle.cpu_s_per_min": "operator CPU over the idle window (one full 300 s Healthy resync "
    "period by default) / minutes",
    "reaction": "t(first status with canaryWeight 0 and phase RollingBack, watch time) - "
    "t(first answer of Prometheus, polled every 0.1 s with the gate's expression grouped by "
    "service and revision, above the gate's max)",
    "restart.resume_s": "operator killed (SIGKILL) as soon as every rollout has started (its "
    "first step written), kept down for max(10 s, pause + 2 s) so that every pause deadline "
    "passes meanwhile, started again: max over the rollouts in flight of (first status write "
    "advancing its step, watch time) - (restart time)",
    "restart.repeated_steps": "StepCompleted entries beyond one per step index (and "
    "RolloutStarted beyond one) in the status history of every service",
}


def parse_ns(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=parse_ns, default=list(FULL), help="scale sizes, e.g. 100,500")
    parser.add_argument(
        "--parts", default="scale,idle,reaction,restart", help="comma-separated subset"
    )
    parser.add_argument("--idle-n", type=int, default=None)
    parser.add_argument("--idle-window", type=float, default=None, help="seconds (default 300)")
    parser.add_argument("--reaction-n", type=int, default=None)
    parser.add_argument("--reaction-spread", type=float, default=10.0, help="injection window s")
    parser.add_argument("--restart-n", type=int, default=None)
    parser.add_argument("--restart-pause", default=None, help="the rollouts' pause (5s)")
    parser.add_argument("--workers", type=int, default=8, help="rollwise run --workers")
    parser.add_argument("--replicas", type=int, default=2, help="replicas per service (scale)")
    parser.add_argument("--profile", action="store_true", help="py-spy the largest scale run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--merge-from",
        type=Path,
        default=None,
        help="an earlier results file whose scale entries for other N are carried over "
        "(a long run resumed after an interruption); recorded under merged_from",
    )
    args = parser.parse_args(argv)
    biggest = max(args.n) if args.n else 20
    if args.idle_n is None:
        args.idle_n = 10_000 if biggest >= 1000 else biggest
    if args.idle_window is None:
        args.idle_window = 300.0 if args.idle_n >= 1000 else 20.0
    if args.reaction_n is None:
        args.reaction_n = min(50, biggest)
    if args.restart_n is None:
        args.restart_n = min(1000, biggest)
    if args.restart_pause is None:
        args.restart_pause = "5s"
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    return args


def machine() -> dict[str, Any]:
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = paths.versions()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024),
        "kubernetes": versions.get("KUBERNETES_VERSION", "?"),
        "etcd": versions.get("ETCD_VERSION", "?"),
        "kwok": versions.get("KWOK_VERSION", "?"),
        "python": platform.python_version(),
        "rollwise": importlib.metadata.version("rollwise"),
        "kopf": importlib.metadata.version("kopf"),
        "commit": commit + ("-dirty" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


def run_benchmark(
    args: argparse.Namespace, provider: EnvProvider, write: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Run the chosen parts; `write(results)` after each one (partial results survive)."""
    cfg = parts.Config(
        workers=args.workers,
        replicas=args.replicas,
        idle_window_s=args.idle_window,
        restart_pause=args.restart_pause,
        reaction_spread_s=args.reaction_spread,
        profile=args.profile,
        profile_dir=args.out / "profiles",
    )
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "control_plane_tuning": list(TUNING),
        "config": {
            "n": args.n,
            "parts": args.parts,
            "idle_n": args.idle_n,
            "idle_window_s": args.idle_window,
            "reaction_n": args.reaction_n,
            "restart_n": args.restart_n,
            "restart_pause": args.restart_pause,
            "workers": args.workers,
            "replicas": args.replicas,
            "pause": cfg.pause,
            "gate_interval": cfg.gate_interval,
        },
        "definitions": DEFINITIONS,
        "scale": [],
        "errors": [],
    }

    def attempt(label: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:
            traceback.print_exc()
            results["errors"].append({"part": label, "error": f"{type(exc).__name__}: {exc}"})
        write(results)

    if "scale" in args.parts:
        largest = max(args.n) if args.n else 0
        for n in args.n:

            def one(n: int = n) -> None:
                cfg.profile = args.profile and n == largest
                with provider(f"scale{n}", n * args.replicas * 2) as env:
                    results["scale"].append(parts.scale(env, n, cfg))

            attempt(f"scale {n}", one)
    if "reaction" in args.parts or "restart" in args.parts:
        pods = max(args.restart_n * args.replicas * 2, args.reaction_n * 4)

        def shared() -> None:
            with provider("rr", pods) as env:
                if "reaction" in args.parts:
                    attempt(
                        "reaction",
                        lambda: results.__setitem__(
                            "reaction", parts.reaction(env, args.reaction_n, cfg)
                        ),
                    )
                if "restart" in args.parts:
                    attempt(
                        "restart",
                        lambda: results.__setitem__(
                            "restart", parts.restart(env, args.restart_n, cfg)
                        ),
                    )

        attempt("reaction/restart cluster", shared)
    if "idle" in args.parts:

        def idle() -> None:
            with provider("idle", args.idle_n) as env:
                results["idle"] = parts.idle(env, args.idle_n, cfg)

        attempt("idle", idle)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return results


def fresh_clusters(run: HarnessRun) -> EnvProvider:
    @contextlib.contextmanager
    def provide(name: str, pods: int) -> Iterator[Environment]:
        with Environment.started(run, f"rwb-{os.getpid()}-{name}", nodes=nodes_for(pods)) as env:
            yield env

    return provide


def table(results: dict[str, Any]) -> str:
    """The end-of-run summary: the same Markdown rows `tests.bench.compare` prints, for this run
    (scale entries carried over with --merge-from included)."""
    rows = compare.scale_rows("this run", results, carried=True)
    lines = [compare.SCALE_HEADER, compare.SCALE_RULE, *rows] if rows else []
    return "\n".join([*lines, *compare.other_rows("this run", results)])


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    processes.install_signal_handlers()
    run = HarnessRun()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"

    def write(results: dict[str, Any]) -> None:
        path.write_text(json.dumps(results, indent=2) + "\n")

    print(f"[bench] logs: {run.log_dir}\n[bench] results: {path}", flush=True)
    carried: list[dict[str, Any]] = []
    if args.merge_from is not None:
        earlier = json.loads(args.merge_from.read_text())
        carried = [s for s in earlier.get("scale", []) if s["n"] not in args.n]
        for entry in carried:
            entry["run"] = {"file": args.merge_from.name, "started": earlier.get("started")}

    def write_merged(results: dict[str, Any]) -> None:
        if carried:
            ns = {s["n"] for s in results["scale"]}
            results["scale"] = sorted(
                [*[c for c in carried if c["n"] not in ns], *results["scale"]],
                key=lambda s: int(s["n"]),
            )
            results["merged_from"] = str(args.merge_from.name if args.merge_from else "")
        write(results)

    try:
        results = run_benchmark(args, fresh_clusters(run), write_merged)
    finally:
        processes.run_teardown()
        run.remove_state()
    write_merged(results)
    print(table(results))
    print(f"[bench] results: {path}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
