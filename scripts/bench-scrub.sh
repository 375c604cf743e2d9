#!/usr/bin/env bash
# What an online scrub at --rate costs the mount's users: fio reads a file through the mount
# (1 MiB sequential O_DIRECT, queue depth 4, and 4 KiB random, queue depth 8; 8 s each) alone
# and while `stablefs scrub` runs at each rate of BENCH_RATES (MiB/s; 0 = no limit) over
# BENCH_DATA_GIB GiB of other files, interleaved, BENCH_REPS times. Prints the users' figures,
# the scrub's own rate during each run, and the users' loss beside what the scrub took.
# A loop device (direct-io on) over an image on this machine's disk. Needs root; cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
data_gib=${BENCH_DATA_GIB:-3}
reps=${BENCH_REPS:-3}
rates=${BENCH_RATES:-"50 200 0"}
. scripts/bench-loop-mount.sh $((data_gib + 3))
for i in $(seq "$data_gib"); do
  fio --name=fill --filename="$mnt/scrubbed$i" --direct=1 --ioengine=io_uring --rw=write --bs=1M --iodepth=8 \
      --size=1G --output=/dev/null
done
# The users' file is created last: the scrub walks files in inode order and reaches it last.
fio --name=fill --filename="$mnt/user" --direct=1 --ioengine=io_uring --rw=write --bs=1M --iodepth=8 --size=1G \
    --output=/dev/null
"$bin" sync "$mnt"
echo "device: $loop (loop, direct-io, backing file on $(df --output=source /var/tmp | tail -1)); scrubbed data $data_gib GiB"
echo "kernel $(uname -r), $(nproc) cpus"

# user_run KIND: one fio run against the users' file; prints MiB/s and IOPS.
user_run() {
  local args
  case $1 in
    seq) args=(--rw=read --bs=1M --iodepth=4) ;;
    rand) args=(--rw=randread --bs=4k --iodepth=8) ;;
  esac
  fio --name=user --filename="$mnt/user" --direct=1 --ioengine=io_uring "${args[@]}" --size=1G --time_based \
      --runtime=8 --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"]; print("%.1f %.0f" % (r["bw"] / 1024.0, r["iops"]))'
}
scrub_rate() {
  "$bin" scrub status --json "$mnt" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.1f" % (d["rate_bytes_per_second"] / 2**20))'
}
results=$work/results
for r in $(seq "$reps"); do
  for kind in seq rand; do
    set -- $(user_run "$kind")
    echo "run $r $kind alone: $1 MiB/s, $2 IOPS"
    echo "$kind alone $1 $2 0" >>"$results"
    for rate in $rates; do
      "$bin" scrub start --rate "$rate" "$mnt" >/dev/null
      set -- $(user_run "$kind")
      s=$(scrub_rate)
      "$bin" scrub cancel "$mnt" >/dev/null 2>&1 || true  # may have finished
      echo "run $r $kind with scrub --rate $rate: $1 MiB/s, $2 IOPS; the scrub read $s MiB/s"
      echo "$kind $rate $1 $2 $s" >>"$results"
    done
  done
done
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, rate, bw, iops, scrub = line.split()
    runs[(kind, rate)].append((float(bw), float(iops), float(scrub)))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
for kind in ("seq", "rand"):
    a_bw, a_iops, _ = med[(kind, "alone")]
    print(f"{kind}: alone {a_bw:.1f} MiB/s ({a_iops:.0f} IOPS)")
    for (k, rate), (bw, iops, scrub) in sorted(med.items()):
        if k != kind or rate == "alone":
            continue
        label = "no limit" if rate == "0" else f"--rate {rate}"
        print(f"  scrub {label}: users {bw:.1f} MiB/s ({iops:.0f} IOPS), lost {a_bw - bw:.1f} MiB/s; the scrub read {scrub:.1f} MiB/s")
PY
