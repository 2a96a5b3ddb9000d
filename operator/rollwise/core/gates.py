"""Gates: resolving queries safely, turning one measurement into a verdict, and deciding
when a gate has passed or must abort the rollout. Missing data never counts as a pass."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import quote

from rollwise.api.durations import parse_duration
from rollwise.api.gates import Comparison, JobProvider, MetricGateSpec, PrometheusProvider
from rollwise.api.headers import split_headers
from rollwise.api.service import GateRef, PodTemplate
from rollwise.api.service_status import GateResult, Verdict
from rollwise.core import promql
from rollwise.core.comparison import ComparisonOutcome, judge
from rollwise.core.model import GateAuth, MetricSample, WebRequest
from rollwise.core.reasons import Reason
from rollwise.core.redaction import describe_url

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_MAX_VALUE = 253


class GateConfigError(ValueError):
    """The gate or the reference to it cannot produce a query; says what to fix."""


# An InfluxQL value that could close its string literal, start another clause or a new line is
# refused outright rather than escaped. (PromQL values are typed by core/promql instead.)
_FORBIDDEN = re.compile(r'["\'`{}\n\r\t\x00-\x1f]')


def escape_label_value(value: str) -> str:
    """Escape a value for use inside a quoted InfluxQL string."""
    return value.replace("\\", "\\\\")


def _checked(gate: str, arg: str, value: str) -> str:
    if len(value) > _MAX_VALUE or _FORBIDDEN.search(value):
        raise GateConfigError(
            f"gate {gate}: value of arg {arg!r} contains a quote, brace or control character "
            f"(or is over {_MAX_VALUE} chars); it would break out of a label matcher"
        )
    return escape_label_value(value)


_NODE = re.compile(r"^[A-Za-z0-9_\-]{0,253}$")


def _path_node(gate: str, arg: str, value: str) -> str:
    """A value for a Graphite target: one path node, so it can never add a node, a wildcard
    (`*`, `{a,b}`, `[...]`) or a function call."""
    if not _NODE.match(value):
        raise GateConfigError(
            f"gate {gate}: value of arg {arg!r} is not one Graphite path node (letters, digits, "
            "'_' and '-' only)"
        )
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain_value(gate: str, arg: str, value: str) -> str:
    """A value for a place that takes it as data (a URL after percent-encoding, a JSON string,
    an env var): anything goes but control characters and overlong values."""
    if len(value) > _MAX_VALUE or _CONTROL.search(value):
        raise GateConfigError(
            f"gate {gate}: value of arg {arg!r} contains a control character "
            f"(or is over {_MAX_VALUE} chars)"
        )
    return value


def _values(
    gate_name: str,
    spec: MetricGateSpec,
    ref: GateRef,
    context: dict[str, str],
    check: Callable[[str, str, str], str],
) -> dict[str, str]:
    """Every placeholder's value, checked (and escaped) by `check`."""
    declared = {a.name: a.default for a in spec.args}
    unknown = sorted(set(ref.args) - set(declared))
    if unknown:
        raise GateConfigError(
            f"gate {gate_name}: args {unknown} are not declared by the MetricGate "
            f"(it declares {sorted(declared) or 'none'})"
        )
    values: dict[str, str] = {}
    for name, default in declared.items():
        value = ref.args.get(name, default)
        if value is None:
            raise GateConfigError(
                f"gate {gate_name}: arg {name!r} has no value; set it under the gate reference's "
                "args in the ProgressiveService"
            )
        values[f"args.{name}"] = check(gate_name, name, value)
    for key, value in context.items():
        values[key] = check(gate_name, key, value)
    return values


def _substitute(
    gate_name: str, text: str, values: dict[str, str], escape: Callable[[str], str] = str
) -> str:
    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise GateConfigError(f"gate {gate_name}: unknown placeholder {{{{{key}}}}}")
        return escape(values[key])

    return _PLACEHOLDER.sub(substitute, text)


def resolve_query(
    gate_name: str,
    spec: MetricGateSpec,
    ref: GateRef,
    context: dict[str, str],
) -> str:
    """The gate's query as status shows it, placeholders substituted: a Prometheus gate's
    PromQL, a web gate's request, a job gate's "Job" (its Job is named per measurement)."""
    provider = spec.provider
    if spec.comparison is not None:
        return resolve_comparison(gate_name, spec, ref, context)[0]
    if provider.prometheus is not None:
        return render_promql(gate_name, spec, ref, context)
    if provider.influxdb is not None:
        values = _values(gate_name, spec, ref, context, _checked)
        return _substitute(gate_name, provider.influxdb.query, values)
    if provider.graphite is not None:
        values = _values(gate_name, spec, ref, context, _path_node)
        return _substitute(gate_name, provider.graphite.target, values)
    if provider.web is not None:
        return describe_web(resolve_web(gate_name, spec, ref, context))
    resolve_job_template(gate_name, spec, ref, context)  # reports a bad argument now
    return "Job"


