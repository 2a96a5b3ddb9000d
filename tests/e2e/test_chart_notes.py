"""The chart creates the namespaces a namespaced install watches, and its NOTES say how to start.

Rendered with the real helm (`helm template`); no cluster needed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness.paths import MissingBinaryError, binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "rollwise"


def _helm() -> Path:
    built = binaries()
    try:
        built.require("helm")
        return built.helm
    except MissingBinaryError as error:
        pytest.fail(str(error))


def _render(*values: str, show_only: str | None = None) -> list[dict[str, object]]:
    args = [str(_helm()), "template", "rw", str(CHART), "-n", "rollwise-system", *values]
    if show_only:
        args += ["--show-only", show_only]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_a_namespaced_install_creates_its_watched_namespaces_and_keeps_them() -> None:
    objects = _render("--set", "watchNamespaces={shop,payments,rollwise-system}")

    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    # The release namespace is Helm's (--create-namespace), never the chart's.
    assert sorted(n["metadata"]["name"] for n in namespaces) == ["payments", "shop"]  # type: ignore[index]
    for namespace in namespaces:
        assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # type: ignore[index]


def test_no_namespace_is_created_when_told_not_to_or_when_watching_all() -> None:
    told_not_to = _render("--set", "watchNamespaces={shop}", "--set", "createWatchNamespaces=false")
    watching_all = _render()

    assert not [o for o in told_not_to + watching_all if o["kind"] == "Namespace"]


def test_the_notes_create_the_workload_namespace_and_upgrade_crds_from_the_repository_root() -> (
    None
):
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    repository = CHART.parents[1]

    assert "kubectl create namespace shop" in notes
    command = "kubectl apply -f charts/rollwise/crds/"
    assert command in notes
    # The folder the command names holds CRDs only (crds/ at the root also holds a
    # kustomization.yaml, which `kubectl apply -f` would send to the apiserver and fail on).
    folder = repository / "charts" / "rollwise" / "crds"
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in folder.glob("*.yaml")}
    assert kinds == {"CustomResourceDefinition"}
