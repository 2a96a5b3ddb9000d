"""The four benchmark parts. Each takes an Environment, uses namespaces of its own and one
operator process of its own, and returns the dict that goes into the results JSON."""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollwise.api.durations import parse_duration
from tests.bench import stats
from tests.bench.env import (
    VERBS,
    ApiCounts,
    CpuWindow,
    Environment,
    ProcessSampler,
    operator_pid,
    status_mib,
)
from tests.bench.watch import PodWatch, ServiceWatch, Snap, ts
from tests.bench.workload import (
    THRESHOLD,
    Writer,
    error_pod,
    gate,
    names,
    new_version_patch,
    scale_steps,
    service,
)
from tests.harness.operator_process import OperatorProcess

log = logging.getLogger("rollwise.bench")

V1, V2 = "1.0.0", "2.0.0"
CANARY_RPS = 20


@dataclass
class Config:
    workers: int = 8
    replicas: int = 2
    pause: str = "2s"
    gate_interval: str = "2s"
    idle_window_s: float = 300.0
    reaction_interval: str = "5s"
    reaction_spread_s: float = 10.0
    restart_pause: str = "30s"
    profile: bool = False
    profile_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- shared steps


class Fleet:
    """N ProgressiveServices in one namespace, watched, with one operator."""

    def __init__(
        self,
        env: Environment,
        namespace: str,
        n: int,
        cfg: Config,
        *,
        steps_for: Callable[[str], list[dict[str, Any]]],
        replicas: int,
        background_gate: bool = False,
        gate_interval: str = "2s",
        gate_count: int = 1,
        watch_pods: bool = True,
    ) -> None:
        self.env = env
        self.ns = namespace
        self.n = n
        self.cfg = cfg
        self.names = names(n)
        self.replicas = replicas
        self.steps_for = steps_for
        self.background_gate = background_gate
        self.gate_interval_s = parse_duration(gate_interval)
        env.namespace(namespace)
        self.writer = Writer(env.api, namespace)
        self.writer.create_gate(
            gate(namespace, env.prometheus_url, interval=gate_interval, count=gate_count)
        )
        self.psvc = ServiceWatch(env.api, namespace)
        self.psvc.start()
        self.pods: PodWatch | None = None
        if watch_pods:
            self.pods = PodWatch(env.api, namespace)
            self.pods.start()
        self.operator: OperatorProcess = env.operator(
            [namespace], name=f"operator-{namespace}", workers=cfg.workers
        )
        self.manifests = {
            name: service(
                namespace,
                name,
                V1,
                replicas=replicas,
                steps=steps_for(name),
                rps=0,
                background_gate=background_gate,
            )
            for name in self.names
        }
        self.v1: dict[str, str] = {}

    def start_operator(self) -> None:
        self.operator.start()

    def stop(self) -> None:
        self.operator.stop()
        self.psvc.stop()
        if self.pods:
            self.pods.stop()
        if self.env.shared:
            self.env.delete_namespace(self.ns)

    def deploy_v1(self, timeout: float) -> float:
        """Create all services at 1.0.0; the seconds until all are Healthy."""
        start = time.time()
        self.writer.create_services(list(self.manifests.values()))
        created = time.time() - start
        self.wait(
            lambda name, s: s.phase == "Healthy" and s.stable is not None, timeout, "v1 Healthy"
        )
        elapsed = time.time() - start
        with self.psvc.lock:
            self.v1 = {n: self.psvc.latest[n].stable or "" for n in self.names}
        say(f"{self.ns}: {self.n} services created in {created:.1f}s, Healthy after {elapsed:.1f}s")
        return elapsed

    def roll_out_v2(self) -> tuple[float, float]:
        """Patch every service to 2.0.0 (all at once, 16 threads); (start, end) times."""
        patches = {
            name: new_version_patch(self.manifests[name], V2, CANARY_RPS) for name in self.names
        }
        start = time.time()
        self.writer.patch_services(patches)
        return start, time.time()

    def healthy_v2(self, name: str, snap: Snap) -> bool:
        return (
            snap.phase == "Healthy"
            and snap.stable is not None
            and snap.stable != self.v1.get(name)
            and snap.observed_generation == snap.generation
        )

    def count(self, predicate: Callable[[str, Snap], bool]) -> int:
        """Services whose latest observed status satisfies `predicate(name, snap)`."""
        with self.psvc.lock:
            latest = dict(self.psvc.latest)
        return sum(1 for n in self.names if n in latest and predicate(n, latest[n]))

    def wait(
        self,
        predicate: Callable[[str, Snap], bool],
        timeout: float,
        what: str,
        every: float = 15.0,
    ) -> None:
        """Wait until `predicate(name, snap)` holds for every service, saying how far it got."""
        deadline = time.monotonic() + timeout
        last_said = time.monotonic()
        while True:
            done = self.count(predicate)
            if done >= self.n:
                return
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{self.ns}: {done}/{self.n} {what} after {timeout:.0f}s")
            if now - last_said > every:
                with self.psvc.lock:
                    phases = Counter(s.phase for s in self.psvc.latest.values())
                say(f"{self.ns}: {done}/{self.n} {what}; phases {dict(phases)}")
                last_said = now
            time.sleep(0.25)

    def wait_v2(self, timeout: float) -> int:
        try:
            self.wait(self.healthy_v2, timeout, "v2 Healthy")
        except TimeoutError as exc:
            say(str(exc))
        return self.count(self.healthy_v2)

    def healthy_at(self, name: str) -> float | None:
        with self.psvc.lock:
            timeline = list(self.psvc.timeline.get(name, []))
        return next((s.t for s in timeline if self.healthy_v2(name, s)), None)


