"""The release's install manifest (rollwise-install-<v>.yaml from the stage's dist folder: CRDs,
the namespace and the operator) installs a running operator with `kubectl apply -f` alone, as a
user without helm does: two Ready pods on the release's image, and a ProgressiveService rolled
to a new version step by step. The chart's release is removed first (this file runs last,
after test_uninstall.py). And the release's SHA256SUMS, which the README checks first, covers
the image archive the stage loaded."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.harness import kind
from tests.harness.kind import Rollout
from tests.harness.wait import wait_for
from tests.kind.conftest import KindStage
from tests.kind.test_install import ready

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]


def test_the_install_manifest_runs_the_operator_that_rolls_out_a_new_version(
    kind_stage: KindStage, fresh_namespace: str
) -> None:
    cluster, release = kind_stage.cluster, kind_stage.release
    if kind.RELEASE in cluster.helm("list", "-q", "-n", kind.OPERATOR_NAMESPACE).stdout.split():
        cluster.helm("uninstall", kind.RELEASE, "-n", kind.OPERATOR_NAMESPACE, "--wait")

    _, service = kind.example_route_and_service(fresh_namespace)
    service["spec"]["strategy"]["canary"].pop("analysis", None)
    service["spec"]["strategy"]["canary"]["trafficRouting"] = {"replicas": {}}
    rollout = Rollout(cluster, fresh_namespace)

    def at(version: str) -> dict[str, Any]:
        # No migration Job: the operator's own work is what is under test (and it is cheaper).
        manifest = kind.at_version(service, kind_stage.app_image, version, steps=STEPS)
        del manifest["spec"]["migration"]
        return manifest

    # It waits for an operator (the CRDs stay when a chart is uninstalled).
    rollout.apply(at("1.0.0"))

    cluster.kubectl("apply", "-f", str(release.install_manifest), timeout=120)

    def two_ready() -> list[dict[str, Any]] | None:
        pods = cluster.operator_pods()
        return pods if len(pods) == 2 and all(map(ready, pods)) else None

    pods = wait_for(two_ready, timeout=180, message="two Ready operator pods from the manifest")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {release.image}
    assert rollout.wait_settled("1.0.0", timeout=180)["phase"] == "Healthy"
    rollout.apply(at("2.0.0"))

    done = rollout.wait_settled("2.0.0", timeout=180)

    assert done["phase"] == "Healthy", done.get("message")
    assert done["stable"]["version"] == "2.0.0"
    revision = done["stable"]["revision"]
    steps = [
        h["step"]
        for h in done.get("history") or []
        if h["event"] == "StepCompleted" and h.get("revision") == revision
    ]
    assert steps == [0, 1], "the canary's two steps, each once"


def test_the_release_checksums_cover_the_image_archive_the_stage_loaded(
    kind_stage: KindStage,
) -> None:
    release = kind_stage.release
    lines = (release.dist / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}

    assert release.image_archive.name in sums and release.chart.name in sums
    assert release.install_manifest.name in sums
    for name, digest in sums.items():
        with (release.dist / name).open("rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == digest, name
