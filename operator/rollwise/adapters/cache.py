"""An in-memory copy of the objects rollwise owns, fed by the operator's watches.

A reconcile pass used to LIST a service's ReplicaSets, Services, Jobs and Pods and GET its
gates every time; at 2,000 services that was three quarters of the operator's requests, and
each label-selected LIST makes the API server scan every object of that kind in the namespace.
The watches that wake the passes already carry every one of those objects, so the cache keeps
them and passes read from memory, as client-go's informers do for Go controllers.

Only the fields rollwise reads are kept (`strip`), so 10,000 services cost megabytes, not
the gigabyte their full manifests would.

Staleness: an object written a moment ago may still show its previous state. That is safe for
rollwise because every decision is level-based and every action is idempotent: a pass that
sees an old replica count plans the same scale again (the write is a no-op), a ReplicaSet
or Job that is not in the cache yet is created again and the AlreadyExists is adopted, and a
step only completes on pods counted ready, which an old copy under-reports. A copy of an object
that no longer exists (a watch that had to start over does not report what was deleted
meanwhile) is dropped when a write to it answers 404, and steady-state passes re-list from the
API server from time to time (`KubernetesAdapter.observe(fresh=True)`).

Filled by `prime` (paginated LISTs) before the first pass, then kept by the watch handlers.
Kopf's own indexes would also hold passes back until every watch had listed, but their barrier
wakes every waiting object on each object indexed: with 9,000 owned objects a restarted
operator spent minutes at a full core before its first pass (restart benchmark, N=1000).

Thread-safe: the watch handlers write on Kopf's event loop, worker threads read.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from rollwise.adapters.kubeapi import (
    CLUSTER_METRIC_GATES,
    JOBS,
    METRIC_GATES,
    PODS,
    REPLICA_SETS,
    SERVICES,
    KubeApi,
    Resource,
)
from rollwise.adapters.manifests.types import Manifest
from rollwise.core import naming

OWNED: tuple[Resource, ...] = (REPLICA_SETS, JOBS, PODS, SERVICES)
CACHED: tuple[Resource, ...] = (*OWNED, METRIC_GATES, CLUSTER_METRIC_GATES)
OWNED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
_BY_PLURAL = {res.plural: res for res in CACHED}

_METADATA = (
    "name",
    "namespace",
    "uid",
    "labels",
    "ownerReferences",
    "deletionTimestamp",
    "creationTimestamp",
    "resourceVersion",
    "generation",
)
_CONTAINER_STATUS = ("name", "state", "lastState")


def resource_for(plural: str) -> Resource | None:
    """The cached resource with this plural name (None: not cached)."""
    return _BY_PLURAL.get(plural)


def _pick(obj: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    if not obj:
        return {}
    return {k: obj[k] for k in keys if k in obj and obj[k] is not None}


def strip(res: Resource, body: Mapping[str, Any]) -> Manifest:
    """The fields of `body` that rollwise reads (see adapters.manifests), as plain dicts."""
    out: Manifest = {"metadata": _pick(body.get("metadata"), _METADATA)}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    if res is REPLICA_SETS:
        out["spec"] = _pick(spec, ("replicas",))
        out["status"] = _pick(status, ("readyReplicas", "availableReplicas"))
    elif res is JOBS:
        out["status"] = dict(status)
    elif res is PODS:
        kept = _pick(status, ("phase", "reason", "message"))
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        if ready:
            kept["conditions"] = [_pick(c, ("type", "status")) for c in ready]
        for key in ("containerStatuses", "initContainerStatuses"):
            if status.get(key):
                kept[key] = [_pick(c, _CONTAINER_STATUS) for c in status[key]]
        out["status"] = kept
    elif res is SERVICES:
        out["spec"] = _pick(spec, ("selector", "ports"))
    else:  # MetricGates: the whole spec
        out["spec"] = dict(spec)
    plain: Manifest = _plain(out)
    return plain


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts and lists (Kopf hands out read-only mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_Key = tuple[str, str, str]  # (plural, namespace, name); namespace "" for cluster-scoped


def _content(obj: Manifest) -> Manifest:
    """A stripped copy without its resourceVersion, which every write changes."""
    metadata = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**obj, "metadata": metadata}


class ObjectCache:
    """Stripped copies of owned objects and gates, by name and by owning service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[_Key, Manifest] = {}
        self._by_owner: dict[tuple[str, str, str], set[str]] = {}

    def holds(self, res: Resource) -> bool:
        return res in CACHED

    def put(self, res: Resource, body: Mapping[str, Any]) -> bool:
        """Store (or replace) the object from a watch event or a LIST. True when a field
        rollwise reads changed: most events of a ReplicaSet (its observedGeneration, its pod
        count) change nothing a pass would look at."""
        obj = strip(res, body)
        metadata = obj["metadata"]
        key = (res.plural, str(metadata.get("namespace") or ""), str(metadata.get("name")))
        owner = (metadata.get("labels") or {}).get(naming.LABEL_OWNER)
        with self._lock:
            old = self._objects.get(key)
            if old is not None:
                self._unlink(key, old)
            self._objects[key] = obj
            if owner:
                self._by_owner.setdefault((res.plural, key[1], owner), set()).add(key[2])
            return old is None or _content(old) != _content(obj)

    def remove(self, res: Resource, namespace: str | None, name: str) -> None:
        """Forget the object (deleted, or a write found it gone)."""
        key = (res.plural, namespace or "", name)
        with self._lock:
            old = self._objects.pop(key, None)
            if old is not None:
                self._unlink(key, old)

    def get(self, res: Resource, namespace: str | None, name: str) -> Manifest | None:
        with self._lock:
            return self._objects.get((res.plural, namespace or "", name))

    def owned(self, res: Resource, namespace: str, owner: str) -> list[Manifest]:
        """The objects labelled as belonging to the ProgressiveService `owner`."""
        with self._lock:
            names = self._by_owner.get((res.plural, namespace, owner)) or ()
            return [self._objects[(res.plural, namespace, n)] for n in sorted(names)]

    def replace_owned(
        self, res: Resource, namespace: str, owner: str, items: Iterable[Mapping[str, Any]]
    ) -> None:
        """What a LIST just returned is all there is of `owner`'s objects of this kind."""
        fresh = list(items)
        names = {str((i.get("metadata") or {}).get("name")) for i in fresh}
        for name in self._names(res, namespace, owner) - names:
            self.remove(res, namespace, name)
        for item in fresh:
            self.put(res, item)

    def size(self) -> int:
        with self._lock:
            return len(self._objects)

    def _names(self, res: Resource, namespace: str, owner: str) -> set[str]:
        with self._lock:
            return set(self._by_owner.get((res.plural, namespace, owner)) or ())

    def _unlink(self, key: _Key, obj: Manifest) -> None:
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(naming.LABEL_OWNER)
        if not owner:
            return
        owner_key = (key[0], key[1], owner)
        names = self._by_owner.get(owner_key)
        if names is not None:
            names.discard(key[2])
            if not names:
                del self._by_owner[owner_key]


