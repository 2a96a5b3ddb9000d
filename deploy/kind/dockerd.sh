#!/usr/bin/env bash
# The kind tier's private Docker daemon: Debian's dockerd on its own socket, data-root and
# exec-root under ~/.cache/rollwise/kind/, started and stopped by its pid. It never touches a
# daemon the machine already runs (that one has /var/run/docker.sock; we use our own).
#
#   deploy/kind/dockerd.sh start    start it unless it runs; record the host's state first
#   deploy/kind/dockerd.sh stop     delete kind clusters and node containers, stop it by pid,
#                                   undo what it and kubelet changed on the host
#   deploy/kind/dockerd.sh status   exit 0 if it runs; print what it left on the host
#
# What dockerd and kind change on the host, and stop restores: net.ipv4.ip_forward, the
# iptables FORWARD policy (DROP), the DOCKER* chains and their jump rules, the docker0 and
# kind bridges, the netns mount under the exec-root; kubelet in the privileged node container
# writes vm.overcommit_memory, kernel.panic, kernel.panic_on_oops on the whole machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
W=$KIND_WORK
PIDFILE=$W/dockerd.pid
STATE=$W/host-state
SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops"

running() { local p; p=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$p" ] && [ -e "/proc/$p" ]; }

# Where privileged containers fail (root without CAP_SYS_RESOURCE in its bounding set, as on
# these VMs), dockerd's default runtime is a runc wrapper that drops that capability.
needs_runc_wrapper() {
  [ $(( 0x$(awk '/^CapBnd/{print $2}' /proc/self/status) >> 24 & 1 )) -eq 0 ]
}

record_host_state() {
  # Recorded once per daemon lifetime: a second start must not record the changed state.
  [ -f "$STATE/sysctl" ] && return
  mkdir -p "$STATE"
  for s in $SYSCTLS; do echo "$s=$(sysctl -n "$s")"; done >"$STATE/sysctl.tmp"
  iptables -S FORWARD | awk '$1=="-P"{print $3}' >"$STATE/forward-policy"
  iptables-save >"$STATE/iptables-before" 2>/dev/null || true
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort >"$STATE/links-before"
  mv "$STATE/sysctl.tmp" "$STATE/sysctl"
}

start() {
  if [ -n "${KIND_DOCKER_HOST:-}" ]; then echo "using $KIND_DOCKER_HOST"; return; fi
  if running; then echo "dockerd running (pid $(cat "$PIDFILE"))"; return; fi
  command -v dockerd >/dev/null || { echo "no dockerd: run deploy/kind/build.sh host" >&2; exit 1; }
  record_host_state
  mkdir -p "$W/docker" "$W/dx"
  local runtime=()
  if needs_runc_wrapper; then
    install -m 0755 "$here/runc-nosysres" "$W/runc-nosysres"
    runtime=(--add-runtime "runc-nosysres=$W/runc-nosysres" --default-runtime runc-nosysres)
  fi
  # setsid: the daemon outlives the shell that started it and gets no terminal signals.
  setsid /usr/sbin/dockerd --host "$DOCKER_HOST" --data-root "$W/docker" --exec-root "$W/dx" \
    --pidfile "$PIDFILE" --storage-driver overlay2 --log-level warn "${runtime[@]}" \
    >>"$W/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer in 30s; see $W/dockerd.log" >&2; exit 1; }
  echo "dockerd started (pid $(cat "$PIDFILE"), ${runtime:+runc wrapper, }socket $DOCKER_HOST)"
}

stop() {
  if [ -n "${KIND_DOCKER_HOST:-}" ]; then return; fi
  if running; then
    local c p
    for c in $("$W/bin/kind" get clusters 2>/dev/null); do "$W/bin/kind" delete cluster --name "$c" >/dev/null 2>&1 || true; done
    for c in $(docker ps -aq --filter label=io.x-k8s.kind.cluster 2>/dev/null); do docker rm -f -v "$c" >/dev/null 2>&1 || true; done
    docker network rm kind >/dev/null 2>&1 || true
    p=$(cat "$PIDFILE")
    kill "$p"
    for _ in $(seq 1 60); do [ -e "/proc/$p" ] || break; sleep 0.5; done
    if [ -e "/proc/$p" ]; then kill -9 "$p"; fi
  fi
  restore_host_state
}

restore_host_state() {
  local r c s
  for r in "-j DOCKER-USER" "-j DOCKER-ISOLATION-STAGE-1" \
    "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" "-o docker0 -j DOCKER" \
    "-i docker0 ! -o docker0 -j ACCEPT" "-i docker0 -o docker0 -j ACCEPT"; do
    # shellcheck disable=SC2086
    while iptables -D FORWARD $r 2>/dev/null; do :; done
  done
  # Rules for the kind network's bridge (br-<id>), whatever its id was.
  # (|| true: a pipeline whose grep finds nothing is not an error here.)
  { iptables -S FORWARD 2>/dev/null | grep -E -- '(-i|-o) br-[0-9a-f]{12}' | sed 's/^-A/-D/' |
    while read -r r; do eval "iptables $r" 2>/dev/null || true; done; } || true
  { iptables -t nat -S POSTROUTING 2>/dev/null | grep -E -- 'MASQUERADE' |
    grep -E -- '(docker0|br-[0-9a-f]{12}|172\.1[6-9]\.|172\.2[0-9]\.|172\.3[01]\.)' | sed 's/^-A/-D/' |
    while read -r r; do eval "iptables -t nat $r" 2>/dev/null || true; done; } || true
  iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j DOCKER 2>/dev/null || true
  iptables -t nat -D OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER 2>/dev/null || true
  for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
    iptables -F "$c" 2>/dev/null || true; iptables -X "$c" 2>/dev/null || true
  done
  iptables -t nat -F DOCKER 2>/dev/null || true; iptables -t nat -X DOCKER 2>/dev/null || true
  if [ -f "$STATE/forward-policy" ]; then iptables -P FORWARD "$(cat "$STATE/forward-policy")"; fi
  ip link del docker0 2>/dev/null || true
  for c in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(br-[0-9a-f]{12}|veth)' || true); do
    grep -qx "$c" "$STATE/links-before" 2>/dev/null || ip link del "$c" 2>/dev/null || true
  done
  { grep -o " $W/[^ ]*" /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; } || true
  if [ -f "$STATE/sysctl" ]; then
    while IFS='=' read -r s v; do sysctl -qw "$s=$v" || true; done <"$STATE/sysctl"
    rm -rf "$STATE"
  fi
}

# What this daemon left on the host: one line per leftover, nothing when clean.
leftovers() {
  running && echo "dockerd pid $(cat "$PIDFILE") (socket $DOCKER_HOST)"
  iptables -S 2>/dev/null | grep -E '^-N DOCKER' | sed 's/^/iptables chain: /' || true
  ip -o link show docker0 >/dev/null 2>&1 && echo "link docker0"
  grep -o " $W/[^ ]*" /proc/mounts | sed 's/^ /mount: /' || true
  if [ -f "$STATE/sysctl" ]; then echo "host state recorded but not restored: $STATE"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) leftovers; running ;;
  leftovers) leftovers ;;
  *) echo "usage: $0 start|stop|status|leftovers" >&2; exit 2 ;;
esac
