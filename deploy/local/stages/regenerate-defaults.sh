#!/usr/bin/env bash
# Rewrite kwok-defaults.yaml from the stage files that build-tools.sh copied out of the kwok
# module (~/.cache/rollwise/bin/kwok-<version>/stage). Run after bumping KWOK_VERSION.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../versions.env
source "$here/../versions.env"
CACHE=${ROLLWISE_CACHE:-$HOME/.cache/rollwise}
src="$CACHE/bin/kwok-$KWOK_VERSION/stage"
[ -d "$src" ] || { echo "no $src: run deploy/local/build-tools.sh kwok first" >&2; exit 1; }
files="node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml"
{
  cat <<EOF
# kwok's default stages, copied verbatim from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage/
# (node/fast, node/heartbeat-with-lease, pod/fast): the set kwokctl uses when it is given no
# Stage documents. Any Stage document in a --config file replaces ALL defaults, so the harness
# passes this file next to rollwise-sim.yaml. Regenerate after a kwok bump with
#   deploy/local/stages/regenerate-defaults.sh
EOF
  for f in $files; do
    echo "---"
    echo "# from kustomize/stage/$f"
    cat "$src/$f"
  done
} >"$here/kwok-defaults.yaml"
echo "wrote $here/kwok-defaults.yaml"
