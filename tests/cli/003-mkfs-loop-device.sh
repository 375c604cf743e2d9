#!/usr/bin/env bash
# mkfs, info and fsck on a loop device; mkfs refuses a device holding another filesystem.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$SCRATCH/backing.img"
new_loop "$SCRATCH/backing.img"
dev=$LOOP
expect_exit 0 "$STABLEFS" mkfs "$dev"
expect_exit 0 "$STABLEFS" info "$dev"
grep -q "state            clean" <<<"$OUT" || fail "info: $OUT"
expect_exit 0 "$STABLEFS" fsck -n "$dev"
expect_exit 0 "$STABLEFS" fsck "$dev"
expect_one_line_error "$STABLEFS" mkfs "$dev" --size 1G
grep -q -- "--size applies only to image files" <<<"$ERR" || fail "$ERR"
if command -v mkfs.ext4 >/dev/null; then
  mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4 failed"
  expect_one_line_error "$STABLEFS" mkfs "$dev"
  grep -q "contains a ext2/ext3/ext4 filesystem" <<<"$ERR" || fail "ext4 not recognised: $ERR"
  expect_exit 0 "$STABLEFS" mkfs -f -q "$dev"
  expect_exit 0 "$STABLEFS" fsck -n "$dev"
fi
exit 0
