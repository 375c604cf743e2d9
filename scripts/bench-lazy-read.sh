#!/usr/bin/env bash
# What lazy checksummed reads gain on a device that demands stable pages: fio reads a 1 GiB
# file through a mount on /dev/zram0 (queue/stable_writes 1, so bounce=auto bounces) with two
# stablefs binaries — BEFORE (eager: every read bounced) and AFTER (reads into the daemon's
# reply buffers go straight there) — interleaved, BENCH_REPS times: 4 KiB random reads at
# queue depth 1 and 32 and 1 MiB sequential reads at queue depth 8, 5 s each. Prints IOPS,
# MiB/s and the daemon's CPU time per I/O, and the medians side by side.
#   scripts/bench-lazy-read.sh BEFORE_BINARY AFTER_BINARY
# Needs root and /dev/zram0 not in use; resets it afterwards.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BEFORE_BINARY AFTER_BINARY" >&2; exit 2; }
before=$1 after=$2
reps=${BENCH_REPS:-3}
dev=/dev/zram0
work=$(mktemp -d /var/tmp/stablefs-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && timeout 60 "$after" umount "$mnt" >/dev/null 2>&1
  echo 1 >/sys/block/zram0/reset 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
echo 1 >/sys/block/zram0/reset
echo 3G >/sys/block/zram0/disksize
echo "device: $dev, stable_writes $(cat /sys/block/zram0/queue/stable_writes); kernel $(uname -r), $(nproc) cpus"
"$after" mkfs -q -f "$dev"
"$after" mount "$dev" "$mnt"
head -c 1G /dev/urandom >"$mnt/f"
"$after" umount "$mnt"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
daemon_pid() { head -1 "/run/stablefs/$(realpath "$mnt" | sed 's/%/%25/g; s|/|%2F|g').pid"; }
results=$work/results
for r in $(seq "$reps"); do
  for which in before after; do
    bin=${!which}
    "$bin" mount "$dev" "$mnt"
    pid=$(daemon_pid)
    for w in "randread 4k 1" "randread 4k 32" "read 1m 8"; do
      set -- $w
      t0=$(cpu_ticks "$pid")
      out=$(fio --name=r --filename="$mnt/f" --direct=1 --ioengine=io_uring --rw="$1" --bs="$2" --iodepth="$3" \
                --size=1G --time_based --runtime=5 --output-format=json 2>/dev/null |
            python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print("%.0f %.1f %d" % (r["iops"], r["bw"]/1024.0, r["total_ios"]))')
      t1=$(cpu_ticks "$pid")
      set -- $out
      us=$(python3 -c "print('%.1f' % (($t1 - $t0) * 1e6 / $(getconf CLK_TCK) / max(1, $3)))")
      echo "run $r $which $w: $1 IOPS, $2 MiB/s, daemon CPU $us us per I/O"
      echo "$which ${w// /_} $1 $2 $us" >>"$results"
    done
    grep -E "^bounce|^bounced|^zero-copy" <("$bin" stats "$mnt") | sed "s/^/  $which: /"
    "$bin" umount "$mnt"
  done
done
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    which, w, iops, bw, us = line.split()
    runs[(w, which)].append((float(iops), float(bw), float(us)))
for w in ("randread_4k_1", "randread_4k_32", "read_1m_8"):
    b = [statistics.median(x[i] for x in runs[(w, "before")]) for i in range(3)]
    a = [statistics.median(x[i] for x in runs[(w, "after")]) for i in range(3)]
    print(f"{w}: before {b[0]:.0f} IOPS {b[1]:.1f} MiB/s {b[2]:.1f} us CPU/IO; after {a[0]:.0f} IOPS {a[1]:.1f} MiB/s {a[2]:.1f} us CPU/IO; "
          f"after/before {a[0] / b[0]:.2f}")
PY
