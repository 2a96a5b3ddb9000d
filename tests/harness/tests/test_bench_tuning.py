"""The benchmark's control-plane tuning reaches kwokctl as componentsPatches in its config file,
never as repeated --extra-args (kwokctl v0.7.0 indexes those by position and panicked once the
address slots put a second kube-apiserver flag ahead of them)."""

from __future__ import annotations

from tests.bench.env import TUNING, tuning_patches
from tests.harness.cluster import merged_components_patches
from tests.harness.metrics import kwokctl_components_patches


def test_tuning_is_patches_of_the_controller_manager_and_scheduler() -> None:
    patches = {p["name"]: p["extraArgs"] for p in tuning_patches()}

    assert set(patches) == {"kube-controller-manager", "kube-scheduler"}
    for args in patches.values():
        assert {a["key"]: a["value"] for a in args} == {
            "kube-api-qps": "1000",
            "kube-api-burst": "2000",
        }
    assert "kube-scheduler=kube-api-qps=1000" in TUNING
    assert not any("--extra-args" in t for t in TUNING)


def test_patches_of_one_component_are_merged_into_one_entry_in_order() -> None:
    merged = merged_components_patches([*kwokctl_components_patches(), *tuning_patches()])

    names = [p["name"] for p in merged]
    assert len(names) == len(set(names))
    kcm = next(p for p in merged if p["name"] == "kube-controller-manager")
    keys = [a["key"] for a in kcm["extraArgs"]]
    assert keys[0] == "horizontal-pod-autoscaler-sync-period"
    assert keys[-2:] == ["kube-api-qps", "kube-api-burst"]
