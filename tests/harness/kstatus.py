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


DOCS_GITOPS = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"


def flux_health_exprs() -> dict[str, str]:
    """The ProgressiveService healthCheckExprs of docs/gitops.md's Kustomization, as shipped."""
    import yaml

    text = DOCS_GITOPS.read_text()
    for block in text.split("```yaml\n")[1:]:
        doc = yaml.safe_load(block.split("```")[0])
        if isinstance(doc, dict) and doc.get("kind") == "Kustomization":
            for check in doc["spec"]["healthCheckExprs"]:
                if check["kind"] == "ProgressiveService":
                    return {
                        k: v for k, v in check.items() if k in ("current", "failed", "inProgress")
                    }
    raise AssertionError("docs/gitops.md has no Kustomization with healthCheckExprs")


def flux_checker() -> Path:
    path = (
        cache_dir()
        / "bin"
        / f"fluxhealth-{versions()['FLUX_RUNTIME_VERSION']}"
        / "flux-health-check"
    )
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(
            f"not built yet: flux-health-check ({path}) -- run `make tools` "
            "(deploy/local/build-tools.sh fluxhealth)"
        )
    return path


def flux_health(objects: Sequence[Mapping[str, Any]], exprs: Mapping[str, str]) -> list[str]:
    """What kustomize-controller's healthCheckExprs evaluator says of each object: Current,
    InProgress, Failed, or "error: ..." when the expressions cannot be evaluated (Flux then
    reports the error and waits)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(dict(exprs), file)
        file.flush()
        result = subprocess.run(
            [str(flux_checker()), file.name],
            input="".join(json.dumps(obj) + "\n" for obj in objects),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    out = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [v["status"] if not v.get("error") else f"error: {v['error']}" for v in out]
