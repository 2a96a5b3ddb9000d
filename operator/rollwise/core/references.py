"""References checked when the spec is applied: the MetricGates and ClusterMetricGates, the
workloadRef's Deployment, the traffic router's route object and the Secrets (webhook and
notification URLs and headers: core.secret_refs) the spec names. A missing one
holds the new revision before any of it runs (no canary pod, no traffic, no migration) and
shows as InvalidSpec and Stalled; the rollout goes on by itself once it exists."""

from __future__ import annotations

from rollwise.api.service import ServiceSpec
from rollwise.core.analysis import gate_refs
from rollwise.core.model import Observed
from rollwise.core.naming import gate_spec_key


def missing_references(spec: ServiceSpec, observed: Observed, *, gates: bool) -> list[str]:
    """Each named object that does not exist (or, for a gate, does not validate), as a
    sentence naming it and the field. `gates`: whether the gates count (a revision is being
    rolled out; steady state reads none)."""
    missing: list[str] = []
    if spec.workload_ref is not None and spec.template is None:
        missing.append(
            f"Deployment {observed.namespace}/{spec.workload_ref.name} "
            "(spec.workloadRef.name) does not exist"
        )
    for name, cluster in gate_refs(spec) if gates else []:
        key = gate_spec_key(name, cluster)
        if observed.gates.get(key) is not None:
            continue
        kind = "ClusterMetricGate" if cluster else "MetricGate"
        where = name if cluster else f"{observed.namespace}/{name}"
        error = observed.gate_errors.get(key)
        missing.append(
            f"{kind} {where} does not exist"
            if error is None
            else f"{kind} {where} is invalid: {error}"
        )
    missing.extend(observed.missing_references)
    return missing


def describe_missing(missing: list[str]) -> str:
    """The status message and InvalidSpec condition message for what is missing."""
    until = "it exists and is valid" if len(missing) == 1 else "they exist and are valid"
    return f"invalid spec: {'; '.join(missing)}; nothing of the new revision runs until {until}"
