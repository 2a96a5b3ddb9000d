"""What each API field means, as `kubectl explain` shows it.

Keyed `<Model>.<field>` (the Python field name); where two modules hold a model of the same
name, `<module>.<Model>.<field>` (the module's last name: `fleet.MemberStatus.name`) comes
first. `ApiModel` sets these as the pydantic fields' descriptions when a model class is created,
so the JSON schema, the generated CRDs and the generated API reference all carry them. A field
that declares `description=` in its `Field(...)` keeps its own. A unit test
(`tests/unit/api/test_crd_descriptions.py`) fails on any CRD field that has none, so a new field
needs a line here (or a `description=`). Lines for fields another branch adds are harmless
before it lands.
"""

from __future__ import annotations

_STATUS_TIME = "When this happened (RFC 3339)."

SERVICE: dict[str, str] = {
    # ---------------------------------------------------------------- spec
    "ServiceSpec.replicas": "Pods of the service when no rollout is in flight (stable plus "
    "canary while one is). Omit it when an HPA or KEDA scales the service through the scale "
    "subresource.",
    "ServiceSpec.version": "The version being rolled out, shown in status, columns and "
    "history. Default: the first container's image tag (or digest).",
    "ServiceSpec.template": "The pod template to roll out (a core/v1 PodTemplateSpec). Exactly "
    "one of template and workloadRef.",
    "ServiceSpec.workload_ref": "An existing Deployment whose pod template is rolled out "
    "instead of template; rollwise scales it to 0 while it manages the pods.",
    "ServiceSpec.service": "The Services rollwise owns: <name>, <name>-stable and <name>-canary.",
    "ServiceSpec.migration": "A Job run once per version, before the new code gets any traffic. "
    "The rollout waits for it; a failed migration stops the rollout (MigrationFailed).",
    "ServiceSpec.strategy": "How the new revision replaces the stable one.",
    "ServiceSpec.progress_deadline_seconds": "Seconds a step may wait for its pods to become "
    "ready before the rollout fails and rolls back (ProgressDeadlineExceeded).",
    "ServiceSpec.abort_scale_down_delay_seconds": "Seconds the canary's pods stay after traffic "
    "was drained from them on an abort, so requests in flight can finish.",
    "ServiceSpec.notifications": "Transitions told to chat or HTTP receivers; never blocks a "
    "rollout.",
    "TemplateMetadata.labels": "Labels of the pods; rollwise adds its own revision labels.",
    "TemplateMetadata.annotations": "Annotations of the pods.",
    "PodTemplate.metadata": "Labels and annotations of the pods.",
    "PodTemplate.spec": "The pods' core/v1 PodSpec.",
    "PodSpec.containers": "The containers; the first one's image tag is the default version.",
    "Container.name": "The container's name.",
    "Container.image": "The container's image.",
    "ServicePorts.port": "The port the Services listen on.",
    "ServicePorts.target_port": "The pods' port (number or name) the Services send to.",
    "MigrationSpec.template": "The pod template of the migration Job; its pods run to completion.",
    "MigrationSpec.backoff_limit": "Retries of the migration Job's pod before it counts as failed.",
    "MigrationSpec.active_deadline_seconds": "Seconds the migration Job may run before "
    "Kubernetes stops it and the migration fails.",
    "Strategy.canary": "A canary: steps that move traffic, pause and run gates.",
    "CanaryStrategy.steps": "The steps in order; each sets exactly one of setWeight, pause, "
    "analysis, setMirror. The rollout promotes after the last.",
    "CanaryStrategy.analysis": "Gates measured in the background through every step from "
    "startingStep on; any failure rolls back.",
    "CanaryStrategy.traffic_routing": "How traffic is split between stable and canary (exactly "
    "one router; immutable). Default: replicas.",
    "CanaryStrategy.webhooks": "Lifecycle webhooks: HTTP POSTs of the rollout's state at "
    "moments of the rollout; confirm* and preRollout block it.",
    "CanaryStep.set_weight": "Send this percentage of traffic to the canary (0-100).",
    "CanaryStep.pause": "Wait for a duration, or until `kubectl rollwise promote` when none is "
    "given.",
    "CanaryStep.analysis": "Measure these gates now; the step passes when they all pass.",
    "PauseStep.duration": "How long to wait (e.g. 30s, 2m, 1h30m); absent: until promote.",
    "AnalysisStep.gates": "The gates to measure (1-10).",
    "BackgroundAnalysis.gates": "The gates to measure (1-10).",
    "BackgroundAnalysis.starting_step": "The index (from 0) of the first step during which the "
    "gates are measured.",
    "GateRef.name": "The MetricGate in this namespace (or ClusterMetricGate with cluster: true).",
    "GateRef.cluster": "true: name is a ClusterMetricGate.",
    "GateRef.args": "Values of the gate's args, by name; placed into its query as data "
    "(label-escaped), never as query text.",
    "TrafficRouting.replicas": "No router: weight approximated by the canary's share of ready "
    "pods.",
    "TrafficRouting.gateway_api": "A Gateway API HTTPRoute whose backendRefs weights rollwise "
    "sets on <name>-stable and <name>-canary.",
    "TrafficRouting.nginx": "ingress-nginx: rollwise owns a canary Ingress beside yours with the "
    "canary-weight annotation.",
    "TrafficRouting.istio": "An Istio VirtualService whose route weights rollwise sets.",
    "HTTPRouteRef.http_route": "The HTTPRoute's name, in the service's namespace.",
    "HTTPRouteRef.canary_matches": "Requests matching one of these (headers and cookies) go to "
    "the canary whenever its weight is above 0.",
    "IngressRef.ingress": "Your Ingress's name, in the service's namespace.",
    "VirtualServiceRef.virtual_service": "The VirtualService's name, in the service's namespace.",
    "CanaryMatch.headers": "Headers a request must all carry.",
    "CanaryMatch.cookies": "Cookies a request must all carry.",
    "HeaderMatch.name": "The header's name (an RFC 7230 token).",
    "HeaderMatch.value": "The value to match.",
    "HeaderMatch.type": "Exact (default) or RegularExpression.",
    "CookieMatch.name": "The cookie's name.",
    "CookieMatch.value": "The cookie's exact value.",
    "Webhook.name": "A name unique among the webhooks (a DNS label).",
    "Webhook.type": "When it is called: confirmRollout, preRollout, confirmPromotion (these "
    "block), postRollout, rollback, event (these notify).",
    "Webhook.url": "The http(s) URL the payload is POSTed to; redirects are not followed.",
    "Webhook.timeout": "How long one call may take (100ms to 60s).",
    "Webhook.metadata": "Extra values sent in the payload's metadata.",
    "Webhook.headers": "Request headers (an Authorization token from a Secret: valueSecretRef). "
    "The operator's own (Content-Type, User-Agent, Idempotency-Key, X-Rollwise-*) and Host, "
    "Content-Length, Transfer-Encoding, Connection cannot be set.",
    "Notifications.on": "Deprecated spelling of when: YAML 1.1 (kubectl) reads an unquoted "
    '`on:` key as true, so it works only quoted ("on":) or in JSON. Use when.',
    "Notifications.when": "The transitions to tell: Started, StepStarted, Paused, Promoted, "
    "RollingBack, RolledBack, MigrationFailed.",
    "Notifications.receivers": "Where to send them (1-8, names unique).",
    "NotificationReceiver.name": "A name unique among the receivers (a DNS label).",
    "NotificationReceiver.webhook": "A generic HTTP receiver.",
    "NotificationReceiver.slack": "A Slack incoming webhook.",
    "NotificationReceiver.timeout": "How long one call may take (100ms to 60s).",
    "NotificationReceiver.headers": "Request headers (an Authorization token from a Secret: "
    "valueSecretRef), as for webhooks.",
    "NotificationReceiver.max_attempts": "Deliveries tried before giving up (a Warning Event "
    "NotificationFailed).",
    "WebhookReceiver.url": "The http(s) URL the body is POSTed to.",
    "SlackReceiver.url": "The incoming-webhook URL (a credential: keep the manifest where "
    "Secrets are kept).",
    "SlackReceiver.channel": "The channel to post to, when the webhook allows overriding it.",
    "WorkloadRef.api_version": "apps/v1.",
    "WorkloadRef.kind": "Deployment.",
    "WorkloadRef.name": "The Deployment's name, in the service's namespace.",
    # ---------------------------------------------------------------- status
    "ServiceStatus.observed_generation": "The spec generation this status describes.",
    "ServiceStatus.phase": "Pending, Migrating, Progressing, Paused, Promoting, Healthy, "
    "RollingBack, RolledBack, MigrationFailed or Degraded.",
    "ServiceStatus.replicas": "Pods asked for, stable plus canary (the scale subresource's view).",
    "ServiceStatus.selector": "The label selector of the service's pods (for the scale "
    "subresource).",
    "ServiceStatus.message": "What is happening now, in a sentence.",
    "ServiceStatus.stable": "The revision that serves traffic.",
    "ServiceStatus.canary": "The revision being rolled out, while one is.",
    "ServiceStatus.canary_weight": "The percentage of traffic sent to the canary.",
    "ServiceStatus.mirror_percent": "The percentage of stable's requests copied to the canary "
    "(setMirror); 0 when not mirroring.",
    "ServiceStatus.current_step_index": "The index (from 0) of the step in progress; "
    "`kubectl rollwise status` and the Step column show it from 1.",
    "ServiceStatus.current_step": 'The step in progress as people count it, "2/6" (from 1, '
    "of all steps), as the Step column and `kubectl rollwise status` show it.",
    "ServiceStatus.step_started_at": "When the current step began.",
    "ServiceStatus.pause_started_at": "When the current pause began.",
    "ServiceStatus.paused_by_request": "true: paused by `kubectl rollwise pause` until resume.",
    "ServiceStatus.migration": "The migration Job of the latest version.",
    "ServiceStatus.schema_ahead_of_app": "true: a rollback left the database migrated to a "
    "newer version than the stable code.",
    "ServiceStatus.analysis": "The latest measurement of each gate, with its query as sent.",
    "ServiceStatus.abort": "Why the latest rollout was rolled back.",
    "ServiceStatus.scale_down_at": "When the aborted canary's pods are scaled down.",
    "ServiceStatus.conditions": "kstatus-compatible conditions: Ready, Progressing, Degraded, "
    "MigrationComplete, Paused.",
    "ServiceStatus.history": "The last 20 transitions: who or what did what, and when.",
    "ServiceStatus.last_request": "The last manual request acted on.",
    "ServiceStatus.invalid_request": "Why the last request annotation was refused.",
    "ServiceStatus.webhooks": "The last 32 webhook calls and notifications and their delivery.",
    "RevisionStatus.revision": "The pod template's hash: ReplicaSet <name>-<revision>.",
    "RevisionStatus.version": "The revision's version.",
    "RevisionStatus.replicas": "Pods the revision has.",
    "RevisionStatus.ready_replicas": "Of those, the ready ones.",
    "MigrationStatus.revision": "The revision the migration belongs to.",
    "MigrationStatus.version": "The version migrated to.",
    "MigrationStatus.job": "The Job's name.",
    "MigrationStatus.phase": "Running, Succeeded or Failed.",
    "MigrationStatus.attempts": "Jobs created for this revision (retry creates another).",
    "MigrationStatus.started_at": "When the Job started.",
    "MigrationStatus.finished_at": "When the Job finished.",
    "MigrationStatus.message": "Why it failed, from the Job and its pods.",
    "GateResult.gate": "The gate's name.",
    "GateResult.step": "The step (from 0) that measured it; absent for background analysis.",
    "GateResult.background": "true: measured by the background analysis.",
    "GateResult.query": "The query exactly as it was sent.",
    "GateResult.value": "The latest value.",
    "GateResult.verdict": "Passed, Failed, Inconclusive or Error.",
    "GateResult.measured_at": "When the latest value was measured.",
    "GateResult.measurements": "Measurements so far.",
    "GateResult.failures": "Failed measurements so far.",
    "GateResult.inconclusive": "Measurements without data so far.",
    "GateResult.errors": "Measurements that could not be taken so far.",
    "GateResult.consecutive_errors": "Errors in a row.",
    "GateResult.message": "What the latest measurement said.",
    "GateResult.started_at": "When this gate's tally began.",
    "GateResult.job": "A job gate's latest measurement Job.",
    "AbortStatus.reason": "Why: a reason such as GateFailed or ProgressDeadlineExceeded.",
    "AbortStatus.message": "What failed, with the measured value where there is one.",
    "AbortStatus.at": _STATUS_TIME,
    "AbortStatus.revision": "The revision rolled back.",
    "Condition.type": "Ready, Progressing, Degraded, MigrationComplete or Paused.",
    "Condition.status": "True, False or Unknown.",
    "Condition.reason": "A CamelCase reason.",
    "Condition.message": "A sentence for people.",
    "Condition.observed_generation": "The spec generation the condition was set for.",
    "Condition.last_transition_time": "When status last changed.",
    "HistoryEntry.at": _STATUS_TIME,
    "HistoryEntry.event": "What happened (a reason, e.g. StepCompleted, Promoted).",
    "HistoryEntry.actor": "Who did it: rollwise, or a person through the plugin.",
    "HistoryEntry.revision": "The revision concerned.",
    "HistoryEntry.step": "The step (from 0).",
    "HistoryEntry.weight": "The canary weight after it.",
    "HistoryEntry.message": "Details.",
    "RequestAck.id": "The request's id; never acted on twice.",
    "RequestAck.action": "promote, abort, retry, pause or resume.",
    "RequestAck.by": "Who asked.",
    "RequestAck.at": "When it was acted on.",
    "RequestAck.result": "What the operator did.",
    "WebhookStatus.id": "The payload's checksum, the same on every attempt.",
    "WebhookStatus.name": "The webhook's or receiver's name.",
    "WebhookStatus.type": "The webhook type, or notification.",
    "WebhookStatus.transition": "The transition told.",
    "WebhookStatus.revision": "The revision concerned.",
    "WebhookStatus.version": "Its version.",
    "WebhookStatus.phase": "The phase when it was decided.",
    "WebhookStatus.step": "The step (from 0) when it was decided.",
    "WebhookStatus.weight": "The canary weight when it was decided.",
    "WebhookStatus.message": "The payload's message.",
    "WebhookStatus.created_at": "When it was decided.",
    "WebhookStatus.attempts": "Calls made so far.",
    "WebhookStatus.result": "Pending, Succeeded or Failed.",
    "WebhookStatus.code": "The last HTTP status received.",
    "WebhookStatus.error": "The last failure, for people.",
    "WebhookStatus.last_attempt_at": "When it was last called.",
    "WebhookStatus.next_attempt_at": "When it is called next.",
}

