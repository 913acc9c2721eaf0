#!/usr/bin/env bash
# Makes the pinned base image without a registry: a minimal Debian bookworm root filesystem
# built by debootstrap from the mirror apt already uses, imported with `podman import`.
# Skips the work when the image exists. Needs root and Debian's debootstrap and podman.
set -euo pipefail
source "$(dirname "$0")/env.sh"
if podman image exists "$MODELVERSE_BASE_IMAGE"; then
    echo "base image $MODELVERSE_BASE_IMAGE exists"; exit 0
fi
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$MODELVERSE_BUILD_ROOT/rootfs-bookworm"
rm -rf "$rootfs"; mkdir -p "$rootfs"
# python3 + venv for the services, libgomp1 for FAISS's OpenMP; nothing else.
debootstrap --variant=minbase --include=python3,python3-venv,libgomp1,ca-certificates \
    bookworm "$rootfs" "$mirror"
# The image uses the same sources as this machine (with bookworm-updates and the security
# archive, which debootstrap alone leaves out), brought up to date once, here.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$rootfs/etc/apt/sources.list"
fi
chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean'
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$MODELVERSE_BASE_IMAGE"
rm -rf "$rootfs"
echo "imported $MODELVERSE_BASE_IMAGE"
