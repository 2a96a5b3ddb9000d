"""YAML that Go's YAML 1.1 readers read back as written.

kubectl, helm and the API machinery read YAML with go-yaml v2 rules, where a bare `y`, `n`,
`yes`, `no`, `on` or `off` is a boolean: the CRD schema's property `n` (a comparison side's
sample count) came back as `"false"`, and the API server then pruned `n` from every status.
PyYAML quotes only its own booleans (not `y`/`n`); this dumper quotes all of YAML 1.1's."""

from __future__ import annotations

import re
from typing import Any

import yaml

YAML11_BOOL = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"
)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "'" if YAML11_BOOL.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any, **options: Any) -> str:
    """`yaml.safe_dump`, with every string a YAML 1.1 reader would take for a boolean quoted."""
    return str(yaml.dump(data, Dumper=_Dumper, **options))
