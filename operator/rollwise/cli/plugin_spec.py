"""`kubectl rollwise set image` and `kubectl rollwise undo`: the two commands that change a
ProgressiveService's spec (every other command writes only the request annotation).

When a GitOps tool owns the object, a write to its spec is either reverted at the next sync or
leaves the cluster drifted from Git, so the plugin prints the change to make in Git instead of
writing it (`--force` writes anyway). It decides from what the tools themselves leave on the
objects they apply:
- Argo CD: the annotation `argocd.argoproj.io/tracking-id`, the label
  `argocd.argoproj.io/instance`, or a managedFields entry by `argocd-controller` /
  `argocd-application-controller`;
- Flux: the labels `kustomize.toolkit.fluxcd.io/name` or `helm.toolkit.fluxcd.io/name`, or a
  managedFields entry by `kustomize-controller` / `helm-controller`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import urllib3.exceptions
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from rollwise.api import GROUP, VERSION
from rollwise.api.service import PLURAL, ServiceSpec
from rollwise.api.service_status import Phase
from rollwise.api.stored_status import read_stored_status
from rollwise.cli.plugin_cluster import KubeSession, PluginError, explain, get_service
from rollwise.core.revision import revision_of

JsonPatch = list[dict[str, Any]]
_TIMEOUT = (10.0, 30.0)
_ARGO_MANAGERS = ("argocd-controller", "argocd-application-controller")
_FLUX_MANAGERS = ("kustomize-controller", "helm-controller")
# Our own history messages name versions with their revisions: "version 2.4.0 (85c4d7f9a2)",
# "first revision 85c4d7f9a2 (version 2.4.0)", "2.3.1 (6d9f8c7b4e) scaled down".
_VERSION_REVISION = re.compile(r"version (\S+) \((\w+)\)")
_FIRST_REVISION = re.compile(r"first revision (\w+) \(version (\S+)\)")
_SCALED_DOWN = re.compile(r"(\S+) \((\w+)\) scaled down")
_IN_FLIGHT = {Phase.PENDING, Phase.MIGRATING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING}


def gitops_owner(obj: Mapping[str, Any]) -> str | None:
    """Which GitOps tool applies this object, and the mark that says so; None when none does."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    if "argocd.argoproj.io/tracking-id" in annotations:
        return "Argo CD (annotation argocd.argoproj.io/tracking-id)"
    if "argocd.argoproj.io/instance" in labels:
        return "Argo CD (label argocd.argoproj.io/instance)"
    for key in ("kustomize.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/name"):
        if key in labels:
            return f"Flux (label {key}={labels[key]})"
    for entry in metadata.get("managedFields") or []:
        manager = str(entry.get("manager", ""))
        if manager in _ARGO_MANAGERS:
            return f"Argo CD (fields managed by {manager})"
        if manager in _FLUX_MANAGERS:
            return f"Flux (fields managed by {manager})"
    return None


def _tag(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name.split("@", 1)[0] else None


def _containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if "workloadRef" in spec:
        ref = spec["workloadRef"].get("name", "?")
        raise PluginError(
            f"this ProgressiveService rolls out Deployment {ref}'s pod template: change it there "
            f"(kubectl set image deployment/{ref} ...); rollwise starts the canary"
        )
    return list(((spec.get("template") or {}).get("spec") or {}).get("containers") or [])


def image_patch(
    obj: Mapping[str, Any], images: Mapping[str, str], version: str | None
) -> tuple[JsonPatch, list[str]]:
    """The JSON patch that sets `images` (container name, or "*" for all) and the version; and
    notes for the person (what else changed, and why)."""
    containers = _containers(obj)
    names = [str(c.get("name")) for c in containers]
    unknown = sorted(set(images) - set(names) - {"*"})
    if unknown:
        raise PluginError(f"no container {', '.join(unknown)}; containers: {', '.join(names)}")
    patch: JsonPatch = []
    notes: list[str] = []
    for index, container in enumerate(containers):
        new = images.get(str(container.get("name")), images.get("*"))
        if new is None or new == container.get("image"):
            continue
        base = f"/spec/template/spec/containers/{index}"
        patch += [
            {"op": "test", "path": f"{base}/name", "value": container.get("name")},
            {"op": "replace", "path": f"{base}/image", "value": new},
        ]
    spec = obj.get("spec") or {}
    declared = spec.get("version")
    first_old = str(containers[0].get("image", "")) if containers else ""
    first_new = images.get(names[0], images.get("*")) if names else None
    if version is None and declared is not None and first_new and declared == _tag(first_old):
        version = _tag(first_new)
        if version:
            notes.append(f"spec.version follows the image tag: {declared} -> {version}")
    if version is not None and version != declared:
        patch.append({"op": "add", "path": "/spec/version", "value": version})
    elif declared is not None and version is None and first_new:
        notes.append(f"spec.version stays {declared}; pass --version to change it")
    return patch, notes


def apply_patch(session: KubeSession, name: str, patch: JsonPatch) -> None:
    """A JSON patch of the spec (its `test` ops make a concurrent change fail, not merge)."""
    try:
        CustomObjectsApi(session.api_client).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            session.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/json-patch+json",
            _request_timeout=_TIMEOUT,
        )
    except ApiException as err:
        raise explain(err, session, "patch", name) from err
    except urllib3.exceptions.HTTPError as err:
        raise PluginError(f"cannot reach the API server {session.server}: {err}") from err


