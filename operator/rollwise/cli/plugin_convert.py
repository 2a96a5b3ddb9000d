"""`kubectl rollwise convert -f rollout.yaml [-f templates.yaml]`: print the rollwise objects.

Reads files (or `-` for stdin), writes the MetricGates and ProgressiveServices to stdout and
every field not carried over to stderr, by path; nothing is sent to a cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from rollwise.cli.convert import convert

EXIT_OK = 0
EXIT_LOSSY = 1  # --strict: something was not converted


def add_convert_command(commands: Any) -> None:
    """Register `convert` on the plugin's subcommands."""
    sub = commands.add_parser(
        "convert",
        help="an Argo Rollouts Rollout and its AnalysisTemplates, as a ProgressiveService and "
        "MetricGates",
        description="Convert Argo Rollouts objects (Rollout, AnalysisTemplate, "
        "ClusterAnalysisTemplate) read from files into rollwise objects printed on stdout. "
        "Every field that is not carried over (or is carried over changed) is reported on "
        "stderr by its path. Nothing is sent to the cluster.",
    )
    sub.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML or JSON file of Argo objects ('-' reads stdin); repeatable",
    )
    sub.add_argument(
        "-o", "--output", choices=["yaml", "json"], default="yaml", help="output format"
    )
    sub.add_argument(
        "--strict",
        action="store_true",
        help=f"exit {EXIT_LOSSY} when any field could not be converted",
    )


def _read(name: str, stdin: TextIO) -> list[Any]:
    text = stdin.read() if name == "-" else Path(name).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def run_convert(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    stdin: TextIO = sys.stdin,
    read: Callable[[str, TextIO], list[Any]] = _read,
) -> int:
    """`convert`: objects to stdout, findings to stderr."""
    documents: list[Any] = []
    for name in args.filename:
        try:
            documents.extend(read(name, stdin))
        except (OSError, yaml.YAMLError) as error:
            err.write(f"error: cannot read {name}: {error}\n")
            return EXIT_LOSSY
    result = convert(documents)
    if args.output == "json":
        out.write(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": result.documents}, indent=2)
            + "\n"
        )
    else:
        out.write("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in result.documents))
    for finding in result.findings:
        err.write(f"{finding}\n")
    lost = result.lost()
    if lost:
        err.write(f"{len(lost)} field(s) not converted; review the output before applying it\n")
    return EXIT_LOSSY if args.strict and lost else EXIT_OK
