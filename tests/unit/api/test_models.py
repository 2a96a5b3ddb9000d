"""The API models reject bad input with a message naming the field, and read good input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import ServiceStatus

CONTAINERS = [{"name": "app", "image": "example/app:1.0.0"}]


def service(**overrides: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "replicas": 3,
        "template": {"spec": {"containers": CONTAINERS}},
        "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
    }
    wire.update(overrides)
    return wire


def with_steps(*steps: dict[str, Any], **canary: Any) -> dict[str, Any]:
    return service(strategy={"canary": {"steps": list(steps), **canary}})


def gate(**overrides: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "provider": {"prometheus": {"address": "http://prom:9090", "query": "up"}},
        "thresholdRange": {"max": 0.01},
    }
    wire.update(overrides)
    return wire


JOB_CONTAINER = {"name": "check", "image": "example.com/smoke:1"}


def test_a_job_gate_needs_no_threshold_and_has_bounded_defaults() -> None:
    spec = MetricGateSpec.model_validate(
        {"provider": {"job": {"template": {"spec": {"containers": [JOB_CONTAINER]}}}}}
    )

    assert spec.provider.kind == "job"
    assert spec.threshold_range is None
    assert spec.provider.job is not None
    assert spec.provider.job.backoff_limit == 0
    assert spec.provider.job.active_deadline_seconds == 300
    assert spec.provider.job.ttl_seconds_after_finished == 600


def test_a_web_gate_defaults_to_get_with_a_timeout() -> None:
    spec = MetricGateSpec.model_validate(
        gate(provider={"web": {"url": "https://slo.example/api?x=1", "jsonPath": "$.ok"}})
    )

    assert spec.provider.kind == "web"
    assert spec.provider.web is not None
    assert (spec.provider.web.method, spec.provider.web.timeout) == ("GET", "10s")


def test_a_valid_service_is_read_with_defaults() -> None:
    spec = ServiceSpec.model_validate(service())

    assert spec.replicas == 3
    assert spec.strategy.canary.traffic_routing.kind == "replicas"
    assert spec.progress_deadline_seconds == 600
    assert spec.abort_scale_down_delay_seconds == 30
    assert spec.service.port == 80
    assert spec.migration is None


def test_wire_form_round_trips() -> None:
    spec = ServiceSpec.model_validate(
        with_steps(
            {"setWeight": 10},
            {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "pay"}}]}},
            analysis={"gates": [{"name": "slo", "cluster": True}], "startingStep": 1},
            trafficRouting={"gatewayAPI": {"httpRoute": "payment"}},
        )
    )

    wire = spec.to_wire()

    assert ServiceSpec.model_validate(wire) == spec
    assert wire["strategy"]["canary"]["trafficRouting"] == {"gatewayAPI": {"httpRoute": "payment"}}
    assert wire["strategy"]["canary"]["analysis"]["startingStep"] == 1


def test_unknown_pod_fields_pass_through_untouched() -> None:
    template = {
        "metadata": {"labels": {"app": "payment"}},
        "spec": {
            "containers": [{"name": "app", "image": "a:1", "ports": [{"containerPort": 8080}]}],
            "serviceAccountName": "payment",
        },
    }

    spec = ServiceSpec.model_validate(service(template=template))

    wire = spec.template.to_wire()
    assert wire["spec"] == template["spec"]
    assert wire["metadata"]["labels"] == {"app": "payment"}


@pytest.mark.parametrize(
    ("wire", "field", "complaint"),
    [
        (
            with_steps({"setWeight": 101}),
            "strategy.canary.steps.0.setWeight",
            "less than or equal to 100",
        ),
        (
            with_steps({"setWeight": -1}),
            "strategy.canary.steps.0.setWeight",
            "greater than or equal to 0",
        ),
        (with_steps(), "strategy.canary.steps", "at least 1 item"),
        (
            with_steps({"setWeight": 10}, {"setWeight": 20, "pause": {}}),
            "strategy.canary.steps.1",
            "exactly one of setWeight, pause, analysis",
        ),
        (with_steps({}), "strategy.canary.steps.0", "exactly one of setWeight, pause, analysis"),
        (
            with_steps({"analysis": {"gates": []}}),
            "strategy.canary.steps.0.analysis.gates",
            "at least 1 item",
        ),
        (
            with_steps(
                {"setWeight": 10},
                trafficRouting={"replicas": {}, "nginx": {"ingress": "payment"}},
            ),
            "strategy.canary.trafficRouting",
            "exactly one of replicas, gatewayAPI, nginx, istio",
        ),
        (
            with_steps({"pause": {"duration": "2 minutes"}}),
            "strategy.canary.steps.0.pause.duration",
            "pattern",
        ),
        (with_steps({"pause": {"duration": "10"}}), "strategy.canary.steps.0.pause.duration", ""),
        (with_steps({"pause": {"duration": "-5s"}}), "strategy.canary.steps.0.pause.duration", ""),
        (with_steps({"pause": {"duration": "1d"}}), "strategy.canary.steps.0.pause.duration", ""),
        (service(replicas=-1), "replicas", "greater than or equal to 0"),
        (
            service(progressDeadlineSeconds=0),
            "progressDeadlineSeconds",
            "greater than or equal to 1",
        ),
        (service(abortScaleDownDelaySeconds=-1), "abortScaleDownDelaySeconds", ""),
        (service(template={"spec": {"containers": []}}), "template.spec.containers", "at least 1"),
        (
            service(template={"spec": {"containers": [{"name": "app"}]}}),
            "template.spec.containers.0.image",
            "Field required",
        ),
        (service(strategy={"canary": {"steps": [{"setweight": 10}]}}), "setweight", "Extra inputs"),
        (service(version="v" * 129), "version", "at most 128 characters"),
        (
            with_steps({"setWeight": 10}, analysis={"gates": [{"name": "g"}], "startingStep": -1}),
            "strategy.canary.analysis.startingStep",
            "greater than or equal to 0",
        ),
    ],
)
def test_bad_service_specs_are_rejected_naming_the_field(
    wire: dict[str, Any], field: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceSpec.model_validate(wire)

    text = str(caught.value)
    assert field in text
    assert complaint in text


@pytest.mark.parametrize(
    ("wire", "field", "complaint"),
    [
        (gate(thresholdRange={}), "thresholdRange", "thresholdRange needs min, max or both"),
        (
            gate(thresholdRange={"min": 2, "max": 1}),
            "thresholdRange",
            "thresholdRange.min must not exceed max",
        ),
        (gate(interval="30 s"), "interval", "pattern"),
        (gate(interval=""), "interval", "pattern"),
        (
            gate(provider={"prometheus": {"address": "http://p", "query": "up", "timeout": "x"}}),
            "provider.prometheus.timeout",
            "pattern",
        ),
        (
            gate(provider={"prometheus": {"address": "prom:9090", "query": "up"}}),
            "provider.prometheus.address",
            "pattern",
        ),
        (
            gate(provider={"prometheus": {"address": "http://p", "query": ""}}),
            "provider.prometheus.query",
            "at least 1 character",
        ),
        (gate(args=[{"name": "my-arg"}]), "args.0.name", "pattern"),
        (gate(count=-1), "count", "greater than or equal to 0"),
        (gate(failureLimit=-1), "failureLimit", "greater than or equal to 0"),
        (gate(inconclusiveLimit=-1), "inconclusiveLimit", "greater than or equal to 0"),
        (gate(consecutiveErrorLimit=-1), "consecutiveErrorLimit", "greater than or equal to 0"),
        (gate(provider={}), "provider", "exactly one of prometheus, job, web"),
        (
            gate(
                provider={
                    "prometheus": {"address": "http://p", "query": "up"},
                    "web": {"url": "http://w/x", "jsonPath": "$.v"},
                }
            ),
            "provider",
            "exactly one of prometheus, job, web",
        ),
        (
            gate(provider={"web": {"url": "ftp://w/x", "jsonPath": "$.v"}}),
            "provider.web.url",
            "pattern",
        ),
        (
            gate(provider={"web": {"url": "http://w/x", "jsonPath": "$.v", "method": "PUT"}}),
            "provider.web.method",
            "'GET' or 'POST'",
        ),
        (
            gate(
                provider={
                    "web": {
                        "url": "http://w/x",
                        "jsonPath": "$.v",
                        "headers": [{"name": "X-A", "value": "a\r\nHost: evil"}],
                    }
                }
            ),
            "provider.web.headers.0.value",
            "pattern",
        ),
        (
            gate(provider={"web": {"url": "http://w/x", "jsonPath": "$.v"}}, thresholdRange=None),
            "thresholdRange",
            "required for prometheus and web gates",
        ),
        (
            gate(provider={"job": {"template": {"spec": {"containers": [JOB_CONTAINER]}}}}),
            "thresholdRange",
            "remove thresholdRange",
        ),
    ],
)
def test_bad_metric_gates_are_rejected_naming_the_field(
    wire: dict[str, Any], field: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricGateSpec.model_validate(wire)

    text = str(caught.value)
    assert field in text
    assert complaint in text


def test_background_analysis_starting_after_the_last_step_is_rejected() -> None:
    wire = with_steps({"setWeight": 50}, analysis={"gates": [{"name": "g"}], "startingStep": 1})

    with pytest.raises(ValidationError, match="startingStep"):
        ServiceSpec.model_validate(wire)


def test_threshold_range_with_one_bound_is_valid() -> None:
    assert (
        MetricGateSpec.model_validate(gate(thresholdRange={"min": 0.99})).threshold_range.max
        is None
    )
    assert (
        MetricGateSpec.model_validate(gate(thresholdRange={"min": 1, "max": 1})).threshold_range.min
        == 1
    )


# ----------------------------------------------------------------------------- version


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("example/app:2.4.0", "2.4.0"),
        ("registry.example.com:5000/team/app:2.4.0-rc.1", "2.4.0-rc.1"),
        ("localhost:5000/app", "latest"),
        ("app", "latest"),
        ("app@sha256:" + "a" * 64, "sha256:" + "a" * 12),
    ],
)
def test_version_defaults_to_the_first_image_tag(image: str, version: str) -> None:
    spec = ServiceSpec.model_validate(
        service(template={"spec": {"containers": [{"name": "app", "image": image}]}})
    )

    assert spec.resolved_version() == version


def test_tag_wins_over_digest_when_an_image_has_both() -> None:
    image = "example/app:2.4.0@sha256:" + "a" * 64
    spec = ServiceSpec.model_validate(
        service(template={"spec": {"containers": [{"name": "app", "image": image}]}})
    )

    assert spec.resolved_version() == "2.4.0"


def test_declared_version_wins_over_the_image_tag() -> None:
    spec = ServiceSpec.model_validate(service(version="2.4.0"))

    assert spec.resolved_version() == "2.4.0"


def test_version_comes_from_the_first_container_only() -> None:
    containers = [
        {"name": "app", "image": "example/app:3.1.0"},
        {"name": "proxy", "image": "envoy:1.30"},
    ]
    spec = ServiceSpec.model_validate(service(template={"spec": {"containers": containers}}))

    assert spec.resolved_version() == "3.1.0"


# ----------------------------------------------------------------------------- status


def test_status_ignores_fields_from_newer_operators_and_bounds_the_weight() -> None:
    status = ServiceStatus.model_validate({"phase": "Healthy", "somethingNew": 1})

    assert status.phase == "Healthy"
    with pytest.raises(ValidationError, match="canaryWeight"):
        ServiceStatus.model_validate({"canaryWeight": 101})


# ---------------------------------------------------------------- scaling and adoption


def test_surge_bounds_default_to_a_quarter_as_deployments_do() -> None:
    canary = ServiceSpec.model_validate(service()).strategy.canary

    assert (canary.max_surge, canary.max_unavailable) == ("25%", "25%")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"maxSurge": -1}, "maxSurge must not be negative"),
        ({"maxSurge": "3"}, "maxSurge '3' is neither a count nor a percentage"),
        ({"maxUnavailable": "120%"}, "maxUnavailable '120%' is neither"),
        ({"maxSurge": 0, "maxUnavailable": "0%"}, "cannot both be 0"),
    ],
)
def test_bad_surge_bounds_are_rejected_naming_the_field(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSpec.model_validate(with_steps({"setWeight": 10}, **options))


def test_a_workload_ref_replaces_the_template() -> None:
    wire = service(workloadRef={"name": "payment"})
    del wire["template"]

    spec = ServiceSpec.model_validate(wire)

    assert spec.workload_ref is not None and spec.workload_ref.kind == "Deployment"
    with pytest.raises(ValueError, match="not read from workloadRef yet"):
        spec.pod_template()


@pytest.mark.parametrize("both", [True, False])
def test_exactly_one_of_template_and_workload_ref(both: bool) -> None:
    wire = service(workloadRef={"name": "payment"}) if both else service()
    if not both:
        del wire["template"]

    with pytest.raises(ValidationError, match="exactly one of template and workloadRef"):
        ServiceSpec.model_validate(wire)


def test_a_workload_ref_names_a_deployment_only() -> None:
    wire = service(workloadRef={"kind": "StatefulSet", "name": "db"})
    del wire["template"]

    with pytest.raises(ValidationError, match="kind"):
        ServiceSpec.model_validate(wire)
