"""`make release VERSION=x.y.z`: everything a user installs, built into dist/ without a clone.

    rollwise-<v>-py3-none-any.whl, rollwise-<v>.tar.gz  the Python package (`pipx install`
                                                        gives `rollwise` and `kubectl-rollwise`)
    rollwise-<v>.tgz                    the Helm chart (version, appVersion and image tag <v>)
    rollwise-install-<v>.yaml           CRDs + operator watching every namespace
    rollwise-namespaced-install-<v>.yaml  CRDs + operator watching namespace `shop` only
    rollwise-crds-<v>.yaml              the CRDs alone (for upgrades)
    RELEASE-NOTES-<v>.md                this version's CHANGELOG section
    rollwise-image-<v>.tar              the image (`docker save`), when one was built
    SHA256SUMS                          sha256 of every file above
    release.json                        what was built (and why the image was not), for CI

The checkout is never modified: the version is written into a staged copy (a temporary
folder, removed afterwards, so that two builds may run at once). The image is built with
`docker build` when a Docker daemon answers, else on the kind tier's private daemon
(deploy/kind/dockerd.sh, started for the build and stopped after it); otherwise release.json
says why it was skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollwise.api import yaml11

REPO = Path(__file__).resolve().parents[2]
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
DEFAULT_IMAGE = "ghcr.io/rollwise/rollwise"
RELEASE_NAMESPACE = "rollwise-system"
NAMESPACED_WATCH = "shop"  # the examples' namespace; other choices: the chart
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
KIND = REPO / "deploy" / "kind"  # the kind tier's private dockerd (deploy/kind/dockerd.sh)
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "operator", "charts", "Dockerfile")


class ReleaseError(Exception):
    """A release that cannot be built as asked; the message says what to do."""


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ReleaseError(f"{' '.join(map(str, args))} failed:\n{done.stderr or done.stdout}")
    return done.stdout


def changelog_section(changelog: str, version: str) -> str:
    """The `## [version]` section of a Keep-a-Changelog file, heading included."""
    heading = re.compile(rf"^## \[{re.escape(version)}\].*$", re.M)
    found = heading.search(changelog)
    if found is None and "-" in version:
        # A pre-release (1.2.0-rc.1) carries what is not released yet.
        unreleased = changelog_section(changelog, "Unreleased")
        body = unreleased.split("\n", 1)[1] if "\n" in unreleased else ""
        return f"## [{version}] (pre-release: the [Unreleased] entries)\n{body}"
    if found is None:
        raise ReleaseError(
            f"CHANGELOG.md has no section `## [{version}] - YYYY-MM-DD`: move the [Unreleased] "
            "entries under it first"
        )
    following = re.compile(r"^## \[|^\[[^\]]+\]: ", re.M).search(changelog, found.end())
    end = following.start() if following else len(changelog)
    return changelog[found.start() : end].strip() + "\n"


def stage(version: str, image: str, staging: Path) -> Path:
    """A copy of the sources with the version written into the package and the chart."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, staging / name, ignore=ignore)
        else:
            shutil.copy2(source, staging / name)
    shutil.copy2(REPO / ".dockerignore", staging / ".dockerignore")
    pyproject = staging / "pyproject.toml"
    text, count = re.subn(
        r'^version = "[^"]*"$', f'version = "{version}"', pyproject.read_text(), flags=re.M
    )
    if count != 1:
        raise ReleaseError("pyproject.toml: no single `version = ...` line to set")
    pyproject.write_text(text)
    chart = staging / "charts" / "rollwise"
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    meta["appVersion"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    values = chart / "values.yaml"
    # Pinned: the chart installs exactly the image of this release, whatever its appVersion.
    text, count = re.subn(
        r"^(image:\n  repository: ).*\n((?:  #.*\n)*)  tag: .*$",
        lambda m: f'{m.group(1)}{image}\n{m.group(2)}  tag: "{version}"',
        values.read_text(),
        flags=re.M,
    )
    if count != 1:
        raise ReleaseError("charts/rollwise/values.yaml: no image.repository/tag to pin")
    values.write_text(text)
    return staging


def _strip_helm_labels(doc: dict[str, Any]) -> dict[str, Any]:
    """kubectl-applied objects are not Helm's: drop the two labels only Helm can set truly."""
    for holder in (
        doc.get("metadata"),
        ((doc.get("spec") or {}).get("template") or {}).get("metadata"),
    ):
        labels = (holder or {}).get("labels")
        if isinstance(labels, dict):
            for key in HELM_ONLY_LABELS:
                labels.pop(key, None)
    return doc


def install_manifest(helm: Path, chart: Path, *values: str) -> str:
    """CRDs, the release namespace and the operator, as one `kubectl apply -f` file."""
    rendered = run(
        helm, "template", "rollwise", chart, "-n", RELEASE_NAMESPACE, "--include-crds", *values
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": RELEASE_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "rollwise"},
        },
    }
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    rest = [_strip_helm_labels(d) for d in docs if d not in crds and d not in namespaces]
    ordered = [*crds, namespace, *namespaces, *rest]
    # Quoted where Go's YAML 1.1 reader would see a boolean (the schema's property `n`).
    return "---\n".join(yaml11.dump(d, sort_keys=False) for d in ordered)


