"""A ValidatingAdmissionPolicy that refuses every status write of one rollwise resource in one
namespace: how the tests make the API server refuse the operator's status writes (the issue's
"a status write refused by admission") without a webhook server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client


def _policy(name: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["rollwise.dev"],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": [f"{plural}/status"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "status writes are frozen"}],
        },
    }


def _binding(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }


@contextmanager
def status_writes_frozen(api: Any, namespace: str, plural: str) -> Iterator[str]:
    """Refuse every write of `plural`/status in `namespace` while the block runs; yields the
    policy's name (the refusal names it). The policy takes a moment to be in force: callers
    wait for a refusal they can see."""
    admission = client.AdmissionregistrationV1Api(api)
    name = f"freeze-{plural}-{namespace}"[:63]
    admission.create_validating_admission_policy(_policy(name, plural))  # type: ignore[arg-type]
    try:
        admission.create_validating_admission_policy_binding(_binding(name, namespace))  # type: ignore[arg-type]
        try:
            yield name
        finally:
            admission.delete_validating_admission_policy_binding(name)
    finally:
        admission.delete_validating_admission_policy(name)
