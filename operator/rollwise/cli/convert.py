"""`kubectl rollwise convert`: an Argo Rollouts Rollout (and its AnalysisTemplates) in, a
ProgressiveService (and MetricGates) out.

Pure data translation: documents in, documents and findings out. Every field that is not carried
over is a finding with its path (`Rollout/web: spec.strategy.canary.steps[3].experiment`) and
what to do instead; a finding never hides silently in a lossy output.

Mapping (Argo -> rollwise):
- Rollout spec.replicas, template, workloadRef, progressDeadlineSeconds; canary steps
  setWeight / pause / analysis, background analysis (templates, args, startingStep), maxSurge,
  maxUnavailable, abortScaleDownDelaySeconds; trafficRouting nginx.stableIngress,
  istio.virtualService.name, the Gateway API plugin's httpRoute (none: the replicas router).
- AnalysisTemplate / ClusterAnalysisTemplate: one MetricGate (ClusterMetricGate) per metric,
  named after the template (`<template>-<metric>` when it has several); interval, count,
  failureLimit, inconclusiveLimit, consecutiveErrorLimit; providers prometheus, job and web;
  successCondition / failureCondition of the forms `result[0] <= 0.05`, `result >= 0.95`,
  joined with `&&`, become thresholdRange.
- Argo args named with dashes become underscores (rollwise placeholders are identifiers);
  `podTemplateHashValue: Latest|Stable` becomes `{{canary.revision}}` / `{{stable.revision}}`,
  `fieldRef` metadata.name / metadata.namespace `{{service.name}}` / `{{service.namespace}}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollwise.api import GROUP, VERSION
from rollwise.api.gates import CLUSTER_KIND as CLUSTER_GATE_KIND
from rollwise.api.gates import KIND as GATE_KIND
from rollwise.api.service import KIND as SERVICE_KIND
from rollwise.api.service import MAX_NAME

ARGO_GROUP = "argoproj.io"
Doc = dict[str, Any]
API_VERSION = f"{GROUP}/{VERSION}"
GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"
_ARG_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_BOUND = re.compile(
    r"^\s*(?:(?P<num1>-?\d+(?:\.\d+)?)\s*(?P<op1><=|<|>=|>)\s*)?"
    r"result(?:\[0\])?"
    r"(?:\s*(?P<op2><=|<|>=|>|==)\s*(?P<num2>-?\d+(?:\.\d+)?))?\s*$"
)


@dataclass(frozen=True)
class Finding:
    """One field not carried over (or carried over with a change), by path."""

    path: str
    message: str
    converted: bool = False  # True: carried over, but changed; say how

    def __str__(self) -> str:
        mark = "changed" if self.converted else "not converted"
        return f"{self.path}: {mark}: {self.message}"


@dataclass
class Conversion:
    """What came out: documents to apply, and what did not make it."""

    documents: list[Doc] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def lost(self) -> list[Finding]:
        return [f for f in self.findings if not f.converted]


@dataclass
class _Context:
    findings: list[Finding]

    def drop(self, path: str, message: str) -> None:
        self.findings.append(Finding(path, message))

    def change(self, path: str, message: str) -> None:
        self.findings.append(Finding(path, message, converted=True))


def _name(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name", ""))


def _arg_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _duration(value: Any) -> str | None:
    """Argo durations are seconds (int) or a Go duration string; rollwise takes `30s`, `2m`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return f"{int(value)}s"
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return f"{text}s"
    if re.fullmatch(r"([0-9]+(\.[0-9]+)?(ms|s|m|h))+", text):
        return text
    return None


# ------------------------------------------------------------------------- analysis templates


@dataclass(frozen=True)
class _Template:
    kind: str  # AnalysisTemplate | ClusterAnalysisTemplate
    doc: Doc

    @property
    def name(self) -> str:
        return _name(self.doc)

    @property
    def where(self) -> str:
        return f"{self.kind}/{self.name}"

    def metrics(self) -> list[Doc]:
        return list((self.doc.get("spec") or {}).get("metrics") or [])

    def gate_name(self, metric: Mapping[str, Any]) -> str:
        if len(self.metrics()) == 1:
            return self.name
        return f"{self.name}-{metric.get('name', '')}"