OPERATOR_SERIES = (
    "rollwise_reconcile_duration_seconds_count",
    "rollwise_reconcile_duration_seconds_sum",
    "rollwise_reconcile_errors_total",
    "rollwise_step_transitions_total",
)


def operator_counters(operator: OperatorProcess) -> dict[str, float]:
    """The operator's own reconcile counters from its /metrics."""
    out: dict[str, float] = {}
    try:
        text = operator.metrics()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in OPERATOR_SERIES:
            out[name] = float(value)
        elif name.startswith("rollwise_gate_verdicts_total{"):
            verdict = name.split('verdict="', 1)[1].split('"', 1)[0]
            key = f"gate_{verdict}"
            out[key] = out.get(key, 0.0) + float(value)
    return out


def passes_report(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, Any]:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    passes = delta("rollwise_reconcile_duration_seconds_count")
    seconds = delta("rollwise_reconcile_duration_seconds_sum")
    verdicts = sorted({k for k in (*before, *after) if k.startswith("gate_")})
    return {
        "passes_per_rollout": round(passes / n, 2) if n else None,
        "mean_pass_s": round(seconds / passes, 4) if passes else None,
        "pass_seconds_total": round(seconds, 1),
        "reconcile_errors": delta("rollwise_reconcile_errors_total"),
        "gate_verdicts": {k.removeprefix("gate_"): delta(k) for k in verdicts},
    }


def scrape_health(prometheus_url: str, window_s: float) -> dict[str, Any]:
    """How well Prometheus scraped the simulator over the window: the share of successful
    scrapes and their duration (the scrape timeout is 1 s). Missed scrapes make gates
    Inconclusive (no data), which costs extra measurements, passes and writes."""
    window = f"{max(1, int(window_s))}s"
    queries = {
        "up_ratio": f"avg_over_time(up[{window}])",
        "scrape_s_avg": f"avg_over_time(scrape_duration_seconds[{window}])",
        "scrape_s_max": f"max_over_time(scrape_duration_seconds[{window}])",
        "samples_max": f"max_over_time(scrape_samples_scraped[{window}])",
    }
    out: dict[str, Any] = {}
    for key, query in queries.items():
        url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                result = json.loads(response.read())["data"]["result"]
            out[key] = round(float(result[0]["value"][1]), 3) if result else None
        except (OSError, ValueError, KeyError, IndexError) as exc:
            out[key] = f"error: {exc}"
    return out


