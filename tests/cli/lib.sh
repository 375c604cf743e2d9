# Shared helpers for the command-line suite. Source it first; it sets up a scratch directory
# and a trap that detaches loop devices, resets zram and removes scratch files on any exit.
set -uo pipefail
STABLEFS=${STABLEFS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/stablefs}
SCRATCH=$(mktemp -d /var/tmp/stablefs-test.XXXXXX)
LOOPS=()
ZRAM_USED=0
MOUNTS=()
PIDS=()

# is_mounted_at DIR: whether /proc/mounts lists DIR (also true for a dead FUSE mount, whose
# root no longer answers stat).
is_mounted_at() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

cleanup() {
  local l m p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for m in "${MOUNTS[@]}"; do
    if is_mounted_at "$m"; then
      timeout 40 "$STABLEFS" umount "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null
    fi
  done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  # Any loop device still backed by a file of this test's scratch directory is ours too.
  losetup -a 2>/dev/null | grep -F "$SCRATCH/" | cut -d: -f1 | xargs -r -n1 losetup -d 2>/dev/null
  if [ "$ZRAM_USED" = 1 ]; then echo 1 >/sys/block/zram0/reset 2>/dev/null; fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "$*"; exit 77; }

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE. Output goes to $OUT.
expect_exit() {
  local want=$1; shift
  OUT=$("$@" 2>&1); local rc=$?
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want; output: $OUT"
}

# expect_one_line_error CMD...: CMD must fail with exactly one line on stderr.
expect_one_line_error() {
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -ne 0 ] || fail "'$*' succeeded, expected an error"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one error line: $err"
  [ -n "$err" ] || fail "'$*' failed silently"
  ERR=$err
}

# new_loop IMAGE: attaches IMAGE to a loop device (detached at exit) and sets LOOP to it.
# Not for $(...): a subshell could not record the device for the cleanup trap.
new_loop() {
  LOOP=$(losetup -f --show "$1") || skip "no loop device available"
  LOOPS+=("$LOOP")
}

# flip_byte FILE OFFSET: inverts one byte in place.
flip_byte() {
  local file=$1 off=$2 byte
  byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  printf "$(printf '\\%03o' $(( 255 - byte )))" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

# info_field IMAGE LABEL: the first number after LABEL in `stablefs info`.
info_field() { "$STABLEFS" info "$1" | sed -nE "s/^$2 +[^0-9]*([0-9]+).*/\1/p" | head -1; }

# mount_fs IMAGE MNT [MOUNT-ARGS...]: mounts with `stablefs mount` (unmounted at exit);
# fails the test if the mount fails.
mount_fs() {
  local img=$1 mnt=$2; shift 2
  mkdir -p "$mnt"
  MOUNTS+=("$mnt")
  timeout 60 "$STABLEFS" mount "$img" "$mnt" "$@" || fail "mount $img $mnt $* failed"
  mountpoint -q "$mnt" || fail "$mnt is not a mountpoint after mount returned"
}

# umount_fs MNT: `stablefs umount`, which returns once the daemon released the device.
umount_fs() {
  timeout 60 "$STABLEFS" umount "$1" || fail "umount $1 failed"
  ! mountpoint -q "$1" || fail "$1 still mounted after umount"
}

# daemon_pid MNT: the pid of the daemon serving MNT (from its runtime file).
daemon_pid() { head -1 "/run/stablefs/$(realpath "$1" | sed 's/%/%25/g; s|/|%2F|g').pid"; }