def crds_manifest(chart: Path) -> str:
    files = sorted((chart / "crds").glob("*.yaml"))
    return "---\n".join(path.read_text() for path in files)


def docker_reachable(env: dict[str, str] | None = None) -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, check=False, env=env)
    return done.returncode == 0


def _kind_env() -> dict[str, str]:
    """The environment the kind tier's scripts use: DOCKER_HOST of its private daemon and the
    pinned image names (PYTHON_IMAGE: the local stand-in base where python:3.11-slim cannot be
    pulled)."""
    printed = run("bash", "-c", f"source {KIND / 'env.sh'} >/dev/null && env")
    values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    return {**os.environ, **values}


@dataclass(frozen=True)
class ImageOptions:
    """How the image is built: `builder_tag` also tags the Dockerfile's builder stage, so that
    its dependency layer is no dangling image that `docker image prune` would take from the
    next build's cache (the kind tier prunes after each run)."""

    builder_tag: str | None = None


def _docker(*args: str, env: dict[str, str], what: str) -> None:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"{what} failed:\n{(done.stderr or done.stdout)[-2000:]}")


def _docker_build(
    staging: Path, reference: str, env: dict[str, str], dist: Path, options: ImageOptions
) -> Path:
    """`docker build` of the staged Dockerfile, then `docker save` of the one reference."""
    common = ["build", "-q"]
    if env.get("PYTHON_IMAGE"):
        common += ["--build-arg", f"PYTHON_IMAGE={env['PYTHON_IMAGE']}"]
    if options.builder_tag:
        _docker(
            *common,
            "--target",
            "builder",
            "-t",
            options.builder_tag,
            str(staging),
            env=env,
            what=f"docker build of the builder stage ({options.builder_tag})",
        )
    _docker(*common, "-t", reference, str(staging), env=env, what=f"docker build of {reference}")
    tarball = dist / f"rollwise-image-{reference.rsplit(':', 1)[1]}.tar"
    _docker("save", "-o", str(tarball), reference, env=env, what=f"docker save of {reference}")
    tarball.chmod(0o644)  # docker save writes 0600; a release file is readable like the others
    return tarball


def build_image(
    staging: Path, image: str, version: str, dist: Path, options: ImageOptions = ImageOptions()
) -> dict[str, str]:
    """The operator image from the Dockerfile, saved as a tarball; or why it was not built.

    A Docker daemon that answers is used as it is. Without one, the kind tier's private daemon
    (deploy/kind/dockerd.sh) is started for the build and stopped after it, with the base image
    the kind tier built (PYTHON_IMAGE)."""
    reference = f"{image}:{version}"
    if docker_reachable():
        return {
            "image": reference,
            "file": _docker_build(staging, reference, dict(os.environ), dist, options).name,
        }
    if not (KIND / "dockerd.sh").exists():
        return {
            "image": reference,
            "skipped": "no Docker daemon reachable (docker info failed) and no deploy/kind/"
            f"dockerd.sh to start one: build it with `docker build -t {reference} .` where "
            "Docker runs, or let the release workflow build it",
        }
    env = _kind_env()
    started = not docker_reachable(env)
    if started:
        run("bash", KIND / "dockerd.sh", "start")
    try:
        base = env.get("PYTHON_IMAGE", "")
        if (
            base
            and subprocess.run(
                ["docker", "image", "inspect", base], capture_output=True, env=env, check=False
            ).returncode
        ):
            raise ReleaseError(
                f"the kind tier's daemon has no base image {base}: build it once with "
                "`bash deploy/kind/build.sh python-image` (or `make tools`)"
            )
        tarball = _docker_build(
            staging,
            reference,
            env,
            dist,
            options,
        )
        # The archive is the product: the private daemon's data-root does not keep a copy of
        # every version built (the builder stage's layers stay, for the next build's cache).
        _docker("rmi", reference, env=env, what=f"docker rmi {reference}")
    finally:
        if started:
            run("bash", KIND / "dockerd.sh", "stop")
    return {"image": reference, "file": tarball.name, "daemon": "deploy/kind/dockerd.sh"}


