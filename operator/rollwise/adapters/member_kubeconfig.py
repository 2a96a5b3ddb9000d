"""A member cluster's kubeconfig, as the fleet hub accepts it from a Secret: a server, a CA and
a token or client certificate data, nothing else.

A kubeconfig can run programs (`users[].user.exec`, `auth-provider`), read files of the hub's
own pod (`tokenFile`, `client-certificate`, `certificate-authority` paths) and send the hub's
traffic through a proxy (`proxy-url`). Whoever can write a Secret in a FleetRollout's namespace
must gain none of that, so the kubeconfig is rebuilt from the allowed fields of its current
context only, and anything else in that context is refused, naming the field (Flux's
kustomize-controller refuses exec and auth-provider by default, for the same reason).
"""

from __future__ import annotations

from typing import Any

# Per section of the current context: the keys taken over, and those refused with why. Keys
# in neither (e.g. `extensions`) are dropped.
_CLUSTER_KEYS = {"server", "certificate-authority-data", "tls-server-name"}
_USER_KEYS = {"token", "client-certificate-data", "client-key-data"}
_REFUSED = {
    "exec": "an exec plugin would run a program in the hub",
    "auth-provider": "an auth-provider plugin would run code in the hub",
    "tokenFile": "a file path would read the hub's own files",
    "client-certificate": "a file path would read the hub's own files",
    "client-key": "a file path would read the hub's own files",
    "certificate-authority": "a file path would read the hub's own files",
    "proxy-url": "a proxy would send the hub's traffic elsewhere",
    "username": "basic authentication is not accepted",
    "password": "basic authentication is not accepted",
    "as": "impersonation is not accepted",
    "as-uid": "impersonation is not accepted",
    "as-groups": "impersonation is not accepted",
    "as-user-extra": "impersonation is not accepted",
    "insecure-skip-tls-verify": "TLS verification cannot be turned off",
}


class KubeconfigRefused(ValueError):
    """The kubeconfig holds something the hub never uses; the message names the field."""


def _named(items: Any, name: Any, kind: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise KubeconfigRefused(f"it has no {kind}s list")
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            if not isinstance(body, dict):
                raise KubeconfigRefused(f"{kind}s[{index}] ({name}) has no {kind}")
            return body
    raise KubeconfigRefused(f"the current context names {kind} {name!r}, which it does not hold")


def _check(section: dict[str, Any], allowed: set[str], where: str) -> dict[str, Any]:
    for key, value in section.items():
        if key in _REFUSED and value not in (None, "", False, [], {}):
            raise KubeconfigRefused(f"{where}.{key} is refused: {_REFUSED[key]}")
    return {k: v for k, v in section.items() if k in allowed and isinstance(v, str) and v}


def sanitised(config: Any) -> dict[str, Any]:
    """The kubeconfig reduced to its current context's server, CA data and token or client
    certificate data; KubeconfigRefused naming the first field that is refused."""
    if not isinstance(config, dict):
        raise KubeconfigRefused("it is not a kubeconfig (a YAML mapping)")
    current = config.get("current-context")
    contexts = config.get("contexts")
    if not current and isinstance(contexts, list) and len(contexts) == 1:
        current = (contexts[0] or {}).get("name")
    if not current:
        raise KubeconfigRefused("it has no current-context")
    context = _named(contexts, current, "context")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = _check(
        _named(config.get("clusters"), cluster_name, "cluster"), _CLUSTER_KEYS, "cluster"
    )
    user = _check(_named(config.get("users"), user_name, "user"), _USER_KEYS, "user")
    if not str(cluster.get("server", "")).startswith("https://"):
        raise KubeconfigRefused("cluster.server must be an https:// URL")
    if "certificate-authority-data" not in cluster:
        raise KubeconfigRefused("cluster.certificate-authority-data is required")
    has_cert = "client-certificate-data" in user and "client-key-data" in user
    if "token" not in user and not has_cert:
        raise KubeconfigRefused(
            "user needs a token, or client-certificate-data with client-key-data"
        )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "member", "cluster": cluster}],
        "users": [{"name": "member", "user": user}],
        "contexts": [{"name": "member", "context": {"cluster": "member", "user": "member"}}],
        "current-context": "member",
    }