def _threshold(condition: str) -> tuple[float | None, float | None, bool] | None:
    """(min, max, strict) of a condition made of `result[0] OP N` parts joined by &&."""
    low: float | None = None
    high: float | None = None
    strict = False
    for part in condition.split("&&"):
        match = _BOUND.match(part)
        if match is None or (match["op1"] is None and match["op2"] is None):
            return None
        if match["op1"]:
            number, op = float(match["num1"]), match["op1"]
            # N < result  is  result > N
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
            low, high, strict = _apply(low, high, strict, op, number)
        if match["op2"]:
            number, op = float(match["num2"]), match["op2"]
            if op == "==":
                low, high = number, number
                continue
            low, high, strict = _apply(low, high, strict, op, number)
    return low, high, strict


def _apply(
    low: float | None, high: float | None, strict: bool, op: str, number: float
) -> tuple[float | None, float | None, bool]:
    if op in ("<", "<="):
        high = number if high is None else min(high, number)
    else:
        low = number if low is None else max(low, number)
    return low, high, strict or op in ("<", ">")


def _negated(
    bounds: tuple[float | None, float | None, bool],
) -> tuple[float | None, float | None, bool] | None:
    """A failure condition with one bound, as the range that passes."""
    low, high, strict = bounds
    if low is not None and high is None:
        return None, low, not strict
    if high is not None and low is None:
        return high, None, not strict
    return None


def _gate_spec(
    template: _Template, metric: Mapping[str, Any], args: list[Doc], ctx: _Context, path: str
) -> Doc | None:
    spec: Doc = {}
    if args:
        spec["args"] = args
    for key in ("count", "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit"):
        if key in metric:
            try:
                spec[key] = int(metric[key])
            except (TypeError, ValueError):
                ctx.drop(
                    f"{path}.{key}",
                    f"{metric[key]!r} is not a number (args are not "
                    "supported here); set it on the MetricGate",
                )
    if "interval" in metric:
        interval = _duration(metric["interval"])
        if interval is None:
            ctx.drop(f"{path}.interval", f"{metric['interval']!r} is not a duration")
        else:
            spec["interval"] = interval
    for key, why in (
        ("initialDelay", "rollwise measures from the step's start; add a pause step before"),
        ("consecutiveSuccessLimit", "rollwise passes a gate on its measurements' verdicts"),
    ):
        if key in metric:
            ctx.drop(f"{path}.{key}", why)
    provider = metric.get("provider") or {}
    kinds = list(provider)
    if len(kinds) != 1 or kinds[0] not in ("prometheus", "job", "web"):
        ctx.drop(
            f"{path}.provider.{','.join(kinds) or '(none)'}",
            "rollwise has prometheus, job and web providers; write a MetricGate by hand (a web "
            "gate can read most HTTP metric APIs)",
        )
        return None
    kind = kinds[0]
    source = provider[kind] or {}
    where = f"{path}.provider.{kind}"
    if kind == "prometheus":
        spec["provider"] = {"prometheus": _prometheus(source, ctx, where)}
    elif kind == "job":
        spec["provider"] = {"job": _job(source, ctx, where)}
    else:
        spec["provider"] = {"web": _web(source, ctx, where)}
    if kind != "job":
        threshold = _threshold_of(metric, ctx, path)
        if threshold is None:
            return None
        spec["thresholdRange"] = threshold
    else:
        for key in ("successCondition", "failureCondition"):
            if key in metric:
                ctx.drop(f"{path}.{key}", "a job gate passes when its Job completes")
    return spec


def _threshold_of(metric: Mapping[str, Any], ctx: _Context, path: str) -> Doc | None:
    success = metric.get("successCondition")
    failure = metric.get("failureCondition")
    bounds = None
    if success:
        bounds = _threshold(str(success))
        if bounds is None:
            ctx.drop(
                f"{path}.successCondition",
                f"{success!r} is not `result[0] <op> number` "
                "(joined by &&); write thresholdRange {min, max} by hand",
            )
            return None
        if failure:
            ctx.drop(
                f"{path}.failureCondition",
                "dropped beside successCondition: a gate "
                "passes inside thresholdRange and fails outside it",
            )
    elif failure:
        parsed = _threshold(str(failure))
        bounds = _negated(parsed) if parsed else None
        if bounds is None:
            ctx.drop(
                f"{path}.failureCondition",
                f"{failure!r} is not a single bound on result[0]; write thresholdRange by hand",
            )
            return None
    else:
        ctx.drop(f"{path}", "no successCondition or failureCondition: set thresholdRange")
        return None
    low, high, strict = bounds
    if strict:
        ctx.change(
            f"{path}.{'successCondition' if success else 'failureCondition'}",
            "a strict bound became inclusive: thresholdRange passes min <= value <= max",
        )
    threshold: Doc = {}
    if low is not None:
        threshold["min"] = low
    if high is not None:
        threshold["max"] = high
    return threshold


