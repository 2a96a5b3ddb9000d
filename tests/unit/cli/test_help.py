"""Every flag of `rollwise` and `kubectl rollwise` says what it does in --help."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from rollwise.cli import main as rollwise_main
from rollwise.cli import plugin


def _parsers(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    return [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and action.help != argparse.SUPPRESS
        and not (action.help or "").strip()
    ]


@pytest.mark.parametrize(
    "root",
    [rollwise_main._parser(), plugin.build_parser()],
    ids=["rollwise", "kubectl-rollwise"],
)
def test_every_option_of_every_command_has_help(root: argparse.ArgumentParser) -> None:
    missing = {path: _undocumented(p) for path, p in _parsers(root, root.prog)}

    assert {path: flags for path, flags in missing.items() if flags} == {}
