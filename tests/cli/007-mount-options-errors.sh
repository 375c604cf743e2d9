#!/usr/bin/env bash
# mount options and refusals: bad options, missing device or mountpoint and a second mount of
# the same image give one line and a non-zero exit; fstab-only options are accepted; ro is
# read-only; -f stays in the foreground and SIGTERM there unmounts cleanly.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/opt.img
mnt=$SCRATCH/mnt
mnt2=$SCRATCH/mnt2
mkdir -p "$mnt" "$mnt2"
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M

expect_one_line_error "$STABLEFS" mount "$img" "$mnt" -o frobnicate
grep -q "unknown mount option 'frobnicate'" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mount "$img" "$mnt" -o bounce=sometimes
expect_one_line_error "$STABLEFS" mount "$img" "$mnt" -o commit=soon
grep -q "commit=soon" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mount "$SCRATCH/missing.img" "$mnt"
grep -q "missing.img" <<<"$ERR" || fail "$ERR"
expect_one_line_error "$STABLEFS" mount "$img" "$SCRATCH/no-such-dir"
expect_one_line_error "$STABLEFS" mount "$img" "$SCRATCH/opt.img"
head -c 16M /dev/urandom >"$SCRATCH/random.img"
expect_one_line_error "$STABLEFS" mount "$SCRATCH/random.img" "$mnt"
grep -q "no stablefs filesystem" <<<"$ERR" || fail "$ERR"
mountpoint -q "$mnt" && fail "a failed mount left $mnt mounted"
expect_one_line_error "$STABLEFS" umount "$mnt"

# fstab-only options are accepted and dropped; bounce and commit are honoured.
mount_fs "$img" "$mnt" -o defaults,noauto,nofail,_netdev,user,users,owner,comment=x,x-systemd.automount,bounce=never,commit=1,rw
echo data >"$mnt/file" || fail "write"
# A second mount of the same image is refused while the first is live.
MOUNTS+=("$mnt2")
expect_one_line_error "$STABLEFS" mount "$img" "$mnt2"
grep -q "in use" <<<"$ERR" || fail "second mount: $ERR"
mountpoint -q "$mnt2" && fail "second mount mounted"
# commit=1: the periodic commit makes the write durable without fsync; SIGKILL then shows it.
sleep 2.5
pid=$(daemon_pid "$mnt")
kill -KILL "$pid"
timeout 10 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done" || fail "daemon survived SIGKILL"
umount -l "$mnt" 2>/dev/null
mount_fs "$img" "$mnt" -o ro
[ "$(cat "$mnt/file")" = data ] || fail "committed write lost after SIGKILL"
grep -q " $mnt fuse.stablefs ro," /proc/mounts || fail "ro not shown in /proc/mounts"
(echo x >"$mnt/other") 2>/dev/null && fail "write succeeded on a ro mount"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"

# subtype= (empty): plain "fuse" type with the image as source, as xfstests looks for.
mount_fs "$img" "$mnt" -o subtype=
grep -q "^$img $mnt fuse rw," /proc/mounts || fail "subtype=: $(grep "$mnt" /proc/mounts)"
umount_fs "$mnt"

# -f: foreground; SIGTERM commits, marks clean and unmounts.
"$STABLEFS" mount -f "$img" "$mnt" &
fpid=$!
PIDS+=("$fpid")
MOUNTS+=("$mnt")
timeout 20 bash -c "until mountpoint -q '$mnt'; do sleep 0.05; done" || fail "foreground mount did not come up"
echo fg >"$mnt/fg" || fail "write to foreground mount"
kill -TERM "$fpid"
timeout 30 bash -c "while kill -0 $fpid 2>/dev/null; do sleep 0.05; done" || fail "foreground daemon did not exit on SIGTERM"
wait "$fpid" || fail "foreground daemon exited non-zero after SIGTERM"
mountpoint -q "$mnt" && fail "SIGTERM left $mnt mounted"
expect_exit 0 "$STABLEFS" info "$img"
grep -q "state            clean" <<<"$OUT" || fail "not clean after SIGTERM: $OUT"
expect_exit 0 "$STABLEFS" fsck -n "$img"
mount_fs "$img" "$mnt"
[ "$(cat "$mnt/fg")" = fg ] || fail "foreground write lost"
umount_fs "$mnt"
exit 0
