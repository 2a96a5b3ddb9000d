"""Argo CD's Lua customizations for rollwise (deploy/argocd/) run by a real Lua interpreter the
way Argo CD runs them: the live object as the global `obj`, the script's returned table out.
(Argo CD embeds gopher-lua, Lua 5.1; the scripts keep to it and are run here with lua5.4.)"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
HEALTH = {
    "ProgressiveService": ARGOCD / "health.lua",
    "ReleaseTrain": ARGOCD / "health-releasetrain.lua",
    "FleetRollout": ARGOCD / "health-fleetrollout.lua",
}
ACTIONS = ("promote", "promote-full", "abort", "retry")


def lua() -> Path:
    found = shutil.which("lua5.4")
    if found is None:
        raise RuntimeError("lua5.4 not found on PATH: `apt-get install -y lua5.4` or `make tools`")
    return Path(found)


def lua_string(text: str) -> str:
    """A Lua string literal; control bytes as 3-digit decimal escapes."""
    escaped = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for char in text:
        if char in escaped:
            out.append(escaped[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def to_lua(value: Any) -> str:
    """A Lua table literal of a JSON document (numbers as floats, as Argo CD decodes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no JSON form")
        return repr(float(value))
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(item) for item in value if item is not None) + "}"
    if isinstance(value, dict):
        fields = (
            f"[{lua_string(str(k))}] = {to_lua(v)}" for k, v in value.items() if v is not None
        )
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as Lua: {value!r}")


def _run(program: str) -> str:
    result = subprocess.run(
        [str(lua()), "-"], input=program, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) of the kind's health check for a live object."""
    script = HEALTH[str(obj["kind"])]
    out = _run(
        f"obj = {to_lua(obj)}\n"
        f"local hs = assert(loadfile({lua_string(str(script))}))()\n"
        'io.write(tostring(hs.status), "\\n", tostring(hs.message))\n'
    )
    status, _, message = out.partition("\n")
    return status, message


def discovered(obj: Mapping[str, Any]) -> dict[str, bool]:
    """{action: enabled} as actions/discovery.lua offers them for the object."""
    out = _run(
        f"obj = {to_lua(obj)}\n"
        f"local a = assert(loadfile({lua_string(str(ARGOCD / 'actions' / 'discovery.lua'))}))()\n"
        "for name, v in pairs(a) do io.write(name, '=', tostring(not v.disabled), '\\n') end\n"
    )
    pairs = (line.split("=") for line in out.splitlines() if line)
    return {name: value == "true" for name, value in pairs}


def request_annotation(action: str, obj: Mapping[str, Any]) -> str:
    """The rollwise.dev/request annotation the action sets on the object."""
    script = ARGOCD / "actions" / f"{action}.lua"
    return _run(
        f"obj = {to_lua(obj)}\n"
        f"obj = assert(loadfile({lua_string(str(script))}))()\n"
        'io.write(obj.metadata.annotations["rollwise.dev/request"])\n'
    )
