#!/usr/bin/env bash
# Time from starting `gateway serve -f config/demo.yaml` (at zero replicas) to the first successful
# V1 predict: gateway start-up + activator + replica process start + model load + forwarding.
# Usage: bash loadtests/serve_to_predict.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
body='{"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}'
for i in $(seq 1 "$runs"); do
  state=$(mktemp -d)
  t0=$(date +%s.%N)
  gateway serve -f config/demo.yaml --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --state-dir "$state" --log-level warning &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null; rm -rf "$state"' EXIT
  deadline=$(( $(date +%s) + 60 ))
  until out=$(curl -sf -H "Host: iris.default.example.com" "http://127.0.0.1:$port/v1/models/iris:predict" -d "$body" 2>/dev/null); do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "run $i: no answer within 60 s" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s.%N)
  printf 'run %d: %.3f s to %s\n' "$i" "$(echo "$t1 - $t0" | bc)" "$out"
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$state"; trap - EXIT
done
