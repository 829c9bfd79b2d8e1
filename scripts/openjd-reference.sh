#!/usr/bin/env bash
# Create a separate virtualenv holding the OpenJD reference CLI (openjd-cli, pinned), which the
# tests in tests/openjd compare Thresher against (`openjd check`, `openjd summary`, `openjd run`).
#
# Usage: scripts/openjd-reference.sh DIR
#   DIR  where to create the virtualenv (reused when it already holds the pinned CLI)
#
# Environment: PYTHON (default python3) is the interpreter the virtualenv is made from.
# On success it prints the line to export for the tests:
#   export THRESHER_OPENJD_CLI=DIR/bin/openjd
# The CLI is kept out of Thresher's own environment on purpose: it pins its own openjd-model and
# openjd-sessions. The version is pinned because an unpinned install resolves an empty
# placeholder release.
set -euo pipefail

OPENJD_CLI_VERSION="0.8.0"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
case "$1" in -h | --help) usage ;; esac

dir="$1"
python="${PYTHON:-python3}"

installed_version() {
    "$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("openjd-cli"))' 2>/dev/null
}

if [[ ! -x "$dir/bin/openjd" || "$(installed_version || true)" != "$OPENJD_CLI_VERSION" ]]; then
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "openjd-cli==$OPENJD_CLI_VERSION"
fi

# Fail loudly if the install is the placeholder or otherwise broken.
"$dir/bin/openjd" --help >/dev/null
[[ "$(installed_version)" == "$OPENJD_CLI_VERSION" ]]

echo "export THRESHER_OPENJD_CLI=$(cd "$dir" && pwd)/bin/openjd"
