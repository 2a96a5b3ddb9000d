"""`kubectl rollwise list [-A] [--watch]`: every ProgressiveService in a table, like
`kubectl argo rollouts list rollouts`; with --watch, redrawn whenever a row changes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

import urllib3.exceptions
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from rollwise.api import GROUP, VERSION
from rollwise.api.service import PLURAL
from rollwise.cli.plugin_cluster import KubeSession, PluginError
from rollwise.cli.plugin_render import format_age, read_service, table
from rollwise.core.step_label import step_label

HEADERS = ("NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "READY", "AGE", "MESSAGE")
POLL_S = 2.0
_TIMEOUT = (10.0, 30.0)


def _row(obj: Mapping[str, Any], now: datetime | None, all_namespaces: bool) -> list[str]:
    view = read_service(obj)
    status = view.reading.status
    spec = obj.get("spec")
    steps = len(view.steps) if view.steps is not None else 0
    step = status.current_step or step_label(status.current_step_index, steps) or "-"
    ready = sum(r.ready_replicas for r in (status.stable, status.canary) if r is not None)
    wanted = spec.get("replicas", 1) if isinstance(spec, Mapping) else "?"
    metadata = obj.get("metadata")
    created = metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None
    age = "-"
    if isinstance(created, str) and now is not None:
        born = datetime.fromisoformat(created.replace("Z", "+00:00"))
        age = format_age((now - born).total_seconds())
    row = [
        view.name,
        status.phase.value,
        status.stable.version if status.stable else "-",
        status.canary.version if status.canary else "-",
        str(status.canary_weight),
        step,
        f"{ready}/{wanted}",
        age,
        (status.message or "")[:80],
    ]
    return [view.namespace, *row] if all_namespaces else row


def render_list(
    objects: Sequence[Mapping[str, Any]], now: datetime | None, all_namespaces: bool
) -> str:
    """The table `list` prints, one row per ProgressiveService sorted by namespace and name;
    without `now`, no ages."""
    if not objects:
        return "No ProgressiveServices found.\n"
    ordered = sorted(
        objects,
        key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), read_service(o).name),
    )
    headers = ("NAMESPACE", *HEADERS) if all_namespaces else HEADERS
    rows = [_row(o, now, all_namespaces) for o in ordered]
    return "\n".join(table(headers, rows)) + "\n"


def list_services(session: KubeSession, all_namespaces: bool) -> list[dict[str, Any]]:
    """The ProgressiveServices of the session's namespace, or of every namespace."""
    api = CustomObjectsApi(session.api_client)
    where = "all namespaces" if all_namespaces else session.namespace
    try:
        if all_namespaces:
            found = api.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=_TIMEOUT
            )
        else:
            found = api.list_namespaced_custom_object(
                GROUP, VERSION, session.namespace, PLURAL, _request_timeout=_TIMEOUT
            )
    except ApiException as err:
        if err.status == 403:
            raise PluginError(f"no permission to list progressiveservices in {where}") from err
        if err.status == 404:
            raise PluginError(
                f"the server does not serve progressiveservices.{GROUP}/{VERSION}; are the "
                "rollwise CRDs installed?"
            ) from err
        raise PluginError(f"cannot list progressiveservices in {where}: HTTP {err.status}") from err
    except urllib3.exceptions.HTTPError as err:
        raise PluginError(f"cannot reach the API server {session.server}: {err}") from err
    items = found.get("items") if isinstance(found, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def run_list(
    session: KubeSession,
    all_namespaces: bool,
    watch: bool,
    timeout: float | None,
    now: Any,
    out: TextIO,
) -> int:
    """`list`: print once, or (--watch) redraw on every change until interrupted or timed out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown: str | None = None
    while True:
        objects = list_services(session, all_namespaces)
        # Ages tick every second: a frame is redrawn when anything but an age changed.
        content = render_list(objects, None, all_namespaces)
        if content != shown:
            if shown is not None:
                out.write("\n")
            out.write(render_list(objects, now(), all_namespaces))
            out.flush()
            shown = content
        if not watch or (deadline is not None and time.monotonic() >= deadline):
            return 0
        time.sleep(POLL_S)
