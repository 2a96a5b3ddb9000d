"""make release's image step (deploy/release/build.py) against a stand-in `docker` that records
what it is asked: the builder stage tagged when asked, one reference saved, the archive
readable like the release's other files."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A docker that answers `info`, records every call and writes `save -o FILE` as 0600, as
# Docker does.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >>"$DOCKER_CALLS"
if [ "$1" = save ]; then umask 077; echo archive >"$3"; fi
exit 0
"""


def release_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "release_build", ROOT / "deploy" / "release" / "build.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_build"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def docker_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("DOCKER_CALLS", str(calls))
    monkeypatch.setenv("PYTHON_IMAGE", "local/python:3.11-slim")
    return calls


def test_the_image_is_saved_alone_as_an_archive_readable_like_the_other_files(
    docker_calls: Path, tmp_path: Path
) -> None:
    build = release_builder()
    dist = tmp_path / "dist"
    dist.mkdir()

    record = build.build_image(
        tmp_path / "src",
        "registry.example/rollwise",
        "1.2.3",
        dist,
        build.ImageOptions(builder_tag="registry.example/rollwise-builder:cache"),
    )

    assert record == {
        "image": "registry.example/rollwise:1.2.3",
        "file": "rollwise-image-1.2.3.tar",
    }
    archive = dist / "rollwise-image-1.2.3.tar"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o644
    base = "build -q --build-arg PYTHON_IMAGE=local/python:3.11-slim"
    assert docker_calls.read_text().splitlines() == [
        "info",
        f"{base} --target builder -t registry.example/rollwise-builder:cache {tmp_path / 'src'}",
        f"{base} -t registry.example/rollwise:1.2.3 {tmp_path / 'src'}",
        f"save -o {archive} registry.example/rollwise:1.2.3",
    ]


def test_without_a_builder_tag_only_the_image_is_built(docker_calls: Path, tmp_path: Path) -> None:
    build = release_builder()

    build.build_image(tmp_path / "src", "r/rollwise", "1.2.3", tmp_path)

    builds = [c for c in docker_calls.read_text().splitlines() if c.startswith("build")]
    assert len(builds) == 1 and "--target" not in builds[0]
