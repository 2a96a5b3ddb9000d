"""`rollwise run`: assemble the operator and hand it to Kopf.

settings -> logging -> one ApiClient (pool = workers) -> adapters -> WorkQueue
         -> ServiceMemories (shared by the Reconciler and the handlers) -> Reconciler
         -> WorkerPool (started by @kopf.on.startup) -> kopf.run(...)

With --leader-elect, a LeaderElector (its own thread) decides whether this process writes:
every write passes the fence (controller/fencing.py), a standby runs no passes, and a lost
lease stops the process (exit code 3) so that it starts afresh as a standby.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from dataclasses import dataclass

import kopf
from kubernetes.client import ApiClient

from rollwise.adapters.cache import ObjectCache, ServiceBodies, prime
from rollwise.adapters.credentials import SecretReader
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import USER_AGENT, KubeApi, connect
from rollwise.adapters.kubernetes import KubernetesAdapter
from rollwise.adapters.providers.registry import MetricProviders
from rollwise.adapters.providers.web import WebProvider
from rollwise.adapters.webhooks import HookMetrics, HookSender
from rollwise.controller import handlers, logs, readiness
from rollwise.controller.fencing import (
    FencedKubeApi,
    LeadershipMetrics,
    only_when_leading,
    take_over,
)
from rollwise.controller.leadership import ElectionConfig, LeaderElector
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.queue import WorkerPool, WorkQueue
from rollwise.controller.reconcile import Reconciler
from rollwise.controller.service_memory import ServiceMemories
from rollwise.controller.settings import OperatorSettings
from rollwise.controller.trains import TrainReconciler, TrainRuntime

log = logging.getLogger("rollwise.controller")

EXIT_LOST_LEASE = 3


@dataclass(frozen=True)
class Operator:
    """The assembled parts, for `serve` and for tests that drive a pass directly."""

    settings: OperatorSettings
    runtime: handlers.Runtime
    reconciler: Reconciler
    metrics: OperatorMetrics
    api: FencedKubeApi
    elector: LeaderElector | None = None


def build(settings: OperatorSettings, metrics: OperatorMetrics | None = None) -> Operator:
    """Connect and assemble everything; nothing runs yet."""
    # One connection more than workers: the elector's renewals never wait for a pass.
    client = connect(settings.kubeconfig, pool_size=settings.workers + 1)
    if settings.leader_elect:
        # Replicas apart in the API server's audit log: which process wrote what.
        client.user_agent = f"{USER_AGENT}/{settings.election_identity}"
    metrics = metrics or OperatorMetrics()
    cache = ObjectCache()
    bodies = ServiceBodies()
    queue = WorkQueue()
    elector = _elector(settings, client, bodies, queue)
    leads = elector.is_leader if elector is not None else lambda: True
    fenced = FencedKubeApi(
        client, leads, LeadershipMetrics(metrics.registry, leads), timeout=settings.api_timeout_s
    )
    kube = KubernetesAdapter(fenced, cache=cache, bodies=bodies)
    metrics.queue_depth.set_function(lambda: len(queue))
    memory = ServiceMemories(queue=queue, bodies=bodies, events=kube.events, metrics=metrics)
    policy = settings.outbound_policy()
    # Credentials from secretRefs: read by name in the namespace of the object naming them (a
    # ClusterMetricGate's in the operator's own), scrubbed from every text shown.
    secrets = SecretReader(fenced, own_namespace=settings.election_namespace)
    reconciler = Reconciler(
        kube,
        MetricProviders.default(
            settings.workers,
            WebProvider(policy, pool_size=settings.workers, secrets=secrets),
            policy=policy,
            secrets=secrets,
        ),
        metrics,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        fresh_observe_s=settings.fresh_observe_s,
        memory=memory,
        hooks=HookSender(
            wake=queue.add,
            leads=leads,
            metrics=HookMetrics(metrics.registry),
            policy=policy,
            secrets=secrets,
        ),
    )
    reconcile = (
        reconciler.reconcile if elector is None else only_when_leading(reconciler.reconcile, leads)
    )
    pool = WorkerPool(queue, reconcile, settings.workers, error_delay=reconciler.backoff)
    train_reconciler = TrainReconciler(
        kube,
        queue,
        backoff_initial_s=settings.backoff_initial_s,
        backoff_max_s=settings.backoff_max_s,
        registry=metrics.registry,
    )
    train_queue = WorkQueue()
    train_reconcile = (
        train_reconciler.reconcile
        if elector is None
        else only_when_leading(train_reconciler.reconcile, leads)
    )
    trains = TrainRuntime(
        queue=train_queue, pool=WorkerPool(train_queue, train_reconcile, 1, name="rollwise-train")
    )
    if elector is not None:
        queue_services = elector.on_started_leading

        def take_over_all() -> None:
            queue_services()
            trains.queue_all()

        elector.on_started_leading = take_over_all
    namespaces = None if settings.clusterwide else settings.namespaces
    runtime = readiness.LeaderRuntime(
        queue=queue,
        pool=pool,
        api_client=client,
        cache=cache,
        bodies=bodies,
        prime=lambda: prime(cache, fenced, namespaces),
        shared_memory=memory,
        elector=elector,
        trains=trains,
    )
    return Operator(
        settings=settings,
        runtime=runtime,
        reconciler=reconciler,
        metrics=metrics,
        api=fenced,
        elector=elector,
    )


def _elector(
    settings: OperatorSettings, client: ApiClient, bodies: ServiceBodies, queue: WorkQueue
) -> LeaderElector | None:
    """The Lease elector (not started), or None without --leader-elect. Its requests time
    out well within the renew deadline, so one hung request leaves room for another try."""
    if not settings.leader_elect:
        return None
    config = ElectionConfig(
        namespace=settings.election_namespace,
        name=settings.lease_name,
        identity=settings.election_identity,
        lease_duration_s=settings.lease_duration_s,
        renew_deadline_s=settings.renew_deadline_s,
        retry_period_s=settings.retry_period_s,
    )
    timeout = min(settings.api_timeout_s, settings.renew_deadline_s / 2)
    return LeaderElector(
        KubeApi(client, timeout=timeout),
        config,
        on_started_leading=lambda: take_over(bodies, queue),
    )


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
        identity=settings.kopf_identity,
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
    if operator.elector is not None:
        operator.elector.on_stopped_leading = lambda: _exit_soon(settings)
        operator.elector.start()
    readiness.serve(settings.metrics_port, operator.runtime, operator.metrics.registry)
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
    if operator.elector is not None:
        step_down(operator, operator.elector)
        if operator.elector.lost:
            log.info("rollwise stopped: the leader lease was lost")
            return EXIT_LOST_LEASE
    log.info("rollwise stopped")
    return 0


def step_down(operator: Operator, elector: LeaderElector) -> None:
    """After Kopf stopped (workers stopped or timed out): close the fence, let writes in
    flight land, then hand the lease over, so a rolling update or a drain fails over at the
    standby's next try rather than after a whole lease duration."""
    elector.stop()
    if not operator.api.drain(timeout=5.0):
        log.warning("writes still in flight after 5s: the lease is left to expire")
        return
    if not elector.lost:
        elector.release()


def _exit_soon(settings: OperatorSettings) -> None:
    """The lease is lost and the fence closed: stop Kopf as SIGTERM does (and so the
    process), and if that hangs, exit anyway. A clean restart as a standby is simpler to
    reason about than a process that goes back to standing by with whatever its passes left
    in memory. (Not Kopf's stop_flag: a thread-side flag that is never raised keeps an
    executor thread waiting, and with it every clean stop.)"""
    os.kill(os.getpid(), signal.SIGTERM)
    grace = settings.renew_deadline_s + 20.0
    timer = threading.Timer(grace, lambda: os._exit(EXIT_LOST_LEASE))
    timer.daemon = True
    timer.start()
