"""The generated YAML read as users' tools read it: `kubectl apply -f` and helm parse YAML with
go-yaml v2 rules (YAML 1.1), where a bare `n` or `y` key is a boolean. The CRD schema's
property `n` (a comparison side's sample count) once came back as `"false"`, and the API
server then pruned `n` from every status written (seen as a KeyError in a comparison test
that ran after another test had applied the CRDs with `-f`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness.cluster import LocalCluster
from tests.harness.fixtures import CRDS

pytestmark = pytest.mark.cluster


def properties_named(schema: Any, name: str) -> int:
    """How many object schemas below `schema` declare a property `name`."""
    if isinstance(schema, dict):
        own = 1 if name in (schema.get("properties") or {}) else 0
        return own + sum(properties_named(v, name) for v in schema.values())
    if isinstance(schema, list):
        return sum(properties_named(v, name) for v in schema)
    return 0


def test_kubectl_apply_f_keeps_every_schema_property_name(
    cluster: LocalCluster, rollwise_crds: None
) -> None:
    for path in sorted(CRDS.glob("rollwise.dev_*.yaml")):
        cluster.kubectl("apply", "-f", str(path))

    crd = cluster.kubectl("get", "crd", "progressiveservices.rollwise.dev", "-o", "json").stdout
    schema = json.loads(crd)["spec"]["versions"][0]["schema"]
    assert properties_named(schema, "false") == 0, "a property name was read as a boolean"
    assert properties_named(schema, "n") == 2  # canary and stable sample counts
