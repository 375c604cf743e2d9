#!/usr/bin/env bash
# Bad options, missing devices and foreign or corrupt images give one clear error line and a
# non-zero exit (fsck: 8 for operational errors, 16 for usage errors).
. "$(dirname "$0")/lib.sh"
expect_one_line_error "$STABLEFS" mkfs "$SCRATCH/missing.img"
grep -q "does not exist" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mkfs "$SCRATCH/x.img" --size 12Q
expect_one_line_error "$STABLEFS" mkfs "$SCRATCH/x.img" --size 64M -b 3000
grep -q "block size 3000" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mkfs "$SCRATCH/tiny.img" --size 100K
grep -q "too small" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mkfs "$SCRATCH/x.img" --size 64M --label "$(printf 'x%.0s' $(seq 80))"
expect_one_line_error "$STABLEFS" info "$SCRATCH/missing.img"
grep -q "missing.img" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mkfs --bogus-option "$SCRATCH/x.img"
expect_one_line_error "$STABLEFS" frobnicate
# A mistyped command before a mountpoint is an error naming the commands, never a mount.
mkdir -p "$SCRATCH/mnt"
expect_one_line_error "$STABLEFS" verfy "$SCRATCH/mnt"
grep -q "unknown command 'verfy'.*map" <<<"$ERR" || fail "$ERR"
! is_mounted_at "$SCRATCH/mnt" || fail "a mistyped command mounted something"
expect_exit 8 "$STABLEFS" fsck -n "$SCRATCH/missing.img"
expect_exit 16 "$STABLEFS" fsck --bogus "$SCRATCH/missing.img"
# A foreign image: random bytes.
head -c 16M /dev/urandom >"$SCRATCH/random.img"
expect_one_line_error "$STABLEFS" info "$SCRATCH/random.img"
grep -q "no stablefs filesystem" <<<"$ERR" || fail "$ERR"
expect_exit 8 "$STABLEFS" fsck -n "$SCRATCH/random.img"
# A directory is neither a device nor an image.
expect_one_line_error "$STABLEFS" info "$SCRATCH"
exit 0
