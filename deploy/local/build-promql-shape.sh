#!/usr/bin/env bash
# Build (once per machine) promql-shape: Prometheus' own PromQL parser in a tiny checker that
# prints a query's parse tree as JSON. The query-injection tests use it to prove that a rendered
# gate query has its template's shape. Idempotent; a few minutes cold (Go module proxy).
# Prints the binary's path last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${ROLLWISE_CACHE:-$HOME/.cache/rollwise}
version=$(awk '/^require github.com\/prometheus\/prometheus /{print $3}' "$here/promql-shape/go.mod")
out="$CACHE/bin/promql-shape-$version"
if [ -x "$out/promql-shape" ]; then echo "$out/promql-shape"; exit 0; fi
mkdir -p "$out" "$CACHE/logs"
echo "promql-shape $version: building"
( cd "$here/promql-shape" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go build -trimpath -o "$out/promql-shape.tmp" . ) >>"$CACHE/logs/promql-shape.log" 2>&1 \
  || { tail -n 30 "$CACHE/logs/promql-shape.log" >&2; exit 1; }
mv "$out/promql-shape.tmp" "$out/promql-shape"
echo "$out/promql-shape"
