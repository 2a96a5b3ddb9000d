"""Prometheus' own PromQL parser, through the promql-shape checker (deploy/local/promql-shape):
one long-lived process, a query in, its parse tree (JSON) out."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "build-promql-shape.sh"


def binary() -> Path:
    """The checker, built by `make tools` (or now, once, when it is missing)."""
    out = subprocess.run(["bash", str(SCRIPT)], check=True, capture_output=True, text=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"promql-shape not built: {out.stdout} {out.stderr}"
    return path


class PromqlShape:
    """parse(query) -> {"ok": True, "tree": ...} or {"ok": False, "error": ...}."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [str(binary())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._lock = threading.Lock()

    def parse(self, query: str) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps(query) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        assert line, "promql-shape exited"
        # Go writes a float64 without its exponent (1e16 as 10000000000000000): read every
        # number as a float, as the parser holds it.
        answer: dict[str, Any] = json.loads(line, parse_int=float)
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)
