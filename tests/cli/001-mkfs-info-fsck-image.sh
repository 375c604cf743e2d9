#!/usr/bin/env bash
# mkfs on a new image file, then info and fsck (-n and repair) report a clean filesystem;
# a second mkfs refuses to overwrite it without --force.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/a.img
expect_exit 0 "$STABLEFS" mkfs "$img" --size 1G
grep -q "block size     4096" <<<"$OUT" || fail "mkfs did not print the geometry: $OUT"
[ "$(stat -c %s "$img")" -eq $((1 << 30)) ] || fail "image is not 1 GiB"
expect_exit 0 "$STABLEFS" info "$img"
grep -q "state            clean" <<<"$OUT" || fail "info does not say clean: $OUT"
grep -q "features         data_checksums" <<<"$OUT" || fail "data checksums not on by default: $OUT"
grep -q "inodes           1" <<<"$OUT" || fail "a new filesystem should hold only the root inode: $OUT"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n not clean: $OUT"
sum_before=$(md5sum <"$img")
expect_exit 0 "$STABLEFS" fsck -n "$img"
[ "$(md5sum <"$img")" = "$sum_before" ] || fail "fsck -n changed the image"
expect_exit 0 "$STABLEFS" fsck "$img"
expect_one_line_error "$STABLEFS" mkfs "$img"
grep -q "contains a stablefs filesystem; use --force" <<<"$ERR" || fail "unexpected refusal: $ERR"
expect_exit 0 "$STABLEFS" mkfs --force --label data -b 65536 --no-data-csum "$img"
expect_exit 0 "$STABLEFS" info "$img"
grep -q "block size       65536" <<<"$OUT" || fail "block size option ignored: $OUT"
grep -q "label            data" <<<"$OUT" || fail "label option ignored: $OUT"
grep -q "features         (none)" <<<"$OUT" || fail "--no-data-csum ignored: $OUT"
expect_exit 0 "$STABLEFS" fsck -n "$img"
# The conventional names work too.
bindir=$(dirname "$STABLEFS")
expect_exit 0 "$bindir/mkfs.stablefs" -f -q "$img"
expect_exit 0 "$bindir/fsck.stablefs" -n "$img"
exit 0
