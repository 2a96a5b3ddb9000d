"""`kubectl rollwise`: see a ProgressiveService's rollout, and ask the operator to act on it.

    kubectl rollwise list [-A] [--watch]
    kubectl rollwise status payment [-o json|yaml]
    kubectl rollwise watch payment [--until Healthy,RolledBack] [--timeout 600]   (a tree)
    kubectl rollwise history payment
    kubectl rollwise promote|abort|retry|pause|resume payment [--wait] [--timeout 120]
    kubectl rollwise train status|promote|abort|retry shop [-o json|yaml]
    kubectl rollwise fleet status|promote|abort NAME     (a FleetRollout, on the hub)
    kubectl rollwise set image payment app=shop/payment:2.5.0 [--version 2.5.0]
    kubectl rollwise undo payment [--to-revision REVISION|VERSION]
    kubectl rollwise completion bash|zsh|fish
    kubectl rollwise convert -f rollout.yaml [-f analysis-templates.yaml]   (from Argo Rollouts)
    kubectl rollwise version [--client]

Requests are written to the `rollwise.dev/request` annotation, never to the spec, so GitOps
tools see no drift; the operator acts once per request id and acknowledges in status. Only
`set image` and `undo` change the spec, and only when no GitOps tool applies the object
(otherwise they print the change to make in Git).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from rollwise.api.service_status import Phase
from rollwise.api.stored_status import read_stored_status
from rollwise.cli.plugin_cluster import (
    SINGULAR,
    KubeSession,
    PluginError,
    follow_service,
    get_service,
    open_session,
    username,
    write_request,
)
from rollwise.cli.plugin_completion import SCRIPTS, complete_main
from rollwise.cli.plugin_convert import add_convert_command, run_convert
from rollwise.cli.plugin_fleet import add_fleet_commands, run_fleet
from rollwise.cli.plugin_list import run_list
from rollwise.cli.plugin_render import render_history, render_status, status_is_current
from rollwise.cli.plugin_requests import (
    acknowledgement_of,
    actor_label,
    request_annotation,
    unacknowledged_request,
)
from rollwise.cli.plugin_spec import set_image, undo
from rollwise.cli.plugin_train import ACTIONS, run_train
from rollwise.cli.plugin_tree import read_world, render_tree
from rollwise.cli.plugin_version import show_version
from rollwise.core.model import Action

PROG = "kubectl rollwise"
SET_DOC = (
    "Change a ProgressiveService's spec. When a GitOps tool applies the object (Argo CD's "
    "tracking annotation or instance label, Flux's kustomize or helm labels, or their "
    "controllers in managedFields), nothing is written: the JSON patch to make in Git is "
    "printed instead (--force writes anyway)."
)
CLEAR_SCREEN = "\x1b[H\x1b[2J"
FRAME_SEPARATOR = "-" * 100
DEFAULT_WAIT_TIMEOUT_S = 120.0
DEFAULT_POLL_S = 1.0
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


# ------------------------------------------------------------------------------ arguments


def _add_connection_flags(parser: argparse.ArgumentParser, *, on_subcommand: bool) -> None:
    # Accepted before and after the subcommand; on the subcommand they must not reset a value
    # given before it, hence SUPPRESS there.
    default = argparse.SUPPRESS if on_subcommand else None
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace (default: the context's namespace, else 'default')",
    )
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")


def _phases(text: str) -> frozenset[Phase]:
    phases: set[Phase] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            phases.add(Phase(part))
        except ValueError:
            allowed = ", ".join(phase.value for phase in Phase)
            raise argparse.ArgumentTypeError(f"{part!r} is not a phase; one of {allowed}") from None
    if not phases:
        raise argparse.ArgumentTypeError("give at least one phase, e.g. Healthy,RolledBack")
    return frozenset(phases)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0 seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The command line of `kubectl rollwise`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_connection_flags(parser, on_subcommand=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("name", metavar="NAME", help="the ProgressiveService")
        _add_connection_flags(sub, on_subcommand=True)
        return sub

    status = command("status", "the rollout: phase, revisions, step, migration, gates, history")
    status.add_argument("-o", "--output", choices=["json", "yaml"], help="print the raw status")

    follow = command(
        "watch",
        "the rollout as a tree (steps, gates, router weight, revisions, ReplicaSets, pods), "
        "redrawn as it changes",
    )
    follow.add_argument(
        "--until", type=_phases, metavar="PHASES", help="exit 0 once the phase is one of these"
    )
    follow.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="stop after S seconds; exit 1 if --until was given and not reached",
    )

    train = commands.add_parser(
        "train",
        help="a ReleaseTrain: its members as a tree; promote, abort or retry the whole train",
        description="status: the members along their `after` order; promote: every member in "
        "flight; abort: halt the run (and roll back by its policy); retry: run it again",
    )
    train.add_argument("action", choices=ACTIONS, metavar="ACTION", help=", ".join(ACTIONS))
    train.add_argument("name", metavar="NAME", help="the ReleaseTrain")
    train.add_argument("-o", "--output", choices=["json", "yaml"], help="print the raw status")
    _add_connection_flags(train, on_subcommand=True)

    history = command("history", "every history entry")
    history.add_argument("-o", "--output", choices=["json", "yaml"], help="print raw entries")

    for action in Action:
        request = command(action.value, f"ask the operator to {action.value} the rollout")
        request.add_argument(
            "--wait", action="store_true", help="wait until the operator acknowledges"
        )
        request.add_argument(
            "--timeout",
            type=_seconds,
            default=DEFAULT_WAIT_TIMEOUT_S,
            metavar="S",
            help=f"with --wait: give up after S seconds (default {DEFAULT_WAIT_TIMEOUT_S:g})",
        )
        if action is Action.PROMOTE:
            request.add_argument(
                "--full",
                action="store_true",
                help="skip the remaining steps, pauses and analysis and promote now",
            )
            request.add_argument(
                "--force",
                action="store_true",
                help="with --full: promote even a rolled-back revision",
            )
    add_fleet_commands(
        commands, lambda sub: _add_connection_flags(sub, on_subcommand=True), _seconds
    )
    listing = commands.add_parser(
        "list",
        help="every ProgressiveService: phase, versions, weight, step, ready pods",
        description="every ProgressiveService of the namespace (or all namespaces) in a table",
    )
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list them in every namespace"
    )
    listing.add_argument("-w", "--watch", action="store_true", help="redraw when a row changes")
    listing.add_argument(
        "--timeout", type=_seconds, metavar="S", help="with --watch: stop after S seconds"
    )
    _add_connection_flags(listing, on_subcommand=True)

    setter = commands.add_parser("set", help="change the spec: set image", description=SET_DOC)
    set_commands = setter.add_subparsers(dest="set_command", required=True, metavar="COMMAND")
    image = set_commands.add_parser(
        "image",
        help="set container images (a new revision: rollwise rolls it out as a canary)",
        description=SET_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    image.add_argument("name", metavar="NAME", help="the ProgressiveService")
    image.add_argument(
        "images", nargs="+", metavar="CONTAINER=IMAGE", help="a container's new image; * for all"
    )
    image.add_argument(
        "--version",
        help="also set spec.version (default: follow the image tag when spec.version did)",
    )
    image.add_argument(
        "--force", action="store_true", help="write even when a GitOps tool applies the object"
    )
    _add_connection_flags(image, on_subcommand=True)

    undo = command(
        "undo",
        "roll back: abort a rollout in flight, or declare an earlier stable revision again",
    )
    undo.add_argument(
        "--to-revision",
        metavar="REVISION",
        help="a revision (or its version) that was stable; default: the previous one",
    )
    undo.add_argument(
        "--force", action="store_true", help="write even when a GitOps tool applies the object"
    )

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script for kubectl-rollwise",
        description="bash: source <(kubectl-rollwise completion bash). kubectl 1.26+ completes "
        "`kubectl rollwise` by itself through kubectl_complete-rollwise, which the package "
        "installs beside kubectl-rollwise.",
    )
    completion.add_argument("shell", choices=sorted(SCRIPTS), help="the shell")

    add_convert_command(commands)
    version = commands.add_parser(
        "version",
        help="the plugin's version, and the operator's when the cluster is reachable",
        description="the plugin's version (its package metadata) and, unless --client, the "
        "version, image and readiness of every operator Deployment the cluster shows",
    )
    version.add_argument("--client", action="store_true", help="the plugin's version only")
    _add_connection_flags(version, on_subcommand=True)
    return parser


# ------------------------------------------------------------------------------- commands


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(data: object, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, width=100)


def _raw_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return dict(status) if isinstance(status, Mapping) else {}


def show_status(session: KubeSession, name: str, output: str | None, out: TextIO) -> int:
    """`status NAME`."""
    obj = get_service(session, name)
    out.write(_dump(_raw_status(obj), output) if output else render_status(obj, _now()))
    return EXIT_OK


def show_history(session: KubeSession, name: str, output: str | None, out: TextIO) -> int:
    """`history NAME`."""
    obj = get_service(session, name)
    if output:
        out.write(_dump(_raw_status(obj).get("history", []), output))
    else:
        out.write(render_history(obj, _now()))
    return EXIT_OK


def _draw(out: TextIO, frame: str, first: bool) -> None:
    if out.isatty():
        out.write(CLEAR_SCREEN)
    elif not first:
        out.write(FRAME_SEPARATOR + "\n")
    out.write(frame)
    out.flush()


def watch_status(
    session: KubeSession,
    name: str,
    until: frozenset[Phase] | None,
    timeout: float | None,
    out: TextIO,
    err: TextIO,
    interval: float = DEFAULT_POLL_S,
) -> int:
    """`watch NAME`: the tree, redrawn when anything it shows changed; with --until, stop once
    the phase is reached.

    The ProgressiveService is followed by a watch; pods, ReplicaSets and the router's object
    are read again every `interval` seconds (their changes do not touch the service)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    phase = Phase.PENDING
    shown: str | None = None
    while True:
        window = time.monotonic() + interval
        if deadline is not None:
            window = min(window, deadline)
        for obj in follow_service(session, name, window):
            content = render_tree(obj, read_world(session, obj))
            # Ages tick every second: a frame is drawn only when something else changed.
            if content != shown:
                frame = render_tree(obj, read_world(session, obj), _now())
                _draw(out, frame, first=shown is None)
                shown = content
            phase = read_stored_status(obj.get("status")).status.phase
            # A phase written for an older generation says nothing about the current spec.
            if until is not None and phase in until and status_is_current(obj):
                return EXIT_OK
        if deadline is not None and time.monotonic() >= deadline:
            break
    if until is None:
        return EXIT_OK
    wanted = ", ".join(sorted(p.value for p in until))
    err.write(
        f"timed out after {timeout:g}s waiting for {SINGULAR} {session.namespace}/{name}"
        f" to reach {wanted}; the phase is {phase.value}\n"
    )
    return EXIT_FAILED


