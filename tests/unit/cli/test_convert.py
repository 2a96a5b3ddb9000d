"""`kubectl rollwise convert`: Argo Rollouts objects in the shapes Argo's docs show, converted to
objects the rollwise API accepts, with every field left behind reported by its path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import ServiceSpec
from rollwise.cli import plugin
from rollwise.cli.convert import Conversion, convert

ARGO = Path(__file__).parent / "argo"


def converted(name: str) -> Conversion:
    return convert(list(yaml.safe_load_all((ARGO / name).read_text())))


def by_kind(result: Conversion, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in result.documents if d["kind"] == kind}


def lost_paths(result: Conversion) -> set[str]:
    return {f.path for f in result.lost()}


@pytest.mark.parametrize("name", ["canary-analysis.yaml", "routers.yaml", "workload-ref.yaml"])
def test_every_converted_object_is_valid_for_the_rollwise_api(name: str) -> None:
    result = converted(name)
    gates = {**by_kind(result, "MetricGate"), **by_kind(result, "ClusterMetricGate")}

    for service in by_kind(result, "ProgressiveService").values():
        spec = ServiceSpec.model_validate(service["spec"])
        canary = spec.strategy.canary
        refs = [g for s in canary.steps if s.analysis for g in s.analysis.gates]
        refs += list(canary.analysis.gates) if canary.analysis else []
        for ref in refs:
            if ref.name in gates:  # a missing template is reported, not invented
                declared = {
                    a.name for a in MetricGateSpec.model_validate(gates[ref.name]["spec"]).args
                }
                assert set(ref.args) <= declared
    for gate in gates.values():
        MetricGateSpec.model_validate(gate["spec"])


def test_a_canary_with_steps_and_background_analysis_keeps_its_shape() -> None:
    result = converted("canary-analysis.yaml")
    service = by_kind(result, "ProgressiveService")["guestbook"]
    canary = service["spec"]["strategy"]["canary"]

    assert service["metadata"] == {"name": "guestbook", "namespace": "shop"}
    assert service["spec"]["replicas"] == 5
    assert service["spec"]["progressDeadlineSeconds"] == 300
    assert service["spec"]["abortScaleDownDelaySeconds"] == 15
    assert service["spec"]["service"] == {"port": 80, "targetPort": 8080}
    assert canary["steps"] == [
        {"setWeight": 20},
        {"pause": {"duration": "1h"}},
        {"setWeight": 40},
        {"pause": {"duration": "60s"}},
        {"analysis": {"gates": [{"name": "success-rate", "args": {"service_name": "guestbook"}}]}},
        {"setWeight": 80},
        {"pause": {}},
    ]
    assert canary["analysis"] == {
        "gates": [{"name": "success-rate", "args": {"service_name": "guestbook"}}],
        "startingStep": 1,
    }
    assert (canary["maxSurge"], canary["maxUnavailable"]) == ("25%", 0)
    assert canary["trafficRouting"] == {"replicas": {}}


def test_a_prometheus_template_becomes_a_metric_gate_with_a_threshold_range() -> None:
    result = converted("canary-analysis.yaml")
    gate = by_kind(result, "MetricGate")["success-rate"]
    spec = gate["spec"]
    query = spec["provider"]["prometheus"]["query"]

    assert gate["metadata"]["namespace"] == "shop"
    assert spec["args"] == [{"name": "service_name"}]  # canary-hash became a built-in
    assert (spec["interval"], spec["count"], spec["failureLimit"]) == ("5m", 3, 3)
    assert spec["thresholdRange"] == {"min": 0.95}
    assert spec["provider"]["prometheus"]["timeout"] == "40s"
    assert "{{args.service_name}}" in query and "{{args.service-name}}" not in query
    assert 'pod_template_hash="{{canary.revision}}"' in query
    assert "Rollout/guestbook: spec.revisionHistoryLimit" in lost_paths(result)
    assert (
        "AnalysisTemplate/success-rate: spec.metrics[0].provider.prometheus.headers"
        in lost_paths(result)
    )


def test_traffic_routers_map_to_their_rollwise_counterparts() -> None:
    result = converted("routers.yaml")
    routing = {
        name: s["spec"]["strategy"]["canary"]["trafficRouting"]
        for name, s in by_kind(result, "ProgressiveService").items()
    }

    assert routing == {
        "via-nginx": {"nginx": {"ingress": "primary-ingress"}},
        "via-istio": {"istio": {"virtualService": "rollout-vsvc"}},
        "via-gateway": {"gatewayAPI": {"httpRoute": "argo-rollouts-http-route"}},
        "via-alb": {"replicas": {}},
    }
    assert {
        "Rollout/via-nginx: spec.strategy.canary.trafficRouting.nginx.additionalIngressAnnotations",
        "Rollout/via-nginx: spec.strategy.canary.canaryService",
        "Rollout/via-gateway: spec.strategy.canary.trafficRouting.plugins."
        "argoproj-labs/gatewayAPI.namespace",
        "Rollout/via-gateway: spec.strategy.canary.steps[2].setHeaderRoute",
        "Rollout/via-alb: spec.strategy.canary.trafficRouting.alb",
        "Rollout/via-alb: spec.strategy.canary.steps[1].experiment",
    } <= lost_paths(result)


def test_workload_ref_web_and_unsupported_providers() -> None:
    result = converted("workload-ref.yaml")
    services = by_kind(result, "ProgressiveService")
    gates = by_kind(result, "MetricGate")

    assert services["web"]["spec"]["workloadRef"] == {"name": "web"}
    assert "template" not in services["web"]["spec"]
    assert "bg" not in services  # blue-green: reported, not guessed
    web = gates["checks-slo"]["spec"]
    assert web["provider"]["web"] == {
        "url": "https://slo.example.com/api/{{service.namespace}}/error-ratio",
        "jsonPath": "{$.data.ratio}",
        "headers": [{"name": "Accept", "value": "application/json"}],
        "timeout": "20s",
    }
    assert web["thresholdRange"] == {"max": 0.01}  # failure when above: pass up to it
    assert "checks-latency" not in gates
    steps = services["web"]["spec"]["strategy"]["canary"]["steps"]
    # No reference waits on the gate that could not be converted.
    assert steps[1] == {"analysis": {"gates": [{"name": "checks-slo"}]}}
    assert {
        "Rollout/bg: spec.strategy.blueGreen",
        "AnalysisTemplate/checks: spec.metrics[1].provider.datadog",
        "Rollout/web: spec.strategy.canary.steps[1].analysis",
    } <= lost_paths(result)


def test_the_plugin_prints_objects_on_stdout_and_findings_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    args = plugin.build_parser().parse_args(
        ["convert", "-f", str(ARGO / "canary-analysis.yaml"), "--strict"]
    )

    code = plugin.run(args, out, err)

    kinds = [d["kind"] for d in yaml.safe_load_all(out.getvalue())]
    assert kinds == ["MetricGate", "ProgressiveService"]
    assert "Rollout/guestbook: spec.revisionHistoryLimit: not converted" in err.getvalue()
    assert code == 1  # --strict: something was left behind