def render_promql(
    gate_name: str, spec: MetricGateSpec, ref: GateRef, context: dict[str, str]
) -> str:
    """A Prometheus gate's query: each value typed by where its placeholder stands (a label
    value, a regex, a duration, a number) and rendered as one, never spliced in as text."""
    prometheus = spec.provider.prometheus
    if prometheus is None:
        raise GateConfigError(f"gate {gate_name}: not a prometheus gate")
    values = _values(gate_name, spec, ref, context, lambda _gate, _arg, value: value)
    regex_args = frozenset(a.name for a in spec.args if a.regex)
    try:
        return promql.render(prometheus.query, values, regex_args)
    except promql.TemplateError as err:
        raise GateConfigError(f"gate {gate_name}: query template refused: {err}") from None
    except promql.ArgumentError as err:
        raise GateConfigError(f"gate {gate_name}: {err}") from None
    except KeyError as err:
        raise GateConfigError(
            f"gate {gate_name}: unknown placeholder {{{{{err.args[0]}}}}}"
        ) from None


def resolve_comparison(
    gate_name: str, spec: MetricGateSpec, ref: GateRef, context: dict[str, str]
) -> tuple[str, str]:
    """A comparison gate's (canary, stable) queries: `{{revision}}` is the revision measured
    (`{{canary.revision}}` and `{{stable.revision}}` keep their meaning)."""
    prometheus = spec.provider.prometheus
    if prometheus is None or spec.comparison is None:
        raise GateConfigError(f"gate {gate_name}: not a comparison gate")
    if not re.search(r"\{\{\s*revision\s*\}\}", prometheus.query):
        raise GateConfigError(
            f"gate {gate_name}: a comparison gate's query must select the revision measured "
            'with {{revision}}, e.g. revision="{{revision}}"'
        )
    canary, stable = (
        render_promql(gate_name, spec, ref, context | {"revision": context[side]})
        for side in ("canary.revision", "stable.revision")
    )
    return canary, stable


def _json_string_content(value: str) -> str:
    return json.dumps(value)[1:-1]


def resolve_web(
    gate_name: str, spec: MetricGateSpec, ref: GateRef, context: dict[str, str]
) -> WebRequest:
    """A web gate's request: placeholders percent-encoded in the URL (a value can never add a
    path segment, a query parameter or a host) and JSON-string-escaped in the body."""
    web = spec.provider.web
    if web is None:
        raise GateConfigError(f"gate {gate_name}: not a web gate")
    values = _values(gate_name, spec, ref, context, _plain_value)
    url = _substitute(gate_name, web.url, values, lambda v: quote(v, safe=""))
    body = (
        None if web.body is None else _substitute(gate_name, web.body, values, _json_string_content)
    )
    headers, secret_headers = split_headers(web.headers)
    return WebRequest(
        url=url,
        method=web.method,
        headers=headers,
        secret_headers=secret_headers,
        body=body,
        json_path=web.json_path,
    )


def prometheus_auth(prometheus: PrometheusProvider) -> GateAuth | None:
    """The gate's credential as Secret references; None without one."""
    if prometheus.bearer_token_secret_ref is not None:
        ref = prometheus.bearer_token_secret_ref
        return GateAuth(bearer=(ref.name, ref.key))
    if prometheus.basic_auth is not None:
        password = prometheus.basic_auth.password_secret_ref
        return GateAuth(
            basic_user=prometheus.basic_auth.username,
            basic_password=(password.name, password.key),
        )
    return None


def describe_web(request: WebRequest) -> str:
    """`GET <scheme://host:port/…> jsonPath <path>`: a web gate's query as status shows it
    (never the URL's path or query: they can be a credential)."""
    return f"{request.method} {describe_url(request.url)} jsonPath {request.json_path}"


def resolve_job_template(
    gate_name: str, spec: MetricGateSpec, ref: GateRef, context: dict[str, str]
) -> PodTemplate:
    """A job gate's pod template with placeholders substituted in containers' env values
    only (never in command or args, so a value is data to the script, never code)."""
    job: JobProvider | None = spec.provider.job
    if job is None:
        raise GateConfigError(f"gate {gate_name}: not a job gate")
    values = _values(gate_name, spec, ref, context, _plain_value)
    wire = job.template.to_wire()
    for key in ("containers", "initContainers"):
        for container in wire["spec"].get(key) or []:
            for env in container.get("env") or []:
                if isinstance(env, dict) and isinstance(env.get("value"), str):
                    env["value"] = _substitute(gate_name, env["value"], values)
    return PodTemplate.model_validate(wire)


def verdict_of(sample: MetricSample, spec: MetricGateSpec) -> Verdict:
    """One measurement's verdict: no value, NaN or +-Inf is Inconclusive, never Passed."""
    if sample.error is not None:
        return Verdict.ERROR
    if sample.outcome is not None:
        return sample.outcome
    if spec.comparison is not None:
        return _compared(sample, spec.comparison).verdict
    value = sample.value
    if value is None or math.isnan(value) or math.isinf(value) or spec.threshold_range is None:
        return Verdict.INCONCLUSIVE
    low, high = spec.threshold_range.min, spec.threshold_range.max
    if (low is not None and value < low) or (high is not None and value > high):
        return Verdict.FAILED
    return Verdict.PASSED


