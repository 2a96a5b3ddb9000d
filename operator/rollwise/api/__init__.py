"""The rollwise API: pydantic models of the CRDs. CRD YAML is generated from these."""

GROUP = "rollwise.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
