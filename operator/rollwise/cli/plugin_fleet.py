"""`kubectl rollwise fleet status|promote|abort NAME`: a FleetRollout on the hub as a tree of
waves and member clusters, and fleet-level requests (promote approves the wave that waits for
approval; abort stops the fleet, rolling back by its onFailure policy).

Requests use the same `rollwise.dev/request` annotation as ProgressiveServices: the spec, and so
GitOps, never changes; the hub acts once per request id and acknowledges in status.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import urllib3.exceptions
import yaml
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from rollwise.api import GROUP, VERSION
from rollwise.api.fleet import PLURAL, FleetRolloutStatus
from rollwise.cli.plugin_cluster import KubeSession, PluginError, username
from rollwise.cli.plugin_render import format_age, table
from rollwise.cli.plugin_requests import actor_label, request_annotation
from rollwise.core.model import Action
from rollwise.core.naming import ANNOTATION_REQUEST

SINGULAR = "fleetrollout"
FLEET_ACTIONS = (Action.PROMOTE, Action.ABORT)
_TIMEOUT = (10.0, 30.0)


def add_fleet_commands(
    commands: Any,
    connection_flags: Callable[[argparse.ArgumentParser], None],
    seconds: Callable[[str], float],
) -> None:
    """`fleet status|promote|abort NAME` under the plugin's subcommands."""
    fleet = commands.add_parser(
        "fleet",
        help="FleetRollouts on a hub: waves of member clusters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection_flags(fleet)
    sub = fleet.add_subparsers(dest="fleet_command", required=True, metavar="COMMAND")
    status = sub.add_parser("status", help="waves -> clusters: version, phase, reason, history")
    status.add_argument("name", metavar="NAME", help="the FleetRollout")
    status.add_argument("-o", "--output", choices=["json", "yaml"], help="print the raw status")
    connection_flags(status)
    helps = {
        Action.PROMOTE: "approve the wave waiting for approval",
        Action.ABORT: "stop the fleet (and roll back, if its onFailure says so)",
    }
    for action in FLEET_ACTIONS:
        request = sub.add_parser(action.value, help=helps[action])
        request.add_argument("name", metavar="NAME", help="the FleetRollout")
        request.add_argument("--wait", action="store_true", help="wait for the acknowledgement")
        request.add_argument(
            "--timeout",
            type=seconds,
            default=120.0,
            metavar="S",
            help="with --wait: give up after S seconds (default %(default)s)",
        )
        connection_flags(request)


def _objects(session: KubeSession) -> CustomObjectsApi:
    return CustomObjectsApi(session.api_client)


def _explain(err: ApiException, session: KubeSession, verb: str, name: str) -> PluginError:
    where = f"{SINGULAR} {session.namespace}/{name}"
    if err.status == 404:
        return PluginError(
            f"{where} not found on {session.server} (is this the hub's kubeconfig/context?)"
        )
    if err.status in (401, 403):
        return PluginError(f"{where}: {verb} refused (HTTP {err.status}); check your RBAC")
    return PluginError(f"{where}: {verb} failed: HTTP {err.status} {err.reason}")


def get_fleet(session: KubeSession, name: str) -> dict[str, Any]:
    try:
        found = _objects(session).get_namespaced_custom_object(
            GROUP, VERSION, session.namespace, PLURAL, name, _request_timeout=_TIMEOUT
        )
    except ApiException as err:
        raise _explain(err, session, "get", name) from err
    except urllib3.exceptions.HTTPError as err:
        raise PluginError(f"cannot reach the API server {session.server}: {err}") from err
    if not isinstance(found, dict):
        raise PluginError(f"{SINGULAR} {session.namespace}/{name}: unexpected reply")
    return found


def _status(obj: Mapping[str, Any]) -> FleetRolloutStatus:
    try:
        return FleetRolloutStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return FleetRolloutStatus()


def _age(at: datetime | None, now: datetime) -> str:
    return f"{format_age(max(0.0, (now - at).total_seconds()))} ago" if at is not None else "-"


_IN_FLIGHT = {"Pending", "Migrating", "Progressing", "Paused", "Promoting", "RollingBack"}


def render_fleet(obj: Mapping[str, Any], now: datetime | None = None) -> str:
    """The tree view of `fleet status`: which version runs in which cluster, and why."""
    now = now or datetime.now(UTC)
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = _status(obj)
    target = spec.get("target") or {}
    lines = [
        f"FleetRollout {metadata.get('namespace')}/{metadata.get('name')}: {status.phase.value}"
        + (f" - {status.message}" if status.message else ""),
        f"target {target.get('namespace')}/{target.get('service')}   version "
        f"{spec.get('version')}   onFailure {spec.get('onFailure', 'Halt')}",
        "",
    ]
    rows: list[list[str]] = []
    for wave in status.waves:
        extra = ""
        if wave.approved_by:
            extra = f"approved by {wave.approved_by}"
        elif wave.soak_until and wave.phase.value == "Soaking":
            left = max(0.0, (wave.soak_until - now).total_seconds())
            extra = f"soaking, {format_age(left)} left"
        rows.append([wave.name, wave.phase.value, "", "", "", "", "", extra])
        for i, member in enumerate(wave.clusters):
            branch = "└─" if i == len(wave.clusters) - 1 else "├─"
            label = f"{branch} {member.name}" + (f" ({member.region})" if member.region else "")
            version = member.version or "-"
            if (
                member.canary_version
                and member.canary_version != member.version
                and member.member_phase in _IN_FLIGHT
            ):
                version += f" (canary {member.canary_version})"
            reachable = {True: "yes", False: "NO", None: "-"}[member.reachable]
            why = member.message or member.reason or ""
            rows.append(
                [
                    f"  {label}",
                    member.phase.value,
                    version,
                    member.previous_version or "-",
                    member.member_phase or "-",
                    reachable,
                    _age(member.last_seen, now),
                    why,
                ]
            )
    lines += table(
        ["WAVE / CLUSTER", "PHASE", "RUNNING", "PREVIOUS", "MEMBER", "REACHABLE", "SEEN", "WHY"],
        rows,
    )
    notable = [c for c in status.conditions if c.status == "True" or c.type == "MemberUnreachable"]
    if notable:
        lines += ["", "Conditions:"]
        lines += [f"  {c.type}={c.status} ({c.reason}): {c.message}" for c in notable]
    if status.last_request is not None:
        r = status.last_request
        lines += ["", f"Last request: {r.action} by {r.by}: {r.result}"]
    if status.history:
        lines += ["", "History:"]
        for entry in status.history[-12:]:
            by = "" if entry.actor == "rollwise" else f" [{entry.actor}]"
            lines.append(
                f"  {entry.at.strftime('%H:%M:%S')} {_age(entry.at, now):>9}  "
                f"{entry.event:<22} {entry.message or ''}{by}"
            )
    return "\n".join(lines) + "\n"


def send_fleet_request(
    session: KubeSession,
    name: str,
    action: Action,
    wait: bool,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    get_fleet(session, name)
    request_id = uuid.uuid4().hex
    by = actor_label(username(session), action).replace(
        "kubectl rollwise", "kubectl rollwise fleet"
    )
    patch = {
        "metadata": {
            "annotations": {ANNOTATION_REQUEST: request_annotation(action, request_id, by)}
        }
    }
    try:
        _objects(session).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            session.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
            _request_timeout=_TIMEOUT,
        )
    except ApiException as exc:
        raise _explain(exc, session, "patch", name) from exc
    out.write(
        f"{action.value} requested for {SINGULAR} {session.namespace}/{name} as {by} "
        f"(request {request_id})\n"
    )
    out.flush()
    if not wait:
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ack = _status(get_fleet(session, name)).last_request
        if ack is not None and ack.id == request_id:
            out.write(f"the fleet hub acknowledged request {request_id}: {ack.result}\n")
            return 0
        time.sleep(0.5)
    err.write(f"the fleet hub did not acknowledge request {request_id} within {timeout:g}s\n")
    return 1


def run_fleet(session: KubeSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Dispatch `fleet ...`."""
    if args.fleet_command == "status":
        obj = get_fleet(session, args.name)
        if args.output == "json":
            out.write(json.dumps(obj.get("status") or {}, indent=2) + "\n")
        elif args.output == "yaml":
            out.write(yaml.safe_dump(obj.get("status") or {}, sort_keys=False, width=100))
        else:
            out.write(render_fleet(obj))
        return 0
    return send_fleet_request(
        session, args.name, Action(args.fleet_command), args.wait, args.timeout, out, err
    )