def describe_threshold(value: float | None, spec: MetricGateSpec) -> str:
    """`0.041 > max 0.01`, for messages."""
    if value is None or spec.threshold_range is None:
        return "no value"
    low, high = spec.threshold_range.min, spec.threshold_range.max
    if high is not None and value > high:
        return f"{value:.6g} > max {high:g}"
    if low is not None and value < low:
        return f"{value:.6g} < min {low:g}"
    return f"{value:.6g} within [{'-inf' if low is None else f'{low:g}'}, " + (
        "inf]" if high is None else f"{high:g}]"
    )


def _compared(sample: MetricSample, comparison: Comparison) -> ComparisonOutcome:
    return judge(sample.canary_values or (), sample.stable_values or (), comparison)


def record(result: GateResult, sample: MetricSample, spec: MetricGateSpec) -> GateResult:
    """Fold one measurement into the gate's running tally."""
    if spec.comparison is not None and sample.error is None and sample.outcome is None:
        compared = _compared(sample, spec.comparison)
        sample = replace(
            sample, value=compared.p, outcome=compared.verdict, message=compared.message
        )
        result = result.model_copy(update={"comparison": compared.result})
    verdict = verdict_of(sample, spec)
    value = sample.value
    message: str | None
    if value is not None and (math.isnan(value) or math.isinf(value)):
        shown: float | None = None
        message = f"query returned {value}: no data"
    else:
        shown = value
        message = sample.error if verdict is Verdict.ERROR else None
        if verdict is Verdict.INCONCLUSIVE:
            message = "query returned no data (empty result)"
    if sample.message is not None and verdict is not Verdict.ERROR:
        message = sample.message
    return result.model_copy(
        update={
            "query": sample.query,
            "value": shown,
            "verdict": verdict,
            "measured_at": sample.measured_at,
            "measurements": result.measurements + 1,
            "failures": result.failures + (verdict is Verdict.FAILED),
            "inconclusive": result.inconclusive + (verdict is Verdict.INCONCLUSIVE),
            "errors": result.errors + (verdict is Verdict.ERROR),
            "consecutive_errors": result.consecutive_errors + 1 if verdict is Verdict.ERROR else 0,
            "message": message,
        }
    )


@dataclass(frozen=True)
class GateOutcome:
    """Where a gate stands: still measuring, passed, or breached (with why)."""

    passed: bool = False
    breached: bool = False
    reason: str = ""
    message: str = ""


def outcome(result: GateResult, spec: MetricGateSpec, step_gate: bool) -> GateOutcome:
    """Limits are tolerances: one measurement beyond a limit aborts. A step gate passes once it
    has taken `count` measurements (at least one) and the latest of them Passed."""
    if result.failures > spec.failure_limit:
        if spec.comparison is not None:
            message = (
                f"{result.gate} ({result.failures} failed, limit {spec.failure_limit}): "
                f"{result.message}"
            )
        elif spec.provider.job is not None:
            message = (
                f"{result.gate} ({result.failures} failed, limit {spec.failure_limit}): "
                f"{result.message or f'Job {result.job} failed'}"
            )
        else:
            message = (
                f"{result.gate} {describe_threshold(result.value, spec)} "
                f"({result.failures} failed, limit {spec.failure_limit})"
            )
        return GateOutcome(breached=True, reason=Reason.GATE_FAILED, message=message)
    if result.inconclusive > spec.inconclusive_limit:
        return GateOutcome(
            breached=True,
            reason=Reason.GATE_INCONCLUSIVE,
            message=f"{result.gate} had no data {result.inconclusive} times "
            f"(inconclusiveLimit {spec.inconclusive_limit}); no data never passes a gate",
        )
    if result.consecutive_errors > spec.consecutive_error_limit:
        return GateOutcome(
            breached=True,
            reason=Reason.GATE_ERROR,
            message=f"{result.gate} failed to measure {result.consecutive_errors} times in a row "
            f"(consecutiveErrorLimit {spec.consecutive_error_limit}): {result.message}",
        )
    wanted = max(spec.count, 1) if step_gate else spec.count
    if result.verdict is Verdict.PASSED and (
        (step_gate and result.measurements >= wanted) or not step_gate
    ):
        return GateOutcome(passed=True)
    return GateOutcome()


def next_due(result: GateResult | None, spec: MetricGateSpec, started: datetime) -> datetime:
    """When the gate should be measured next: one interval after the last measurement, or one
    interval after the gate became active (so fresh pods have produced data to measure)."""
    interval = timedelta(seconds=parse_duration(spec.interval))
    if result is None or result.measured_at is None:
        return started + interval
    return result.measured_at + interval


def exhausted(result: GateResult | None, spec: MetricGateSpec, step_gate: bool) -> bool:
    """A background gate with a count stops measuring after `count` measurements."""
    return (
        not step_gate
        and spec.count > 0
        and result is not None
        and result.measurements >= spec.count
        and result.verdict is Verdict.PASSED
    )