def per_rollout(counts: ApiCounts, n: int) -> dict[str, float]:
    """The operator's requests per rollout, by verb (status patches and Events apart)."""
    keys = [*VERBS, "status", "events", "other"]
    return {k: round(counts.operator.get(k, 0.0) / n, 2) for k in keys if counts.operator.get(k)}


def top_resources(counts: ApiCounts, n: int, limit: int = 12) -> dict[str, float]:
    top = sorted(counts.all_by_resource.items(), key=lambda kv: -kv[1])[:limit]
    return {k: round(v / n, 2) for k, v in top}


class Profiler:
    """py-spy on the operator for the measured window (if installed): raw collapsed stacks.
    `gil=False`: every non-idle thread (a thread blocked in a socket read counts: where the
    workers' wall time goes); `gil=True`: only the thread holding the GIL (Python CPU)."""

    def __init__(self, pid: int, out: Path, duration_s: int, *, gil: bool = False) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        spy = shutil.which("py-spy") or str(Path(__file__).parents[2] / ".venv/bin/py-spy")
        if not Path(spy).exists():
            say("py-spy not installed: no profile (pip install py-spy into the venv)")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(duration_s),
                "--rate",
                "50",
                "--nonblocking",
                *(["--gil"] if gil else []),
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes what it has
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not self.out.exists():
            return None
        return top_costs(self.out)


def top_costs(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + _short(f) + ")" for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str], top: int = limit) -> list[list[Any]]:
        return [[name, round(100.0 * c / total, 1)] for name, c in counter.most_common(top)]

    ours = Counter({k: v for k, v in inclusive.items() if "(rollwise/" in k})
    return {
        "samples": total,
        "self_pct": share(own),
        "inclusive_pct": share(inclusive),
        "rollwise_inclusive_pct": share(ours, 25),
    }


def _short(frame: str) -> str:
    where = frame.split(" (", 1)[1].rstrip(")") if " (" in frame else ""
    for marker in ("site-packages/", "operator/", "lib/python3.11/"):
        if marker in where:
            return where.split(marker, 1)[1]
    return where


# --------------------------------------------------------------------------- 1. scale


