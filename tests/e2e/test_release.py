"""`make release` builds what a user installs, and a user installs it from dist/ alone.

The release is built once for the module (deploy/release/build.py, as `make release` runs it,
without the image: the kind tier builds and runs that). Then, as a newcomer without a clone
would: the wheel into a fresh venv (both console scripts run), and the install manifest, its
namespaced variant and the chart package into a fresh control plane of their own (kwok tier).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Tools
from tests.harness import stack
from tests.harness.cluster import LocalCluster
from tests.harness.run import HarnessRun

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "release" / "build.py"
# A pre-release: not the checkout's version (so the build must set it everywhere), and its
# notes are the CHANGELOG's [Unreleased] section.
VERSION = "0.2.0-rc.1"
PEP440 = "0.2.0rc1"  # how Python spells the same version
IMAGE = "registry.example/rollwise/rollwise"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [
            sys.executable,
            str(BUILD),
            "--version",
            VERSION,
            "--image",
            IMAGE,
            "--dist",
            str(folder),
            "--no-image",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def fresh_cluster(harness_run: HarnessRun) -> Iterator[LocalCluster]:
    """A control plane of its own, with no rollwise CRDs: what a new user starts from."""
    started = stack.start_cluster(harness_run, f"rwrel-{os.getpid()}")
    try:
        yield started
    finally:
        started.stop()


def _file(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def test_the_release_holds_every_artifact_with_its_checksum(dist: Path) -> None:
    record = json.loads((dist / "release.json").read_text())
    pairs = [line.split("  ", 1) for line in (dist / "SHA256SUMS").read_text().splitlines()]
    sums = {name: digest for digest, name in pairs}

    expected = {
        f"rollwise-{PEP440}-py3-none-any.whl",
        f"rollwise-{PEP440}.tar.gz",
        f"rollwise-{VERSION}.tgz",
        f"rollwise-install-{VERSION}.yaml",
        f"rollwise-namespaced-install-{VERSION}.yaml",
        f"rollwise-crds-{VERSION}.yaml",
        f"RELEASE-NOTES-{VERSION}.md",
    }
    assert set(sums) == expected
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name
    assert set(record["files"]) == expected | {"SHA256SUMS"}
    assert record["image"] == {"image": f"{IMAGE}:{VERSION}", "skipped": "--no-image"}
    notes = (dist / f"RELEASE-NOTES-{VERSION}.md").read_text()
    assert notes.startswith(f"## [{VERSION}]") and "### Added" in notes


def test_the_chart_package_pins_its_version_and_image(dist: Path) -> None:
    with tarfile.open(dist / f"rollwise-{VERSION}.tgz") as chart:
        meta = yaml.safe_load(chart.extractfile("rollwise/Chart.yaml").read())  # type: ignore[union-attr]
        values = yaml.safe_load(chart.extractfile("rollwise/values.yaml").read())  # type: ignore[union-attr]
        names = chart.getnames()

    assert (meta["version"], meta["appVersion"]) == (VERSION, VERSION)
    assert values["image"] == {**values["image"], "repository": IMAGE, "tag": VERSION}
    assert sum(name.startswith("rollwise/crds/") for name in names) == 5


def test_the_install_manifest_is_crds_then_the_operator_with_the_pinned_image(dist: Path) -> None:
    docs = list(yaml.safe_load_all(_file(dist, "rollwise-install-*.yaml").read_text()))
    kinds = [d["kind"] for d in docs]

    assert kinds[:6] == ["CustomResourceDefinition"] * 5 + ["Namespace"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{VERSION}"
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # kubectl applies it, not Helm: no label claims otherwise.
    assert "managed-by: Helm" not in _file(dist, "rollwise-install-*.yaml").read_text()


@pytest.fixture(scope="module")
def wheel_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the released wheel (and its dependencies) installed."""
    env_dir = tmp_path_factory.mktemp("wheel") / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            str(_file(dist, "rollwise-*.whl")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    return env_dir / "bin"


def test_the_wheel_installs_both_console_scripts_into_a_fresh_venv(wheel_venv: Path) -> None:
    rollwise = subprocess.run(
        [str(wheel_venv / "rollwise"), "version"], capture_output=True, text=True, check=False
    )
    plugin = subprocess.run(
        [str(wheel_venv / "kubectl-rollwise"), "version", "--client"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert rollwise.stdout == f"rollwise {PEP440}\n", rollwise.stderr
    assert plugin.stdout == f"kubectl-rollwise: {PEP440}\n", plugin.stderr


@pytest.mark.cluster
def test_the_install_manifest_installs_the_operator_on_a_fresh_cluster(
    dist: Path, fresh_cluster: LocalCluster, tools: Tools, wheel_venv: Path
) -> None:
    kubeconfig = fresh_cluster.kubeconfig
    tools.kubectl_ok("apply", "-f", _file(dist, "rollwise-install-*.yaml"), kubeconfig=kubeconfig)

    tools.kubectl_ok(
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
        kubeconfig=kubeconfig,
    )
    tools.kubectl_ok(
        "-n",
        "rollwise-system",
        "rollout",
        "status",
        "deployment/rollwise",
        "--timeout=120s",
        kubeconfig=kubeconfig,
        timeout=150,
    )
    explained = tools.kubectl_ok(
        "explain",
        "progressiveservices.spec.strategy.canary.steps.setWeight",
        kubeconfig=kubeconfig,
    )
    assert "percentage of traffic" in explained  # every field is described (field_docs)
    version = subprocess.run(
        [str(wheel_venv / "kubectl-rollwise"), "--kubeconfig", str(kubeconfig), "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert f"operator: {VERSION} (rollwise-system/rollwise, image {IMAGE}:{VERSION}" in (
        version.stdout
    ), version.stdout + version.stderr


@pytest.mark.cluster
def test_the_namespaced_variant_creates_its_watched_namespace_and_roles(
    dist: Path, fresh_cluster: LocalCluster, tools: Tools
) -> None:
    kubeconfig = fresh_cluster.kubeconfig
    manifest = _file(dist, "rollwise-namespaced-install-*.yaml")

    tools.kubectl_ok("apply", "-f", manifest, kubeconfig=kubeconfig)

    roles = tools.kubectl_ok("get", "roles", "-n", "shop", "-o", "name", kubeconfig=kubeconfig)
    assert "role.rbac.authorization.k8s.io/rollwise" in roles
    args = tools.kubectl_ok(
        "get",
        "deployment",
        "rollwise",
        "-n",
        "rollwise-system",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
        kubeconfig=kubeconfig,
    )
    assert "--namespace=shop" in args and "--all-namespaces" not in args


@pytest.mark.cluster
def test_the_chart_package_installs_watching_namespaces_that_do_not_exist_yet(
    dist: Path, fresh_cluster: LocalCluster, tools: Tools
) -> None:
    kubeconfig = fresh_cluster.kubeconfig
    installed = tools.helm_ok(
        "install",
        "rollwise-chart",
        _file(dist, "rollwise-*.tgz"),
        "-n",
        "rollwise-chart",
        "--create-namespace",
        "--wait",
        "--timeout",
        "120s",
        "--set",
        "watchNamespaces={team-a,team-b}",
        kubeconfig=kubeconfig,
    )

    for team in ("team-a", "team-b"):
        tools.kubectl_ok("get", "role", "rollwise-chart", "-n", team, kubeconfig=kubeconfig)
    assert "the chart created those of team-a, team-b that did not exist" in installed
    assert "kubectl apply -f charts/rollwise/crds/" in installed
    image = tools.kubectl_ok(
        "get",
        "deployment",
        "rollwise-chart",
        "-n",
        "rollwise-chart",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
        kubeconfig=kubeconfig,
    )
    assert image == f"{IMAGE}:{VERSION}"

    # An upgrade keeps the namespaces it created; uninstall leaves them (they hold workloads).
    tools.helm_ok(
        "upgrade",
        "rollwise-chart",
        _file(dist, "rollwise-*.tgz"),
        "-n",
        "rollwise-chart",
        "--reuse-values",
        kubeconfig=kubeconfig,
    )
    tools.helm_ok(
        "uninstall", "rollwise-chart", "-n", "rollwise-chart", "--wait", kubeconfig=kubeconfig
    )
    left = tools.kubectl_ok("get", "namespace", "team-a", "-o", "name", kubeconfig=kubeconfig)
    assert left.strip() == "namespace/team-a"
    assert "Terminating" not in tools.kubectl_ok(
        "get", "namespace", "team-a", kubeconfig=kubeconfig
    )


def test_the_workflow_publishes_what_make_release_builds() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    steps = {
        job: " ".join(
            str(step.get("run", "")) + str(step.get("uses", "")) for step in spec["steps"]
        )
        for job, spec in workflow["jobs"].items()
    }

    assert "make release VERSION=" in steps["build"]
    assert "docker/build-push-action" in steps["image"]
    assert "helm push dist/rollwise-" in steps["chart"] and "oci://" in steps["chart"]
    assert "pypa/gh-action-pypi-publish" in steps["pypi"]
    assert "sha256sum -c SHA256SUMS" in steps["github-release"]
