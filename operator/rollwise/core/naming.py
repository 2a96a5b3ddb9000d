"""Deterministic names, labels and the revision hash: everything the operator creates is found
again by name after a crash, never remembered."""

from __future__ import annotations

import hashlib
import json
from typing import Any

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "rollwise"
LABEL_REVISION = "rollwise.dev/revision"
LABEL_ROLE = "rollwise.dev/role"
ROLE_WORKLOAD = "workload"
ROLE_MIGRATION = "migration"
ROLE_GATE = "gate"  # a job gate's measurement Jobs and their pods
ANNOTATION_GATE = "rollwise.dev/gate"  # on a measurement Job: the gate it measures
LABEL_OWNER = "rollwise.dev/service"  # name of the owning ProgressiveService
ANNOTATION_VERSION = "rollwise.dev/version"
ANNOTATION_REQUEST = "rollwise.dev/request"
# On a workloadRef's Deployment: the ProgressiveService that serves its pods (its events wake
# that service); and on the ProgressiveService: the finalizer that hands them back on deletion.
LABEL_ADOPTED_BY = "rollwise.dev/adopted-by"
# On a user's route object (HTTPRoute, VirtualService) whose weights rollwise sets: the
# ProgressiveService it routes for. Its watch is filtered by this label, so a change by anyone
# (a GitOps re-sync) wakes that service, which re-asserts its weights.
LABEL_ROUTE_OF = "rollwise.dev/route-of"
FINALIZER_RELEASE = "rollwise.dev/release-workload"
_MAX_NAME = 63
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as the Deployment controller: no vowels, no words


def template_revision(template: dict[str, Any]) -> str:
    """A stable 10-character hash of a pod template (key order and defaults do not matter)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    digest = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, rem = divmod(digest, len(_ALPHABET))
        out.append(_ALPHABET[rem])
    return "".join(out)


def _bounded(prefix: str, suffix: str) -> str:
    room = _MAX_NAME - len(suffix)
    return prefix[:room].rstrip("-.") + suffix


def replica_set_name(service: str, revision: str) -> str:
    return _bounded(service, f"-{revision}")


def migration_job_name(service: str, revision: str, attempt: int) -> str:
    """`<name>-migrate-<revision>` for the first attempt, `-<n>` appended for each retry."""
    suffix = f"-migrate-{revision}" + (f"-{attempt}" if attempt > 1 else "")
    return _bounded(service, suffix)


def gate_job_name(
    service: str, revision: str, gate: str, step: int | None, since: str, index: int
) -> str:
    """`<name>-gate-<hash>-<n>`: the n-th measurement Job of one gate tally. The hash covers
    the canary revision, the gate's identity (cluster, background), its step and when the tally
    began, so a later step, a retry or a new revision never meets an older Job's name."""
    identity = json.dumps([revision, gate, step, since], separators=(",", ":"))
    digest = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big")
    out = []
    for _ in range(8):
        digest, rem = divmod(digest, len(_ALPHABET))
        out.append(_ALPHABET[rem])
    return _bounded(service, f"-gate-{''.join(out)}-{index}")


def workload_selector(service: str) -> str:
    """The label selector of every workload pod of a service (the scale subresource's)."""
    return f"{LABEL_NAME}={service},{LABEL_ROLE}={ROLE_WORKLOAD}"


def service_names(service: str) -> tuple[str, str, str]:
    """The three Services: all pods, stable pods, canary pods."""
    return service, _bounded(service, "-stable"), _bounded(service, "-canary")


def gate_key(name: str, cluster: bool, background: bool) -> str:
    """How a gate is identified in status.analysis and in Observed.gates/samples."""
    return ("cluster:" if cluster else "") + name + ("@bg" if background else "")


def gate_spec_key(name: str, cluster: bool) -> str:
    """The key of a gate's spec in Observed.gates."""
    return ("cluster:" if cluster else "") + name
