"""Every field of every CRD says what it is: `kubectl explain` shows these descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rollwise.api.crd import build_crds

Schema = dict[str, Any]


def fields_of(schema: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Every named field below `schema` (object properties, through arrays and maps)."""
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from fields_of(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from fields_of(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from fields_of(schema["additionalProperties"], f"{path}{{}}")


def all_fields() -> list[tuple[str, Schema]]:
    found: list[tuple[str, Schema]] = []
    for crd in build_crds().values():
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            root = version["schema"]["openAPIV3Schema"]
            found.extend(fields_of(root, kind))
    return found


def test_the_walk_sees_every_kind_and_deep_fields() -> None:
    paths = {path for path, _ in all_fields()}
    assert len(paths) > 200
    assert "ProgressiveService.spec.strategy.canary.steps[].setWeight" in paths
    assert "FleetRollout.spec" in paths


def test_every_field_of_every_crd_has_a_description() -> None:
    blank = [
        path
        for path, schema in all_fields()
        if not str(schema.get("description", "")).strip()
        # spec and status of a kind are described by the kind's own documentation
        and path.count(".") > 1
    ]
    assert blank == [], f"{len(blank)} fields without a description:\n" + "\n".join(blank)


@pytest.mark.parametrize("path", ["ProgressiveService.spec", "ProgressiveService.status"])
def test_spec_and_status_are_described(path: str) -> None:
    described = {p: s.get("description", "") for p, s in all_fields()}
    assert described[path].strip()