def find_helm() -> Path:
    """The proving ground's helm (`make tools`), else one on PATH."""
    sys.path.insert(0, str(REPO))
    from tests.harness.paths import MissingBinaryError, binaries

    try:
        built = binaries()
        built.require("helm")
        return built.helm
    except MissingBinaryError:
        found = shutil.which("helm")
        if found is None:
            raise ReleaseError("no helm: run `make tools`, or put helm on PATH") from None
        return Path(found)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(
    version: str,
    image: str,
    dist: Path,
    helm: Path,
    python: Path,
    with_image: bool,
    image_options: ImageOptions = ImageOptions(),
) -> dict[str, Any]:
    """Build every artifact of `version` into `dist`; returns what release.json records."""
    if not SEMVER.match(version):
        raise ReleaseError(f"VERSION {version!r} is not a semantic version like 1.2.3")
    notes = changelog_section((REPO / "CHANGELOG.md").read_text(), version)
    with tempfile.TemporaryDirectory(prefix="rollwise-release-") as scratch:
        return _build(
            version, image, dist, helm, python, with_image, image_options, notes, Path(scratch)
        )


def _build(
    version: str,
    image: str,
    dist: Path,
    helm: Path,
    python: Path,
    with_image: bool,
    image_options: ImageOptions,
    notes: str,
    scratch: Path,
) -> dict[str, Any]:
    staging = stage(version, image, scratch / "src")
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir(parents=True)
    run(python, "-m", "build", "--sdist", "--wheel", "--outdir", dist, staging)
    chart = staging / "charts" / "rollwise"
    run(helm, "lint", chart)
    run(helm, "package", chart, "--destination", dist)
    (dist / f"rollwise-install-{version}.yaml").write_text(install_manifest(helm, chart))
    (dist / f"rollwise-namespaced-install-{version}.yaml").write_text(
        install_manifest(helm, chart, "--set", f"watchNamespaces={{{NAMESPACED_WATCH}}}")
    )
    (dist / f"rollwise-crds-{version}.yaml").write_text(crds_manifest(chart))
    (dist / f"RELEASE-NOTES-{version}.md").write_text(notes)
    image_result = (
        build_image(staging, image, version, dist, image_options)
        if with_image
        else {
            "image": f"{image}:{version}",
            "skipped": "--no-image",
        }
    )
    files = sorted(p.name for p in dist.iterdir() if p.is_file())
    sums = "".join(f"{sha256(dist / name)}  {name}\n" for name in files)
    (dist / "SHA256SUMS").write_text(sums)
    record = {
        "version": version,
        "image": image_result,
        "chart": f"rollwise-{version}.tgz",
        "files": [*files, "SHA256SUMS"],
    }
    (dist / "release.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", required=True, help="the release's semantic version")
    parser.add_argument(
        "--image",
        default=os.environ.get("IMAGE", DEFAULT_IMAGE),
        help="the image repository (default %(default)s)",
    )
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder")
    parser.add_argument(
        "--helm",
        type=Path,
        default=None,
        help="the helm binary (default: the built one, else PATH)",
    )
    parser.add_argument(
        "--python", type=Path, default=Path(sys.executable), help="a Python with `build` installed"
    )
    parser.add_argument("--no-image", action="store_true", help="skip the image")
    parser.add_argument(
        "--builder-tag",
        default=None,
        help="also tag the Dockerfile's builder stage (its dependency layer stays cached)",
    )
    args = parser.parse_args(argv)
    try:
        helm = args.helm or find_helm()
        record = build(
            args.version,
            args.image,
            args.dist,
            helm,
            args.python,
            with_image=not args.no_image,
            image_options=ImageOptions(args.builder_tag),
        )
    except ReleaseError as error:
        print(f"make release: {error}", file=sys.stderr)
        return 1
    shown = args.dist.resolve()
    if shown.is_relative_to(Path.cwd()):
        shown = shown.relative_to(Path.cwd())
    for name in record["files"]:
        print(shown / name)
    image = record["image"]
    print(f"image {image['image']}: " + (image.get("file") or f"not built ({image['skipped']})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
