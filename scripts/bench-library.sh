#!/usr/bin/env bash
# Direct-I/O throughput through the stablefs library (no FUSE), beside fio on the same raw
# loop device, in one run. Prints a table of MiB/s and IOPS with the ratio to the raw device.
#   BENCH_SECONDS  duration of each timed phase (default 5)
#   BENCH_JOBS     threads issuing synchronous requests = queue depth (default 4)
# Needs root (loop devices). Cleans up its image and loop device on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-5}
jobs=${BENCH_JOBS:-4}
./scripts/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target stablefs stablefs-volume-bench >/dev/null
work=$(mktemp -d /var/tmp/stablefs-bench.XXXXXX)
loop=""
cleanup() { [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
truncate -s 2G "$work/backing.img"
loop=$(losetup -f --show --direct-io=on "$work/backing.img")
echo "device: $loop (loop, direct-io, backing file on $(df --output=source /var/tmp | tail -1)), stable_writes=$(cat /sys/block/${loop#/dev/}/queue/stable_writes)"
echo "kernel $(uname -r), $(nproc) cpus, jobs=$jobs (synchronous requests per thread), ${secs}s per timed phase"

declare -A raw
fio_run() {  # fio_run RW BS -> "MiB/s IOPS"
  local rw=$1 bs=$2
  fio --name=raw --filename="$loop" --direct=1 --ioengine=psync --rw="$rw" --bs="$bs" --numjobs="$jobs" \
      --group_reporting --size=256M --offset_increment=256M --runtime="$secs" --time_based \
      --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; side=j["write"] if j["write"]["io_bytes"] else j["read"]; print("%.1f %.0f" % (side["bw"]/1024.0, side["iops"]))'
}
for bs in 1048576 4096; do
  raw[write,$bs]=$(fio_run write $bs)
  raw[randwrite,$bs]=$(fio_run randwrite $bs)
  raw[randread,$bs]=$(fio_run randread $bs)
done

./build-bench/stablefs mkfs -q -f "$loop"
printf '\n%-10s %-8s %-8s %12s %12s %12s %12s %8s\n' phase bs bounce "MiB/s" IOPS "raw MiB/s" "raw IOPS" ratio
for bs in 1048576 4096; do
  for policy in never always; do
    file_bytes=$((bs == 4096 ? 64 << 20 : 512 << 20))
    while read -r line; do
      phase=$(sed -E 's/.*phase=([a-z]+).*/\1/' <<<"$line")
      mibs=$(sed -E 's/.*MiB\/s=([0-9.]+).*/\1/' <<<"$line")
      iops=$(sed -E 's/.*IOPS=([0-9]+).*/\1/' <<<"$line")
      read -r rmibs riops <<<"${raw[$phase,$bs]}"
      ratio=$(python3 -c "print('%.2f' % ($mibs / $rmibs if $rmibs > 0 else 0))")
      printf '%-10s %-8s %-8s %12s %12s %12s %12s %8s\n' "$phase" "$bs" "$policy" "$mibs" "$iops" "$rmibs" "$riops" "$ratio"
    done < <(./build-bench/stablefs-volume-bench "$loop" --bounce "$policy" --bs "$bs" --jobs "$jobs" \
               --seconds "$secs" --file-bytes "$file_bytes")
  done
done
