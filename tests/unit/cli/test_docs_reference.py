"""docs/reference/api.md is generated from the CRD schemas and kept fresh."""

from __future__ import annotations

from pathlib import Path

from rollwise.api.crd import build_crds
from rollwise.cli import reference
from tests.unit.api.test_crd_descriptions import all_fields

REPO = Path(__file__).resolve().parents[3]


def test_the_api_reference_is_fresh() -> None:
    assert reference.is_fresh(REPO), "docs/reference/api.md is stale: run `make crds`"


def test_the_reference_lists_every_field_of_every_kind() -> None:
    text = reference.render()
    kinds = {crd["spec"]["names"]["kind"] for crd in build_crds().values()}

    for kind in kinds:
        assert f"\n## {kind}\n" in text
    # Top-level fields of each kind's spec and status appear by their dotted path.
    for path, _ in all_fields():
        kind, _, rest = path.partition(".")
        if rest.count(".") == 1 and "[]" not in rest and "{}" not in rest:
            assert f"`{rest}`" in text, path
