"""`rollwise version` and `kubectl rollwise version` print the installed package's version."""

from __future__ import annotations

import io
from importlib.metadata import version
from types import SimpleNamespace

import pytest

from rollwise.cli import main as rollwise_main
from rollwise.cli import plugin
from rollwise.cli.plugin_version import OperatorDeployment, operator_from, render_version


def test_rollwise_version_prints_the_package_metadata_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert rollwise_main.main(["version"]) == 0
    assert capsys.readouterr().out == f"rollwise {version('rollwise')}\n"


def test_plugin_version_client_only_needs_no_cluster() -> None:
    out, err = io.StringIO(), io.StringIO()
    args = plugin.build_parser().parse_args(["version", "--client"])
    assert plugin.run(args, out, err) == 0
    assert out.getvalue() == f"kubectl-rollwise: {version('rollwise')}\n"


def test_plugin_version_without_a_kubeconfig_says_why_the_operator_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    out, err = io.StringIO(), io.StringIO()
    assert plugin.run(plugin.build_parser().parse_args(["version"]), out, err) == 0
    assert out.getvalue().startswith("kubectl-rollwise: ")
    assert "operator: unknown (no kubeconfig found" in err.getvalue()


def test_operator_version_comes_from_the_deployment_label_and_image() -> None:
    deployment = SimpleNamespace(
        metadata=SimpleNamespace(
            namespace="rollwise-system",
            name="rollwise",
            labels={"app.kubernetes.io/version": "0.2.0"},
        ),
        spec=SimpleNamespace(
            replicas=2,
            template=SimpleNamespace(
                spec=SimpleNamespace(containers=[SimpleNamespace(image="r/rollwise:0.2.0")])
            ),
        ),
        status=SimpleNamespace(ready_replicas=1),
    )
    op = operator_from(deployment)
    assert op == OperatorDeployment(
        "rollwise-system", "rollwise", "0.2.0", "r/rollwise:0.2.0", 1, 2
    )
    text = render_version([op], None)
    assert "operator: 0.2.0 (rollwise-system/rollwise, image r/rollwise:0.2.0, 1/2 ready)" in text


def test_no_operator_deployment_is_said_plainly() -> None:
    assert "operator: not found" in render_version([], None)
    assert "operator: unknown (HTTP 500" in render_version([], "HTTP 500 listing Deployments")
