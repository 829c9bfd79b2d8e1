#!/usr/bin/env bash
# Create a separate virtualenv holding renderacre's Python client (pinned), which the tests in
# tests/e2e/test_openjd_submitters.py use to submit to Thresher's renderacre-compatible route.
#
# Usage: scripts/renderacre-client.sh DIR
#   DIR  where to create the virtualenv (reused when it already holds the pinned client)
#
# Environment: PYTHON (default python3) is the interpreter the virtualenv is made from.
# On success it prints the line to export for the tests:
#   export THRESHER_RENDERACRE_PYTHON=DIR/bin/python
set -euo pipefail

RENDERACRE_VERSION="0.1.4"

[[ $# -eq 1 ]] || { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }
dir="$1"
python="${PYTHON:-python3}"

installed_version() {
    "$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("renderacre"))' 2>/dev/null
}

if [[ "$(installed_version || true)" != "$RENDERACRE_VERSION" ]]; then
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "renderacre==$RENDERACRE_VERSION"
fi
"$dir/bin/python" -c 'import renderacre; renderacre.submit_job, renderacre.openjd_job'

echo "export THRESHER_RENDERACRE_PYTHON=$(cd "$dir" && pwd)/bin/python"
