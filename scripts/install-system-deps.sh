#!/usr/bin/env bash
# Install the system packages Thresher's tests and demo need, and only those that are missing.
#
# Usage: scripts/install-system-deps.sh [--renderers] [--postgres] [--browser] [--sync]
#                                        [--containers] [--desktop] [--all]
#   --renderers  blender, povray (with its include files), ffmpeg/ffprobe
#   --postgres   PostgreSQL server binaries (initdb, pg_ctl)
#   --browser    chromium
#   --sync       rsync (the yardstick of bench/sync.py)
#   --containers podman, runc, catatonit and busybox-static (container tasks;
#                see scripts/container-image.sh)
#   --desktop    Xvfb and the X libraries Qt's xcb platform loads (the desktop submitter's tests)
#   --all        all of the above (the default when no option is given)
#
# Silent when nothing is missing. As root it installs with apt-get (Debian); otherwise it prints the
# command to run and exits 1, so a developer's machine is never changed behind their back.
set -euo pipefail

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

want_renderers=false
want_postgres=false
want_browser=false
want_sync=false
want_containers=false
want_desktop=false
[[ $# -eq 0 ]] && set -- --all
for arg in "$@"; do
    case "$arg" in
        --renderers) want_renderers=true ;;
        --postgres) want_postgres=true ;;
        --browser) want_browser=true ;;
        --sync) want_sync=true ;;
        --containers) want_containers=true ;;
        --desktop) want_desktop=true ;;
        --all)
            want_renderers=true want_postgres=true want_browser=true
            want_sync=true want_containers=true want_desktop=true
            ;;
        -h | --help) usage ;;
        *)
            echo "install-system-deps: unknown option: $arg" >&2
            usage
            ;;
    esac
done

have() { command -v "$1" >/dev/null 2>&1; }

# Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
have_pg_server() {
    if have initdb && have pg_ctl; then
        return 0
    fi
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            return 0
        fi
    done
    return 1
}

# Prints the Debian packages that are missing, one per line.
missing_packages() {
    if $want_renderers; then
        have blender || echo blender
        have povray || echo povray
        [[ -f /usr/share/povray-3.7/include/colors.inc ]] || echo povray-includes
        { have ffmpeg && have ffprobe; } || echo ffmpeg
    fi
    if $want_postgres; then
        have_pg_server || echo postgresql
    fi
    if $want_browser; then
        { have chromium || have chromium-browser; } || echo chromium
    fi
    if $want_sync; then
        have rsync || echo rsync
    fi
    if $want_containers; then
        have podman || echo podman
        have runc || echo runc
        [[ -x /bin/busybox || -x /usr/bin/busybox ]] || echo busybox-static
        # `podman run --init` needs an init (a Recommends of podman, left out here otherwise).
        [[ -x /usr/libexec/podman/catatonit || -x /usr/bin/catatonit ]] || echo catatonit
    fi
    if $want_desktop; then
        have Xvfb || echo xvfb
        local lib
        for lib in libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 \
            libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1; do
            dpkg -s "$lib" >/dev/null 2>&1 || echo "$lib"
        done
    fi
}

mapfile -t packages < <(missing_packages)
if [[ ${#packages[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-system-deps: missing system packages: ${packages[*]}" >&2
    echo "install-system-deps: run:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
fi

if ! have apt-get; then
    echo "install-system-deps: missing ${packages[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi

echo "install-system-deps: installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"

mapfile -t still_missing < <(missing_packages)
if [[ ${#still_missing[@]} -ne 0 ]]; then
    echo "install-system-deps: still missing after install: ${still_missing[*]}" >&2
    exit 1
fi