def scale(env: Environment, n: int, cfg: Config) -> dict[str, Any]:
    ns = f"bench-scale-{n}"
    steps = scale_steps("x", cfg.pause)
    fleet = Fleet(
        env,
        ns,
        n,
        cfg,
        steps_for=lambda name: scale_steps(name, cfg.pause),
        replicas=cfg.replicas,
        gate_interval=cfg.gate_interval,
    )
    try:
        fleet.start_operator()
        deploy_s = fleet.deploy_v1(timeout=600 + 2.0 * n)
        time.sleep(5)  # let the initial deploy's stragglers (Events, resyncs) settle
        pid = operator_pid(fleet.operator)
        pids = {**env.component_pids(), "operator": pid, "bench-driver": _own_pid()}
        before = env.api_counts()
        passes_before = operator_counters(fleet.operator)
        sampler = ProcessSampler(pid).start()
        cpu = CpuWindow(pids)
        profilers: dict[str, Profiler] = {}
        if cfg.profile and cfg.profile_dir is not None:
            for mode in ("wall", "gil"):
                out = cfg.profile_dir / f"scale-{n}-{mode}.pyspy.txt"
                profilers[mode] = Profiler(pid, out, 7200, gil=mode == "gil")
        say(f"{ns}: rolling out {V2} to {n} services")
        start, applied = fleet.roll_out_v2()
        healthy = fleet.wait_v2(timeout=600 + 3.0 * n)
        end_seen = time.time()
        profile = {mode: p.stop() for mode, p in profilers.items()}
        sampler.stop()
        cpu_result = cpu.result()
        counts = env.api_counts().minus(before)
        hwm = status_mib(pid, "VmHWM")
        passes = passes_report(passes_before, operator_counters(fleet.operator), n)
        scrapes = scrape_health(env.prometheus_url, end_seen - start)

        healthy_times = [t for t in (fleet.healthy_at(x) for x in fleet.names) if t is not None]
        total_s = (max(healthy_times) - start) if healthy_times else end_seen - start
        ready = fleet.pods.ready_times() if fleet.pods else {}
        timings: list[stats.StepTiming] = []
        for name in fleet.names:
            with fleet.psvc.lock:
                timeline = list(fleet.psvc.timeline.get(name, []))
            timings += stats.step_timings(
                name,
                steps,
                cfg.replicas,
                fleet.psvc.status(name),
                timeline,
                ready,
                fleet.gate_interval_s,
            )
        report = stats.latency_report(timings)
        steps_done = len(timings)
        writes = counts.operator_writes()
        result: dict[str, Any] = {
            "n": n,
            "healthy": healthy,
            "total_s": round(total_s, 1),
            "p50_step_s": report["latency_s"]["p50"],
            "p99_step_s": report["latency_s"]["p99"],
            "peak_rss_mib": round(sampler.peak_mib, 1),
            "cpu_s": round(sampler.cpu_s, 1),
            "writes_per_step": round(writes / steps_done, 2) if steps_done else None,
            "status_writes_per_step": (
                round(counts.operator.get("status", 0.0) / steps_done, 2) if steps_done else None
            ),
            "api_requests_per_rollout": per_rollout(counts, n),
            "api_requests_per_rollout_total": round(sum(counts.operator.values()) / n, 1),
            "apiserver_requests_per_rollout_all_clients": {
                k: round(v / n, 1) for k, v in sorted(counts.all_by_verb.items())
            },
            "apiserver_top_requests_per_rollout_all_clients": top_resources(counts, n),
            "steps": steps,
            "replicas": cfg.replicas,
            "workers": cfg.workers,
            "apply_s": round(applied - start, 1),
            "initial_deploy_s": round(deploy_s, 1),
            "operator_vmhwm_mib": round(hwm, 1),
            "step_latency": report,
            "operator_passes": passes,
            "prometheus_scrapes": scrapes,
            "cpu": cpu_result,
        }
        if profile:
            result["profile"] = profile
        return result
    finally:
        fleet.stop()


def _own_pid() -> int:
    import os

    return os.getpid()


# --------------------------------------------------------------------------- 2. idle


def idle(env: Environment, n: int, cfg: Config) -> dict[str, Any]:
    ns = "bench-idle"
    fleet = Fleet(
        env,
        ns,
        n,
        cfg,
        steps_for=lambda name: scale_steps(name, cfg.pause),
        replicas=1,
        watch_pods=False,
    )
    try:
        fleet.start_operator()
        deploy_s = fleet.deploy_v1(timeout=900 + 1.0 * n)
        healthy = fleet.count(lambda name, s: s.phase == "Healthy")
        pid = operator_pid(fleet.operator)
        rss_after_deploy = status_mib(pid, "VmRSS")
        pids = {**env.component_pids(), "operator": pid, "bench-driver": _own_pid()}
        before = env.api_counts()
        sampler = ProcessSampler(pid, interval=2.0).start()
        cpu = CpuWindow(pids)
        say(f"{ns}: {healthy}/{n} Healthy; measuring {cfg.idle_window_s:.0f}s of idling")
        time.sleep(cfg.idle_window_s)
        sampler.stop()
        counts = env.api_counts().minus(before)
        cpu_result = cpu.result()
        minutes = cpu_result["window_s"] / 60.0
        return {
            "n": n,
            "healthy": healthy,
            "rss_mib": round(sampler.last_mib, 1),
            "peak_rss_mib": round(sampler.peak_mib, 1),
            "rss_after_deploy_mib": round(rss_after_deploy, 1),
            "cpu_s_per_min": round(sampler.cpu_s / minutes, 2),
            "window_s": cpu_result["window_s"],
            "deploy_s": round(deploy_s, 1),
            "api_requests_per_min": {
                k: round(v / minutes, 1) for k, v in sorted(counts.operator.items())
            },
            "apiserver_requests_per_min_all_clients": {
                k: round(v / minutes, 1) for k, v in sorted(counts.all_by_verb.items())
            },
            "replicas": 1,
            "workers": cfg.workers,
            "cpu": cpu_result,
        }
    finally:
        fleet.stop()


