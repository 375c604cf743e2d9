#!/usr/bin/env bash
# Open-but-unlinked files through a real mount: a file removed while open stays readable and
# writable through its descriptor and keeps its space until the last close, which returns it.
# Then the daemon is killed with SIGKILL while an unlinked file is open: fsck -n accepts the
# orphan, the next mount frees it (space back), and fsck is clean.
. "$(dirname "$0")/lib.sh"
# A failure with fd 3 open would keep the mount busy: close it before lib.sh's cleanup.
trap 'exec 3>&- 2>/dev/null; cleanup' EXIT
command -v python3 >/dev/null || skip "python3 is not installed"
img=$SCRATCH/orphan.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M
mount_fs "$img" "$mnt"
: >"$mnt/marker" || fail "create marker"

# free_blocks: statfs free blocks after a journal commit, since freed blocks become
# allocatable only once the transaction that freed them has committed. fsync commits only
# for a file with a change of its own: the marker gets one (its times) first.
free_blocks() {
  touch "$mnt/marker" && sync "$mnt/marker" || fail "fsync through the mount"
  stat -f -c %f "$mnt"
}
# near A B: A and B differ by at most 16 blocks (tree blocks a split or merge may take).
near() { [ $(( $1 > $2 ? $1 - $2 : $2 - $1 )) -le 16 ]; }
# wait_free_at_least N: polls (bounded, 30 s) until statfs shows at least N - 16 free blocks.
wait_free_at_least() {
  local want=$(( $1 - 16 )) got i
  for i in $(seq 60); do
    got=$(free_blocks)
    [ "$got" -ge "$want" ] && return 0
    sleep 0.5
  done
  fail "free blocks stayed at $got, expected at least $want"
}

# ---- unlink while open: data stays, space stays, until close --------------------------------
f0=$(free_blocks)
head -c 32M /dev/urandom >"$SCRATCH/big" || fail "make test data"
cp "$SCRATCH/big" "$mnt/big" && sync "$mnt/big" || fail "write the file"
f1=$(free_blocks)
[ "$f1" -le $(( f0 - 8192 )) ] || fail "a 32 MiB file took only $(( f0 - f1 )) blocks"

exec 3<>"$mnt/big" || fail "open the file on fd 3"
rm "$mnt/big" || fail "rm of the open file"
[ ! -e "$mnt/big" ] || fail "the file is still visible after rm"
ls "$mnt" | grep -qx big && fail "ls still lists the removed file"
f2=$(free_blocks)
near "$f1" "$f2" || fail "free blocks went from $f1 to $f2 on rm of an open file (space released early)"

# fsck -n of the mounted image sees a legal orphan.
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "1 orphaned inode" <<<"$OUT" || fail "fsck -n does not report the orphan: $OUT"

# Read and write through the descriptor (python inherits fd 3).
timeout 120 python3 - "$SCRATCH/big" <<'PY' || fail "I/O through the descriptor of the unlinked file"
import hashlib, os, sys
want = open(sys.argv[1], "rb").read()
st = os.fstat(3)
if st.st_nlink != 0 or st.st_size != len(want):
    raise SystemExit(f"FAIL: fstat of the unlinked file: nlink {st.st_nlink}, size {st.st_size}")
got = b""
while len(got) < len(want):
    chunk = os.pread(3, 1 << 20, len(got))
    if not chunk:
        break
    got += chunk
if hashlib.sha256(got).digest() != hashlib.sha256(want).digest():
    raise SystemExit("FAIL: data read through the descriptor differs")
extra = os.urandom(1 << 20)
if os.pwrite(3, extra, len(want)) != len(extra):
    raise SystemExit("FAIL: short write")
patch = os.urandom(5000)
os.pwrite(3, patch, 12345)
os.fsync(3)
if os.pread(3, len(extra), len(want)) != extra or os.pread(3, 5000, 12345) != patch:
    raise SystemExit("FAIL: written data does not read back")
if os.fstat(3).st_size != len(want) + len(extra):
    raise SystemExit("FAIL: size after the append")
PY
f3=$(free_blocks)
[ "$f3" -le $(( f2 - 256 + 16 )) ] || fail "the 1 MiB append took no space ($f2 -> $f3)"

exec 3>&-
wait_free_at_least "$f0"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "orphaned" <<<"$OUT" && fail "orphan still listed after the last close: $OUT"

# ---- SIGKILL while an unlinked file is open ---------------------------------------------------
g0=$(free_blocks)
head -c 16M /dev/urandom >"$mnt/victim" && sync "$mnt/victim" || fail "write the victim file"
g1=$(free_blocks)
[ "$g1" -le $(( g0 - 4096 )) ] || fail "a 16 MiB file took only $(( g0 - g1 )) blocks"
exec 3<"$mnt/victim" || fail "open the victim file"
rm "$mnt/victim" || fail "rm of the open victim"
g2=$(free_blocks)  # also commits the unlink and the orphan entry
near "$g1" "$g2" || fail "free blocks went from $g1 to $g2 on rm of an open file"

pid=$(daemon_pid "$mnt")
[ -n "$pid" ] || fail "no daemon pid recorded for $mnt"
kill -KILL "$pid"
timeout 10 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.05; done" || fail "daemon survived SIGKILL"
exec 3<&-
umount -l "$mnt" 2>/dev/null

expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n after the crash: $OUT"
grep -q "1 orphaned inode" <<<"$OUT" || fail "fsck -n after the crash does not report the orphan: $OUT"
expect_exit 0 "$STABLEFS" info "$img"

mount_fs "$img" "$mnt"
[ ! -e "$mnt/victim" ] || fail "the victim is back after the crash"
[ "$(free_blocks)" -ge $(( g0 - 16 )) ] || fail "space of the orphan not returned at mount: $(free_blocks) free, $g0 before"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n after recovery: $OUT"
grep -q "orphaned" <<<"$OUT" && fail "orphan still listed after the recovery mount: $OUT"
expect_exit 0 "$STABLEFS" info "$img"
grep -q "orphans_present" <<<"$OUT" && fail "the orphan feature bit survived a clean unmount: $OUT"
exit 0
