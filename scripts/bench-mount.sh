#!/usr/bin/env bash
# fio through a stablefs mount (FUSE, O_DIRECT) beside fio on the same raw loop device, in one
# run. Prints MiB/s and IOPS per job for the raw device and for the mount with bounce=never and
# bounce=always, with the ratio mount ÷ raw.
#   BENCH_SECONDS  duration of each fio job (default 6)
#   BENCH_SIZE     bytes each job covers (default 1G)
# Needs root (loop device, FUSE mount). Unmounts, detaches and removes everything on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-6}
size=${BENCH_SIZE:-1G}
./scripts/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target stablefs >/dev/null
bin=$(pwd)/build-bench/stablefs

work=$(mktemp -d /var/tmp/stablefs-bench-mount.XXXXXX)
loop="" mnt="$work/mnt"
cleanup() {
  if [ -n "$mnt" ] && awk -v m="$mnt" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
    timeout 60 "$bin" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
  fi
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt"
truncate -s 3G "$work/backing.img"
loop=$(losetup -f --show --direct-io=on "$work/backing.img")
echo "device: $loop (loop, direct-io, backing file on $(df --output=source /var/tmp | tail -1)), stable_writes=$(cat /sys/block/${loop#/dev/}/queue/stable_writes)"
echo "kernel $(uname -r), $(nproc) cpus, libaio, ${secs}s per job, ${size} per job"

# The jobs: name rw bs iodepth
jobs=("randread-4k randread 4k 32" "randwrite-4k randwrite 4k 32" "read-1M read 1M 8" "write-1M write 1M 8")

fio_run() {  # fio_run FILE RW BS DEPTH -> "MiB/s IOPS"
  fio --name=bench --filename="$1" --direct=1 --ioengine=libaio --rw="$2" --bs="$3" --iodepth="$4" \
      --size="$size" --runtime="$secs" --time_based --randrepeat=0 --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; side=j["write"] if j["write"]["io_bytes"] else j["read"]; print("%.1f %.0f" % (side["bw"]/1024.0, side["iops"]))'
}

declare -A result
for spec in "${jobs[@]}"; do
  read -r name rw bs depth <<<"$spec"
  result[raw,$name]=$(fio_run "$loop" "$rw" "$bs" "$depth")
done

"$bin" mkfs -q -f "$loop"
for policy in never always; do
  "$bin" mount "$loop" "$mnt" -o bounce="$policy"
  # Lay the file out once (written through the mount), so reads find data.
  fio --name=layout --filename="$mnt/bench.dat" --direct=1 --ioengine=libaio --rw=write --bs=1M --iodepth=8 \
      --size="$size" >/dev/null 2>&1
  for spec in "${jobs[@]}"; do
    read -r name rw bs depth <<<"$spec"
    result[$policy,$name]=$(fio_run "$mnt/bench.dat" "$rw" "$bs" "$depth")
  done
  "$bin" stats "$mnt" | sed 's/^/  /'
  rm -f "$mnt/bench.dat"
  timeout 120 "$bin" umount "$mnt"
done
"$bin" fsck -n "$loop" >/dev/null || { echo "fsck after the benchmark found problems"; exit 1; }

printf '\n%-13s %11s %9s | %11s %9s %6s | %11s %9s %6s\n' job "raw MiB/s" IOPS "never MiB/s" IOPS ratio \
  "always MiB/s" IOPS ratio
for spec in "${jobs[@]}"; do
  read -r name _ <<<"$spec"
  read -r rb ri <<<"${result[raw,$name]}"
  read -r nb ni <<<"${result[never,$name]}"
  read -r ab ai <<<"${result[always,$name]}"
  printf '%-13s %11s %9s | %11s %9s %6.2f | %11s %9s %6.2f\n' "$name" "$rb" "$ri" "$nb" "$ni" \
    "$(python3 -c "print($nb/$rb)")" "$ab" "$ai" "$(python3 -c "print($ab/$rb)")"
done
echo "fsck after the runs: clean"
