#!/usr/bin/env bash
# Offline verify bandwidth beside fio's sequential O_DIRECT read of the same device, in one
# run: a loop device (direct-io on) over an image on this machine's disk, filled with
# BENCH_DATA_GIB GiB of files through a mount, then `stablefs verify` and fio
# (io_uring, 1 MiB, queue depth 8) read it, interleaved, BENCH_REPS times each. Prints each
# run and the ratio of the medians. Needs root. Cleans up its mount, loop device and image,
# except with BENCH_KEEP=FILE: it stops after filling, leaves the loop device set up and
# writes its name to FILE (for profiling; detach it and remove the image by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
data_gib=${BENCH_DATA_GIB:-4}
reps=${BENCH_REPS:-3}
. scripts/bench-loop-mount.sh $((data_gib + 2))
for i in $(seq "$data_gib"); do
  fio --name=fill --filename="$mnt/f$i" --direct=1 --ioengine=io_uring --rw=write --bs=1M --iodepth=8 --size=1G \
      --output=/dev/null
done
"$bin" umount "$mnt"
[ -n "${BENCH_KEEP:-}" ] && { echo "$loop" >"$BENCH_KEEP"; trap - EXIT; exit 0; }
echo "device: $loop (loop, direct-io, backing file on $(df --output=source /var/tmp | tail -1)), $data_gib GiB of file data"
echo "kernel $(uname -r), $(nproc) cpus"
bytes=$((data_gib << 30))
verify_rates=() fio_rates=()
for r in $(seq "$reps"); do
  echo 3 >/proc/sys/vm/drop_caches
  v=$("$bin" verify --json "$loop" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["exit_code"] == 0, d; print("%.1f" % (d["rate_bytes_per_second"] / 2**20))')
  echo 3 >/proc/sys/vm/drop_caches
  f=$(fio --name=seqread --filename="$loop" --direct=1 --ioengine=io_uring --rw=read --bs=1M --iodepth=8 \
          --size="$bytes" --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024.0))')
  echo "run $r: verify $v MiB/s, fio sequential read $f MiB/s"
  verify_rates+=("$v") fio_rates+=("$f")
done
python3 - "${verify_rates[*]}" "${fio_rates[*]}" <<'PY'
import statistics, sys
v = [float(x) for x in sys.argv[1].split()]
f = [float(x) for x in sys.argv[2].split()]
mv, mf = statistics.median(v), statistics.median(f)
print(f"median: verify {mv:.1f} MiB/s, fio {mf:.1f} MiB/s, ratio {mv / mf:.2f}")
PY
