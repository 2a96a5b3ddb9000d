# Sourced by the kind tier's scripts: the pinned versions (deploy/local/versions.env), where the
# kind tier lives, and the private docker daemon's socket. A variable already set in the
# environment wins over versions.env, so image names can be pointed at upstream images.
_kind_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
while IFS='=' read -r _k _v; do
  case "$_k" in ''|\#*) continue ;; esac
  [ -n "${!_k+x}" ] || printf -v "$_k" '%s' "$_v"
  export "${_k?}"
done < "$_kind_here/../local/versions.env"
unset _k _v
CACHE=${ROLLWISE_CACHE:-$HOME/.cache/rollwise}
KIND_WORK=${KIND_WORK:-$CACHE/kind}
# The private daemon (deploy/kind/dockerd.sh); KIND_DOCKER_HOST set to an existing daemon's
# socket (a user's Docker) makes the scripts use that one and start nothing.
export DOCKER_HOST=${KIND_DOCKER_HOST:-unix://$KIND_WORK/docker.sock}
export DOCKER_BUILDKIT=0
export CACHE KIND_WORK
