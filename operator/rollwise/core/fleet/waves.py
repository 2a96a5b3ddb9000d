"""The spec's waves resolved to clusters, and the container changes merged into a member's spec."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rollwise.api.fleet import (
    ContainerPatch,
    FleetRolloutSpec,
    Wave,
)
from rollwise.core.fleet.model import Container, FleetMemberSpec

# ----------------------------------------------------------------------------- waves


def resolve_waves(spec: FleetRolloutSpec) -> list[tuple[Wave, list[str]]]:
    """Each wave with its clusters, in spec order. A cluster belongs to the first wave that
    names or selects it; a wave with neither takes every cluster no earlier wave took.
    ValueError when a wave gets no cluster or a cluster is in no wave."""
    taken: set[str] = set()
    out: list[tuple[Wave, list[str]]] = []
    for wave in spec.waves:
        if wave.clusters:
            names = [n for n in wave.clusters if n not in taken]
        elif wave.selector is not None:
            selector = wave.selector
            names = [
                c.name
                for c in spec.clusters
                if c.name not in taken
                and all(c.all_labels().get(k) == v for k, v in selector.items())
            ]
        else:
            names = [c.name for c in spec.clusters if c.name not in taken]
        if not names:
            raise ValueError(f"wave {wave.name} gets no cluster (an earlier wave took them)")
        taken.update(names)
        out.append((wave, names))
    left = [c.name for c in spec.clusters if c.name not in taken]
    if left:
        raise ValueError(
            f"cluster {', '.join(left)} is in no wave; add a last wave without clusters or "
            "selector to take the rest"
        )
    return out


def merged_containers(
    current: Sequence[Container], patches: Sequence[ContainerPatch]
) -> tuple[Container, ...]:
    """The member's containers with the fleet's image and env changes merged in by name.
    ValueError naming a container the member does not have."""
    names = {str(c.get("name")) for c in current}
    missing = [p.name for p in patches if p.name not in names]
    if missing:
        raise ValueError(f"the pod template has no container {', '.join(missing)}")
    by_name = {p.name: p for p in patches}
    out: list[Container] = []
    for container in current:
        patch = by_name.get(str(container.get("name")))
        if patch is None:
            out.append(container)
            continue
        merged = dict(container)
        if patch.image is not None:
            merged["image"] = patch.image
        if patch.env:
            env = [dict(e) for e in (container.get("env") or [])]
            for var in patch.env:
                entry = {"name": var.name, "value": var.value}
                index = next((i for i, e in enumerate(env) if e.get("name") == var.name), None)
                if index is None:
                    env.append(entry)
                else:
                    env[index] = entry
            merged["env"] = env
        out.append(merged)
    return tuple(out)


def same_containers(a: Sequence[Container], b: Sequence[Container]) -> bool:
    return json.dumps(list(a), sort_keys=True) == json.dumps(list(b), sort_keys=True)


def at_target(
    observed: FleetMemberSpec, version: str | None, containers: Sequence[Container]
) -> bool:
    return observed.version == version and same_containers(observed.containers, containers)
