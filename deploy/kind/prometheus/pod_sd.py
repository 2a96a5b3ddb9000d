"""Pod discovery for the kind tier's Prometheus, over Prometheus' HTTP service discovery.

Debian's prometheus is built without the Kubernetes service discovery, so this sidecar does its
part: it lists the pods annotated `prometheus.io/scrape: "true"` with the pod's ServiceAccount and
answers GET /targets in http_sd_configs' format, one target per running pod, with the labels
the gates query by (namespace, pod, revision, service), as the kwok tier's simulator has them.
Standard library only.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://{}:{}".format(
    os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc"),
    os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
)


def list_pods() -> list[dict]:  # type: ignore[type-arg]
    with open(f"{SA}/token") as handle:
        token = handle.read().strip()
    context = ssl.create_default_context(cafile=f"{SA}/ca.crt")
    request = urllib.request.Request(
        f"{API}/api/v1/pods?fieldSelector=status.phase%3DRunning",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5, context=context) as answer:
        return json.loads(answer.read())["items"]  # type: ignore[no-any-return]


def targets() -> list[dict]:  # type: ignore[type-arg]
    found = []
    for pod in list_pods():
        meta, status = pod["metadata"], pod.get("status") or {}
        notes = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        if notes.get("prometheus.io/scrape") != "true" or not status.get("podIP"):
            continue
        port = notes.get("prometheus.io/port", "8080")
        found.append(
            {
                "targets": [f"{status['podIP']}:{port}"],
                "labels": {
                    "namespace": meta["namespace"],
                    "pod": meta["name"],
                    "revision": labels.get("rollwise.dev/revision", ""),
                    "service": labels.get("app.kubernetes.io/name", ""),
                },
            }
        )
    return found


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            body, code = json.dumps(targets()).encode(), 200
        except OSError as err:
            body, code = str(err).encode(), 502
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No line per request."""


if __name__ == "__main__":
    ThreadingHTTPServer(
        ("127.0.0.1", int(sys.argv[1] if len(sys.argv) > 1 else 8081)), Handler
    ).serve_forever()
