"""Structured logs: one JSON object per line, carrying the namespace, name and revision of the
object a line is about, whether it comes from rollwise or from Kopf."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from rollwise.adapters.credentials import SEEN
from rollwise.core.redaction import describe_url

# Log records carry the object under this key, as Kopf's own object loggers do (`extra=` cannot
# use "name": that is the logger's name on every LogRecord).
REF_KEY = "k8s_ref"


def ref(namespace: str, name: str, revision: str | None = None) -> dict[str, Any]:
    """`extra=` for a log line about one object."""
    obj: dict[str, str] = {"namespace": namespace, "name": name}
    if revision:
        obj["revision"] = revision
    return {REF_KEY: obj}


def _object_of(record: logging.LogRecord) -> dict[str, Any]:
    obj = getattr(record, REF_KEY, None)
    if not isinstance(obj, dict):
        return {}
    return {k: obj[k] for k in ("namespace", "name", "revision", "kind") if obj.get(k)}


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", "namespace", "name", "revision", "exception"}."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_object_of(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # No credential in a log line, whoever logged it (Kopf, urllib3, an exception's text).
        return SEEN.scrub(json.dumps(out, default=str))


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal: `time level logger [ns/name@rev] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        obj = _object_of(record)
        if obj.get("name"):
            where = f"[{obj.get('namespace', '')}/{obj['name']}"
            where += f"@{obj['revision']}]" if obj.get("revision") else "]"
            record = logging.makeLogRecord({**record.__dict__, "msg": f"{where} {record.msg}"})
        return SEEN.scrub(super().format(record))


class HideRequestPaths(logging.Filter):
    """urllib3's and requests' own lines show a request's path and query (`"POST /services/T0/
    <token> HTTP/1.1" 200`), which can be a credential written in a spec URL: each argument
    that is a path or a URL is shown as `/…` or `scheme://host[:port]/…` instead. Set on the
    handler, so it sees every logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in ("urllib3", "requests") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_hide_path(a) for a in args)
        return True


def _hide_path(arg: object) -> object:
    if not isinstance(arg, str):
        return arg
    if arg.startswith("/"):
        return "/…" if arg.strip("/") else arg
    if "://" in arg:
        return describe_url(arg)
    return arg


# Per-event and per-probe chatter: shown with --log-level debug only.
_NOISY = ("kopf.objects", "kopf._core.reactor.observation", "aiohttp.access", "urllib3")


def configure(level: str, fmt: str) -> None:
    """Root logging for the operator process: one stderr handler, our formatter, Kopf included.

    Kopf's per-event chatter stays at debug level unless --log-level debug.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(HideRequestPaths())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if root.level > logging.DEBUG:
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)