GATES: dict[str, str] = {
    "MetricGateSpec.args": "Arguments whose values each ProgressiveService's gate reference "
    "gives; used as {{args.NAME}}.",
    "MetricGateSpec.interval": "Time between measurements (e.g. 30s).",
    "MetricGateSpec.count": "Measurements to take; 0: until the step ends (background: the "
    "rollout).",
    "MetricGateSpec.failure_limit": "Failed measurements tolerated; one more fails the gate.",
    "MetricGateSpec.inconclusive_limit": "Measurements without data tolerated; one more holds "
    "the rollout as Inconclusive (no data never passes).",
    "MetricGateSpec.consecutive_error_limit": "Errors in a row tolerated (provider "
    "unreachable, bad query); one more fails the gate.",
    "MetricGateSpec.provider": "How to measure: exactly one of prometheus, job, web.",
    "MetricGateSpec.threshold_range": "What passes: min <= value <= max (prometheus and web "
    "gates).",
    "GateArg.name": "The argument's name, used as {{args.NAME}}.",
    "GateArg.default": "Its value when a gate reference gives none.",
    "MetricProvider.prometheus": "A PromQL query against a Prometheus server.",
    "MetricProvider.job": "A Job per measurement.",
    "MetricProvider.web": "An HTTP call answering JSON.",
    "PrometheusProvider.address": "The Prometheus server's http(s) URL.",
    "PrometheusProvider.query": "A PromQL query returning one value. Placeholders: "
    "{{args.NAME}}, {{canary.revision}}, {{stable.revision}}, {{namespace}}, {{service}}.",
    "PrometheusProvider.timeout": "How long one query may take.",
    "BasicAuth.username": "The user name sent with HTTP basic authentication (not a secret; "
    "the password comes from passwordSecretRef).",
    "BlueGreenStrategy.pre_promotion_analysis": "Gates run on the preview (the new revision at "
    "full size behind <name>-canary) before the switch; a failure rolls back, no user traffic "
    "having reached it.",
    "BlueGreenStrategy.post_promotion_analysis": "Gates run after the switch; a failure switches "
    "the active Service (or route) back to the old revision in one write.",
    "BlueGreenStrategy.webhooks": "Lifecycle webhooks, as for canary (confirmRollout, "
    "preRollout, confirmPromotion, postRollout, rollback, event).",
    "JobProvider.template": "The Job's pod template; placeholders are substituted in "
    "env[].value only.",
    "JobProvider.backoff_limit": "Retries of the Job's pod before the measurement fails.",
    "JobProvider.active_deadline_seconds": "Seconds one Job may run.",
    "JobProvider.ttl_seconds_after_finished": "Seconds a finished Job (and its pods' logs) is "
    "kept.",
    "WebProvider.url": "The http(s) URL (placeholders percent-encoded); allowed by the "
    "operator's --web-gate-allow for namespaced gates.",
    "WebProvider.method": "GET (default) or POST.",
    "WebProvider.headers": "Request headers, sent as written.",
    "WebProvider.body": "The POST body (placeholders JSON-string-escaped).",
    "WebProvider.json_path": "A JSONPath picking the value out of the answer.",
    "WebProvider.timeout": "How long one call may take.",
    "WebHeader.name": "The header's name.",
    "WebHeader.value": "The header's value, as written (not a credential: anyone who reads "
    "the object reads it). Exactly one of value, valueSecretRef.",
    "WebHeader.value_secret_ref": "The header's value from a Secret in the namespace of the "
    "object naming it (a token); it never appears in status, Events or logs.",
    "ThresholdRange.min": "The lowest passing value.",
    "ThresholdRange.max": "The highest passing value.",
}