def send_request(
    session: KubeSession,
    name: str,
    action: Action,
    wait: bool,
    timeout: float,
    out: TextIO,
    err: TextIO,
    *,
    full: bool = False,
    force: bool = False,
) -> int:
    """`promote|abort|retry|pause|resume NAME`: write the request annotation, maybe await it."""
    obj = get_service(session, name)
    replaced = unacknowledged_request(obj)
    request_id = uuid.uuid4().hex
    by = actor_label(username(session), action)
    write_request(session, name, request_annotation(action, request_id, by, full=full, force=force))
    target = f"{SINGULAR} {session.namespace}/{name}"
    if replaced is not None:
        err.write(
            f"warning: replaced request {replaced.id} ({replaced.action.value} by {replaced.by}),"
            " which the operator had not acknowledged yet\n"
        )
    what = action.value + (" --full" if full else "") + (" --force" if force else "")
    out.write(f"{what} requested for {target} as {by} (request {request_id})\n")
    out.flush()
    if not wait:
        return EXIT_OK
    deadline = time.monotonic() + timeout
    for current in follow_service(session, name, deadline):
        result = acknowledgement_of(current, request_id)
        if result is not None:
            out.write(f"the operator acknowledged request {request_id}: {result}\n")
            return EXIT_OK
    err.write(
        f"the operator did not acknowledge request {request_id} within {timeout:g}s;"
        f" is it running and watching namespace {session.namespace}? The request stays in the"
        " annotation and is acted on when the operator sees it.\n"
    )
    return EXIT_FAILED


