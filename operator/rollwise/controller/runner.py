"""`rollwise run`: assemble the operator and hand it to Kopf.

settings -> logging -> one ApiClient (pool = workers) -> adapters -> WorkQueue
         -> ServiceMemories (shared by the Reconciler and the handlers) -> Reconciler
         -> WorkerPool (started by @kopf.on.startup) -> kopf.run(...)
"""

from __future__ import annotations

import argparse
import logging
import threading
from dataclasses import dataclass

import kopf

from rollwise.adapters.cache import ObjectCache, ServiceBodies, prime
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import KubeApi, connect
from rollwise.adapters.kubernetes import KubernetesAdapter
from rollwise.adapters.prometheus import PrometheusProvider
from rollwise.controller import handlers, logs
from rollwise.controller.metrics import OperatorMetrics, serve
from rollwise.controller.queue import WorkerPool, WorkQueue
from rollwise.controller.reconcile import Reconciler
from rollwise.controller.service_memory import ServiceMemories
from rollwise.controller.settings import OperatorSettings

log = logging.getLogger("rollwise.controller")


@dataclass(frozen=True)
class Operator:
    """The assembled parts, for `serve` and for tests that drive a pass directly."""

    settings: OperatorSettings
    runtime: handlers.Runtime
    reconciler: Reconciler
    metrics: OperatorMetrics


def build(settings: OperatorSettings, metrics: OperatorMetrics | None = None) -> Operator:
    """Connect and assemble everything; nothing runs yet."""
    client = connect(settings.kubeconfig, pool_size=settings.workers)
    metrics = metrics or OperatorMetrics()
    cache = ObjectCache()
    bodies = ServiceBodies()
    kube = KubernetesAdapter(
        KubeApi(client, timeout=settings.api_timeout_s), cache=cache, bodies=bodies
    )
    queue = WorkQueue()
    metrics.queue_depth.set_function(lambda: len(queue))
    memory = ServiceMemories(queue=queue, bodies=bodies, events=kube.events, metrics=metrics)
    reconciler = Reconciler(
        kube,
        PrometheusProvider(pool_size=settings.workers),
        metrics,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        fresh_observe_s=settings.fresh_observe_s,
        memory=memory,
    )
    pool = WorkerPool(queue, reconciler.reconcile, settings.workers, error_delay=reconciler.backoff)
    api = kube.api
    namespaces = None if settings.clusterwide else settings.namespaces
    runtime = handlers.Runtime(
        queue=queue,
        pool=pool,
        api_client=client,
        cache=cache,
        bodies=bodies,
        prime=lambda: prime(cache, api, namespaces),
        shared_memory=memory,
    )
    return Operator(settings=settings, runtime=runtime, reconciler=reconciler, metrics=metrics)


def serve_operator(
    operator: Operator,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run Kopf with rollwise's handlers until SIGTERM/SIGINT or `stop_flag` (in-process use)."""
    settings = operator.settings
    kopf.run(
        registry=handlers.registry,
        settings=settings.kopf_settings(),
        memo=operator.runtime,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def run_operator(args: argparse.Namespace) -> int:
    """The `rollwise run` command; the process exit code."""
    try:
        settings = OperatorSettings.from_args(args)
    except ValueError as err:
        print(f"rollwise run: {err}")
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        operator = build(settings)
    except AdapterError as err:
        log.error("cannot start: %s", err)
        return 1
    serve(settings.metrics_port)
    log.info(
        "rollwise starting: %s, %d workers, metrics :%s, health :%s",
        "all namespaces"
        if settings.clusterwide
        else f"namespaces {', '.join(settings.namespaces)}",
        settings.workers,
        settings.metrics_port or "off",
        settings.health_port or "off",
    )
    serve_operator(operator)
    log.info("rollwise stopped")
    return 0
