"""The real kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status) as Flux and cli-utils
use it, through the tiny checker built from deploy/local/kstatus/ by `make tools`: what it
makes of objects the operator wrote."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.harness.paths import MissingBinaryError, cache_dir, versions


def checker() -> Path:
    """The kstatus-check binary; MissingBinaryError when it is not built yet."""
    path = cache_dir() / "bin" / f"kstatus-{versions()['KSTATUS_VERSION']}" / "kstatus-check"
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(
            f"not built yet: kstatus-check ({path}) -- run `make tools` "
            "(deploy/local/build-tools.sh kstatus)"
        )
    return path


def compute(objects: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """kstatus's verdict ({"status", "message"}) for each object, in order."""
    lines = "".join(json.dumps(obj) + "\n" for obj in objects)
    result = subprocess.run(
        [str(checker())], input=lines, capture_output=True, text=True, timeout=30, check=True
    )
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(verdicts) == len(objects), result.stderr
    for verdict in verdicts:
        assert not verdict.get("error"), verdict
    return verdicts
