"""Loopback address slots: clusters running side by side (xdist workers, the demo, another
session) never hand out the same pod or Service address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.harness import pod_http
from tests.harness.cluster import (
    SLOT_FILE,
    ClusterStartError,
    free_address_slot,
    taken_address_slots,
)

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def test_every_slot_has_its_own_loopback_ranges() -> None:
    seen: list[ipaddress.IPv4Network] = []
    for slot in range(pod_http.ADDRESS_SLOTS):
        ranges = [ipaddress.IPv4Network(pod_http.service_cidr(slot))] + [
            ipaddress.IPv4Network(pod_http.node_pod_cidr(i, slot))
            for i in range(pod_http.NODES_PER_SLOT)
        ]
        for net in ranges:
            assert net.subnet_of(LOOPBACK), net
            assert not any(net.overlaps(other) for other in seen), (slot, net)
            seen.append(net)
    # Slot 0 is what a lone cluster always had.
    assert pod_http.service_cidr(0) == pod_http.SERVICE_CIDR
    assert pod_http.node_pod_cidr(0) == pod_http.POD_CIDR
    assert pod_http.node_pod_cidr(1) == "127.101.0.0/16"


def test_nodes_past_a_slots_room_stay_inside_the_slot() -> None:
    inside = {pod_http.node_pod_cidr(i, 2) for i in range(pod_http.NODES_PER_SLOT)}
    assert pod_http.node_pod_cidr(pod_http.NODES_PER_SLOT + 3, 2) in inside
    with pytest.raises(ValueError):
        pod_http.node_pod_cidr(0, pod_http.ADDRESS_SLOTS)


def test_only_running_clusters_hold_a_slot(tmp_path: Path) -> None:
    for name, slot in [("a", 1), ("b", 3), ("crashed", 2)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / SLOT_FILE).write_text(f"{slot}\n")
    taken = taken_address_slots(tmp_path, lambda d: d.name != "crashed")
    assert taken == {1, 3}
    assert free_address_slot(taken) == 0
    # A running cluster of a harness from before slots uses slot 0's ranges.
    (tmp_path / "unmarked").mkdir()
    taken = taken_address_slots(tmp_path, lambda d: d.name != "crashed")
    assert taken == {0, 1, 3}
    assert free_address_slot(taken) == 2
    with pytest.raises(ClusterStartError, match="address slots are taken"):
        free_address_slot(set(range(pod_http.ADDRESS_SLOTS)))
