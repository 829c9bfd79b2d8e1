#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for tests.
#
# Usage: scripts/pg-server.sh start DIR   DIR must be missing or empty; it becomes the data directory
#        scripts/pg-server.sh stop DIR    stops that cluster only, then removes DIR
#        scripts/pg-server.sh down DIR    stops that cluster's server and keeps DIR (an outage)
#        scripts/pg-server.sh up DIR      starts the cluster in DIR again, on the same port
#
# start listens on 127.0.0.1 on a free port (and on a Unix socket in DIR), trusts local connections,
# runs with fsync=off, creates the database thresher_test, and prints its SQLAlchemy URL on stdout
# (also written to DIR/url). PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` user (created as a system user when missing).
set -euo pipefail

readonly DATABASE=thresher_test
readonly FALLBACK_OS_USER=postgres

die() {
    echo "pg-server: $*" >&2
    exit 1
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

# The directory holding initdb/pg_ctl: PATH first, else Debian's newest /usr/lib/postgresql/*/bin.
find_bindir() {
    local initdb
    if initdb=$(command -v initdb 2>/dev/null) && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] ||
        die "PostgreSQL server binaries not found; run: scripts/install-system-deps.sh --postgres"
    echo "$dir"
}

# Runs a command as OS user $1, dropping privileges when we are root.
as_user() {
    local user=$1
    shift
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

server_os_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
        return
    fi
    if ! id -u "$FALLBACK_OS_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$FALLBACK_OS_USER" >&2
    fi
    echo "$FALLBACK_OS_USER"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1
    if [[ -e "$dir" && -n "$(ls -A "$dir")" ]]; then
        die "$dir exists and is not empty"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)

    local bindir user
    bindir=$(find_bindir)
    user=$(server_os_user)
    chown "$user" "$dir" 2>/dev/null || [[ -O "$dir" ]] || die "cannot hand $dir to $user"
    as_user "$user" test -w "$dir" ||
        die "$user cannot write $dir (is a parent directory closed to it?); use a directory under /tmp"
    # pg_ctl insists on being able to read its current directory.
    cd /

    local output
    output=$(as_user "$user" "$bindir/initdb" --pgdata="$dir" --username="$user" --auth=trust \
        --encoding=UTF8 --locale=C --no-sync 2>&1) || {
        echo "$output" >&2
        die "initdb failed"
    }

    # Unix socket paths are limited to ~107 bytes; past that, TCP alone is enough.
    local socket_dir=$dir
    [[ ${#dir} -le 90 ]] || socket_dir=''
    {
        echo "include_if_exists = 'thresher-port.conf'"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$socket_dir'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
    } | as_user "$user" tee -a "$dir/postgresql.conf" >/dev/null

    # The port is free when we look but may be taken before the server binds it; try a few.
    local port attempt started=false
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        echo "port = $port" | as_user "$user" tee "$dir/thresher-port.conf" >/dev/null
        if as_user "$user" "$bindir/pg_ctl" --pgdata="$dir" --log="$dir/server.log" \
            --wait --timeout=60 start >/dev/null; then
            started=true
            break
        fi
        echo "pg-server: start on port $port failed (attempt $attempt)" >&2
    done
    if ! $started; then
        tail -n 20 "$dir/server.log" >&2 || true
        die "could not start PostgreSQL in $dir"
    fi

    local createdb=$bindir/createdb
    [[ -x "$createdb" ]] || createdb=$(command -v createdb) || die "createdb not found"
    "$createdb" --host=127.0.0.1 --port="$port" --username="$user" "$DATABASE"

    local url="postgresql+psycopg://$user@127.0.0.1:$port/$DATABASE"
    echo "$url" | as_user "$user" tee "$dir/url"
}

stop() {
    local dir=$1
    if [[ ! -e "$dir" ]]; then
        return 0
    fi
    dir=$(cd "$dir" && pwd -P)
    # Refuse to delete anything that is not a cluster this script could have made.
    if [[ ! -f "$dir/PG_VERSION" ]]; then
        [[ -z "$(ls -A "$dir")" ]] || die "$dir is not a PostgreSQL data directory; not removing it"
        rmdir "$dir"
        return 0
    fi

    local bindir user
    bindir=$(find_bindir)
    user=$(stat -c %U "$dir")
    cd /
    if [[ -f "$dir/postmaster.pid" ]]; then
        as_user "$user" "$bindir/pg_ctl" --pgdata="$dir" --mode=fast --wait stop >/dev/null ||
            as_user "$user" "$bindir/pg_ctl" --pgdata="$dir" --mode=immediate --wait stop \
                >/dev/null ||
            echo "pg-server: could not stop the server in $dir" >&2
    fi
    rm -rf "$dir"
}

# The cluster in DIR (made by `start`): its directory, binaries and OS user, for `down` and `up`.
cluster() {
    local dir=$1
    [[ -f "$dir/PG_VERSION" ]] || die "$dir is not a PostgreSQL data directory"
    cluster_dir=$(cd "$dir" && pwd -P)
    cluster_bindir=$(find_bindir)
    cluster_user=$(stat -c %U "$cluster_dir")
    cd /
}

down() {
    cluster "$1"
    as_user "$cluster_user" "$cluster_bindir/pg_ctl" --pgdata="$cluster_dir" --mode=fast --wait \
        stop >/dev/null
}

up() {
    cluster "$1"
    as_user "$cluster_user" "$cluster_bindir/pg_ctl" --pgdata="$cluster_dir" \
        --log="$cluster_dir/server.log" --wait --timeout=60 start >/dev/null ||
        die "could not start PostgreSQL in $cluster_dir again (its port taken meanwhile?)"
}

[[ $# -eq 2 ]] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    down) down "$2" ;;
    up) up "$2" ;;
    *) usage ;;
esac
