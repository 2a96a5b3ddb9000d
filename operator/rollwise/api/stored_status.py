"""Reading a ProgressiveService status as stored, leniently: the one reader for the operator and
the kubectl plugin.

A stored status may have been written by an older or newer operator, or edited by hand, and the
API server does not re-validate stored objects when the CRD schema changes. It is read field by
field (list fields entry by entry), so one unreadable field costs that field, never the whole
status: the operator rewrites it from observed state, the plugin names it and shows the rest.
Unknown fields are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from rollwise.api.service_status import HISTORY_LIMIT, ServiceStatus


@dataclass(frozen=True)
class StatusReading:
    """The status as far as it could be read, and what could not be read."""

    status: ServiceStatus
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelReading:
    """Any status model as far as it could be read (a ReleaseTrain's, for one)."""

    status: BaseModel
    problems: tuple[str, ...] = ()


def _is_valid_status(fields: Mapping[str, Any], model: type[BaseModel] = ServiceStatus) -> bool:
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True


def _first_error(fields: Mapping[str, Any], model: type[BaseModel] = ServiceStatus) -> str:
    try:
        model.model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return "unreadable"


def read_stored_status(raw: object) -> StatusReading:
    """Every readable status field; unreadable fields (or list entries) are named, not fatal."""
    reading = read_stored_model(raw, ServiceStatus, HISTORY_LIMIT)
    assert isinstance(reading.status, ServiceStatus)
    return StatusReading(reading.status, reading.problems)


def read_stored_model(
    raw: object, model: type[BaseModel], history_limit: int | None = None
) -> ModelReading:
    """read_stored_status for any status model."""
    if raw is None:
        return ModelReading(model())
    if not isinstance(raw, Mapping):
        return ModelReading(model(), ("status is not an object",))
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for field_name, info in model.model_fields.items():
        alias = info.alias or field_name
        if alias not in raw:
            continue
        value = raw[alias]
        if _is_valid_status({alias: value}, model):
            kept[alias] = value
            continue
        if isinstance(value, list):
            entries = [entry for entry in value if _is_valid_status({alias: [entry]}, model)]
            if len(entries) < len(value):
                skipped = len(value) - len(entries)
                problems.append(f"status.{alias}: {skipped} unreadable entries skipped")
            limit = history_limit
            if alias == "history" and limit is not None and len(entries) > limit:
                problems.append(f"status.history: only the last {limit} entries shown")
                entries = entries[-limit:]
            kept[alias] = entries
        else:
            problems.append(f"status.{_first_error({alias: value}, model)}")
    return ModelReading(model.model_validate(kept), tuple(problems))
