#!/bin/sh
# Gateway vs nginx reverse proxy benchmark; see loadtests/README.md. Extra arguments go to
# proxy_bench.py (e.g. --quick, --fail-on-targets, --keep).
set -e
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/proxy_bench.py" "$@"
