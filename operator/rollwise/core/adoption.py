"""The adoption room: a workloadRef's Deployment handed over to rollwise and back.

Adopt: rollwise runs the Deployment's pod template in its own ReplicaSets; once its stable
pods are all ready, the Deployment is scaled to 0 through its scale subresource (its spec is
the user's, and replicas must not be in their manifest, as with an HPA). The pods carry the
template's labels, so the user's own Service keeps selecting whichever pods serve.
Release (the ProgressiveService is deleted): the Deployment is scaled back to the current
replica count, and only once its pods are ready does our finalizer go, letting the garbage
collector remove rollwise's ReplicaSets. No moment runs on fewer ready pods than replicas.
"""

from __future__ import annotations

from rollwise.api.service_status import Phase
from rollwise.core.model import AdoptWorkload, ReleaseWorkload, ScaleWorkload
from rollwise.core.passes import POLL_S, WATCH_FALLBACK_S, Pass
from rollwise.core.reasons import Reason


def hand_over(p: Pass) -> None:
    """After the pass's phase work: adopt the Deployment, and retire its pods once rollwise's
    stable pods are all ready."""
    workload = p.observed.workload
    if workload is None or p.spec.workload_ref is None:
        return
    if not workload.adopted:
        p.act(AdoptWorkload(name=workload.name))
    if workload.manifest_sets_replicas:
        p.warn_once(
            Reason.WORKLOAD_DRIFT,
            f"Deployment {p.observed.namespace}/{workload.name} sets spec.replicas in its "
            "applied manifest; rollwise holds it at 0 while it serves the pods, so a GitOps "
            "tool shows drift: remove replicas from that manifest (as with an HPA)",
        )
    stable = p.status.stable
    if workload.replicas == 0 or stable is None:
        return
    rs = p.observed.replica_sets.get(stable.revision)
    ready = rs.ready_replicas if rs else 0
    if ready < p.spec.replicas:
        return  # the Deployment's pods keep serving until rollwise's are all ready
    p.act(ScaleWorkload(name=workload.name, replicas=0))
    p.event(
        Reason.WORKLOAD_ADOPTED,
        f"Deployment {workload.name} scaled from {workload.replicas} to 0: rollwise's "
        f"{ready} ready pods of {stable.revision} serve its template in its place",
        revision=stable.revision,
    )


def release(p: Pass) -> None:
    """The ProgressiveService is being deleted: the Deployment back at full size and ready,
    then our finalizer goes (and with it rollwise's ReplicaSets)."""
    ref = p.spec.workload_ref
    workload = p.observed.workload
    name = ref.name if ref is not None else ""
    if workload is None:
        p.act(ReleaseWorkload(name=name))
        p.set(message=f"deleted; Deployment {name} is gone, so there is nothing to hand back")
        return
    replicas = p.spec.replicas
    if workload.replicas != replicas:
        p.act(ScaleWorkload(name=workload.name, replicas=replicas))
    if workload.replicas == replicas and workload.ready_replicas >= replicas:
        p.act(ReleaseWorkload(name=workload.name))
        p.event(
            Reason.WORKLOAD_RELEASED,
            f"Deployment {workload.name} serves again with {replicas}/{replicas} pods ready; "
            "rollwise's ReplicaSets go with the ProgressiveService",
        )
        return
    if not any(h.event == Reason.WORKLOAD_RELEASING for h in p.status.history):
        p.event(
            Reason.WORKLOAD_RELEASING,
            f"deleted: handing the pods back to Deployment {workload.name} "
            f"({replicas} replicas) before rollwise's go",
        )
    p.set(
        message=f"releasing Deployment {workload.name}: {workload.ready_replicas}/{replicas} "
        "of its pods ready; rollwise's pods serve until then"
    )
    p.wake_in(WATCH_FALLBACK_S)


def workload_missing(p: Pass) -> None:
    """The workloadRef names no Deployment that could be read: nothing to roll out; wait."""
    ref = p.spec.workload_ref
    assert ref is not None
    message = (
        f"workloadRef: Deployment {p.observed.namespace}/{ref.name} does not exist; "
        "the service waits until it is created"
    )
    p.warn_once(Reason.WORKLOAD_MISSING, message)
    if p.status.stable is None:
        p.set(phase=Phase.PENDING)
    p.set(message=message)
    p.wake_in(POLL_S * 6)
