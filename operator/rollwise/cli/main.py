"""`rollwise`: run the operator, or generate its CRDs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollwise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crds = sub.add_parser(
        "crds",
        help="write the CRD YAML and docs/reference/api.md generated from the API models",
    )
    crds.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="repository root (default: the current folder)",
    )
    crds.add_argument("--check", action="store_true", help="fail if the files are stale")

    docs = sub.add_parser("docs", help="write the API reference generated from the CRD schemas")
    docs.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="repository root (default: the current folder)",
    )
    docs.add_argument("--check", action="store_true", help="fail if docs/reference/api.md is stale")

    sub.add_parser("version", help="print the installed rollwise version")

    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Run the operator: watch ProgressiveServices, ReleaseTrains and MetricGates "
        "in the given namespaces and roll them out (or, with --fleet-hub, FleetRollouts).",
    )
    env_ns = [n for n in os.environ.get("ROLLWISE_NAMESPACES", "").split(",") if n]
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=env_ns,
        dest="namespaces",
        metavar="NS",
        help="a namespace to watch; repeatable (env ROLLWISE_NAMESPACES, comma-separated)",
    )
    run.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch every namespace (needs the cluster-wide RBAC of the chart's default)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("ROLLWISE_WORKERS", "8")),
        metavar="N",
        help="services reconciled in parallel (env ROLLWISE_WORKERS; default %(default)s)",
    )
    run.add_argument(
        "--log-level",
        default=os.environ.get("ROLLWISE_LOG_LEVEL", "info"),
        metavar="LEVEL",
        help="debug, info or warning (env ROLLWISE_LOG_LEVEL; default %(default)s)",
    )
    run.add_argument(
        "--log-format",
        choices=["json", "text"],
        default=os.environ.get("ROLLWISE_LOG_FORMAT", "json"),
        help="one JSON object per line, or text for people (env ROLLWISE_LOG_FORMAT; "
        "default %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        metavar="PORT",
        help="Prometheus /metrics and /readyz; 0 disables them (default %(default)s)",
    )
    run.add_argument(
        "--health-port",
        type=int,
        default=8081,
        metavar="PORT",
        help="Kopf's liveness endpoint /healthz; 0 disables it (default %(default)s)",
    )
    run.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        metavar="FILE",
        help="kubeconfig to use (env KUBECONFIG); default: in-cluster, else ~/.kube/config",
    )
    env_allow = [e for e in os.environ.get("ROLLWISE_WEB_GATE_ALLOW", "").split(",") if e]
    env_allow += [e for e in os.environ.get("ROLLWISE_OUTBOUND_ALLOW", "").split(",") if e]
    run.add_argument(
        "--outbound-allow",
        "--web-gate-allow",
        dest="web_gate_allow",
        action="append",
        default=env_allow,
        metavar="URL_PREFIX",
        help="a URL prefix (scheme://host[:port]/path; host may start with '*.', port may be "
        "'*') that team-written URLs may call: namespaced MetricGates (web and Prometheus) and "
        "ProgressiveServices' webhooks and notifications; repeatable or comma-separated. "
        "ClusterMetricGates may call any URL but link-local and metadata addresses",
    )
    run.add_argument(
        "--outbound-allow-loopback",
        action="store_true",
        default=os.environ.get("ROLLWISE_OUTBOUND_ALLOW_LOOPBACK", "") == "1",
        help="allow calls to loopback addresses (127.0.0.0/8, ::1): for local runs and tests",
    )
    fleet = run.add_argument_group("fleet hub (FleetRollouts across member clusters)")
    fleet.add_argument(
        "--fleet-hub",
        action="store_true",
        help="run the FleetRollout controller of a hub, not the ProgressiveService one",
    )
    fleet.add_argument(
        "--fleet-poll-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="how often a FleetRollout in flight reads its member clusters",
    )
    fleet.add_argument(
        "--fleet-resync-interval",
        type=float,
        default=30.0,
        metavar="S",
        help="how often a settled FleetRollout refreshes what its members run",
    )
    elect = run.add_argument_group("leader election (for more than one replica)")
    elect.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("ROLLWISE_LEADER_ELECT", "").lower() in ("1", "true", "yes"),
        help="only the holder of a coordination.k8s.io Lease writes; the others stand by warm",
    )
    elect.add_argument(
        "--leader-elect-lease-name",
        default="rollwise-leader",
        metavar="NAME",
        help="the coordination.k8s.io Lease (default %(default)s)",
    )
    elect.add_argument(
        "--leader-elect-namespace",
        default="",
        metavar="NS",
        help="default: $POD_NAMESPACE, else the first -n",
    )
    elect.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=15.0,
        metavar="S",
        help="a standby takes over this long after the leader's last renewal (default %(default)s)",
    )
    elect.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10.0,
        metavar="S",
        help="the leader stops writing this long after its last renewal; below the lease "
        "duration (default %(default)s)",
    )
    elect.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2.0,
        metavar="S",
        help="how often the leader renews and standbys try (default %(default)s)",
    )
    elect.add_argument(
        "--leader-elect-identity",
        default="",
        metavar="ID",
        help="default: $POD_NAME, else hostname-pid",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rollwise` console script."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        from rollwise.cli.version import installed_version

        print(f"rollwise {installed_version()}")
        return 0
    if args.command == "docs":
        from rollwise.cli import reference

        if args.check:
            if reference.is_fresh(args.root):
                return 0
            print(f"stale: {reference.TARGET} (run `rollwise docs`)", file=sys.stderr)
            return 1
        print(f"wrote {reference.write(args.root)}")
        return 0
    if args.command == "crds":
        from rollwise.cli import crds, reference

        # The API reference is generated from the same schemas: one command keeps both fresh.
        if args.check:
            stale = crds.stale_files(args.root)
            if not reference.is_fresh(args.root):
                stale.append(args.root / reference.TARGET)
            for path in stale:
                print(f"stale: {path} (run `rollwise crds`)", file=sys.stderr)
            return 1 if stale else 0
        for path in [*crds.write(args.root), reference.write(args.root)]:
            print(f"wrote {path}")
        return 0
    if not args.namespaces and not args.all_namespaces:
        print("rollwise run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    if args.fleet_hub:
        from rollwise.controller.fleet_hub import run_fleet_hub
        from rollwise.controller.logs import configure
        from rollwise.controller.settings import OperatorSettings

        try:
            settings = OperatorSettings.from_args(args)
        except ValueError as err:
            print(f"rollwise run: {err}", file=sys.stderr)
            return 2
        configure(settings.log_level, settings.log_format)
        return run_fleet_hub(settings, args.fleet_poll_interval, args.fleet_resync_interval)
    from rollwise.controller.runner import run_operator

    return run_operator(args)


if __name__ == "__main__":
    sys.exit(main())