def _write_or_print(
    session: KubeSession,
    obj: Mapping[str, Any],
    name: str,
    patch: JsonPatch,
    what: str,
    force: bool,
    out: TextIO,
) -> int:
    owner = gitops_owner(obj)
    target = f"progressiveservice {session.namespace}/{name}"
    if owner is not None and not force:
        out.write(
            f"{target} is applied by {owner}: a change here would be reverted at its next sync "
            f"or drift from Git, so nothing was written. Make this change in Git ({what}):\n"
            + json.dumps([op for op in patch if op["op"] != "test"], indent=2)
            + "\n(or write it anyway with --force)\n"
        )
        return 0
    apply_patch(session, name, patch)
    out.write(f"{target}: {what}\n")
    return 0


def set_image(
    session: KubeSession,
    name: str,
    assignments: list[str],
    version: str | None,
    force: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """`set image NAME CONTAINER=IMAGE...`."""
    images: dict[str, str] = {}
    for item in assignments:
        container, sep, image = item.partition("=")
        if not sep or not container or not image:
            raise PluginError(f"{item!r}: give CONTAINER=IMAGE (or *=IMAGE for every container)")
        images[container] = image
    obj = get_service(session, name)
    patch, notes = image_patch(obj, images, version)
    for note in notes:
        err.write(f"note: {note}\n")
    if not patch:
        out.write(f"progressiveservice {session.namespace}/{name}: already runs those images\n")
        return 0
    changed = ", ".join(f"{c}={i}" for c, i in images.items())
    return _write_or_print(session, obj, name, patch, f"image {changed}", force, out)


# ------------------------------------------------------------------------------------- undo


@dataclass(frozen=True)
class Known:
    """A revision that was stable at some point, with its version."""

    revision: str
    version: str


def known_revisions(obj: Mapping[str, Any]) -> list[Known]:
    """Revisions that were stable, oldest first, from status.stable and the history."""
    reading = read_stored_status(obj.get("status"))
    found: dict[str, str] = {}
    order: list[str] = []

    def seen(revision: str, version: str) -> None:
        if revision not in found:
            order.append(revision)
        found[revision] = version

    for entry in reading.status.history:
        message = entry.message or ""
        if entry.event == "InitialDeploy" and (first := _FIRST_REVISION.search(message)):
            seen(first.group(1), first.group(2))
        if entry.event == "Promoted":
            if down := _SCALED_DOWN.search(message):
                seen(down.group(2), down.group(1))
            if up := _VERSION_REVISION.search(message):
                seen(up.group(2), up.group(1))
    stable = reading.status.stable
    if stable is not None:
        seen(stable.revision, stable.version)
    return [Known(r, found[r]) for r in order]


def _pick(candidates: list[Known], wanted: str) -> Known:
    matches = [k for k in candidates if k.revision.startswith(wanted) or k.version == wanted]
    if len(matches) != 1:
        listed = ", ".join(f"{k.revision} ({k.version})" for k in candidates) or "none"
        raise PluginError(
            f"--to-revision {wanted}: {'ambiguous' if matches else 'unknown'}; "
            f"revisions that were stable: {listed}"
        )
    return matches[0]


def undo_patch(obj: Mapping[str, Any], to_revision: str | None) -> tuple[JsonPatch, Known]:
    """The patch that declares an earlier stable revision again, checked by its hash.

    rollwise keeps no old pod templates, so the earlier one is rebuilt from the current spec
    by putting the earlier version in place of the current one (spec.version and image tags),
    and used only if it hashes to exactly the revision that ran.
    """
    try:
        spec = ServiceSpec.model_validate(obj.get("spec") or {})
    except ValidationError as error:
        raise PluginError(f"the spec cannot be read: {error}") from error
    _containers(obj)  # a workloadRef's template is the Deployment's
    current = revision_of(spec)
    candidates = [k for k in known_revisions(obj) if k.revision != current]
    if not candidates:
        raise PluginError("no earlier stable revision is recorded in status")
    target = _pick(candidates, to_revision) if to_revision else candidates[-1]
    now_version = spec.resolved_version()
    template = spec.pod_template().to_wire()
    patch: JsonPatch = []
    for index, container in enumerate(template["spec"]["containers"]):
        image = str(container["image"])
        if _tag(image) == now_version:
            older = image[: -len(now_version)] + target.version
            container["image"] = older
            base = f"/spec/template/spec/containers/{index}"
            patch += [
                {"op": "test", "path": f"{base}/image", "value": image},
                {"op": "replace", "path": f"{base}/image", "value": older},
            ]
    update: dict[str, Any] = {"template": template}
    if spec.version is not None:
        update["version"] = target.version
        patch.append({"op": "replace", "path": "/spec/version", "value": target.version})
    rebuilt = ServiceSpec.model_validate({**spec.to_wire(), **update})
    if revision_of(rebuilt) != target.revision:
        raise PluginError(
            f"cannot rebuild revision {target.revision} (version {target.version}): it differs "
            f"from the current spec by more than its version; revert the change in Git, or use "
            "`kubectl rollwise set image`"
        )
    return patch, target


def undo(
    session: KubeSession,
    name: str,
    to_revision: str | None,
    force: bool,
    out: TextIO,
    abort: Any,
) -> int:
    """`undo NAME [--to-revision R]`: mid-rollout, an abort (back to stable); settled, the
    spec declares an earlier stable revision again and rollwise rolls it out as a canary."""
    obj = get_service(session, name)
    status = read_stored_status(obj.get("status")).status
    if to_revision is None and status.canary is not None and status.phase in _IN_FLIGHT:
        stable = status.stable.version if status.stable else "?"
        out.write(f"a rollout is in flight: undo aborts it (traffic back to stable {stable})\n")
        return int(abort())
    patch, target = undo_patch(obj, to_revision)
    return _write_or_print(
        session,
        obj,
        name,
        patch,
        f"back to revision {target.revision} (version {target.version})",
        force,
        out,
    )
