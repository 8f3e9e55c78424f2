#!/usr/bin/env bash
# Makes the Debian bookworm base image the container tests build on, since
# no image can be pulled here: debootstrap (minbase) into a folder, then
# imported with buildah as localhost/sockjs-gateway-base:bookworm. Kept
# once made (podman and buildah share the image store); the folder is
# cached in $1 (default target/image-check). Prints the image's name.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${1:-$(pwd)/target/image-check}"
base_image=localhost/sockjs-gateway-base:bookworm
export BUILDAH_ISOLATION=chroot
if ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  mkdir -p "$cache"
  rootfs="$cache/rootfs"
  if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian > "$cache/debootstrap.log" \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  fi
  ctr=$(buildah from scratch)
  # buildah add unpacks a local tar archive into the image.
  tar -C "$rootfs" -cf "$cache/rootfs.tar" .
  buildah add "$ctr" "$cache/rootfs.tar" / >/dev/null
  rm -f "$cache/rootfs.tar"
  buildah config --cmd /bin/bash "$ctr"
  buildah commit -q "$ctr" "$base_image" >/dev/null
  buildah rm "$ctr" >/dev/null
fi
echo "$base_image"