# --------------------------------------------------------------------------- 3. reaction


class BreachPoller:
    """Asks Prometheus, every `period` s, the gate's own expression grouped by (service,
    revision) for the whole namespace, and records when each canary's value first exceeds the
    gate's max."""

    def __init__(self, url: str, namespace: str, canaries: dict[str, str], period: float) -> None:
        sel = f'namespace="{namespace}"'
        self.query = (
            f'sum by (service, revision) (rate(http_requests_total{{{sel},code=~"5.."}}[5s]))'
            f" / sum by (service, revision) (rate(http_requests_total{{{sel}}}[5s]))"
        )
        self.url = url
        self.canaries = canaries
        self.period = period
        self.first: dict[str, float] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="breach-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        endpoint = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": self.query})
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(endpoint, timeout=5) as response:
                    data = json.loads(response.read())
                now = time.time()
                self.polls += 1
                for series in data["data"]["result"]:
                    svc = series["metric"].get("service", "")
                    rev = series["metric"].get("revision", "")
                    value = float(series["value"][1])
                    if (
                        self.canaries.get(svc) == rev
                        and value > THRESHOLD
                        and svc not in self.first
                    ):
                        self.first[svc] = now
            except Exception as exc:
                log.warning("breach poll failed: %s", exc)
            self._stop.wait(self.period)


def reaction(env: Environment, n: int, cfg: Config) -> dict[str, Any]:
    ns = "bench-reaction"
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1h"}}]
    fleet = Fleet(
        env,
        ns,
        n,
        cfg,
        steps_for=lambda name: steps,
        replicas=2,
        background_gate=True,
        gate_interval=cfg.reaction_interval,
        gate_count=0,
        watch_pods=False,
    )
    try:
        fleet.start_operator()
        fleet.deploy_v1(timeout=300 + n)
        fleet.roll_out_v2()

        def measuring(name: str, snap: Snap) -> bool:
            if snap.step != 1 or snap.phase != "Paused" or snap.canary is None:
                return False
            analysis = fleet.psvc.status(name).get("analysis") or []
            return any(r.get("background") and r.get("verdict") == "Passed" for r in analysis)

        fleet.wait(measuring, 300 + n, "paused with a passing background gate")
        with fleet.psvc.lock:
            canaries = {name: fleet.psvc.latest[name].canary or "" for name in fleet.names}
        poller = BreachPoller(env.prometheus_url, ns, canaries, period=0.1)
        poller.start()
        schedule = sorted((random.uniform(0, cfg.reaction_spread_s), name) for name in fleet.names)
        say(f"{ns}: injecting errors into {n} canaries over {cfg.reaction_spread_s:.0f}s")
        begin = time.monotonic()
        for offset, name in schedule:
            delay = begin + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            fleet.writer.create_pod(error_pod(ns, name, canaries[name]))

        def drained(name: str, snap: Snap) -> bool:
            return snap.weight == 0 and snap.phase in ("RollingBack", "RolledBack")

        try:
            fleet.wait(drained, 120 + n, "canary weight 0")
        except TimeoutError as exc:
            say(str(exc))
        time.sleep(0.5)
        poller.stop()
        samples: list[float] = []
        decisions: list[float] = []
        missing_breach = 0
        for name in fleet.names:
            breach = poller.first.get(name)
            with fleet.psvc.lock:
                timeline = list(fleet.psvc.timeline.get(name, []))
            drained_at = next((s.t for s in timeline if drained(name, s)), None)
            if breach is None or drained_at is None:
                missing_breach += breach is None
                continue
            samples.append(drained_at - breach)
            abort_at = ts((fleet.psvc.status(name).get("abort") or {}).get("at"))
            if abort_at is not None:
                decisions.append(abort_at - breach)
        summary = stats.summary(samples)
        rolled_back = fleet.count(drained)
        reasons = Counter(
            (fleet.psvc.status(name).get("abort") or {}).get("reason") for name in fleet.names
        )
        return {
            "interval_s": parse_duration(cfg.reaction_interval),
            "samples": len(samples),
            "p50_s": summary["p50"],
            "p99_s": summary["p99"],
            "max_s": summary["max"],
            "min_s": summary["min"],
            "n": n,
            "rolled_back": rolled_back,
            "abort_reasons": {str(k): v for k, v in reasons.items()},
            "breach_not_seen": missing_breach,
            "decision_s": stats.summary(decisions),
            "breach_poll_period_s": 0.1,
            "breach_polls": poller.polls,
            "workers": cfg.workers,
        }
    finally:
        fleet.stop()


