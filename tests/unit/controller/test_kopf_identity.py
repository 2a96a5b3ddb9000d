"""The operator and the fleet hub give Kopf an identity, so Kopf never guesses one.

Kopf's guess calls getpass.getuser(), which raises KeyError for a uid without a passwd entry:
the image runs as 65532, which has none (issue 19: the chart's pods crash-looped at start).
These tests run the real `kopf.run` up to the point where Kopf settles its identity, with
getpass failing as it does in the image, and stop there.
"""

from __future__ import annotations

import getpass
from types import SimpleNamespace
from typing import Any, cast

import kopf._core.reactor.running as kopf_running
import pytest
from kopf._core.engines import peering

from rollwise.controller import fleet_hub, runner
from rollwise.controller.settings import OperatorSettings


def _no_passwd_entry() -> str:
    raise KeyError("getpwuid(): uid not found: 65532")


@pytest.fixture
def kopf_identities(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The identity Kopf settles on, per kopf.run; Kopf stops right after settling it."""
    seen: list[str] = []

    async def settle_identity_and_stop(**kwargs: Any) -> list[object]:
        # Kopf's own line in spawn_tasks, then no tasks: kopf.run returns at once.
        identity = kwargs.get("identity")
        seen.append(identity if identity is not None else peering.detect_own_id(manual=False))
        return []

    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    monkeypatch.delenv("POD_ID", raising=False)
    monkeypatch.setattr(kopf_running, "spawn_tasks", settle_identity_and_stop)
    return seen


def test_kopf_guessing_its_identity_fails_without_a_passwd_entry(
    kopf_identities: list[str],
) -> None:
    # The failure the fix avoids, so that the tests below can fail.
    with pytest.raises(KeyError, match="uid not found"):
        peering.detect_own_id(manual=False)


def test_operator_gives_kopf_the_pod_name_as_identity(
    kopf_identities: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", "rollwise-7d9-abcde")
    settings = OperatorSettings(namespaces=("shop",), health_port=0)
    operator = SimpleNamespace(settings=settings, runtime=object())

    runner.serve_operator(cast(runner.Operator, operator))

    assert kopf_identities == ["rollwise-7d9-abcde"]


def test_operator_outside_a_pod_gives_kopf_the_election_identity(
    kopf_identities: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    settings = OperatorSettings(namespaces=("shop",), health_port=0)
    operator = SimpleNamespace(settings=settings, runtime=object())

    runner.serve_operator(cast(runner.Operator, operator))

    assert kopf_identities == [settings.election_identity]


def test_fleet_hub_gives_kopf_the_pod_name_as_identity(
    kopf_identities: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.client import ApiClient, Configuration

    monkeypatch.setenv("POD_NAME", "rollwise-hub-0")
    monkeypatch.setattr(fleet_hub, "connect", lambda *_a, **_k: ApiClient(Configuration()))
    settings = OperatorSettings(namespaces=("fleet",), health_port=0, metrics_port=0)

    assert fleet_hub.run_fleet_hub(settings, poll_s=1.0, resync_s=30.0) == 0

    assert kopf_identities == ["rollwise-hub-0"]
