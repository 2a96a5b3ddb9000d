{{/* Chart name, overridable. */}}
{{- define "rollwise.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every object. The release name alone when it already contains the chart name,
so `helm install rollwise` gives objects named `rollwise`, as the kustomize base does.
*/}}
{{- define "rollwise.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the operator's pod; never change them on upgrade. */}}
{{- define "rollwise.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollwise.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "rollwise.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rollwise.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: rollwise
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollwise.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollwise.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rollwise.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
"true" when the operator watches only listed namespaces, which also selects namespaced RBAC.
rbac.scope=namespaced without namespaces would leave the operator with no permissions at all.
*/}}
{{- define "rollwise.namespaced" -}}
{{- if .Values.watchNamespaces }}true
{{- else if eq .Values.rbac.scope "namespaced" }}
{{- fail "rbac.scope=namespaced needs watchNamespaces: the namespaces to watch and grant a Role in" }}
{{- end }}
{{- end }}

{{/*
Rules the operator needs in every namespace it watches: exactly the API calls it makes.
No Secrets, no wildcards. Shared by the ClusterRole (cluster scope) and each Role.
*/}}
{{- define "rollwise.namespacedRules" -}}
# The custom resource; its status is a subresource with its own rule.
- apiGroups: ["rollwise.dev"]
  resources: ["progressiveservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rollwise.dev"]
  resources: ["progressiveservices/status"]
  verbs: ["get", "patch", "update"]
# ReleaseTrains: read and watched; only their status is written (never a spec).
- apiGroups: ["rollwise.dev"]
  resources: ["releasetrains"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rollwise.dev"]
  resources: ["releasetrains/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["rollwise.dev"]
  resources: ["metricgates"]
  verbs: ["get", "list", "watch"]
# One ReplicaSet per revision, owned by the ProgressiveService.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# A workloadRef's Deployment: read, labelled, and scaled through its scale subresource only.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
# <name>, <name>-stable and <name>-canary.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Readiness and failure reasons of canary pods; read only.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# The log tail of a job gate's failed measurement pod, for the verdict message.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Run-once migration Jobs.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Traffic routers: the user owns the route objects, the operator only moves weights...
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "patch", "update"]
# ...except nginx, where the operator owns the canary Ingress it creates beside the user's.
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# ...and the TraefikService <name>-mirror it owns for mirrorWith: TraefikService (never
# deleted by the operator: the garbage collector takes it with the ProgressiveService).
- apiGroups: ["traefik.io"]
  resources: ["traefikservices"]
  verbs: ["get", "create", "patch"]
{{- end }}

{{/* Cluster-scoped reads, needed in both modes. */}}
{{- define "rollwise.clusterScopedRules" -}}
- apiGroups: ["rollwise.dev"]
  resources: ["clustermetricgates"]
  verbs: ["get", "list", "watch"]
# Kopf discovers the resources it watches through their CRDs.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
The Lease the replicas elect a leader with, in the release namespace. Fails on settings the
operator would refuse at start: several replicas without election (both would write), or a
renew deadline that does not leave the leader time to stop before a standby may take over.
*/}}
{{- define "rollwise.leaseName" -}}
{{- $le := .Values.leaderElection }}
{{- if and (gt (int .Values.replicas) 1) (not $le.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled: without it every replica writes" }}
{{- end }}
{{- if and $le.enabled (ge (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) }}
{{- fail "leaderElection.renewDeadlineSeconds must be below leaseDurationSeconds" }}
{{- end }}
{{- printf "%s-leader" (include "rollwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fleet hub (`rollwise run --fleet-hub`): its own name, labels and ServiceAccount. Its pods
never carry the operator's selector labels, so the operator's Service and PodDisruptionBudget
never select them.
*/}}
{{- define "rollwise.fleetHub.fullname" -}}
{{- printf "%s-fleet-hub" (include "rollwise.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollwise.fleetHub.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-fleet-hub" (include "rollwise.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollwise.fleetHub.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rollwise.fleetHub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: fleet-hub
app.kubernetes.io/part-of: rollwise
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollwise.fleetHub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "rollwise.fleetHub.fullname" . }}
{{- else }}
{{- default "default" .Values.fleetHub.serviceAccountName }}
{{- end }}
{{- end }}

{{/*
The hub's Lease name; fails on settings the hub would refuse or that would let two hubs write:
no namespaces (the hub reads member Secrets by name in the FleetRollouts' namespaces, never
cluster-wide), several replicas without election, a renew deadline at or above the duration.
*/}}
{{- define "rollwise.fleetHub.leaseName" -}}
{{- $le := .Values.leaderElection }}
{{- if not .Values.fleetHub.namespaces }}
{{- fail "fleetHub.enabled needs fleetHub.namespaces: the namespaces holding FleetRollouts and their member kubeconfig Secrets" }}
{{- end }}
{{- if and (gt (int .Values.fleetHub.replicas) 1) (not $le.enabled) }}
{{- fail "fleetHub.replicas > 1 needs leaderElection.enabled: without it every hub writes" }}
{{- end }}
{{- if and $le.enabled (ge (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) }}
{{- fail "leaderElection.renewDeadlineSeconds must be below leaseDurationSeconds" }}
{{- end }}
{{- include "rollwise.fleetHub.fullname" . }}
{{- end }}
