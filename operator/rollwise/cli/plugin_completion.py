"""Shell completion for `kubectl rollwise`: subcommands, flags, and the names of the objects in
the cluster.

Two ways in, one answer (`candidates`):
- kubectl (1.26+) completes `kubectl rollwise ...` itself by running the executable
  `kubectl_complete-rollwise` with the words after `rollwise`, the last one being the word being
  typed; it reads candidates one per line and a final `:<directive>` line (cobra's protocol;
  4 = no file completion). The wheel installs that executable.
- `kubectl rollwise completion bash|zsh|fish` prints a script for `kubectl-rollwise` itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

NO_FILE_COMPLETION = ":4"
NAMED_BY_COMMAND = {"train": "releasetrains", "fleet": "fleetrollouts"}

SCRIPTS = {
    "bash": """# kubectl rollwise completion bash: source it, or save it in your completions folder
_kubectl_rollwise() {
    local IFS=$'\\n'
    COMPREPLY=( $(kubectl-rollwise __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null \\
        | grep -v '^:') )
}
complete -F _kubectl_rollwise kubectl-rollwise
""",
    "zsh": """# kubectl rollwise completion zsh: source it from ~/.zshrc
autoload -U +X bashcompinit && bashcompinit
_kubectl_rollwise() {
    local IFS=$'\\n'
    COMPREPLY=( $(kubectl-rollwise __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null \\
        | grep -v '^:') )
}
complete -F _kubectl_rollwise kubectl-rollwise
""",
    "fish": """# kubectl rollwise completion fish | source
complete -c kubectl-rollwise -f -a '(kubectl-rollwise __complete \\
    (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null | string match -rv "^:")'
""",
}

Lister = Callable[[str, str | None], list[str]]  # (plural, namespace) -> names


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and action.help != argparse.SUPPRESS
    ]


def _takes_value(parser: argparse.ArgumentParser, flag: str) -> bool:
    for action in parser._actions:
        if flag in action.option_strings:
            return action.nargs != 0
    return False


def candidates(parser: argparse.ArgumentParser, words: Sequence[str], names: Lister) -> list[str]:
    """What may come next after `words[:-1]`, starting with `words[-1]` (the word being typed)."""
    done, partial = list(words[:-1]), (words[-1] if words else "")
    namespace: str | None = None
    positionals: list[str] = []
    current = parser
    index = 0
    while index < len(done):
        word = done[index]
        if word in ("-n", "--namespace") and index + 1 < len(done):
            namespace = done[index + 1]
            index += 2
            continue
        if word.startswith("-"):
            index += 2 if (_takes_value(current, word) and "=" not in word) else 1
            continue
        subs = _subcommands(current)
        if word in subs:
            current = subs[word]
        else:
            positionals.append(word)
        index += 1
    previous = done[-1] if done else ""
    if previous in ("-n", "--namespace"):
        options = names("namespaces", None)
    elif previous in ("-o", "--output"):
        options = ["json", "yaml"]
    elif previous and previous.startswith("-") and _takes_value(current, previous):
        options = []
    elif partial.startswith("-"):
        options = _flags(current)
    elif _subcommands(current):
        options = [name for name in _subcommands(current) if not name.startswith("_")]
    else:
        words_of_prog = current.prog.split()
        command = words_of_prog[-1]
        group = words_of_prog[2] if len(words_of_prog) > 2 else command
        plural = NAMED_BY_COMMAND.get(group, "progressiveservices")
        wants_action = command in NAMED_BY_COMMAND and not positionals
        if wants_action:
            options = list(_choices(current))
        elif command in ("completion",):
            options = list(SCRIPTS)
        elif command in ("version", "list", "convert"):
            options = []
        else:
            options = (
                []
                if len(positionals) >= (2 if command in NAMED_BY_COMMAND else 1)
                else (names(plural, namespace))
            )
    return sorted(o for o in options if o.startswith(partial))


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if not action.option_strings and action.choices:
            return [str(c) for c in action.choices]
    return []


def cluster_names(kubeconfig: str | None, context: str | None) -> Lister:
    """Names from the cluster, best effort: completion never fails loudly."""

    def names(plural: str, namespace: str | None) -> list[str]:
        try:
            from kubernetes.client import CoreV1Api, CustomObjectsApi

            from rollwise.api import GROUP, VERSION
            from rollwise.cli.plugin_cluster import open_session

            session = open_session(kubeconfig, context, namespace)
            if plural == "namespaces":
                found = CoreV1Api(session.api_client).list_namespace(_request_timeout=(2, 5))
                return [str(n.metadata.name) for n in found.items if n.metadata]
            listed = CustomObjectsApi(session.api_client).list_namespaced_custom_object(
                GROUP, VERSION, session.namespace, plural, _request_timeout=(2, 5)
            )
            items = listed.get("items", []) if isinstance(listed, dict) else []
            return [str(i["metadata"]["name"]) for i in items]
        except Exception:  # a completion must never print a traceback
            return []

    return names


def _connection(words: Sequence[str]) -> tuple[str | None, str | None]:
    found: dict[str, str | None] = {"--kubeconfig": None, "--context": None}
    for index, word in enumerate(words[:-1]):
        if word in found:
            found[word] = words[index + 1]
    return found["--kubeconfig"], found["--context"]


def complete_main(parser: argparse.ArgumentParser, words: Sequence[str]) -> int:
    """`kubectl-rollwise __complete WORDS...` and `kubectl_complete-rollwise WORDS...`."""
    names = cluster_names(*_connection(words))
    for candidate in candidates(parser, list(words) or [""], names):
        sys.stdout.write(candidate + "\n")
    sys.stdout.write(NO_FILE_COMPLETION + "\n")
    return 0


def kubectl_complete_main() -> int:
    """Entry point of the `kubectl_complete-rollwise` console script (kubectl's plugin
    completion)."""
    from rollwise.cli.plugin import build_parser

    return complete_main(build_parser(), sys.argv[1:])
