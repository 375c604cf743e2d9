#!/usr/bin/env bash
# The daemon ended with SIGTERM (and SIGINT) while fio keeps requests in flight through the
# mount, on both bounce paths: it answers what is in flight, unmounts, commits and marks the
# filesystem clean; fio ends; fsck is clean; an fsync'd file is intact at the next mount.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || skip "fio is not installed"
img=$SCRATCH/term.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 512M
head -c 3M /dev/urandom >"$SCRATCH/keep"

round() {  # round SIGNAL BOUNCE
  local sig=$1 bounce=$2 pid fio_pid
  mount_fs "$img" "$mnt" -o bounce="$bounce"
  cp "$SCRATCH/keep" "$mnt/keep-$sig" && sync "$mnt/keep-$sig" || fail "writing the file to keep"
  pid=$(daemon_pid "$mnt")
  [ -n "$pid" ] || fail "no daemon pid recorded for $mnt"
  timeout 60 fio --name=load --directory="$mnt" --ioengine=libaio --iodepth=32 --direct=1 --rw=randrw \
    --bs=16k --size=32M --numjobs=2 --time_based --runtime=30 --output="$SCRATCH/load.out" >/dev/null 2>&1 &
  fio_pid=$!
  PIDS+=("$fio_pid")
  sleep 2
  kill -"$sig" "$pid"
  timeout 30 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done" || fail "daemon still runs 30 s after SIG$sig"
  timeout 60 bash -c "while kill -0 $fio_pid 2>/dev/null; do sleep 0.1; done" || fail "fio did not end after SIG$sig"
  wait "$fio_pid" 2>/dev/null
  # With files open the kernel only detaches the mount; make sure it is gone before checking.
  if is_mounted_at "$mnt"; then umount -l "$mnt" 2>/dev/null; fi
  expect_exit 0 "$STABLEFS" info "$img"
  grep -q "state            clean" <<<"$OUT" || fail "not marked clean after SIG$sig ($bounce): $OUT"
  expect_exit 0 "$STABLEFS" fsck -n "$img"
  grep -q "clean" <<<"$OUT" || fail "fsck -n after SIG$sig ($bounce): $OUT"
}
round TERM never
round INT always
mount_fs "$img" "$mnt"
for sig in TERM INT; do cmp -s "$SCRATCH/keep" "$mnt/keep-$sig" || fail "fsync'd file keep-$sig damaged"; done
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
exit 0
