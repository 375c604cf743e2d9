#!/usr/bin/env bash
# mkfs, info and fsck on /dev/zram0 (a device that demands stable pages).
. "$(dirname "$0")/lib.sh"
[ -b /dev/zram0 ] || skip "no /dev/zram0"
[ "$(cat /sys/block/zram0/disksize)" = 0 ] || skip "/dev/zram0 is in use"
ZRAM_USED=1
echo 256M >/sys/block/zram0/disksize || fail "cannot size zram0"
expect_exit 0 "$STABLEFS" mkfs /dev/zram0
expect_exit 0 "$STABLEFS" info /dev/zram0
grep -q "state            clean" <<<"$OUT" || fail "info: $OUT"
expect_exit 0 "$STABLEFS" fsck -n /dev/zram0
expect_exit 0 "$STABLEFS" fsck /dev/zram0
exit 0
