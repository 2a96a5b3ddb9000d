"""`make demo-sim` (the kwok demo; `make demo` runs on kind) as a newcomer (or CI) runs it: a
real canary that is promoted and a real bad version that rolls back by itself, then nothing of
the demo left running.

The demo starts its own proving ground (cluster `rollwise-demo`), next to whatever this pytest
session runs; its run is told apart by its run id. Its logs go to this test's tmp folder
(ROLLWISE_RUN_DIR), which also makes the run id certain: the only run folder there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import paths, processes

pytestmark = pytest.mark.cluster  # starts a proving ground of its own

DEMO_TIMEOUT_S = 15 * 60
SUMMARY_LINE = re.compile(
    r"^  (?P<version>\d+\.\d+\.\d+): phase (?P<phase>\w+), stable (?P<stable>\S+), "
    r"(?P<seconds>\d+)s(?: — (?P<reason>\w+): (?P<message>.*))?$"
)


def run_make_demo(env: dict[str, str], output: Path) -> tuple[int, float]:
    """`make demo` without a terminal; on timeout SIGTERM its process group (the demo tears
    its proving ground down on SIGTERM), then SIGKILL. The exit code and the wall time."""
    started = time.monotonic()
    with output.open("w") as out:
        make = subprocess.Popen(
            ["make", "demo-sim"],
            cwd=paths.REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            code = make.wait(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGTERM)
            try:
                make.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
            pytest.fail(f"make demo did not finish in {DEMO_TIMEOUT_S}s; output in {output}")
    return code, time.monotonic() - started


def summary(text: str) -> dict[str, dict[str, str]]:
    """The lines after `==> summary`, by version."""
    _, found, tail = text.partition("==> summary\n")
    assert found, f"no summary in the demo's output:\n{text[-3000:]}"
    lines = {}
    for line in tail.splitlines():
        match = SUMMARY_LINE.match(line)
        if match:
            lines[match["version"]] = {k: v for k, v in match.groupdict().items() if v}
    return lines


@pytest.mark.timeout(DEMO_TIMEOUT_S + 180)
def test_make_demo_promotes_2_0_0_rolls_back_3_0_0_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "ROLLWISE_RUN_DIR": str(run_dir), "TERM": "dumb"}
    env.pop(processes.MARKER_ENV, None)  # the demo is its own run, not part of this session's
    output = tmp_path / "make-demo.log"

    code, wall = run_make_demo(env, output)

    text = output.read_text()
    runs = sorted(p.name for p in (run_dir / "logs").iterdir())
    assert len(runs) == 1, runs
    run_id = runs[0]
    leftovers = [
        p
        for p in processes.leftover_processes()
        if p.run_id == run_id or (p.run_id is None and "/clusters/rollwise-demo/" in p.cmdline)
    ]
    print(f"make demo: exit {code} in {wall:.0f}s; output {output}; logs {run_dir / 'logs'}")
    assert code == 0 and not leftovers, (
        f"make demo exited {code} after {wall:.0f}s (output: {output}); "
        f"{len(leftovers)} process(es) of its run left running\n"
        + "\n".join(map(str, leftovers))
        + "\nits headlines:\n"
        + "\n".join(line for line in text.splitlines() if line.startswith("==>"))
        + f"\nthe end of its output:\n{text[-3000:]}"
    )
    assert not (paths.runs_dir() / run_id).exists(), "the demo's run state was not removed"
    assert not (paths.kwok_workdir() / "clusters" / "rollwise-demo").exists()
    assert "\033[" not in text, "no terminal escape codes without a terminal"

    lines = summary(text)
    assert lines["1.0.0"]["phase"] == "Healthy" and lines["1.0.0"]["stable"] == "1.0.0"
    promoted = lines["2.0.0"]
    assert (promoted["phase"], promoted["stable"]) == ("Healthy", "2.0.0"), promoted
    assert "reason" not in promoted, promoted
    rolled_back = lines["3.0.0"]
    assert (rolled_back["phase"], rolled_back["stable"]) == ("RolledBack", "2.0.0"), rolled_back
    assert rolled_back["reason"] == "GateFailed", rolled_back
    assert "> max 0.05" in rolled_back["message"], rolled_back
    # What the person watching saw: the plugin's live frames, the rollback as it happened.
    assert "Phase:      RollingBack" in text and "TrafficDrained" in text