def _prometheus(source: Mapping[str, Any], ctx: _Context, path: str) -> Doc:
    out: Doc = {"address": source.get("address", ""), "query": source.get("query", "")}
    if "timeout" in source:
        timeout = _duration(source["timeout"])
        if timeout:
            out["timeout"] = timeout
    for key, why in (
        ("headers", "rollwise sends no custom headers to Prometheus (use a proxy or a web gate)"),
        ("authentication", "no Prometheus authentication in rollwise yet; front it with a proxy"),
        ("insecure", "TLS verification cannot be turned off"),
        (
            "rangeQuery",
            "rollwise runs instant queries; wrap the range in the query (e.g. "
            "max_over_time(...[5m]))",
        ),
    ):
        if key in source:
            ctx.drop(f"{path}.{key}", why)
    if not out["address"]:
        ctx.drop(f"{path}.address", "no address: set the Prometheus URL")
    return out


def _job(source: Mapping[str, Any], ctx: _Context, path: str) -> Doc:
    spec = dict(source.get("spec") or {})
    out: Doc = {"template": spec.pop("template", {})}
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        if key in spec:
            out[key] = spec.pop(key)
    for key in spec:
        ctx.drop(
            f"{path}.spec.{key}",
            "a job gate's Job takes only template, backoffLimit, "
            "activeDeadlineSeconds, ttlSecondsAfterFinished",
        )
    if "metadata" in source:
        ctx.drop(f"{path}.metadata", "rollwise names and labels measurement Jobs itself")
    if "{{" in str(out["template"]):
        ctx.change(
            f"{path}.spec.template",
            "placeholders are substituted in env[].value only, never in command or args: pass "
            "{{args.X}} through an env var",
        )
    return out


def _web(source: Mapping[str, Any], ctx: _Context, path: str) -> Doc:
    out: Doc = {"url": source.get("url", ""), "jsonPath": source.get("jsonPath", "")}
    if source.get("method"):
        out["method"] = str(source["method"]).upper()
    if source.get("headers"):
        out["headers"] = [
            {"name": h.get("key", ""), "value": h.get("value", "")} for h in source["headers"]
        ]
    if "body" in source:
        out["body"] = source["body"]
    if "timeoutSeconds" in source:
        out["timeout"] = f"{int(source['timeoutSeconds'])}s"
    for key in ("insecure", "jsonBody", "authentication"):
        if key in source:
            ctx.drop(f"{path}.{key}", "not supported by rollwise's web gates")
    if out.get("method", "GET") not in ("GET", "POST"):
        ctx.drop(f"{path}.method", "web gates send GET or POST")
        out.pop("method")
    ctx.change(
        path,
        "a namespaced MetricGate may call only URLs the operator's "
        "--web-gate-allow lists; a ClusterMetricGate any",
    )
    return out


def _template_args(template: _Template, ctx: _Context) -> tuple[list[Doc], dict[str, str]]:
    """The gate's args, and how Argo placeholders are rewritten ({{args.a-b}} -> {{args.a_b}})."""
    args: list[Doc] = []
    rename: dict[str, str] = {}
    for index, arg in enumerate((template.doc.get("spec") or {}).get("args") or []):
        name = str(arg.get("name", ""))
        new = _arg_name(name)
        rename[name] = f"{{{{args.{new}}}}}"
        entry: Doc = {"name": new}
        if "value" in arg:
            entry["default"] = str(arg["value"])
        if "valueFrom" in arg:
            ctx.drop(
                f"{template.where}: spec.args[{index}].valueFrom",
                "a template's own valueFrom (Secrets, fieldRefs) is not supported; give the "
                "value in the ProgressiveService's gate args",
            )
        if new != name:
            ctx.change(
                f"{template.where}: spec.args[{index}].name",
                f"{name} is now {new} (placeholders are identifiers)",
            )
        args.append(entry)
    return args, rename


