"""The benchmark end to end at N=10 (every part, about a minute) on the same tuned control plane
`make bench` starts (Environment.started: its componentsPatches, its node count), so a
cluster `make bench` cannot start fails here too: it runs, writes well-formed results, and
every service reaches Healthy."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench import run as bench
from tests.bench.env import TUNING, Environment, nodes_for
from tests.harness.run import HarnessRun

pytestmark = pytest.mark.cluster

N = 10  # enough for every part to run; the published figures come from `make bench`


def test_benchmark_at_n10_writes_results_and_every_service_gets_healthy(
    harness_run: HarnessRun, tmp_path: Path
) -> None:
    args = bench.options(
        [
            "--n",
            str(N),
            "--idle-window",
            "5",
            "--reaction-spread",
            "5",
            "--restart-pause",
            "6s",
            "--out",
            str(tmp_path),
        ]
    )
    written: list[dict[str, object]] = []
    name = f"rwb-smoke-{os.getpid()}"
    with Environment.started(harness_run, name, nodes=nodes_for(N)) as env:
        # One tuned cluster for every part (make bench starts one per part): cleaned between.
        env.shared = True

        @contextlib.contextmanager
        def same_cluster(part: str, pods: int) -> Iterator[Environment]:
            yield env

        results = bench.run_benchmark(args, same_cluster, written.append)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results, indent=2))
    data = json.loads(path.read_text())
    print(bench.table(data))

    assert data["errors"] == [], data["errors"]
    assert data["control_plane_tuning"] == list(TUNING)
    assert written, "results are written after every part"
    assert set(data["machine"]) >= {"cores", "memory_gib", "kubernetes", "python", "rollwise"}
    [scale] = data["scale"]
    assert scale["n"] == N and scale["healthy"] == N
    for key in ("total_s", "p50_step_s", "p99_step_s", "peak_rss_mib", "cpu_s"):
        assert isinstance(scale[key], float) and scale[key] > 0, key
    assert scale["writes_per_step"] > 0
    assert scale["step_latency"]["transitions"] == N * 5
    assert scale["api_requests_per_rollout"]["status"] >= 5, "one status write per step at least"
    assert data["idle"]["healthy"] == N and data["idle"]["rss_mib"] > 0
    assert data["idle"]["cpu_s_per_min"] >= 0
    reaction = data["reaction"]
    assert reaction["rolled_back"] == N, reaction
    assert reaction["samples"] == N and reaction["p50_s"] is not None
    assert reaction["abort_reasons"] == {"GateFailed": N}
    restart = data["restart"]
    assert restart["healthy"] == N and restart["repeated_steps"] == 0, restart
    assert restart["in_flight_at_kill"] == N and restart["resumed"] == N, restart