def _version(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.client:
        return show_version(None, out)
    try:
        session = open_session(args.kubeconfig, args.context, args.namespace)
    except PluginError as error:
        show_version(None, out)
        err.write(f"operator: unknown ({error})\n")
        return EXIT_OK
    return show_version(session, out)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Dispatch one parsed command line."""
    if args.command == "version":
        return _version(args, out, err)
    if args.command == "convert":
        return run_convert(args, out, err)
    if args.command == "completion":
        out.write(SCRIPTS[args.shell])
        return EXIT_OK
    session = open_session(args.kubeconfig, args.context, args.namespace)
    command: str = args.command
    if command == "fleet":
        return run_fleet(session, args, out, err)
    if command == "list":
        return run_list(session, args.all_namespaces, args.watch, args.timeout, _now, out)
    if command == "set":
        return set_image(session, args.name, args.images, args.version, args.force, out, err)
    if command == "undo":
        return undo(
            session,
            args.name,
            args.to_revision,
            args.force,
            out,
            lambda: send_request(session, args.name, Action.ABORT, False, 0.0, out, err),
        )
    if command == "status":
        return show_status(session, args.name, args.output, out)
    if command == "history":
        return show_history(session, args.name, args.output, out)
    if command == "train":
        return run_train(session, args.action, args.name, args.output, out)
    if command == "watch":
        return watch_status(session, args.name, args.until, args.timeout, out, err)
    full, force = getattr(args, "full", False), getattr(args, "force", False)
    if force and not full:
        err.write("error: --force goes with --full only\n")
        return EXIT_FAILED
    return send_request(
        session,
        args.name,
        Action(command),
        args.wait,
        args.timeout,
        out,
        err,
        full=full,
        force=force,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kubectl-rollwise` console script."""
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["__complete"]:
        return complete_main(build_parser(), words[1:])
    args = build_parser().parse_args(words)
    try:
        return run(args, sys.stdout, sys.stderr)
    except PluginError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`| head`): say nothing more, and keep Python's exit flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
