#!/usr/bin/env bash
# Create a separate virtualenv holding AWS Deadline Cloud's client (the `deadline` CLI, pinned),
# which tests/e2e/test_openjd_submitters.py points at Thresher's Deadline Cloud routes.
#
# Usage: scripts/deadline-client.sh DIR
#   DIR  where to create the virtualenv (reused when it already holds the pinned client)
#
# Environment: PYTHON (default python3) is the interpreter the virtualenv is made from.
# On success it prints the line to export for the tests:
#   export THRESHER_DEADLINE_CLI=DIR/bin/deadline
set -euo pipefail

DEADLINE_VERSION="0.60.10"

[[ $# -eq 1 ]] || { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }
dir="$1"
python="${PYTHON:-python3}"

installed_version() {
    "$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("deadline"))' 2>/dev/null
}

if [[ ! -x "$dir/bin/deadline" || "$(installed_version || true)" != "$DEADLINE_VERSION" ]]; then
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "deadline==$DEADLINE_VERSION"
fi
"$dir/bin/deadline" --help >/dev/null

echo "export THRESHER_DEADLINE_CLI=$(cd "$dir" && pwd)/bin/deadline"
