#!/usr/bin/env bash
# A plain umount(8) waits for the daemon: the mount's utab entry (helper=stablefs) makes
# umount(8) run /sbin/umount.stablefs, which unmounts and returns only once the daemon has
# committed, marked the filesystem clean and released the device. So `umount MNT` followed at
# once by fsck (repairing mode: an exclusive open, refused while the device is held), info
# (state clean) and a remount never races: for an image file, a loop device, `mount -t
# stablefs`, and the xfstests spelling (subtype=: type plain fuse).
. "$(dirname "$0")/lib.sh"
helper=/sbin/umount.stablefs
mhelper=/sbin/mount.stablefs
[ -e "$helper" ] && skip "$helper already exists (an installed stablefs); not replacing it"
[ -e "$mhelper" ] && skip "$mhelper already exists (an installed stablefs); not replacing it"
HELPERS_MADE=""
trap 'rm -f $HELPERS_MADE; cleanup' EXIT
ln -s "$(realpath "$STABLEFS")" "$helper" || skip "cannot create $helper"
HELPERS_MADE=$helper
ln -s "$(realpath "$STABLEFS")" "$mhelper" || skip "cannot create $mhelper"
HELPERS_MADE="$helper $mhelper"
mnt=$SCRATCH/mnt
mkdir -p "$mnt"
MOUNTS+=("$mnt")
runtime="/run/stablefs/$(realpath "$mnt" | sed 's/%/%25/g; s|/|%2F|g').pid"

# released_after_umount TARGET ROUND: checks, at once, that the daemon let go of TARGET.
released_after_umount() {
  local target=$1 round=$2
  # First, with no process started in between: the daemon removes its runtime file last,
  # after closing the volume and the device.
  [ -e "$runtime" ] && fail "the daemon still runs right after umount(8) returned (round $round)"
  ! is_mounted_at "$mnt" || fail "$mnt still mounted after umount(8) (round $round)"
  expect_exit 0 "$STABLEFS" info "$target"
  grep -q "state            clean" <<<"$OUT" || fail "$target not clean right after umount(8) (round $round): $OUT"
  expect_exit 0 "$STABLEFS" fsck -n "$target"
  grep -q "clean" <<<"$OUT" || fail "fsck -n right after umount(8) (round $round): $OUT"
  # Without -n fsck opens the device exclusively: it fails while the daemon still holds it.
  expect_exit 0 "$STABLEFS" fsck "$target"
  grep -q "in use\|busy" <<<"$OUT" && fail "fsck found $target in use (round $round): $OUT"
}

# cycle TARGET MOUNT-CMD...: 4 rounds of mount, write, plain umount, checks, remount + read.
cycle() {
  local target=$1 round sum; shift
  for round in 1 2 3 4; do
    timeout 60 "$@" || fail "mount ($*) failed (round $round)"
    is_mounted_at "$mnt" || fail "$mnt not mounted (round $round)"
    grep -qE "OPTS=(.*,)?helper=stablefs" <<<"$(grep -F "TARGET=$mnt " /run/mount/utab)" ||
      fail "no utab entry with helper=stablefs for $mnt: $(cat /run/mount/utab 2>/dev/null)"
    dd if=/dev/urandom of="$mnt/data$round" bs=1M count=24 status=none || fail "dd (round $round)"
    sum=$(sha256sum <"$mnt/data$round")
    timeout 60 umount "$mnt" || fail "umount(8) $mnt failed (round $round)"
    released_after_umount "$target" "$round"
    grep -qF "TARGET=$mnt " /run/mount/utab 2>/dev/null && fail "utab entry for $mnt left after umount (round $round)"
    timeout 60 "$@" || fail "remount right after umount(8) failed (round $round)"
    [ "$(sha256sum <"$mnt/data$round")" = "$sum" ] || fail "data written before umount(8) changed (round $round)"
    rm "$mnt/data$round" || fail "rm"
    timeout 60 umount "$mnt" || fail "second umount(8) failed (round $round)"
    released_after_umount "$target" "$round"
  done
}

# image file, `stablefs mount`: type fuse.stablefs, source the image.
img=$SCRATCH/img.img
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 512M
timeout 60 "$STABLEFS" mount "$img" "$mnt" || fail "mount"
grep -q "^$img $mnt fuse.stablefs rw," /proc/mounts || fail "/proc/mounts: $(grep "$mnt" /proc/mounts)"
timeout 60 umount "$mnt" || fail "umount(8)"
released_after_umount "$img" 0
cycle "$img" "$STABLEFS" mount "$img" "$mnt"

# loop device: same type, the device as source.
truncate -s 512M "$SCRATCH/backing.img"
new_loop "$SCRATCH/backing.img"
loop=$LOOP
expect_exit 0 "$STABLEFS" mkfs -q "$loop"
timeout 60 "$STABLEFS" mount "$loop" "$mnt" || fail "mount $loop"
grep -q "^$loop $mnt fuse.stablefs rw," /proc/mounts || fail "/proc/mounts: $(grep "$mnt" /proc/mounts)"
timeout 60 umount "$mnt" || fail "umount(8)"
released_after_umount "$loop" 0
cycle "$loop" "$STABLEFS" mount "$loop" "$mnt"

# mount -t stablefs (mount.stablefs), and the xfstests spelling: type fuse, no subtype.
cycle "$img" mount -t stablefs -o bounce=never "$img" "$mnt"
timeout 60 "$STABLEFS" mount "$loop" "$mnt" -o subtype= || fail "mount -o subtype="
grep -q "^$loop $mnt fuse rw," /proc/mounts || fail "subtype=: $(grep "$mnt" /proc/mounts)"
timeout 60 umount "$mnt" || fail "umount(8)"
released_after_umount "$loop" 0
cycle "$loop" "$STABLEFS" mount "$loop" "$mnt" -o subtype=

# umount -l (lazy) through the helper detaches and returns; the daemon then finishes.
timeout 60 "$STABLEFS" mount "$img" "$mnt" || fail "mount"
timeout 60 umount -l "$mnt" || fail "umount -l"
! is_mounted_at "$mnt" || fail "umount -l left $mnt mounted"
timeout 30 bash -c "until '$STABLEFS' fsck '$img' >/dev/null 2>&1; do sleep 0.1; done" ||
  fail "the daemon did not release $img after umount -l"

# A daemon killed with SIGKILL: plain umount(8) still unmounts the dead mount (through the
# helper) and clears its utab entry; the next mount replays the journal.
timeout 60 "$STABLEFS" mount "$img" "$mnt" || fail "mount"
pid=$(daemon_pid "$mnt")
kill -KILL "$pid"
timeout 10 bash -c "while [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do sleep 0.05; done" ||
  fail "daemon survived SIGKILL"
timeout 60 umount "$mnt" || fail "umount(8) of a mount whose daemon was killed"
! is_mounted_at "$mnt" || fail "$mnt still mounted"
grep -qF "TARGET=$mnt " /run/mount/utab 2>/dev/null && fail "utab entry left after the killed daemon's umount"
timeout 60 "$STABLEFS" mount "$img" "$mnt" || fail "mount after SIGKILL"
timeout 60 umount "$mnt" || fail "umount(8)"
released_after_umount "$img" kill
exit 0