TRAIN: dict[str, str] = {
    "TrainSpec.members": "The ProgressiveServices of the train (in this namespace) and their "
    "versions.",
    "TrainSpec.max_concurrent": "Members rolling out at once.",
    "TrainSpec.freeze_windows": "Times in which no member starts a rollout.",
    "TrainSpec.on_failure": "What a failed member does to the rest.",
    "OnFailure.policy": "Halt: members not started are held, promoted ones stay. "
    "RollbackPromoted: promoted ones go back too, last promoted first.",
    "MemberSpec.service": "The ProgressiveService's name.",
    "MemberSpec.version": "The version the train releases to it.",
    "MemberSpec.image": "The image set on its container.",
    "MemberSpec.env": "Environment variables set on its container.",
    "EnvVar.name": "The variable's name.",
    "EnvVar.value": "Its value.",
    "FreezeWindow.name": "A name for messages.",
    "FreezeWindow.duration": "How long a scheduled window stays open.",
    "FreezeWindow.start": "A one-off window's start (RFC 3339 with a zone).",
    "FreezeWindow.end": "A one-off window's end (RFC 3339 with a zone).",
    "TrainStatus.observed_generation": "The spec generation this status describes.",
    "TrainStatus.phase": "Pending, Progressing, Frozen, Halted, RollingBack, Succeeded or Failed.",
    "TrainStatus.message": "What is happening now, in a sentence.",
    "TrainStatus.members": "Each member's part in this run.",
    "TrainStatus.frozen_until": "When the freeze window holding the train ends.",
    "TrainStatus.failure": "What failed the train.",
    "TrainStatus.conditions": "kstatus-compatible conditions.",
    "TrainStatus.history": "The last 20 transitions.",
    "TrainStatus.last_request": "The last manual request acted on.",
    "TrainStatus.invalid_request": "Why the last request annotation was refused.",
    "train.MemberStatus.service": "The ProgressiveService's name.",
    "train.MemberStatus.phase": "Waiting, Progressing, Promoted, Unchanged, Failed, Halted or "
    "RollingBack.",
    "train.MemberStatus.version": "The train's version for it.",
    "train.MemberStatus.previous_version": "Its stable version when the train started it.",
    "train.MemberStatus.started_at": "When the train started it.",
    "train.MemberStatus.finished_at": "When its part ended.",
    "train.MemberStatus.promoted_index": "Its order of promotion in this run (from 1); a rollback "
    "goes in reverse.",
    "train.MemberStatus.release": "What it runs now per the train (absent: its own spec).",
    "train.MemberStatus.previous": "What a rollback restores.",
    "train.MemberStatus.message": "Details.",
    "Release.version": "The version.",
    "Release.image": "The image of the container.",
    "Release.container": "The container image and env apply to.",
    "Release.env": "Environment variables of the container.",
    "TrainFailure.service": "The member that failed.",
    "TrainFailure.reason": "Why, as a reason.",
    "TrainFailure.message": "Why, in a sentence.",
    "TrainFailure.at": _STATUS_TIME,
    "TrainFailure.by": "Who: rollwise, or a person through the plugin.",
    "TrainHistoryEntry.at": _STATUS_TIME,
    "TrainHistoryEntry.event": "What happened.",
    "TrainHistoryEntry.actor": "Who did it.",
    "TrainHistoryEntry.service": "The member concerned.",
    "TrainHistoryEntry.message": "Details.",
}

