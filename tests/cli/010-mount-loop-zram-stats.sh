#!/usr/bin/env bash
# Block devices through the mount: a loop device (no stable pages: zero-copy) and /dev/zram0
# (stable pages: bounce). fio with O_DIRECT and xxhash verification at 4 KiB, 64 KiB and
# 1 MiB on each; `stablefs stats` shows the decision, its reason and the counters; a second
# mount of a mounted block device is refused; fsck is clean after umount.
. "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || skip "fio is not installed"
mnt=$SCRATCH/mnt
mnt2=$SCRATCH/mnt2
mkdir -p "$mnt2"

fio_on() {  # fio_on TAG: verified O_DIRECT randrw at three block sizes through $mnt
  local bs
  for bs in 4k 64k 1M; do
    timeout 180 fio --name="$1-$bs" --directory="$mnt" --ioengine=libaio --iodepth=8 --direct=1 --rw=randrw \
      --bs=$bs --size=24M --verify=xxhash --verify_fatal=1 --verify_state_save=0 --runtime=60 \
      --output="$SCRATCH/$1-$bs.out" || fail "fio $1 bs=$bs: $(grep -iE 'err|verify' "$SCRATCH/$1-$bs.out" | head -3)"
    grep -q "err= 0" "$SCRATCH/$1-$bs.out" || fail "fio $1 bs=$bs: $(cat "$SCRATCH/$1-$bs.out")"
  done
}

# loop device: zero-copy
truncate -s 512M "$SCRATCH/backing.img"
new_loop "$SCRATCH/backing.img"
loop=$LOOP
expect_exit 0 "$STABLEFS" mkfs -q "$loop"
mount_fs "$loop" "$mnt"
grep -q "^$loop $mnt fuse.stablefs " /proc/mounts || fail "/proc/mounts: $(grep "$mnt" /proc/mounts)"
MOUNTS+=("$mnt2")
expect_one_line_error "$STABLEFS" mount "$loop" "$mnt2"
grep -q "busy" <<<"$ERR" || fail "second mount of $loop: $ERR"
fio_on loop
expect_exit 0 "$STABLEFS" stats "$mnt"
grep -q "^bounce *no" <<<"$OUT" || fail "loop device should be zero-copy: $OUT"
grep -qE "^zero-copy *[1-9][0-9]* I/Os" <<<"$OUT" || fail "no zero-copy I/O counted: $OUT"
# The daemon's receive buffers put WRITE payloads on an aligned address: fio's aligned
# O_DIRECT writes go to the device from them, nothing is copied first.
grep -qE "^unaligned copies *0 bytes" <<<"$OUT" || fail "aligned FUSE I/O was copied: $OUT"
# An unaligned O_DIRECT write is copied into aligned memory (read-modify-write), and counted.
dd if=/dev/urandom of="$SCRATCH/odd" bs=1000 count=3 status=none
python3 - "$mnt/odd" "$SCRATCH/odd" <<'PY' || fail "unaligned O_DIRECT write through the mount"
import os, sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644)
os.pwrite(fd, data, 100)  # FUSE direct_io: unaligned offset, length and memory are passed on
os.close(fd)
got = open(sys.argv[1], "rb").read()
sys.exit(0 if got == bytes(100) + data else 1)
PY
expect_exit 0 "$STABLEFS" stats "$mnt"
grep -qE "^unaligned copies *[1-9][0-9]* bytes" <<<"$OUT" || fail "unaligned write not counted: $OUT"
grep -q "stable_writes=0" <<<"$OUT" || fail "reason: $OUT"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$loop"
# bounce=always is honoured on the same device.
mount_fs "$loop" "$mnt" -o bounce=always
dd if=/dev/urandom of="$mnt/d" bs=64k count=16 oflag=direct status=none || fail "dd"
expect_exit 0 "$STABLEFS" stats "$mnt"
grep -q "^bounce *yes" <<<"$OUT" && grep -qE "^bounced *[1-9]" <<<"$OUT" || fail "bounce=always: $OUT"
umount_fs "$mnt"

# zram0: bounce
if [ -b /dev/zram0 ] && [ "$(cat /sys/block/zram0/disksize)" = 0 ]; then
  ZRAM_USED=1
  echo 512M >/sys/block/zram0/disksize || fail "cannot size zram0"
  expect_exit 0 "$STABLEFS" mkfs -q /dev/zram0
  mount_fs /dev/zram0 "$mnt"
  fio_on zram
  expect_exit 0 "$STABLEFS" stats "$mnt"
  grep -q "^bounce *yes" <<<"$OUT" || fail "zram0 should bounce: $OUT"
  grep -qE "^bounced *[1-9][0-9]* I/Os" <<<"$OUT" || fail "no bounced I/O counted: $OUT"
  grep -q "stable_writes=1" <<<"$OUT" || fail "reason: $OUT"
  grep -q "^checksum errors  0" <<<"$OUT" || fail "checksum errors: $OUT"
  umount_fs "$mnt"
  expect_exit 0 "$STABLEFS" fsck -n /dev/zram0
else
  echo "zram0 absent or in use: its part skipped"
fi
expect_one_line_error "$STABLEFS" stats "$mnt"
exit 0
