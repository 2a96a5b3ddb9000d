"""The CRD YAML in crds/ and the chart is exactly what the API models generate, and every
schema is structural (the apiserver rejects anything else)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwise.api.crd import build_crds
from rollwise.cli.crds import rendered, stale_files, write

ROOT = Path(__file__).resolve().parents[3]


def test_generated_crd_files_are_fresh() -> None:
    stale = stale_files(ROOT)

    assert not stale, (
        "CRD YAML differs from the API models in operator/rollwise/api: "
        + ", ".join(str(p.relative_to(ROOT)) for p in stale)
        + ". Run `make crds` and commit the result."
    )


def test_freshness_check_notices_a_hand_edited_file(tmp_path: Path) -> None:
    write(tmp_path)
    edited = tmp_path / "crds" / "rollwise.dev_metricgates.yaml"
    edited.write_text(edited.read_text().replace("minimum: 0", "minimum: 1"))

    assert stale_files(tmp_path) == [edited]


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, text in rendered().items():
        crd = yaml.safe_load(text)
        for version in crd["spec"]["versions"]:
            yield f"{name}:{version['name']}", version["schema"]["openAPIV3Schema"]


def nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below `node`, with a JSON-path-like name for messages."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def problems_in(schema: dict[str, Any], name: str) -> list[str]:
    """What keeps a schema from being structural, node by node."""
    problems = []
    for path, node in nodes(schema, name):
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
        if {"$ref", "$defs", "definitions"} & node.keys():
            problems.append(f"{path}: $ref")
        if not int_or_string and {"anyOf", "allOf", "oneOf", "not"} & node.keys():
            problems.append(f"{path}: anyOf/allOf/oneOf outside int-or-string")
        if "type" not in node and not int_or_string and not preserved:
            problems.append(f"{path}: no type")
        if node.get("type") == "null":
            problems.append(f"{path}: type null")
        if isinstance(node.get("additionalProperties"), bool):
            problems.append(f"{path}: boolean additionalProperties")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
    return problems


@pytest.mark.parametrize(("name", "schema"), list(schemas()))
def test_every_schema_node_is_structural(name: str, schema: dict[str, Any]) -> None:
    assert problems_in(schema, name) == []


def test_the_structural_check_finds_what_the_apiserver_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {"description": "no type"},
            "d": {"x-kubernetes-int-or-string": True},
        },
    }

    assert problems_in(bad, "") == [
        ".a: $ref",
        ".a: no type",
        ".b: anyOf/allOf/oneOf outside int-or-string",
        ".b: no type",
        ".c: no type",
    ]


def test_the_schema_walk_reaches_every_node() -> None:
    walked = {path for _, schema in schemas() for path, _ in nodes(schema, "")}

    assert ".spec.strategy.canary.steps[].pause.duration" in walked
    assert ".spec.template.metadata.labels{}" in walked
    assert ".spec.service.targetPort" in walked
    assert ".status.history[].at" in walked


def test_progressive_services_can_be_scaled_by_an_autoscaler() -> None:
    version = build_crds()["rollwise.dev_progressiveservices.yaml"]["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]

    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    # An absent replicas would read as 0 through the scale subresource: "scaling disabled".
    assert spec["properties"]["replicas"]["default"] == 1
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert "has(self.template) != has(self.workloadRef)" in rules