FLEET: dict[str, str] = {
    "FleetRolloutSpec.target": "The ProgressiveService (same namespace and name in every "
    "member cluster).",
    "FleetRolloutSpec.version": "The version to roll out to every member.",
    "FleetRolloutSpec.clusters": "The member clusters.",
    "FleetRolloutSpec.waves": "Groups of clusters rolled one after another.",
    "FleetRolloutSpec.on_failure": "Halt: later waves do not get the version. "
    "RollbackPromoted: members that took it go back too.",
    "TargetRef.namespace": "The ProgressiveService's namespace in each member.",
    "FleetCluster.name": "The cluster's name (a DNS label).",
    "FleetCluster.labels": "Labels waves select clusters by.",
    "fleet.SecretKeyRef.name": "The Secret's name.",
    "fleet.SecretKeyRef.key": "The key holding the kubeconfig.",
    "Wave.name": "The wave's name (a DNS label).",
    "Wave.clusters": "Clusters of the wave by name.",
    "ContainerPatch.name": "The container's name.",
    "ContainerPatch.image": "The image to set.",
    "ContainerPatch.env": "Environment variables to set.",
    "EnvVar.name": "The variable's name.",
    "EnvVar.value": "Its value.",
    "FleetRolloutStatus.observed_generation": "The spec generation this status describes.",
    "FleetRolloutStatus.phase": "Pending, Progressing, Soaking, WaitingForApproval, Succeeded, "
    "Failed, RollingBack, RolledBack or Invalid.",
    "FleetRolloutStatus.current_wave": "The wave in progress.",
    "FleetRolloutStatus.message": "What is happening now, in a sentence.",
    "FleetRolloutStatus.waves": "Each wave and its clusters.",
    "FleetRolloutStatus.conditions": "kstatus-compatible conditions.",
    "FleetRolloutStatus.history": "The last 20 transitions.",
    "FleetRolloutStatus.last_request": "The last manual request acted on.",
    "FleetRolloutStatus.started_at": "When the rollout of this version began.",
    "FleetRolloutStatus.finished_at": "When it ended.",
    "WaveStatus.name": "The wave's name.",
    "WaveStatus.phase": "Pending, WaitingForApproval, Progressing, Soaking, Succeeded, Failed "
    "or Halted.",
    "WaveStatus.started_at": "When it started.",
    "WaveStatus.soak_until": "When its soak ends.",
    "WaveStatus.completed_at": "When it completed.",
    "WaveStatus.approved_by": "Who approved it.",
    "WaveStatus.clusters": "Its member clusters.",
    "fleet.MemberStatus.name": "The cluster's name.",
    "fleet.MemberStatus.region": "The cluster's region label.",
    "fleet.MemberStatus.phase": "Pending, Patching, Progressing, Succeeded, Failed, Skipped, "
    "RollingBack or RolledBack.",
    "fleet.MemberStatus.canary_version": "The version the member is rolling out.",
    "fleet.MemberStatus.previous": "What the member's spec said before the hub patched it.",
    "fleet.MemberStatus.previous_version": "The member's version before the hub patched it.",
    "fleet.MemberStatus.patched_generation": "The member's generation after the hub's patch.",
    "fleet.MemberStatus.patched_at": "When the hub patched it.",
    "fleet.MemberStatus.reason": "Why it failed, as a reason.",
    "fleet.MemberStatus.message": "Details.",
    "fleet.MemberStatus.reachable": "Whether the hub reached its apiserver last time.",
    "fleet.MemberStatus.last_seen": "When the hub last read it.",
    "fleet.MemberStatus.unreachable_since": "Since when the hub cannot reach it.",
    "PreviousSpec.version": "The version it declared.",
    "PreviousSpec.containers": "The containers' image and env it declared.",
    "FleetHistoryEntry.at": _STATUS_TIME,
    "FleetHistoryEntry.event": "What happened.",
    "FleetHistoryEntry.actor": "Who did it.",
    "FleetHistoryEntry.wave": "The wave concerned.",
    "FleetHistoryEntry.cluster": "The cluster concerned.",
    "FleetHistoryEntry.message": "Details.",
}