_SERVICE_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "finalizers",  # a workloadRef's release finalizer keeps a deleted service being passed
)


class ServiceBodies:
    """The latest body of each ProgressiveService as its watch delivered it, so that a pass
    starts without a GET (the largest share of a pass's time at 2,000 services).

    Kept as zlib-compressed JSON of the fields a pass reads (metadata above plus rollwise's
    own annotations, spec, status): a few hundred bytes per service instead of a parsed
    manifest many times that size, for 10,000 services.

    A pass must never decide from a body older than its own last status write: the next
    decision would repeat a transition the stored status already records. `written` marks
    the key as awaiting that resourceVersion; until the watch delivers it, `get` answers
    None and the pass GETs. If that version is never delivered (Kopf hands over only the
    last of the events that arrive for an object within its batch window; a watch restart
    lists the current state), the key keeps reading by GET, which is correct, only slower,
    until the version of a later write of ours arrives, or a DELETE.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, str], tuple[str, bytes]] = {}  # (resourceVersion, body)
        self._awaiting: dict[tuple[str, str], str] = {}

    def put(self, body: Mapping[str, Any]) -> None:
        """Store the body of a watch event (ADDED or MODIFIED)."""
        metadata = body.get("metadata") or {}
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        kept = _pick(metadata, _SERVICE_METADATA)
        annotations = {
            k: v
            for k, v in (metadata.get("annotations") or {}).items()
            if k.startswith("rollwise.dev/")
        }
        if annotations:
            kept["annotations"] = annotations
        slim = {
            "metadata": kept,
            "spec": body.get("spec") or {},
            "status": body.get("status") or {},
        }
        blob = zlib.compress(json.dumps(_plain(slim), separators=(",", ":")).encode(), 1)
        version = str(kept.get("resourceVersion") or "")
        with self._lock:
            self._bodies[key] = (version, blob)
            if self._awaiting.get(key) == version:
                del self._awaiting[key]

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._bodies.pop((namespace, name), None)
            self._awaiting.pop((namespace, name), None)

    def written(self, namespace: str, name: str, resource_version: str) -> None:
        """The operator wrote the object; bodies older than `resource_version` are stale. An
        empty version (a response without one) never matches: that key reads by GET.

        The watch may deliver the write before the writer gets here (its thread waited for
        the GIL while Kopf's loop ran): then the body held is already that version and there
        is nothing to await."""
        key = (namespace, name)
        with self._lock:
            held = self._bodies.get(key)
            if resource_version and held is not None and held[0] == resource_version:
                self._awaiting.pop(key, None)
                return
            self._awaiting[key] = resource_version or "\0unknown"

    def get(self, namespace: str, name: str) -> Manifest | None:
        """A fresh parsed copy of the body, or None: not seen, or awaiting our own write."""
        key = (namespace, name)
        with self._lock:
            held = None if key in self._awaiting else self._bodies.get(key)
        if held is None:
            return None
        body: Manifest = json.loads(zlib.decompress(held[1]))
        return body

    def keys(self) -> list[tuple[str, str]]:
        """Every ProgressiveService held, as (namespace, name)."""
        with self._lock:
            return list(self._bodies)

    def size(self) -> int:
        with self._lock:
            return len(self._bodies)

    def nbytes(self) -> int:
        """The compressed bytes held (the dict and bytes objects add ~100 bytes a service)."""
        with self._lock:
            return sum(len(blob) for _, blob in self._bodies.values())


def prime(
    cache: ObjectCache, api: KubeApi, namespaces: Iterable[str] | None, *, page_size: int = 500
) -> int:
    """Fill the cache from the API server: every object rollwise made (by label) and every
    gate, in `namespaces` (None: all). Run once at start, before the first pass; the objects
    listed again by the watches that start afterwards only replace these copies. The count."""
    spaces: list[str | None] = [None] if namespaces is None else list(namespaces)
    count = 0
    for res in CACHED:
        selector = OWNED_SELECTOR if res in OWNED else None
        for namespace in spaces if res.namespaced else [None]:
            for page in api.list_pages(res, namespace, selector, limit=page_size):
                for item in page:
                    cache.put(res, item)
                count += len(page)
    return count
