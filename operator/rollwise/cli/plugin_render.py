"""What `kubectl rollwise status|watch|history` print: pure functions of the object as read.

Nothing here talks to the cluster or reads the clock; the caller passes `now` when it wants ages.
The status is read field by field, so one field written by a newer (or broken) operator costs
that field, never the whole view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from rollwise.api.service import KIND, CanaryStep
from rollwise.api.service_status import (
    ComparisonResult,
    GateResult,
    HistoryEntry,
    MigrationStatus,
    RevisionStatus,
    SampleSummary,
    ServiceStatus,
)
from rollwise.api.stored_status import StatusReading, read_stored_status
from rollwise.core.model import one_line
from rollwise.core.step_label import step_label

STATUS_WEBHOOKS_SHOWN = 10
STATUS_HISTORY_SHOWN = 5
_NONE = "-"
_INDENT = "  "


@dataclass(frozen=True)
class ServiceView:
    """The parts of a ProgressiveService the views show, read leniently."""

    namespace: str
    name: str
    generation: int | None
    steps: tuple[CanaryStep | None, ...] | None  # None: spec has no readable step list
    reading: StatusReading


# ------------------------------------------------------------------------------------- reading


def _read_steps(spec: object) -> tuple[CanaryStep | None, ...] | None:
    strategy = spec.get("strategy") if isinstance(spec, Mapping) else None
    canary = strategy.get("canary") if isinstance(strategy, Mapping) else None
    steps = canary.get("steps") if isinstance(canary, Mapping) else None
    if not isinstance(steps, list):
        return None
    read: list[CanaryStep | None] = []
    for step in steps:
        try:
            read.append(CanaryStep.model_validate(step))
        except ValidationError:
            read.append(None)
    return tuple(read)


def read_service(obj: Mapping[str, Any]) -> ServiceView:
    """The object as the views need it; never raises on missing or malformed fields."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    generation = metadata.get("generation")
    return ServiceView(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or "?"),
        generation=generation if isinstance(generation, int) else None,
        steps=_read_steps(obj.get("spec")),
        reading=read_stored_status(obj.get("status")),
    )


def status_is_current(obj: Mapping[str, Any]) -> bool:
    """True when the status describes the current spec (observedGeneration caught up)."""
    view = read_service(obj)
    observed = view.reading.status.observed_generation
    if view.generation is None:
        return True
    return observed is not None and observed >= view.generation


# ---------------------------------------------------------------------------------- formatting


def _as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def format_time(at: datetime | None, now: datetime | None = None) -> str:
    """ISO time in UTC to the second, with the age when `now` is given."""
    if at is None:
        return _NONE
    at = _as_utc(at)
    text = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if now is None:
        return text
    return f"{text} ({format_age((now - at).total_seconds())} ago)"


