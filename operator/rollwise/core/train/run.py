"""A run: one per generation of the spec; a new version set starts a new run."""

from __future__ import annotations

from rollwise.api.train import (
    MemberPhase,
    MemberStatus,
    TrainPhase,
)
from rollwise.core.reasons import Reason
from rollwise.core.train.passes import TrainPass

# ------------------------------------------------------------------ a run


def start_run(t: TrainPass) -> None:
    """A new version set (or a retry): every member waits again and keeps what it runs, but a
    member in flight goes back to its previous release (its canary is superseded) and starts
    again in its turn."""
    members = []
    for m in t.spec.members:
        old = t.status.member(m.service)
        release = None
        if old is not None:
            release = old.previous if old.phase is MemberPhase.PROGRESSING else old.release
        members.append(MemberStatus(service=m.service, version=m.version, release=release))
    t.set(
        members=members,
        failure=None,
        frozen_until=None,
        phase=TrainPhase.PENDING,
        message=None,
        observed_generation=t.observed.generation,
    )
    listed = ", ".join(f"{m.service} {m.version}" for m in t.spec.members)
    t.event(Reason.RELEASE_STARTED, f"releasing {listed}")
