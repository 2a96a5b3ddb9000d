"""`rollwise` with a crash point installed: the reliability tests' way to kill the operator (or
the fleet hub) at a moment between two writes of a pass, which cannot be timed from outside.

Run as `python -m tests.harness.crash_points run ...` (OperatorProcess does so whenever one of
the variables below is set); it installs a hook on rollwise's `checkpoint` and then runs the
ordinary `rollwise` command line. Production code defines no crash point of its own.

- ROLLWISE_CRASH_AFTER=<action class name>: SIGKILL right after a pass applied such an action,
  before its status write (`applied:<name>`);
- ROLLWISE_FLEET_CRASH_AT=patching:<cluster> | patched:<cluster>: SIGKILL the hub right after
  the status write that records the cluster's previous spec, or right after its patch.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

from rollwise.cli.main import main
from rollwise.controller.loop import install_checkpoint

CRASH_VARIABLES = ("ROLLWISE_CRASH_AFTER", "ROLLWISE_FLEET_CRASH_AT")
log = logging.getLogger("rollwise.crash_points")


def moments(env: Mapping[str, str]) -> set[str]:
    """The checkpoint moments the variables in `env` ask to crash at."""
    wanted: set[str] = set()
    if env.get("ROLLWISE_CRASH_AFTER"):
        wanted.add(f"applied:{env['ROLLWISE_CRASH_AFTER']}")
    if env.get("ROLLWISE_FLEET_CRASH_AT"):
        wanted.add(env["ROLLWISE_FLEET_CRASH_AT"])
    return wanted


def crash_at(wanted: set[str]) -> None:
    """Install a hook that dies at once (SIGKILL: no cleanup, no status write) at `wanted`."""

    def hook(moment: str) -> None:
        if moment in wanted:
            log.critical("crash point %s: SIGKILL", moment)
            os.kill(os.getpid(), signal.SIGKILL)

    install_checkpoint(hook)


if __name__ == "__main__":
    crash_at(moments(os.environ))
    sys.exit(main(sys.argv[1:]))
