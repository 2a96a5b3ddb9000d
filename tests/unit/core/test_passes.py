"""The pass builder: status updates that cannot be mistyped, and reasons that are all in use."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollwise.api.service_status import Phase, ServiceStatus
from rollwise.core.model import Observed
from rollwise.core.passes import STATUS_FIELDS, Pass, StatusChanges
from rollwise.core.reasons import ConditionType, Reason
from tests.unit.core.world import spec_from

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def a_pass() -> Pass:
    return Pass(
        spec=spec_from(),
        observed=Observed(namespace="shop", name="payment", generation=1),
        now=NOW,
        status=ServiceStatus(),
    )


def test_set_changes_the_named_fields() -> None:
    p = a_pass()

    p.set(phase=Phase.PAUSED, canary_weight=25)

    assert (p.status.phase, p.status.canary_weight) == (Phase.PAUSED, 25)


def test_set_rejects_a_mistyped_field_instead_of_dropping_it() -> None:
    p = a_pass()

    with pytest.raises(TypeError, match="no field canary_wieght"):
        p.set(canary_wieght=25)  # type: ignore[call-arg]

    assert p.status.canary_weight == 0


def test_status_changes_lists_exactly_the_status_fields() -> None:
    # A new ServiceStatus field must be added to StatusChanges, or no pass can set it.
    assert set(StatusChanges.__annotations__) == STATUS_FIELDS


def test_mypy_reports_a_mistyped_status_field(tmp_path: Path) -> None:
    snippet = tmp_path / "typo.py"
    snippet.write_text(
        "from rollwise.core.passes import Pass\n\n\n"
        "def f(p: Pass) -> None:\n"
        "    p.set(canary_wieght=25)\n"
    )

    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert found.returncode == 1, found.stdout + found.stderr
    assert 'Unexpected keyword argument "canary_wieght"' in found.stdout


def test_reasons_and_condition_types_are_string_enums() -> None:
    assert Reason.GATE_FAILED == "GateFailed"
    assert ConditionType.READY == "Ready"
    assert f"{Reason.ROLLED_BACK}" == "RolledBack"
    with pytest.raises(ValueError):
        Reason("NoSuchReason")


def test_every_reason_is_used_by_the_operator() -> None:
    sources = "\n".join(
        path.read_text()
        for path in (ROOT / "operator" / "rollwise").rglob("*.py")
        if path.name != "reasons.py"
    )
    used = set(re.findall(r"\bReason\.([A-Z_]+)\b", sources))

    unused = sorted(r.name for r in Reason if r.name not in used)

    assert not unused, f"reasons nothing emits: {unused}"
