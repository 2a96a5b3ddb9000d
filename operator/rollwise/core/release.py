"""A train's release applied to a member's own spec: what the member then rolls out.

Pure, and shared by the ProgressiveService pass (which rolls the result out) and the train pass
(which computes the revision it waits for), so both agree on the revision to the byte.
"""

from __future__ import annotations

from rollwise.api.service import Container, ServiceSpec
from rollwise.api.train import Release
from rollwise.core.revision import revision_of


def apply_release(spec: ServiceSpec, release: Release | None) -> ServiceSpec:
    """`spec` with the release's version, and its image and env on the chosen container (the
    first when none is named); the spec itself when there is no release."""
    if release is None:
        return spec
    template = spec.pod_template()
    containers = list(template.spec.containers)
    index = 0
    if release.container is not None:
        names = [c.name for c in containers]
        if release.container not in names:
            raise ValueError(
                f"release names container {release.container!r}, which the pod template "
                f"does not have (it has {', '.join(names)})"
            )
        index = names.index(release.container)
    wire = containers[index].to_wire()
    if release.image is not None:
        wire["image"] = release.image
    if release.env:
        env = [e for e in wire.get("env") or [] if isinstance(e, dict)]
        for var in release.env:
            replaced = {"name": var.name, "value": var.value}
            at = next((i for i, e in enumerate(env) if e.get("name") == var.name), None)
            if at is None:
                env.append(replaced)
            else:
                env[at] = replaced
        wire["env"] = env
    containers[index] = Container.model_validate(wire)
    pod_spec = template.spec.model_copy(update={"containers": containers})
    return spec.model_copy(
        update={
            "version": release.version,
            "template": template.model_copy(update={"spec": pod_spec}),
        }
    )


def release_revision(spec: ServiceSpec, release: Release | None) -> str:
    """The revision a member rolls out with this release (its own spec's when None)."""
    return revision_of(apply_release(spec, release))
