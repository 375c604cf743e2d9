#!/usr/bin/env bash
# stablefs sync: on a mount with commit=60, a file written and then `sync`ed with sync(1) is
# gone after the daemon dies (the kernel sends no FUSE_SYNCFS to it); one written and then
# given to `stablefs sync` (the mountpoint or a path inside it) survives SIGKILL of the daemon
# intact. A path outside any stablefs mount is one line and exit 1.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/s.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 128M
head -c 3M /dev/urandom >"$SCRATCH/data"

kill_daemon() {  # kill_daemon MNT: SIGKILL its daemon, wait for it, clear the dead mount
  local pid
  pid=$(daemon_pid "$1")
  [ -n "$pid" ] || fail "no daemon pid recorded for $1"
  kill -KILL "$pid"
  timeout 10 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done" || fail "daemon survived SIGKILL"
  umount -l "$1" 2>/dev/null
}

# What sync(1) gives: nothing, until the timer's commit (60 s away).
mount_fs "$img" "$mnt" -o commit=60
cp "$SCRATCH/data" "$mnt/by-sync" || fail "cp"
sync
kill_daemon "$mnt"
mount_fs "$img" "$mnt" -o commit=60
[ -e "$mnt/by-sync" ] && echo "note: sync(1) reached the daemon on this kernel"

# stablefs sync, given the mountpoint and given a file inside the mount.
cp "$SCRATCH/data" "$mnt/one" || fail "cp"
expect_exit 0 "$STABLEFS" sync "$mnt"
mkdir "$mnt/dir" && cp "$SCRATCH/data" "$mnt/dir/two" || fail "cp"
expect_exit 0 "$STABLEFS" sync "$mnt/dir/two"
kill_daemon "$mnt"
mount_fs "$img" "$mnt" -o commit=60
cmp -s "$SCRATCH/data" "$mnt/one" || fail "a file given to stablefs sync (mountpoint) did not survive SIGKILL"
cmp -s "$SCRATCH/data" "$mnt/dir/two" || fail "a file given to stablefs sync (path) did not survive SIGKILL"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"

expect_one_line_error "$STABLEFS" sync "$SCRATCH/data"
grep -q "not on a stablefs mount" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" sync "$SCRATCH/missing"
echo ok