# Fields of this round's other branches (security, semantics, beyond), written here so the
# description test holds when they land.
INCOMING: dict[str, str] = {
    "GateArg.regex": "true: the value is used as a regular expression inside =~ and !~ "
    "matchers (it may widen the match); false (default): it matches itself only.",
    "secrets.SecretKeyRef.name": "The Secret's name, in the namespace of the object naming it.",
    "secrets.SecretKeyRef.key": "The key whose value is used.",
    "RollbackWindow.revisions": "How many of the latest stable revisions a return skips steps "
    "and analysis for.",
    "MigrationSpec.concurrency_policy": "Wait (default) or Replace: what a newer migration does "
    "while an older one's Job still runs.",
    "FullPromotion.by": "Who promoted fully.",
    "FullPromotion.at": "When.",
    "FullPromotion.from_step": "The step (from 0) it was promoted from.",
    "FullPromotion.from_phase": "The phase it was promoted from.",
    "ServiceStatus.full_promotion": "Set by `kubectl rollwise promote --full` of the current "
    "canary.",
    "ServiceStatus.route_weight": "The canary weight on the route object as the last pass read "
    "it (absent under the replicas router).",
    "ServiceStatus.previous_stables": "The revisions that were stable before the current one, "
    "newest first.",
    "ServiceStatus.adaptive": "Where an adaptive step stands.",
    "InfluxDBProvider.address": "The InfluxDB server's http(s) URL.",
    "InfluxDBProvider.database": "The database to query.",
    "InfluxDBProvider.query": "An InfluxQL query selecting one field of one series.",
    "InfluxDBProvider.timeout": "How long one query may take.",
    "GraphiteProvider.address": "The Graphite server's http(s) URL.",
    "GraphiteProvider.target": "A Graphite target returning one series.",
    "GraphiteProvider.timeout": "How long one query may take.",
    "MetricProvider.influxdb": "An InfluxQL query against InfluxDB 1.x.",
    "MetricProvider.graphite": "A target of Graphite's render API.",
    "MetricGateSpec.comparison": "Compare the canary's samples with stable's instead of a "
    "threshold.",
    "AdaptiveStep.gates": "The gates measured at each weight (1-10).",
    "CanaryStep.adaptive": "Raise the weight from minWeight to maxWeight as fast as the gates "
    "allow.",
    "AdaptiveStatus.step": "The adaptive step (from 0).",
    "AdaptiveStatus.decisions": "Decisions so far.",
    "AdaptiveStatus.holds": "Decisions that held the weight so far.",
    "AdaptiveStatus.last_decision": "raise, hold or complete.",
    "AdaptiveStatus.last_margin": "The smallest gate margin at the last decision (0 to 1).",
    "AdaptiveStatus.last_decision_at": "When the last decision was made.",
    "GateResult.comparison": "A comparison gate's test and its two samples.",
    "ComparisonResult.test": "The statistical test.",
    "ComparisonResult.canary": "The canary's sample.",
    "ComparisonResult.stable": "Stable's sample.",
    "ComparisonResult.u": "The test statistic U.",
    "ComparisonResult.p": "The p-value.",
    "ComparisonResult.effect": "The probability that a canary sample is worse than a stable one.",
    "ComparisonResult.method": "exact or normal.",
    "ComparisonResult.alpha": "The significance level.",
    "ComparisonResult.worse": "higher or lower: which direction is worse.",
    "SampleSummary.n": "Samples.",
    "SampleSummary.median": "Their median.",
    "SampleSummary.mean": "Their mean.",
}

# The skeleton branch names the fleet's member status FleetMemberStatus.
FLEET |= {
    key.replace("fleet.MemberStatus.", "FleetMemberStatus."): text
    for key, text in FLEET.items()
    if key.startswith("fleet.MemberStatus.")
}

FIELD_DOCS: dict[str, str] = {**SERVICE, **GATES, **TRAIN, **FLEET, **INCOMING}


def description_of(module: str, model: str, field: str) -> str | None:
    """The description of `model.field` (defined in `module`), if one is written here."""
    short = module.rsplit(".", 1)[-1]
    return FIELD_DOCS.get(f"{short}.{model}.{field}") or FIELD_DOCS.get(f"{model}.{field}")
