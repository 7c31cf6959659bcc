#!/usr/bin/env bash
# Installs everything the tests need (Debian packages, Python packages), runs the check gate
# (scripts/check: ruff, ruff format, mypy --strict) and then the whole suite.
# Usage: bash scripts/test.sh [pytest args...]      (pytest -m "not e2e" is the fast inner loop)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# tests/dashboard loads the dashboard in headless Chromium (Debian's package is `chromium`)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# tests/kube builds podnet.c, the pods' network shim, with the C compiler
command -v cc >/dev/null 2>&1 && [ -f /usr/include/dlfcn.h ] || need+=(gcc libc6-dev)
# the load tests' smoke (tests/loadtests) puts HAProxy beside nginx and the gateway
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test,dev]'

bash scripts/check

set +e
python3 -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a broken suite, not a green one" >&2
  exit 1
fi
exit "$status"
