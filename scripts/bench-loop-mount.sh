# Sourced by the benchmarks that run on a stablefs mount over a loop device: builds a Release
# stablefs in build-bench (bin), makes a work directory, a sparse image of $1 GiB on this
# machine's disk attached as a loop device with direct-io on (loop), a stablefs on it mounted
# at $work/mnt (mnt), and a trap that unmounts, detaches and removes all of it at exit.
#   . scripts/bench-loop-mount.sh IMAGE_GIB
./scripts/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target stablefs >/dev/null
bin=./build-bench/stablefs
work=$(mktemp -d /var/tmp/stablefs-bench.XXXXXX)
loop="" mnt="$work/mnt"
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && timeout 60 "$bin" umount "$mnt" >/dev/null 2>&1
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
truncate -s "$1"G "$work/backing.img"
loop=$(losetup -f --show --direct-io=on "$work/backing.img")
"$bin" mkfs -q -f "$loop"
mkdir -p "$mnt"
"$bin" mount "$loop" "$mnt"
