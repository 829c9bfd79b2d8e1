#!/usr/bin/env bash
# Build the container image the container tests (and the container benchmark) run tasks in:
# a root file system holding busybox (static), tarred and `podman import`ed. No registry is
# needed (none may be reachable). Prints the image's name.
#
# Usage: scripts/container-image.sh [NAME]     (default: localhost/thresher-busybox:test)
# Environment: CONTAINERS_CONF, as the worker gets it (podman reads it here too).
set -euo pipefail

name=${1:-localhost/thresher-busybox:test}
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
mkdir -p "$root/rootfs/bin" "$root/rootfs/tmp" "$root/rootfs/etc"
cp "$busybox" "$root/rootfs/bin/busybox"
for applet in sh echo cat ls env id sleep true false touch mkdir printenv wc test; do
    ln -s busybox "$root/rootfs/bin/$applet"
done
tar -C "$root/rootfs" -cf "$root/rootfs.tar" .
podman import --quiet "$root/rootfs.tar" "$name" >/dev/null
echo "$name"
