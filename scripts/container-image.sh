#!/usr/bin/env bash
# Build the container images the container tests (and the container benchmark) run tasks in,
# without a registry (none may be reachable): a root file system, tarred and `podman import`ed.
#
# Usage: scripts/container-image.sh [--povray] [NAME]
#   default       busybox (static) alone              NAME: localhost/thresher-busybox:test
#   --povray      POV-Ray with its libraries, include files and configuration, and busybox
#                                                     NAME: localhost/thresher-povray:test
# Prints the image's name; an image of that name already there is kept.
# Environment: CONTAINERS_CONF, as the worker gets it (podman reads it here too).
set -euo pipefail

povray=false
if [[ ${1:-} == --povray ]]; then
    povray=true
    shift
fi
default=localhost/thresher-busybox:test
$povray && default=localhost/thresher-povray:test
name=${1:-$default}
busybox=$(command -v busybox || true)
if [[ -z $busybox ]] || ! command -v podman >/dev/null; then
    echo "container-image: needs podman and busybox (scripts/install-system-deps.sh --containers)" >&2
    exit 1
fi
if podman image exists "$name"; then
    echo "$name"
    exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
rootfs=$root/rootfs
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
for applet in sh echo cat ls env id sleep true false touch mkdir printenv wc test readlink; do
    ln -s busybox "$rootfs/bin/$applet"
done
if $povray; then
    exe=$(command -v povray || true)
    if [[ -z $exe ]]; then
        echo "container-image: --povray needs povray (scripts/install-system-deps.sh --renderers)" >&2
        exit 1
    fi
    # The binary and every library it loads, at the same paths.
    for file in "$exe" $(ldd "$exe" | grep -o '/[^ ]*'); do
        cp -L --parents "$file" "$rootfs/"
    done
    mkdir -p "$rootfs/usr/share"
    cp -r /etc/povray "$rootfs/etc/"
    cp -r /usr/share/povray-3.7 "$rootfs/usr/share/"
fi
tar -C "$rootfs" -cf "$root/rootfs.tar" .
podman import --quiet "$root/rootfs.tar" "$name" >/dev/null
echo "$name"
