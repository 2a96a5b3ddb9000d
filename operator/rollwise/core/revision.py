"""Which revision a spec declares: what adapters and the controller need to name and find the
objects of a rollout, without reaching into the phases."""

from __future__ import annotations

from rollwise.api.service import ServiceSpec
from rollwise.core.naming import template_revision


def revision_of(spec: ServiceSpec) -> str:
    """The revision of the declared pod template and version: a new value means a new rollout."""
    return template_revision(
        {"template": spec.pod_template().to_wire(), "version": spec.resolved_version()}
    )