def _rewrite(text: str, rename: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        return rename.get(match.group(1), match.group(0))

    return _ARG_PLACEHOLDER.sub(replace, text)


def convert_template(template: _Template, ctx: _Context) -> list[Doc]:
    """One MetricGate (or ClusterMetricGate) per metric of the template."""
    spec = template.doc.get("spec") or {}
    for key in ("dryRun", "measurementRetention"):
        if key in spec:
            ctx.drop(f"{template.where}: spec.{key}", "not supported by rollwise")
    args, rename = _template_args(template, ctx)
    gates: list[Doc] = []
    for index, metric in enumerate(template.metrics()):
        path = f"{template.where}: spec.metrics[{index}]"
        gate = _gate_spec(template, metric, args, ctx, path)
        if gate is None:
            continue
        provider = gate["provider"]
        if "prometheus" in provider:
            provider["prometheus"]["query"] = _rewrite(provider["prometheus"]["query"], rename)
        if "web" in provider:
            web = provider["web"]
            web["url"] = _rewrite(web["url"], rename)
            if "body" in web:
                web["body"] = _rewrite(str(web["body"]), rename)
        cluster = template.kind == "ClusterAnalysisTemplate"
        metadata: Doc = {"name": template.gate_name(metric)}
        namespace = (template.doc.get("metadata") or {}).get("namespace")
        if namespace and not cluster:
            metadata["namespace"] = namespace
        gates.append(
            {
                "apiVersion": API_VERSION,
                "kind": CLUSTER_GATE_KIND if cluster else GATE_KIND,
                "metadata": metadata,
                "spec": gate,
            }
        )
    return gates


# ------------------------------------------------------------------------------------ rollout


def _ref_args(
    refs: Iterable[Mapping[str, Any]], ctx: _Context, path: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Argo analysis args of a step: plain values, and args that become built-in placeholders."""
    values: dict[str, str] = {}
    builtin: dict[str, str] = {}
    for index, arg in enumerate(refs):
        name = str(arg.get("name", ""))
        where = f"{path}.args[{index}]"
        if "value" in arg:
            values[_arg_name(name)] = str(arg["value"])
            continue
        source = arg.get("valueFrom") or {}
        hash_of = source.get("podTemplateHashValue")
        field_path = (source.get("fieldRef") or {}).get("fieldPath")
        if hash_of in ("Latest", "Stable"):
            builtin[name] = "{{canary.revision}}" if hash_of == "Latest" else "{{stable.revision}}"
            ctx.change(
                where,
                f"{name} is rollwise's {builtin[name]}: label your metrics with "
                "the pods' rollwise.dev/revision label, not pod-template-hash",
            )
        elif field_path in ("metadata.name", "metadata.namespace"):
            builtin[name] = (
                "{{service.name}}" if field_path == "metadata.name" else ("{{service.namespace}}")
            )
        else:
            ctx.drop(
                where,
                "only value, podTemplateHashValue and fieldRef metadata.name/"
                "namespace can be converted; give the value literally",
            )
    return values, builtin


@dataclass
class _Gates:
    """Templates by (kind, name), and the gates referenced so far."""

    templates: dict[tuple[str, str], _Template]
    used: dict[tuple[str, str], _Template] = field(default_factory=dict)
    placeholders: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def _gate_refs(analysis: Mapping[str, Any], gates: _Gates, ctx: _Context, path: str) -> list[Doc]:
    values, builtin = _ref_args(analysis.get("args") or [], ctx, path)
    refs: list[Doc] = []
    for index, ref in enumerate(analysis.get("templates") or []):
        where = f"{path}.templates[{index}]"
        cluster = bool(ref.get("clusterScope"))
        kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
        name = str(ref.get("templateName", ""))
        template = gates.templates.get((kind, name))
        if template is None:
            ctx.drop(
                where,
                f"{kind} {name} was not given: pass its file with -f, then convert "
                "again (the reference is kept, the MetricGate is missing)",
            )
            refs.append({"name": name, **({"cluster": True} if cluster else {})})
            continue
        gates.used[(kind, name)] = template
        gates.placeholders.setdefault((kind, name), {}).update(builtin)
        declared = {
            _arg_name(str(a.get("name", "")))
            for a in (template.doc.get("spec") or {}).get("args") or []
        }
        for metric in template.metrics():
            ref_out: Doc = {"name": template.gate_name(metric)}
            if cluster:
                ref_out["cluster"] = True
            mine = {k: v for k, v in values.items() if k in declared}
            if mine:
                ref_out["args"] = mine
            refs.append(ref_out)
    for key in ("dryRun", "measurementRetention", "analysisRunMetadata"):
        if key in analysis:
            ctx.drop(f"{path}.{key}", "not supported by rollwise")
    return refs


def _steps(steps: list[Mapping[str, Any]], gates: _Gates, ctx: _Context, path: str) -> list[Doc]:
    out: list[Doc] = []
    for index, step in enumerate(steps):
        where = f"{path}[{index}]"
        if "setWeight" in step:
            out.append({"setWeight": int(step["setWeight"])})
        elif "pause" in step:
            pause = step.get("pause") or {}
            if "duration" in pause:
                duration = _duration(pause["duration"])
                if duration is None:
                    ctx.drop(
                        f"{where}.pause.duration",
                        f"{pause['duration']!r} is not a duration; the pause waits for promote",
                    )
                    out.append({"pause": {}})
                else:
                    out.append({"pause": {"duration": duration}})
            else:
                out.append({"pause": {}})
        elif "analysis" in step:
            refs = _gate_refs(step["analysis"] or {}, gates, ctx, f"{where}.analysis")
            if refs:
                out.append({"analysis": {"gates": refs}})
        else:
            kind = next(iter(step), "(empty)")
            hint = {
                "experiment": "rollwise runs no experiments; a canary step with analysis "
                "compares against thresholds",
                "setCanaryScale": "the canary's scale follows setWeight",
                "setHeaderRoute": "use trafficRouting.gatewayAPI.canaryMatches (headers, cookies)",
                "setMirrorRoute": "use a setMirror step with the gatewayAPI router",
            }.get(kind, "no rollwise step of that kind")
            ctx.drop(f"{where}.{kind}", hint)
    return out


def _traffic(routing: Mapping[str, Any] | None, ctx: _Context, path: str) -> Doc:
    if not routing:
        return {"replicas": {}}
    out: Doc | None = None
    for key, value in routing.items():
        where = f"{path}.{key}"
        value = value or {}
        if key == "nginx" and out is None and value.get("stableIngress"):
            out = {"nginx": {"ingress": value["stableIngress"]}}
            for extra in value:
                if extra != "stableIngress":
                    ctx.drop(
                        f"{where}.{extra}", "rollwise sets only canary-weight on its canary Ingress"
                    )
        elif key == "istio" and out is None and (value.get("virtualService") or {}).get("name"):
            out = {"istio": {"virtualService": value["virtualService"]["name"]}}
            if value["virtualService"].get("routes"):
                ctx.change(
                    f"{where}.virtualService.routes",
                    "rollwise sets the weights of "
                    "every HTTP route to the stable and canary Services",
                )
            for extra in value:
                if extra != "virtualService":
                    ctx.drop(f"{where}.{extra}", "not supported by rollwise's istio router")
        elif key == "plugins" and out is None and GATEWAY_PLUGIN in value:
            plugin = value[GATEWAY_PLUGIN] or {}
            out = {"gatewayAPI": {"httpRoute": plugin.get("httpRoute", "")}}
            for extra in plugin:
                if extra != "httpRoute":
                    ctx.drop(
                        f"{where}.{GATEWAY_PLUGIN}.{extra}",
                        "the HTTPRoute is in the ProgressiveService's namespace",
                    )
            for other in value:
                if other != GATEWAY_PLUGIN:
                    ctx.drop(f"{where}.{other}", "no rollwise router for this plugin")
        else:
            ctx.drop(
                where,
                "rollwise routes with replicas, gatewayAPI, nginx or istio; "
                "Gateway API covers many of the others",
            )
    if out is None:
        ctx.change(
            path,
            "no router converted: the replicas router (the canary's share of ready pods) is used",
        )
        return {"replicas": {}}
    return out


_ROLLOUT_DROPS = {
    "selector": ("rollwise selects its pods itself (the template's labels are kept)", True),
    "revisionHistoryLimit": ("rollwise keeps no old ReplicaSets", False),
    "minReadySeconds": ("rollwise counts a pod ready when Kubernetes does", False),
    "paused": ("use `kubectl rollwise pause`", False),
    "restartAt": ("not supported", False),
    "rollbackWindow": ("not supported: an older version is rolled out like a new one", False),
    "progressDeadlineAbort": ("rollwise always rolls back at the progress deadline", True),
    "analysis": ("rollwise keeps the latest measurement per gate in status", False),
}
_CANARY_DROPS = {
    "canaryService": "rollwise owns the Services <name>, <name>-stable and <name>-canary",
    "stableService": "rollwise owns the Services <name>, <name>-stable and <name>-canary",
    "scaleDownDelaySeconds": "old revisions are scaled down once promotion completes",
    "dynamicStableScale": "with a traffic router stable stays full until promotion",
    "antiAffinity": "set affinity in the pod template",
    "canaryMetadata": "not supported",
    "stableMetadata": "not supported",
    "pingPong": "not supported",
    "minPodsPerReplicaSet": "not supported",
    "replicaProgressThreshold": "not supported",
}


def convert_rollout(rollout: Doc, gates: _Gates, ctx: _Context) -> Doc | None:
    """The ProgressiveService for one Rollout."""
    name = _name(rollout)
    where = f"Rollout/{name}: "
    spec = rollout.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if "canary" not in strategy:
        kind = next(iter(strategy), "(none)")
        ctx.drop(
            f"{where}spec.strategy.{kind}",
            "rollwise rolls out canaries only; a "
            "blue-green is a canary with setWeight 100 after an analysis step",
        )
        return None
    canary = strategy["canary"] or {}
    out: Doc = {}
    if "replicas" in spec:
        out["replicas"] = spec["replicas"]
    if "workloadRef" in spec:
        ref = spec["workloadRef"] or {}
        out["workloadRef"] = {"name": ref.get("name", "")}
        if ref.get("kind", "Deployment") != "Deployment":
            ctx.drop(f"{where}spec.workloadRef.kind", "rollwise adopts apps/v1 Deployments only")
        if "scaleDown" in ref:
            ctx.change(
                f"{where}spec.workloadRef.scaleDown",
                "rollwise scales the Deployment to "
                "0 once its own pods are all ready (as `progressively`), and back on "
                "release",
            )
    elif "template" in spec:
        out["template"] = spec["template"]
        ports = [
            p
            for c in ((spec["template"].get("spec") or {}).get("containers") or [])
            for p in (c.get("ports") or [])
        ]
        if ports:
            out["service"] = {"port": 80, "targetPort": ports[0].get("containerPort", 8080)}
    for key in ("progressDeadlineSeconds",):
        if key in spec:
            out[key] = spec[key]
    for key, (why, changed) in _ROLLOUT_DROPS.items():
        if key in spec:
            (ctx.change if changed else ctx.drop)(f"{where}spec.{key}", why)
    canary_out: Doc = {
        "steps": _steps(canary.get("steps") or [], gates, ctx, f"{where}spec.strategy.canary.steps")
    }
    if not canary_out["steps"]:
        canary_out["steps"] = [{"setWeight": 100}]
        ctx.change(f"{where}spec.strategy.canary.steps", "no step converted: one setWeight 100")
    if canary.get("analysis"):
        background = canary["analysis"]
        refs = _gate_refs(background, gates, ctx, f"{where}spec.strategy.canary.analysis")
        if refs:
            canary_out["analysis"] = {"gates": refs}
            if "startingStep" in background:
                canary_out["analysis"]["startingStep"] = int(background["startingStep"])
    canary_out["trafficRouting"] = _traffic(
        canary.get("trafficRouting"), ctx, f"{where}spec.strategy.canary.trafficRouting"
    )
    for key in ("maxSurge", "maxUnavailable"):
        if key in canary:
            canary_out[key] = canary[key]
    if "abortScaleDownDelaySeconds" in canary:
        out["abortScaleDownDelaySeconds"] = canary["abortScaleDownDelaySeconds"]
    for key, why in _CANARY_DROPS.items():
        if key in canary:
            ctx.drop(f"{where}spec.strategy.canary.{key}", why)
    out["strategy"] = {"canary": canary_out}
    metadata: Doc = {"name": name}
    namespace = (rollout.get("metadata") or {}).get("namespace")
    if namespace:
        metadata["namespace"] = namespace
    labels = (rollout.get("metadata") or {}).get("labels")
    if labels:
        metadata["labels"] = labels
    if len(name) > MAX_NAME:
        ctx.drop(
            f"{where}metadata.name", f"longer than {MAX_NAME} characters; choose a shorter name"
        )
    return {"apiVersion": API_VERSION, "kind": SERVICE_KIND, "metadata": metadata, "spec": out}


def convert(documents: Iterable[Mapping[str, Any]]) -> Conversion:
    """Every Rollout among `documents`, with the (Cluster)AnalysisTemplates they use."""
    result = Conversion()
    ctx = _Context(result.findings)
    rollouts: list[Doc] = []
    templates: dict[tuple[str, str], _Template] = {}
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        kind = str(doc.get("kind", ""))
        group = str(doc.get("apiVersion", "")).split("/")[0]
        if group != ARGO_GROUP:
            ctx.drop(
                f"{kind or '(no kind)'}/{_name(doc)}", "not an Argo Rollouts object; left as it is"
            )
        elif kind == "Rollout":
            rollouts.append(dict(doc))
        elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
            templates[(kind, _name(doc))] = _Template(kind, dict(doc))
        else:
            ctx.drop(f"{kind}/{_name(doc)}", "no rollwise counterpart")
    gates = _Gates(templates)
    services = [s for s in (convert_rollout(r, gates, ctx) for r in rollouts) if s is not None]
    for key, template in templates.items():
        if key not in gates.used:
            ctx.change(template.where, "not referenced by any Rollout given; converted anyway")
            gates.used[key] = template
    expected: set[str] = set()
    for key, template in gates.used.items():
        expected.update(template.gate_name(m) for m in template.metrics())
        converted = convert_template(template, ctx)
        builtin = gates.placeholders.get(key, {})
        for gate in converted:
            _apply_builtins(gate, builtin)
        result.documents.extend(converted)
    produced = {_name(d) for d in result.documents}
    for service in services:
        _drop_refs_to_lost_gates(service, expected - produced, ctx)
    result.documents.extend(services)
    return result


def _drop_refs_to_lost_gates(service: Doc, lost: set[str], ctx: _Context) -> None:
    """A metric that could not be converted has no gate: no reference may wait on it."""
    if not lost:
        return
    where = f"Rollout/{_name(service)}: spec.strategy.canary"
    canary = service["spec"]["strategy"]["canary"]
    steps: list[Doc] = []
    for index, step in enumerate(canary["steps"]):
        if "analysis" in step:
            kept = [g for g in step["analysis"]["gates"] if g["name"] not in lost]
            for gone in sorted({g["name"] for g in step["analysis"]["gates"]} & lost):
                ctx.drop(f"{where}.steps[{index}].analysis", f"gate {gone} was not converted")
            if not kept:
                continue
            step = {"analysis": {"gates": kept}}
        steps.append(step)
    canary["steps"] = steps or [{"setWeight": 100}]
    background = canary.get("analysis")
    if background:
        kept = [g for g in background["gates"] if g["name"] not in lost]
        for gone in sorted({g["name"] for g in background["gates"]} & lost):
            ctx.drop(f"{where}.analysis", f"gate {gone} was not converted")
        if kept:
            background["gates"] = kept
        else:
            canary.pop("analysis")


def _apply_builtins(gate: Doc, builtin: Mapping[str, str]) -> None:
    """Args that Argo filled from the pod template hash or the object's metadata become
    rollwise's built-in placeholders; the gate no longer declares them."""
    if not builtin:
        return
    spec = gate["spec"]
    renamed = {f"{{{{args.{_arg_name(name)}}}}}": value for name, value in builtin.items()}
    provider = spec["provider"]
    for kind, keys in (("prometheus", ("query",)), ("web", ("url", "body"))):
        if kind in provider:
            for key in keys:
                if key in provider[kind]:
                    text = str(provider[kind][key])
                    for old, new in renamed.items():
                        text = text.replace(old, new)
                    provider[kind][key] = text
    names = {_arg_name(name) for name in builtin}
    args = [a for a in spec.get("args", []) if a["name"] not in names]
    if args:
        spec["args"] = args
    else:
        spec.pop("args", None)
