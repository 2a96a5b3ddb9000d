"""`python -m tests.bench.compare`: the Markdown the README quotes, from results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import compare


def results(commit: str, *ns: int, merged: int | None = None) -> dict[str, object]:
    scale = [
        {
            "n": n,
            "healthy": n - 1,
            "total_s": 12.25,
            "p50_step_s": 0.5,
            "p99_step_s": 3.0,
            "peak_rss_mib": 90.0,
            "cpu_s": 5.5,
            "writes_per_step": 4.2,
            "status_writes_per_step": 1.0,
            "api_requests_per_rollout_total": 28.6,
            "operator_passes": {"passes_per_rollout": 7.6},
        }
        for n in ns
    ]
    if merged is not None:
        scale.append({**scale[0], "n": merged, "run": {"file": "older.json"}})
    return {
        "machine": {"commit": commit},
        "scale": scale,
        "reaction": {"interval_s": 5.0, "samples": 50, "p50_s": 2.5, "p99_s": 4.9, "max_s": 5.0},
        "errors": [{"part": "idle", "error": "TimeoutError: 10000 Healthy"}],
    }


def test_rows_per_run_and_n_skip_merged_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(results("abc1234", 100, 500)))
    b.write_text(json.dumps(results("def5678", 2000, merged=100)))

    assert compare.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()

    table = [line for line in out if line.startswith("| ")]
    assert table[1:] == [
        "| a (abc1234) | 100 | 99 | 12.2 s | 0.50 s | 3.0 s | 90.0 MiB | 5.5 s | 7.6 | 28.6 "
        "| 4.2 (1.0) |",
        "| a (abc1234) | 500 | 499 | 12.2 s | 0.50 s | 3.0 s | 90.0 MiB | 5.5 s | 7.6 | 28.6 "
        "| 4.2 (1.0) |",
        "| b (def5678) | 2000 | 1999 | 12.2 s | 0.50 s | 3.0 s | 90.0 MiB | 5.5 s | 7.6 | 28.6 "
        "| 4.2 (1.0) |",
    ]
    assert out[1].count("---") == table[0].count("|") - 1
    assert "- b reaction (gate every 5.0 s, 50 rollouts): p50 2.50 s, p99 4.90 s, max 5.00 s" in out
    assert "- a ERROR in idle: TimeoutError: 10000 Healthy" in out
