"""Compare benchmark runs side by side: `python -m tests.bench.compare A.json B.json ...`.

One row per (run, N) of the scale part, in the order given, then the other parts of each run;
a Markdown table, as the README and the issue notes quote it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SCALE_HEADER = (
    "| run (commit) | N | Healthy | total | p50 step | p99 step | peak RSS | operator CPU "
    "| passes/rollout | requests/rollout | writes/step (status) |"
)
SCALE_RULE = "|" + "---|" * (SCALE_HEADER.count("|") - 1)


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def scale_rows(name: str, results: dict[str, Any], *, carried: bool = False) -> list[str]:
    """Entries carried over from an earlier run (`--merge-from`) are left to that run's file
    unless `carried`."""
    commit = results.get("machine", {}).get("commit", "?")
    rows = []
    for e in results.get("scale", []):
        if "run" in e and not carried:
            continue
        passes = (e.get("operator_passes") or {}).get("passes_per_rollout")
        rows.append(
            f"| {name} ({commit}) | {e['n']} | {e['healthy']} "
            f"| {_num(e.get('total_s'), ' s')} | {_num(e.get('p50_step_s'), ' s', 2)} "
            f"| {_num(e.get('p99_step_s'), ' s', 1)} | {_num(e.get('peak_rss_mib'), ' MiB')} "
            f"| {_num(e.get('cpu_s'), ' s')} | {_num(passes)} "
            f"| {_num(e.get('api_requests_per_rollout_total'))} "
            f"| {_num(e.get('writes_per_step'))} ({_num(e.get('status_writes_per_step'))}) |"
        )
    return rows


def other_rows(name: str, results: dict[str, Any]) -> list[str]:
    rows = []
    if idle := results.get("idle"):
        rows.append(
            f"- {name} idle: {idle['healthy']}/{idle['n']} Healthy, RSS {_num(idle['rss_mib'])} "
            f"MiB (peak {_num(idle['peak_rss_mib'])}), {_num(idle['cpu_s_per_min'], '', 2)} "
            f"CPU-s/min over {_num(idle['window_s'], ' s', 0)}"
        )
    if reaction := results.get("reaction"):
        rows.append(
            f"- {name} reaction (gate every {_num(reaction['interval_s'])} s, "
            f"{reaction['samples']} rollouts): p50 {_num(reaction['p50_s'], ' s', 2)}, "
            f"p99 {_num(reaction['p99_s'], ' s', 2)}, max {_num(reaction['max_s'], ' s', 2)}"
        )
    if restart := results.get("restart"):
        rows.append(
            f"- {name} restart ({restart['in_flight_at_kill']} in flight): all progressing again "
            f"after {_num(restart['resume_s'], ' s')}, repeated steps {restart['repeated_steps']}, "
            f"Healthy {restart['healthy']}"
        )
    for error in results.get("errors", []):
        rows.append(f"- {name} ERROR in {error['part']}: {error['error']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.compare", description=__doc__)
    parser.add_argument("results", nargs="+", type=Path, help="results JSON files, oldest first")
    args = parser.parse_args(argv)
    runs = [(path.stem, json.loads(path.read_text())) for path in args.results]
    print(SCALE_HEADER)
    print(SCALE_RULE)
    for name, results in runs:
        for row in scale_rows(name, results):
            print(row)
    print()
    for name, results in runs:
        for row in other_rows(name, results):
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
