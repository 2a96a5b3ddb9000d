"""Two operator processes electing a leader, and the API server's audit log as the witness of
who wrote what: shared by tests/reliability/test_failover.py and tests/bench/failover.py.

The cluster logs every write (create, update, patch, delete) at the Metadata level, with the
client's user agent. Each operator runs with `--leader-elect --leader-elect-identity ID`, so
its own client sends `rollwise/ID`; Kopf's watches send `kopf/<version>` from both processes
(and must never write at all).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
"""
LEASE_NAME = "rollwise-leader"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def audited_cluster(run: HarnessRun, name: str) -> LocalCluster:
    """A cluster (not started) whose API server logs every write to `audit_log(cluster)`."""
    policy = run.log_dir / f"{name}-audit-policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(AUDIT_POLICY)
    return LocalCluster(
        name,
        run.log_dir / name,
        run_id=run.run_id,
        create_flags=[f"--kube-audit-policy={policy}"],
    )


def audit_log(cluster: LocalCluster) -> Path:
    return cluster.cluster_dir / "logs" / "audit.log"


@dataclass(frozen=True)
class Write:
    """One write request as the API server logged it once it answered."""

    at: datetime  # requestReceivedTimestamp
    verb: str
    user_agent: str
    resource: str  # e.g. "jobs", "progressiveservices/status"
    namespace: str
    name: str
    code: int

    @property
    def lease(self) -> bool:
        return self.resource == "leases"


def writes(cluster: LocalCluster, namespace: str) -> list[Write]:
    """Every write in `namespace` (the Lease lives there too), oldest first."""
    found: list[Write] = []
    path = audit_log(cluster)
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        ref = event.get("objectRef") or {}
        if event.get("verb") not in WRITE_VERBS or ref.get("namespace") != namespace:
            continue
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        found.append(
            Write(
                at=datetime.fromisoformat(event["requestReceivedTimestamp"]),
                verb=event["verb"],
                user_agent=event.get("userAgent", ""),
                resource=resource,
                namespace=namespace,
                name=ref.get("name", ""),
                code=int((event.get("responseStatus") or {}).get("code", 0)),
            )
        )
    return sorted(found, key=lambda w: w.at)


def by(identity: str, found: list[Write]) -> list[Write]:
    """The writes of the operator process(es) with this election identity."""
    return [w for w in found if w.user_agent.startswith(f"rollwise/{identity}")]


def elected_operator(
    run: HarnessRun,
    cluster: LocalCluster,
    namespace: str,
    identity: str,
    *,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
) -> OperatorProcess:
    """An operator (not started) that takes part in the election for the namespace's Lease."""
    return OperatorProcess(
        run,
        cluster.kubeconfig,
        [namespace],
        name=f"operator-{identity}",
        extra_args=[
            "--leader-elect",
            f"--leader-elect-identity={identity}",
            f"--leader-elect-lease-duration={lease_duration}",
            f"--leader-elect-renew-deadline={renew_deadline}",
            f"--leader-elect-retry-period={retry_period}",
        ],
    )


def readyz(operator: OperatorProcess) -> dict[str, Any] | None:
    """The operator's /readyz JSON (200 or 503), None when it does not answer."""
    url = f"http://127.0.0.1:{operator.metrics_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        return dict(json.loads(err.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_role(operator: OperatorProcess, leader: bool, timeout: float) -> dict[str, Any]:
    """Wait until the operator is ready and leads (or stands by): its /readyz JSON."""
    role = "leader" if leader else "warm standby"

    def check() -> dict[str, Any] | None:
        state = readyz(operator)
        if state and state["ready"] and state["leader"] == leader:
            return state
        return None

    return wait_for(check, timeout=timeout, message=f"{operator.name} to be a ready {role}")


def lease_holder(api: ApiClient, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def metric_value(text: str, name: str) -> float:
    """The sum of a metric's samples (all label sets) in a Prometheus exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
