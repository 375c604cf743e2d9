#!/usr/bin/env bash
# fio with O_DIRECT and xxhash verification through the mount at 4 KiB and 1 MiB; buffered
# fio with verification; then the daemon killed with SIGKILL under fio load: the next mount
# recovers from the journal, fsync'd data is intact, and fsck is clean.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || skip "fio is not installed"
img=$SCRATCH/fio.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 1G
mount_fs "$img" "$mnt"

run_fio() {  # run_fio NAME FIO-ARGS...: fio must pass its own verification
  local name=$1; shift
  timeout 180 fio --name="$name" --directory="$mnt" --ioengine=libaio --iodepth=16 --verify=xxhash \
    --verify_fatal=1 --verify_state_save=0 --size=64M --output="$SCRATCH/$name.out" "$@" ||
    fail "fio $name: $(grep -iE 'err|verify' "$SCRATCH/$name.out" | head -5)"
  grep -q "err= 0" "$SCRATCH/$name.out" || fail "fio $name reported errors: $(cat "$SCRATCH/$name.out")"
}
run_fio direct-4k --direct=1 --rw=randrw --bs=4k --runtime=60
run_fio direct-1m --direct=1 --rw=randrw --bs=1M --runtime=60
run_fio buffered-64k --direct=0 --rw=randwrite --bs=64k --runtime=60 --size=32M
# Data written before the crash and fsync'd: must survive it.
head -c 3M /dev/urandom >"$SCRATCH/keep"
cp "$SCRATCH/keep" "$mnt/keep" && sync "$mnt/keep" || fail "writing the file to keep"
expect_exit 0 "$STABLEFS" fsck -n "$img"  # a read-only look at a mounted image is allowed

# SIGKILL under load.
pid=$(daemon_pid "$mnt")
[ -n "$pid" ] || fail "no daemon pid recorded for $mnt"
timeout 60 fio --name=load --directory="$mnt" --ioengine=libaio --iodepth=32 --direct=1 --rw=randrw --bs=16k \
  --size=64M --numjobs=2 --time_based --runtime=30 --output="$SCRATCH/load.out" >/dev/null 2>&1 &
fio_pid=$!
PIDS+=("$fio_pid")
sleep 3
kill -KILL "$pid"
timeout 10 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done" || fail "daemon survived SIGKILL"
timeout 60 bash -c "while kill -0 $fio_pid 2>/dev/null; do sleep 0.1; done" || fail "fio did not end after the daemon died"
wait "$fio_pid" 2>/dev/null
umount -l "$mnt" 2>/dev/null
expect_exit 0 "$STABLEFS" info "$img"
grep -q "state            clean" <<<"$OUT" && fail "image claims to be clean after SIGKILL: $OUT"
mount_fs "$img" "$mnt"
cmp -s "$SCRATCH/keep" "$mnt/keep" || fail "fsync'd file damaged by the crash"
ls "$mnt" >/dev/null || fail "ls after recovery"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n after recovery: $OUT"
exit 0
