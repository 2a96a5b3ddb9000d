"""ReleaseTrain's API: the generated CRD's validation rules, and a release on a member spec."""

from __future__ import annotations

import pytest

from rollwise.api.crd import build_crds
from rollwise.api.service import ServiceSpec
from rollwise.api.train import EnvVar, Release, TrainSpec, find_cycle
from rollwise.core.release import apply_release, release_revision
from rollwise.core.revision import revision_of


def member_spec() -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "version": "1.0",
            "releaseTrain": "shop",
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "x/app:1.0", "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "x/side:1"},
                    ]
                }
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        }
    )


def test_the_crd_keys_members_by_service_and_checks_after_names() -> None:
    crd = build_crds()["rollwise.dev_releasetrains.yaml"]
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]

    assert crd["spec"]["names"]["shortNames"] == ["rtrain"]
    assert spec["properties"]["members"]["x-kubernetes-list-type"] == "map"
    assert spec["properties"]["members"]["x-kubernetes-list-map-keys"] == ["service"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert any("self.members.exists(o, o.service == a)" in r for r in rules)
    assert "status" in version["subresources"]


def test_a_release_sets_version_image_and_env_on_the_first_container() -> None:
    spec = member_spec()
    release = Release(
        version="2.0",
        image="x/app:2.0",
        env=[EnvVar(name="A", value="2"), EnvVar(name="B", value="b")],
    )

    out = apply_release(spec, release)

    app = out.pod_template().spec.containers[0].to_wire()
    assert out.version == "2.0" and app["image"] == "x/app:2.0"
    assert app["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "b"}]
    assert out.pod_template().spec.containers[1].image == "x/side:1"
    assert release_revision(spec, release) == revision_of(out) != revision_of(spec)


def test_no_release_is_the_spec_itself_and_a_missing_container_is_an_error() -> None:
    spec = member_spec()

    assert release_revision(spec, None) == revision_of(spec)
    named = apply_release(spec, Release(version="2", container="sidecar", image="x/side:2"))
    assert named.pod_template().spec.containers[1].image == "x/side:2"
    with pytest.raises(ValueError, match="container 'web'"):
        apply_release(spec, Release(version="2", container="web"))


def test_find_cycle_names_the_cycle_and_nothing_for_a_dag() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c"]


def test_defaults_one_at_a_time_and_halt() -> None:
    spec = TrainSpec.model_validate({"members": [{"service": "a", "version": "1"}]})

    assert spec.max_concurrent == 1
    assert spec.on_failure.policy.value == "Halt"
