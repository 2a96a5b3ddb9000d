"""`kubectl rollwise train status|promote|abort|retry NAME`: a ReleaseTrain as a tree of its
members, and requests at train level. Rendering is pure; the commands use plugin_cluster."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from rollwise.api import train as train_api
from rollwise.api.stored_status import read_stored_model
from rollwise.api.train import MemberStatus, TrainSpec, TrainStatus
from rollwise.cli.plugin_cluster import KubeSession, get_service, username, write_request
from rollwise.cli.plugin_requests import actor_label, request_annotation
from rollwise.core.model import Action

SINGULAR = "releasetrain"
ACTIONS = ("status", "promote", "abort", "retry")


def _status(obj: Mapping[str, Any]) -> TrainStatus:
    reading = read_stored_model(obj.get("status"), TrainStatus)
    assert isinstance(reading.status, TrainStatus)
    return reading.status


def _after(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each member's `after`, read leniently (the tree is drawn from the spec as stored)."""
    spec = obj.get("spec") or {}
    try:
        return {m.service: list(m.after) for m in TrainSpec.model_validate(spec).members}
    except ValidationError:
        members = spec.get("members") if isinstance(spec, Mapping) else None
        out: dict[str, list[str]] = {}
        for m in members if isinstance(members, list) else []:
            if isinstance(m, Mapping) and isinstance(m.get("service"), str):
                after = m.get("after")
                out[m["service"]] = (
                    [a for a in after if isinstance(a, str)] if isinstance(after, list) else []
                )
        return out


def _clock(at: datetime | None) -> str:
    return at.strftime("%H:%M:%S") if at is not None else "-"


def _member_line(m: MemberStatus, after: list[str]) -> str:
    version = m.version + (f" (was {m.previous_version})" if m.previous_version else "")
    times = f"started {_clock(m.started_at)} finished {_clock(m.finished_at)}"
    also = f"  [after {', '.join(after)}]" if len(after) > 1 else ""
    note = f"  {m.message}" if m.message else ""
    return f"{m.service:<16} {m.phase.value:<12} {version:<26} {times}{also}{note}"


def render_train(obj: Mapping[str, Any]) -> str:
    """The train: phase, message, the members as a tree along `after` (a member under the first
    one it comes after), and the history with actors."""
    metadata = obj.get("metadata") or {}
    status = _status(obj)
    after = _after(obj)
    spec = obj.get("spec") or {}
    policy = ((spec.get("onFailure") or {}).get("policy")) or "Halt"
    lines = [
        f"ReleaseTrain {metadata.get('namespace')}/{metadata.get('name')}   "
        f"phase {status.phase.value}   onFailure {policy}   "
        f"maxConcurrent {spec.get('maxConcurrent') or 1}",
    ]
    if status.message:
        lines.append(f"  {status.message}")
    if status.frozen_until is not None:
        lines.append(f"  frozen until {status.frozen_until.isoformat()}")
    lines.append("Members:")
    by_name = {m.service: m for m in status.members}
    names = list(after) or list(by_name)
    children: dict[str | None, list[str]] = {}
    for name in names:
        parents = [a for a in after.get(name, []) if a in after]
        children.setdefault(parents[0] if parents else None, []).append(name)

    def draw(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, name in enumerate(kids):
            last = i == len(kids) - 1
            member = by_name.get(name) or MemberStatus(service=name)
            lines.append(
                f"{prefix}{'└─ ' if last else '├─ '}{_member_line(member, after.get(name, []))}"
            )
            draw(name, prefix + ("   " if last else "│  "))

    draw(None, "  ")
    if status.history:
        lines.append("History:")
        for h in status.history:
            text = h.message or ""
            who = f" {h.service}" if h.service and not text.startswith(h.service) else ""
            lines.append(f"  {_clock(h.at)} {h.event:<18} {h.actor}:{who} {text}")
    return "\n".join(lines) + "\n"


def run_train(session: KubeSession, action: str, name: str, output: str | None, out: TextIO) -> int:
    """`train ACTION NAME`."""
    obj = get_service(session, name, train_api.PLURAL, SINGULAR)
    if action == "status":
        if output:
            raw = dict(obj.get("status") or {})
            out.write(
                json.dumps(raw, indent=2) + "\n"
                if output == "json"
                else yaml.safe_dump(raw, sort_keys=False, width=100)
            )
        else:
            out.write(render_train(obj))
        return 0
    request = Action(action)
    request_id = uuid.uuid4().hex
    by = actor_label(username(session), request).replace("rollwise ", "rollwise train ")
    write_request(
        session, name, request_annotation(request, request_id, by), train_api.PLURAL, SINGULAR
    )
    out.write(
        f"{action} requested for {SINGULAR} {session.namespace}/{name} as {by} "
        f"(request {request_id})\n"
    )
    return 0