def format_age(seconds: float) -> str:
    """kubectl-style age: 45s, 3m10s, 2h5m, 4d3h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def format_value(value: float | None) -> str:
    """A measured value with six significant digits; "-" when there was no data."""
    return _NONE if value is None else f"{value:.6g}"


def _text(value: object) -> str:
    return _NONE if value is None or value == "" else str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    # One line per row: a multi-line query or message is folded onto its row.
    body = [[one_line(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(headers), *body]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append((indent + "  ".join(padded)).rstrip())
    return lines


def _indented_block(label: str, text: str, indent: str) -> list[str]:
    """A labelled multi-line text, every line indented, nothing cut."""
    lines = text.strip("\n").splitlines() or [""]
    return [f"{indent}{label}{lines[0]}", *(f"{indent}{' ' * len(label)}{ln}" for ln in lines[1:])]


# ------------------------------------------------------------------------------------- pieces


def step_number(index: int | None) -> str:
    """Step indexes are 0-based in status; people count from 1."""
    return _NONE if index is None else str(index + 1)


def describe_step(step: CanaryStep | None) -> str:
    """One step as a person reads it: "setWeight 10", "pause 2m", "analysis error-rate"."""
    if step is None:
        return "(unreadable step)"
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.set_mirror is not None:
        return f"setMirror {step.set_mirror}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause (until promote)"
    if step.analysis is not None:
        names = [gate.name + (" (cluster)" if gate.cluster else "") for gate in step.analysis.gates]
        return "analysis " + ", ".join(names)
    if step.adaptive is not None:
        a = step.adaptive
        return f"adaptive {a.min_weight}-{a.max_weight}% by {a.min_step}-{a.max_step}"
    return "(empty step)"


def describe_progress(index: int | None, steps: Sequence[CanaryStep | None] | None) -> str:
    """ "3/5 analysis error-rate"; "5/5 done" once every step has completed."""
    if index is None:
        return _NONE
    if steps is None:
        return f"{index + 1}/?"
    total = len(steps)
    # The same "n/total" as the Step column (status.currentStep).
    if index >= total:
        return f"{step_label(index, total)} done"
    return f"{step_label(index, total)} {describe_step(steps[index])}"


def _revision_row(role: str, revision: RevisionStatus | None) -> list[str]:
    if revision is None:
        return [role, _NONE, _NONE, _NONE]
    ready = f"{revision.ready_replicas}/{revision.replicas}"
    return [role, revision.revision, _text(revision.version), ready]


def _migration_lines(migration: MigrationStatus, now: datetime | None) -> list[str]:
    lines = [
        f"Migration:  job {migration.job}  {migration.phase.value}"
        f"  attempts {migration.attempts}  version {_text(migration.version)}",
        f"{_INDENT}started {format_time(migration.started_at, now)}"
        f"  finished {format_time(migration.finished_at, now)}",
    ]
    if migration.message:
        lines.extend(_indented_block("message: ", migration.message, _INDENT))
    return lines


def _schema_ahead(status: ServiceStatus) -> str:
    migrated = status.migration.version if status.migration is not None else ""
    running = status.stable.version if status.stable is not None else ""
    ran = f"the migration of {migrated} ran" if migrated else "a newer migration ran"
    serving = f"stable {running} must" if running else "the running version must"
    return f"{ran} and is never rolled back; {serving} work with the newer schema"


def _gate_scope(result: GateResult) -> str:
    if result.background:
        return "background"
    return f"step {step_number(result.step)}" if result.step is not None else _NONE


def describe_comparison(c: ComparisonResult) -> str:
    """ "canary n=20 median 0.2 mean 0.2 | stable n=20 ... | MannWhitneyU U=400 p=1e-11 ..." """

    def side(name: str, s: SampleSummary) -> str:
        return f"{name} n={s.n} median {format_value(s.median)} mean {format_value(s.mean)}"

    test = f"{c.test} (worse {c.worse or '-'}, alpha {format_value(c.alpha)})"
    if c.p is not None:
        test += f" U={format_value(c.u)} p={c.p:.3g} ({c.method}) effect {format_value(c.effect)}"
    return f"{side('canary', c.canary)} | {side('stable', c.stable)} | {test}"


def _analysis_lines(results: Sequence[GateResult], now: datetime | None) -> list[str]:
    lines = ["Analysis:"]
    for result in results:
        verdict = result.verdict.value if result.verdict is not None else "(none yet)"
        lines.append(
            f"{_INDENT}{result.gate}  {_gate_scope(result)}  {verdict}"
            f"  value {format_value(result.value)}"
        )
        lines.append(
            f"{_INDENT * 2}failures {result.failures}  inconclusive {result.inconclusive}"
            f"  errors {result.errors}  measurements {result.measurements}"
            f"  measured {format_time(result.measured_at, now)}"
        )
        lines.extend(_indented_block("query: ", result.query or "(not resolved yet)", _INDENT * 2))
        if result.comparison is not None:
            lines.append(_INDENT * 2 + describe_comparison(result.comparison))
        if result.message:
            lines.extend(_indented_block("message: ", result.message, _INDENT * 2))
    return lines


def _history_rows(
    entries: Iterable[HistoryEntry], now: datetime | None
) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (
            format_time(entry.at, now),
            entry.event,
            entry.actor,
            step_number(entry.step),
            _text(entry.weight),
            _text(entry.message),
        )
        for entry in entries
    ]


_HISTORY_HEADERS = ("AT", "EVENT", "ACTOR", "STEP", "WEIGHT", "MESSAGE")


def _chronological(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    return sorted(entries, key=lambda entry: _as_utc(entry.at))


# --------------------------------------------------------------------------------------- views


def render_status(obj: Mapping[str, Any], now: datetime | None = None) -> str:
    """The whole story of one ProgressiveService, as `kubectl rollwise status` prints it."""
    view = read_service(obj)
    status = view.reading.status
    lines = [f"{KIND} {view.namespace}/{view.name}"]

    phase_line = f"Phase:      {status.phase.value}"
    if view.generation is not None and status.observed_generation != view.generation:
        observed = _text(status.observed_generation)
        phase_line += (
            f"  (status is for generation {observed}, spec is at {view.generation}:"
            " the operator has not caught up yet)"
        )
    lines.append(phase_line)
    if status.message:
        lines.extend(_indented_block("Message:    ", status.message, ""))

    lines.append(f"Step:       {describe_progress(status.current_step_index, view.steps)}")
    lines.append(f"Weight:     {status.canary_weight}% to canary")
    if status.mirror_percent:
        lines.append(f"Mirror:     {status.mirror_percent}% of stable's requests copied to canary")
    if status.pause_started_at is not None:
        by = " (paused by request)" if status.paused_by_request else ""
        lines.append(f"Paused:     since {format_time(status.pause_started_at, now)}{by}")

    lines.append("Revisions:")
    lines.extend(
        table(
            ("ROLE", "REVISION", "VERSION", "READY"),
            [_revision_row("stable", status.stable), _revision_row("canary", status.canary)],
            _INDENT,
        )
    )

    if status.migration is not None:
        lines.extend(_migration_lines(status.migration, now))
    if status.schema_ahead_of_app:
        lines.append(f"WARNING:    schema ahead of app: {_schema_ahead(status)}")

    if status.analysis:
        lines.extend(_analysis_lines(status.analysis, now))
    else:
        lines.append("Analysis:   no measurements")

    if status.abort is not None:
        abort = status.abort
        lines.append(f"Abort:      {abort.reason} at {format_time(abort.at, now)}")
        lines.extend(_indented_block("message: ", abort.message, _INDENT))

    if status.full_promotion is not None:
        full = status.full_promotion
        lines.append(
            f"Promotion:  fast (promote --full) by {full.by} at {format_time(full.at, now)}, "
            f"from step {full.from_step + 1} ({full.from_phase})"
        )

    if status.last_request is not None:
        ack = status.last_request
        lines.append(
            f"Request:    {ack.action} by {ack.by} at {format_time(ack.at, now)}: {ack.result}"
            f"  (id {ack.id})"
        )

    if status.webhooks:
        lines.append("Webhooks and notifications:")
        lines.extend(
            table(
                ("NAME", "TYPE", "TRANSITION", "REVISION", "RESULT", "ATTEMPTS", "LAST", "AT"),
                [
                    (
                        w.name,
                        w.type,
                        w.transition or _NONE,
                        w.revision,
                        w.result.value,
                        str(w.attempts),
                        f"HTTP {w.code}" if w.code is not None else (w.error or _NONE),
                        format_time(w.last_attempt_at, now),
                    )
                    for w in status.webhooks[-STATUS_WEBHOOKS_SHOWN:]
                ],
                _INDENT,
            )
        )

    if status.conditions:
        lines.append("Conditions:")
        lines.extend(
            table(
                ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"),
                [
                    (
                        c.type,
                        c.status,
                        c.reason,
                        format_time(c.last_transition_time, now),
                        _text(c.message),
                    )
                    for c in status.conditions
                ],
                _INDENT,
            )
        )

    history = _chronological(status.history)
    if history:
        shown = history[-STATUS_HISTORY_SHOWN:]
        lines.append(f"History (last {len(shown)} of {len(history)}):")
        lines.extend(table(_HISTORY_HEADERS, _history_rows(shown, now), _INDENT))
    else:
        lines.append("History:    none yet")

    for problem in view.reading.problems:
        lines.append(f"unreadable: {problem}")
    return "\n".join(lines) + "\n"


def render_history(obj: Mapping[str, Any], now: datetime | None = None) -> str:
    """Every history entry of one ProgressiveService, oldest first."""
    view = read_service(obj)
    history = _chronological(view.reading.status.history)
    if not history:
        return f"{KIND} {view.namespace}/{view.name}: no history yet\n"
    lines = table(_HISTORY_HEADERS, _history_rows(history, now))
    lines.extend(f"unreadable: {problem}" for problem in view.reading.problems)
    return "\n".join(lines) + "\n"
