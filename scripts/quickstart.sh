#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build stablefs, create a filesystem on
# a default image file (kept if it already holds one), show it, check it and mount it (left
# mounted; `./build/stablefs umount MOUNTPOINT` unmounts it).
#   STABLEFS_IMAGE  image path (default /var/tmp/stablefs.img)
#   STABLEFS_SIZE   size of a new image (default 1G)
#   STABLEFS_MOUNT  mountpoint (default /mnt/stablefs)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${STABLEFS_IMAGE:-/var/tmp/stablefs.img}
size=${STABLEFS_SIZE:-1G}
mnt=${STABLEFS_MOUNT:-/mnt/stablefs}
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
if ./build/stablefs info "$image" >/dev/null 2>&1; then
  echo "== $image already holds a stablefs filesystem; keeping it"
else
  echo "== creating $image ($size)"
  ./build/stablefs mkfs "$image" --size "$size"
fi
echo "== stablefs info $image"
./build/stablefs info "$image"
if awk -v m="$(realpath -m "$mnt")" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
  echo "== $mnt is already mounted; leaving it as it is"
  ./build/stablefs stats "$mnt" || true
  exit 0
fi
echo "== stablefs fsck -n $image"
./build/stablefs fsck -n "$image"
echo "== stablefs mount $image $mnt"
mkdir -p "$mnt"
./build/stablefs mount "$image" "$mnt"
df -h "$mnt"
echo "stablefs is mounted on $mnt; unmount it with: ./build/stablefs umount $mnt"
