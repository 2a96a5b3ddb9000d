"""Generate the CRDs from the pydantic models, as structural OpenAPI v3 schemas.

Pydantic's JSON schema is close to what the apiserver wants; the differences handled here:
refs are inlined, `anyOf [X, null]` becomes X (optional fields are simply absent), titles and
`additionalProperties: false` are dropped (pruning does that job), int-or-string unions become
`x-kubernetes-int-or-string`, and defaults are dropped so that the synced spec of a GitOps tool
never differs from what the apiserver stores (the operator applies defaults when it reads).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rollwise.api import GROUP, VERSION, fleet, gates, service, service_status, train

Schema = dict[str, Any]
_DROP = {"title", "default", "examples", "example"}


def _structural(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if node.get("x-kubernetes-int-or-string"):
        out: Schema = {"x-kubernetes-int-or-string": True}
        if "description" in node:
            out["description"] = node["description"]
        return out
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union in a structural schema: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**options[0], **rest}, defs)
    out = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            continue  # false: pruning does it; true: expressed as preserve-unknown-fields
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    if node.get("additionalProperties") is True:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    result: Schema = _structural(raw, raw.get("$defs", {}))
    return result


def _crd(
    kind: str,
    plural: str,
    scope: str,
    spec_model: type[BaseModel],
    status_model: type[BaseModel] | None,
    short_names: list[str],
    columns: list[Schema],
    max_name: int | None = None,
    scale: bool = False,
) -> Schema:
    properties: Schema = {"spec": openapi_schema(spec_model)}
    version: Schema = {"name": VERSION, "served": True, "storage": True}
    if status_model is not None:
        properties["status"] = openapi_schema(status_model)
        version["subresources"] = {"status": {}}
    if scale:
        # An HPA or KEDA scales the service through this, like a Deployment.
        version["subresources"]["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
        # The one default the schema keeps: an autoscaled manifest leaves replicas out (so
        # GitOps never fights the autoscaler), and an absent value reads as 0 through the
        # scale subresource, which an HPA takes for "scaling disabled". Stored as 1, as the
        # operator reads an absent value anyway.
        properties["spec"]["properties"]["replicas"]["default"] = 1
    root: Schema = {"type": "object", "required": ["spec"], "properties": properties}
    if max_name is not None:
        # Names of owned objects are `<name>-<revision>` and `<name>-migrate-<revision>`, and
        # <name> is a label value: longer names would have to be truncated and could collide.
        root["x-kubernetes-validations"] = [
            {
                "rule": f"self.metadata.name.size() <= {max_name}",
                "message": f"metadata.name must be at most {max_name} characters (rollwise "
                "derives ReplicaSet, Job and Service names from it)",
            }
        ]
    version["schema"] = {"openAPIV3Schema": root}
    version["additionalPrinterColumns"] = columns
    names: Schema = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "categories": ["rollwise"],
    }
    if short_names:
        names["shortNames"] = short_names
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "rollwise"},
        },
        "spec": {"group": GROUP, "scope": scope, "names": names, "versions": [version]},
    }


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> Schema:
    col: Schema = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


_AGE = _column("Age", ".metadata.creationTimestamp", "date")
_GATE_COLUMNS = [
    _column("Interval", ".spec.interval"),
    _column("Max", ".spec.thresholdRange.max", "number"),
    _AGE,
]


def build_crds() -> dict[str, Schema]:
    """Every CRD rollwise serves, keyed by file name."""
    psvc = _crd(
        service.KIND,
        service.PLURAL,
        "Namespaced",
        service.ServiceSpec,
        service_status.ServiceStatus,
        service.SHORT_NAMES,
        [
            _column("Phase", ".status.phase"),
            _column("Stable", ".status.stable.version"),
            _column("Canary", ".status.canary.version"),
            _column("Weight", ".status.canaryWeight", "integer"),
            _column("Mirror", ".status.mirrorPercent", "integer", priority=1),
            _column("Step", ".status.currentStepIndex", "integer"),
            _column("Replicas", ".spec.replicas", "integer"),
            _column("Stable-Pods", ".status.stable.replicas", "integer", priority=1),
            _column("Canary-Pods", ".status.canary.replicas", "integer", priority=1),
            _column("Stable-Rev", ".status.stable.revision", priority=1),
            _column("Canary-Rev", ".status.canary.revision", priority=1),
            _column("Message", ".status.message", priority=1),
            _AGE,
        ],
        max_name=service.MAX_NAME,
        scale=True,
    )
    gate = _crd(
        gates.KIND, gates.PLURAL, "Namespaced", gates.MetricGateSpec, None, ["mgate"], _GATE_COLUMNS
    )
    cluster_gate = _crd(
        gates.CLUSTER_KIND,
        gates.CLUSTER_PLURAL,
        "Cluster",
        gates.MetricGateSpec,
        None,
        ["cmgate"],
        _GATE_COLUMNS,
    )
    release_train = _crd(
        train.KIND,
        train.PLURAL,
        "Namespaced",
        train.TrainSpec,
        train.TrainStatus,
        train.SHORT_NAMES,
        [
            _column("Phase", ".status.phase"),
            _column("Policy", ".spec.onFailure.policy"),
            _column("Frozen-Until", ".status.frozenUntil", "date", priority=1),
            _column("Message", ".status.message"),
            _AGE,
        ],
    )
    fleet_rollout = _crd(
        fleet.KIND,
        fleet.PLURAL,
        "Namespaced",
        fleet.FleetRolloutSpec,
        fleet.FleetRolloutStatus,
        fleet.SHORT_NAMES,
        [
            _column("Phase", ".status.phase"),
            _column("Version", ".spec.version"),
            _column("Wave", ".status.currentWave"),
            _column("Message", ".status.message"),
            _column("Policy", ".spec.onFailure", priority=1),
            _AGE,
        ],
    )
    return {
        f"{GROUP}_{service.PLURAL}.yaml": psvc,
        f"{GROUP}_{train.PLURAL}.yaml": release_train,
        f"{GROUP}_{fleet.PLURAL}.yaml": fleet_rollout,
        f"{GROUP}_{gates.PLURAL}.yaml": gate,
        f"{GROUP}_{gates.CLUSTER_PLURAL}.yaml": cluster_gate,
    }
