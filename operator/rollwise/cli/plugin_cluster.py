"""The kubectl plugin's conversation with the API server: kubeconfig, reads, the request
annotation, watches, and errors turned into sentences a person can act on."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3.exceptions
from kubernetes import config, watch
from kubernetes.client import (
    ApiClient,
    AuthenticationV1Api,
    CustomObjectsApi,
    V1SelfSubjectReview,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rollwise.api import GROUP, VERSION
from rollwise.api.service import PLURAL
from rollwise.core.naming import ANNOTATION_REQUEST

SINGULAR = "progressiveservice"
_HTTP_UNAUTHORIZED = 401
_HTTP_FORBIDDEN = 403
_HTTP_NOT_FOUND = 404
_HTTP_GONE = 410
_WATCH_WINDOW_S = 300  # one watch request at most this long; the loop opens the next one
_CONNECT_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 30.0


class PluginError(Exception):
    """A failure explained for the person at the terminal; the plugin prints it and exits 1."""


@dataclass(frozen=True)
class KubeSession:
    """One API client for one kubeconfig context, and what that context says by default."""

    api_client: ApiClient
    namespace: str
    context: str
    kubeconfig_user: str | None
    server: str


def _kubeconfig_paths(kubeconfig: str | None) -> tuple[str, list[Path]]:
    """The kubeconfig argument as the client takes it, and the files it names."""
    if kubeconfig:
        return kubeconfig, [Path(kubeconfig).expanduser()]
    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        return from_env, [Path(p).expanduser() for p in from_env.split(os.pathsep) if p]
    default = str(Path("~/.kube/config").expanduser())
    return default, [Path(default)]


def open_session(kubeconfig: str | None, context: str | None, namespace: str | None) -> KubeSession:
    """Load the kubeconfig (flag, else $KUBECONFIG, else ~/.kube/config) without global state."""
    argument, paths = _kubeconfig_paths(kubeconfig)
    if not any(path.is_file() for path in paths):
        named = ", ".join(str(path) for path in paths)
        raise PluginError(
            f"no kubeconfig found (looked at {named}); pass --kubeconfig FILE or set KUBECONFIG"
        )
    # The kubernetes package's config and watch modules carry no annotations, hence the ignores.
    try:
        contexts, current = config.list_kube_config_contexts(argument)  # type: ignore[no-untyped-call]
        chosen_name = context or (current or {}).get("name")
        if not chosen_name:
            raise PluginError(f"kubeconfig {argument} has no current context; pass --context")
        chosen = next((c for c in contexts or [] if c.get("name") == chosen_name), None)
        if chosen is None:
            raise PluginError(f"kubeconfig {argument} has no context named {chosen_name!r}")
        details = chosen.get("context") or {}
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=argument, context=chosen_name, persist_config=False
        )
    except ConfigException as err:
        raise PluginError(f"kubeconfig {argument}: {err}") from err
    return KubeSession(
        api_client=api_client,
        namespace=namespace or details.get("namespace") or "default",
        context=chosen_name,
        kubeconfig_user=details.get("user"),
        server=str(api_client.configuration.host),
    )


# ---------------------------------------------------------------------------------- errors


def _server_status(err: ApiException) -> dict[str, Any]:
    body = err.body.decode() if isinstance(err.body, bytes) else err.body
    try:
        parsed = json.loads(body) if body else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _server_message(err: ApiException) -> str:
    message = _server_status(err).get("message")
    return str(message) if message else str(err.reason or f"HTTP {err.status}")


def explain(
    err: ApiException,
    session: KubeSession,
    verb: str,
    name: str,
    plural: str = PLURAL,
    singular: str = SINGULAR,
) -> PluginError:
    """The one place where API errors become sentences."""
    where = f"{session.namespace}/{name}"
    if err.status == _HTTP_NOT_FOUND:
        details = _server_status(err).get("details") or {}
        if details.get("name") == name:
            return PluginError(f"{singular} {where} not found")
        return PluginError(
            f"{singular} {where} not found: the server does not serve {plural}.{GROUP}/{VERSION};"
            " are the rollwise CRDs installed?"
        )
    if err.status == _HTTP_FORBIDDEN:
        return PluginError(
            f"no permission to {verb} {plural} in {session.namespace}: {_server_message(err)}"
        )
    if err.status == _HTTP_UNAUTHORIZED:
        return PluginError(
            f"the API server {session.server} did not accept the credentials of context"
            f" {session.context!r} (expired token?): {_server_message(err)}"
        )
    return PluginError(
        f"cannot {verb} {singular} {where}: HTTP {err.status}: {_server_message(err)}"
    )


def _unreachable(session: KubeSession, err: urllib3.exceptions.HTTPError) -> PluginError:
    cause = err.reason if isinstance(err, urllib3.exceptions.MaxRetryError) else err
    return PluginError(f"cannot reach the API server {session.server}: {cause}")


# ------------------------------------------------------------------------------ operations


def _objects(session: KubeSession) -> CustomObjectsApi:
    return CustomObjectsApi(session.api_client)


def get_service(
    session: KubeSession, name: str, plural: str = PLURAL, singular: str = SINGULAR
) -> dict[str, Any]:
    """The ProgressiveService (or another rollwise object) as stored, as a plain dict."""
    try:
        found = _objects(session).get_namespaced_custom_object(
            GROUP,
            VERSION,
            session.namespace,
            plural,
            name,
            _request_timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S),
        )
    except ApiException as err:
        raise explain(err, session, "get", name, plural, singular) from err
    except urllib3.exceptions.HTTPError as err:
        raise _unreachable(session, err) from err
    if not isinstance(found, dict):
        raise PluginError(f"{singular} {session.namespace}/{name}: unexpected reply {found!r}")
    return found


def write_request(
    session: KubeSession,
    name: str,
    annotation: str,
    plural: str = PLURAL,
    singular: str = SINGULAR,
) -> None:
    """Set the request annotation with a merge patch on metadata only: spec never drifts."""
    patch = {"metadata": {"annotations": {ANNOTATION_REQUEST: annotation}}}
    try:
        _objects(session).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            session.namespace,
            plural,
            name,
            patch,
            _content_type="application/merge-patch+json",
            _request_timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S),
        )
    except ApiException as err:
        raise explain(err, session, "patch", name, plural, singular) from err
    except urllib3.exceptions.HTTPError as err:
        raise _unreachable(session, err) from err


def username(session: KubeSession) -> str:
    """Who the API server says we are; the kubeconfig's user name when it will not say."""
    try:
        review = AuthenticationV1Api(session.api_client).create_self_subject_review(
            V1SelfSubjectReview(), _request_timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S)
        )
    except ApiException as err:
        # Forbidden by policy, or an API server too old to serve SelfSubjectReview.
        if err.status in (_HTTP_FORBIDDEN, _HTTP_NOT_FOUND):
            return session.kubeconfig_user or "unknown"
        raise PluginError(
            f"cannot ask the API server {session.server} who we are:"
            f" HTTP {err.status}: {_server_message(err)}"
        ) from err
    except urllib3.exceptions.HTTPError as err:
        raise _unreachable(session, err) from err
    user_info = review.status.user_info if review.status is not None else None
    if user_info is None or not user_info.username:
        return session.kubeconfig_user or "unknown"
    return str(user_info.username)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _resource_version(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""


def follow_service(
    session: KubeSession, name: str, deadline: float | None
) -> Iterator[dict[str, Any]]:
    """The object now, then again each time it changes, until `deadline` (time.monotonic()).

    One object, watched by a field selector on its name. Raises PluginError when it is deleted.
    """
    current = get_service(session, name)
    yield current
    version = _resource_version(current)
    objects = _objects(session)
    while True:
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            return
        window = _WATCH_WINDOW_S if remaining is None else min(_WATCH_WINDOW_S, remaining)
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            session.namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, math.ceil(window)),
            _request_timeout=(_CONNECT_TIMEOUT_S, window + _READ_TIMEOUT_S),
        )
        try:
            for event in stream:
                changed = event["raw_object"]
                if event["type"] == "DELETED":
                    raise PluginError(f"{SINGULAR} {session.namespace}/{name} was deleted")
                new_version = _resource_version(changed) or version
                if event["type"] in ("ADDED", "MODIFIED") and new_version != version:
                    yield changed
                version = new_version
                remaining = _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return
        except ApiException as err:
            if err.status != _HTTP_GONE:
                raise explain(err, session, "watch", name) from err
            # Our resourceVersion fell out of the watch cache: read again, then watch from there.
            current = get_service(session, name)
            if _resource_version(current) != version:
                version = _resource_version(current)
                yield current
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            continue  # a quiet window or a dropped connection: open the next watch
        except urllib3.exceptions.HTTPError as err:
            raise _unreachable(session, err) from err
        finally:
            stream.close()  # releases the HTTP connection even when the caller stops early
