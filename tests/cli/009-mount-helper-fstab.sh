#!/usr/bin/env bash
# mount(8) integration: `mount -t stablefs` and an fstab line (mount -T FILE) run
# mount.stablefs, whose fstab-only options are dropped; `ro` and `bounce=` pass through; a
# plain umount(8) followed at once by a mount waits for the old daemon instead of failing;
# the fuse.stablefs spelling works through mount.fuse3 (which runs `stablefs SOURCE MNT -o ..`).
. "$(dirname "$0")/lib.sh"
helper=/sbin/mount.stablefs
[ -e "$helper" ] && skip "$helper already exists (an installed stablefs); not replacing it"
ln -s "$(realpath "$STABLEFS")" "$helper" || skip "cannot create $helper"
HELPER_MADE=$helper
trap 'rm -f $HELPER_MADE; cleanup' EXIT
img=$SCRATCH/helper.img
mnt=$SCRATCH/mnt
mkdir -p "$mnt"
MOUNTS+=("$mnt")
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M

timeout 60 mount -t stablefs -o bounce=never,noauto "$img" "$mnt" || fail "mount -t stablefs failed"
grep -q "^$img $mnt fuse.stablefs rw," /proc/mounts || fail "/proc/mounts: $(grep "$mnt" /proc/mounts)"
echo one >"$mnt/one" || fail "write"
umount_fs "$mnt"

fstab=$SCRATCH/fstab
printf '%s %s stablefs defaults,bounce=auto,nofail,x-systemd.device-timeout=5,comment=test 0 0\n' "$img" "$mnt" >"$fstab"
timeout 60 mount -T "$fstab" "$mnt" || fail "mount via an fstab line failed"
[ "$(cat "$mnt/one")" = one ] || fail "file lost across mount -t / fstab mounts"
echo two >"$mnt/two" || fail "write"
# Plain umount(8) returns before the daemon has closed the volume; an immediate mount waits.
for i in 1 2 3; do
  dd if=/dev/urandom of="$mnt/big$i" bs=1M count=16 status=none || fail "dd"
  timeout 60 umount "$mnt" || fail "umount(8)"
  timeout 60 mount -T "$fstab" "$mnt" || fail "mount right after umount(8) failed (round $i)"
done
[ "$(cat "$mnt/two")" = two ] || fail "file lost"
umount_fs "$mnt"
# ro through the helper's -r and -o ro.
timeout 60 mount -t stablefs -r "$img" "$mnt" || fail "mount -r"
grep -q "^$img $mnt fuse.stablefs ro," /proc/mounts || fail "mount -r is not read-only"
umount_fs "$mnt"
# An unknown option is one line from mount(8) and a failure.
err=$(timeout 60 mount -t stablefs -o bogus "$img" "$mnt" 2>&1) && fail "mount -o bogus succeeded"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && grep -q "unknown mount option 'bogus'" <<<"$err" || fail "mount -o bogus: $err"
expect_exit 0 "$STABLEFS" fsck -n "$img"

# fuse.stablefs through mount.fuse3, which finds `stablefs` on the standard PATH.
if [ -x /sbin/mount.fuse3 ] && [ ! -e /usr/local/sbin/stablefs ] && ! PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v stablefs >/dev/null; then
  ln -s "$(realpath "$STABLEFS")" /usr/local/sbin/stablefs || fail "cannot link /usr/local/sbin/stablefs"
  HELPER_MADE="$HELPER_MADE /usr/local/sbin/stablefs"
  timeout 60 mount -t fuse.stablefs -o bounce=never,nofail "$img" "$mnt" || fail "mount -t fuse.stablefs failed"
  grep -q "^$img $mnt fuse.stablefs rw," /proc/mounts || fail "fuse.stablefs: $(grep "$mnt" /proc/mounts)"
  [ "$(cat "$mnt/two")" = two ] || fail "file lost (fuse.stablefs)"
  umount_fs "$mnt"
  printf '%s %s fuse.stablefs defaults,nofail,bounce=auto 0 0\n' "$img" "$mnt" >"$fstab"
  timeout 60 mount -T "$fstab" "$mnt" || fail "fstab line with fuse.stablefs failed"
  umount_fs "$mnt"
else
  echo "fuse.stablefs part skipped (no mount.fuse3, or a stablefs is installed)"
fi
exit 0
