"""The one lenient reader of a stored status, as the operator and the kubectl plugin use it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rollwise.api.service_status import HISTORY_LIMIT
from rollwise.api.stored_status import read_stored_status
from rollwise.cli.plugin_render import read_service
from rollwise.controller.logs import ref
from rollwise.controller.reconcile import read_status


def history(count: int) -> list[dict[str, Any]]:
    return [{"at": f"2026-01-01T00:{i:02d}:00Z", "event": f"Event{i}"} for i in range(count)]


def test_the_operator_keeps_the_readable_entries_of_a_list_with_one_bad_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {"phase": "Progressing", "history": [*history(2), {"event": "NoTime"}]}

    with caplog.at_level(logging.WARNING, logger="rollwise.reconcile"):
        status = read_status(raw, ref("shop", "payment"))

    assert [entry.event for entry in status.history] == ["Event0", "Event1"]
    assert "status.history: 1 unreadable entries skipped" in caplog.text


def test_a_history_longer_than_the_limit_keeps_its_latest_entries() -> None:
    reading = read_stored_status({"history": history(HISTORY_LIMIT + 3)})

    assert len(reading.status.history) == HISTORY_LIMIT
    assert reading.status.history[-1].event == f"Event{HISTORY_LIMIT + 2}"
    assert reading.problems == (f"status.history: only the last {HISTORY_LIMIT} entries shown",)


def test_the_operator_and_the_plugin_read_a_hand_edited_status_alike() -> None:
    raw = {
        "phase": "Paused",
        "canaryWeight": "lots",
        "stable": {"version": "2.3.1"},
        "history": [*history(1), {"event": "NoTime"}],
        "somethingNew": {"x": 1},
    }

    operator = read_status(raw, ref("shop", "payment"))
    plugin = read_service({"metadata": {"name": "payment"}, "status": raw}).reading

    assert operator == plugin.status
    assert (operator.phase.value, operator.canary_weight, operator.stable) == ("Paused", 0, None)
    assert len(plugin.problems) == 3


def test_a_status_that_is_not_an_object_reads_as_empty_and_says_so() -> None:
    reading = read_stored_status(["not", "a", "status"])

    assert reading.status.phase.value == "Pending"
    assert reading.problems == ("status is not an object",)