# --------------------------------------------------------------------------- 4. restart


def restart(env: Environment, n: int, cfg: Config) -> dict[str, Any]:
    ns = "bench-restart"
    pause_s = parse_duration(cfg.restart_pause)
    fleet = Fleet(
        env,
        ns,
        n,
        cfg,
        steps_for=lambda name: scale_steps(name, cfg.restart_pause),
        replicas=cfg.replicas,
        gate_interval=cfg.gate_interval,
        watch_pods=False,
    )
    try:
        fleet.start_operator()
        fleet.deploy_v1(timeout=600 + 2.0 * n)
        time.sleep(3)
        fleet.roll_out_v2()

        def started(name: str, snap: Snap) -> bool:
            return snap.canary is not None and snap.step is not None

        try:
            fleet.wait(started, 600 + n, "rollouts started")
        except TimeoutError as exc:
            say(f"{exc}: killing anyway")
        with fleet.psvc.lock:
            at_kill = {name: fleet.psvc.latest[name] for name in fleet.names}
        in_flight = {
            name: snap
            for name, snap in at_kill.items()
            if snap.canary is not None and not fleet.healthy_v2(name, snap)
        }
        steps_at_kill = Counter(s.step for s in in_flight.values())
        killed_at = time.time()
        fleet.operator.kill()
        down_s = max(10.0, pause_s + 2.0)  # every pause deadline passes while it is down
        say(
            f"{ns}: operator SIGKILLed with {len(in_flight)} rollouts in flight; down {down_s:.0f}s"
        )
        time.sleep(down_s)
        restarted = time.time()
        fleet.operator.start()
        serving = time.time()
        healthy = fleet.wait_v2(timeout=600 + 2.0 * n)

        resumed: list[float] = []
        for name, snap in in_flight.items():
            with fleet.psvc.lock:
                timeline = list(fleet.psvc.timeline.get(name, []))
            first = next(
                (
                    s.t
                    for s in timeline
                    if s.t > restarted
                    and (
                        (s.canary == snap.canary and (s.step or 0) > (snap.step or 0))
                        or s.stable == snap.canary
                    )
                ),
                None,
            )
            if first is not None:
                resumed.append(first - restarted)
        repeated = sum(stats.repeated_steps(fleet.psvc.status(name)) for name in fleet.names)
        resume_summary = stats.summary(resumed)
        return {
            "n": n,
            "resume_s": resume_summary["max"],
            "repeated_steps": repeated,
            "in_flight_at_kill": len(in_flight),
            "steps_at_kill": {str(k): v for k, v in sorted(steps_at_kill.items(), key=str)},
            "resumed": len(resumed),
            "first_transition_after_restart_s": resume_summary,
            "healthy": healthy,
            "down_s": round(restarted - killed_at, 1),
            "operator_start_to_healthz_s": round(serving - restarted, 2),
            "pause": cfg.restart_pause,
            "workers": cfg.workers,
        }
    finally:
        fleet.stop()
