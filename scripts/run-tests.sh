#!/usr/bin/env bash
# Run the test suite against a throwaway PostgreSQL server and the OpenJD reference tools.
#
# Usage: scripts/run-tests.sh [pytest args...]
#
# Starts a PostgreSQL cluster in a temporary directory (always stopped on exit), exports
# THRESHER_TEST_PG_URL and THRESHER_OPENJD_CLI, runs .venv/bin/pytest with the given arguments
# (none: the whole suite, in two parts, see the end) and exits with pytest's status. "No tests
# collected" (status 5) counts as a failure.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/pytest ]]; then
    echo "run-tests: .venv/bin/pytest not found; run: make venv" >&2
    exit 1
fi

pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/thresher-pg.XXXXXX")
cleanup() {
    bash scripts/pg-server.sh stop "$pg_dir" || echo "run-tests: could not stop PostgreSQL in $pg_dir" >&2
}
trap cleanup EXIT
# Turn signals into an ordinary exit so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

THRESHER_TEST_PG_URL=$(bash scripts/pg-server.sh start "$pg_dir")
export THRESHER_TEST_PG_URL
echo "run-tests: PostgreSQL at $THRESHER_TEST_PG_URL" >&2

if [[ -f scripts/openjd-reference.sh ]]; then
    bash scripts/openjd-reference.sh .tools/openjd-ref >&2
    THRESHER_OPENJD_CLI="$PWD/.tools/openjd-ref/bin/openjd"
    export THRESHER_OPENJD_CLI
fi

# The submitters Thresher accepts OpenJD jobs from, each in a virtualenv of its own (issue 5).
if [[ -f scripts/renderacre-client.sh ]]; then
    bash scripts/renderacre-client.sh .tools/renderacre >&2
    THRESHER_RENDERACRE_PYTHON="$PWD/.tools/renderacre/bin/python"
    export THRESHER_RENDERACRE_PYTHON
fi
if [[ -f scripts/deadline-client.sh ]]; then
    bash scripts/deadline-client.sh .tools/deadline >&2
    THRESHER_DEADLINE_CLI="$PWD/.tools/deadline/bin/deadline"
    export THRESHER_DEADLINE_CLI
fi

# Tests that start `thresher` as a subprocess find the development install first.
export PATH="$PWD/.venv/bin:$PATH"

run() {
    local status=0
    .venv/bin/pytest "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    fi
    return "$status"
}

if [[ $# -gt 0 ]]; then  # what the caller chose, as given
    run "$@"
    exit
fi
# The whole suite: first everything that is not timing-sensitive, on both cores (two pytest
# workers, each test file on one of them, so a file's fixtures are made once); then the fault
# tests and the tests marked `alone` (a deadline of a second or a few under load), by
# themselves, so the other half of the suite cannot slow them into a false failure. The files
# go out heaviest first (tests/heaviest.txt; `--no-loadscope-reorder` keeps that order rather
# than xdist's, by number of tests).
status=0
run -n 2 --dist loadfile --no-loadscope-reorder --durations=25 -m "not (faults or alone)" || status=$?
run -m "faults or alone" || status=$?
exit "$status"
