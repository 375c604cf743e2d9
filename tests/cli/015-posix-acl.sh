#!/usr/bin/env bash
# POSIX ACLs through a mount (allow_other), as root and as unprivileged users: an ACL entry
# grants what the mode bits deny (user and group entries), chmod rewrites the mask, a default
# ACL is inherited by new files and subdirectories (and the umask is then not applied), getfacl
# round-trips, a malformed ACL is EINVAL; all of it survives remount and fsck is clean.
. "$(dirname "$0")/lib.sh"
command -v setfacl >/dev/null && command -v getfacl >/dev/null || skip "setfacl/getfacl not installed (package acl)"
img=$SCRATCH/acl.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M
chmod 755 "$SCRATCH"
mount_fs "$img" "$mnt" -o allow_other
as() { local uid=$1 gid=$2; shift 2; setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; }
A="1001 1001" B="1002 1002"
# acl_of PATH: getfacl's entries, without the comment lines.
acl_of() { getfacl -cpE "$1" 2>/dev/null | grep -v '^$'; }

# A user entry grants read that the mode (0600, root's) denies, to that user only.
echo secret >"$mnt/s" && chmod 600 "$mnt/s"
as $A cat "$mnt/s" >/dev/null 2>&1 && fail "user read a 0600 root file before any ACL"
setfacl -m u:1001:r "$mnt/s" || fail "setfacl -m u:1001:r"
[ "$(as $A cat "$mnt/s")" = secret ] || fail "user:1001:r-- did not grant read"
as $B cat "$mnt/s" >/dev/null 2>&1 && fail "another user read through user 1001's entry"
as $A sh -c "echo x >>'$mnt/s'" 2>/dev/null && fail "user:1001:r-- granted write"
[ "$(stat -c %a "$mnt/s")" = 640 ] || fail "mode after setfacl: $(stat -c %a "$mnt/s") (group bits = mask r--)"
acl_of "$mnt/s" | grep -qx "user:1001:r--" || fail "getfacl: $(acl_of "$mnt/s")"
# Write through an ACL entry.
setfacl -m u:1001:rw "$mnt/s" || fail "setfacl -m u:1001:rw"
as $A sh -c "echo more >>'$mnt/s'" || fail "user:1001:rw- did not grant write"
[ "$(tail -1 "$mnt/s")" = more ] || fail "write through the ACL lost"
# A group entry: only a member of group 3000 gets in.
echo g >"$mnt/g" && chmod 600 "$mnt/g" && setfacl -m g:3000:rw "$mnt/g" || fail "setfacl -m g:3000:rw"
setpriv --reuid=1002 --regid=1002 --groups=3000 -- sh -c "echo member >>'$mnt/g'" || fail "group:3000:rw- did not grant write to a member"
as $B sh -c "echo x >>'$mnt/g'" 2>/dev/null && fail "group entry granted write to a non-member"

# chmod rewrites the mask: 600 masks the named entry off, 640 gives read back.
chmod 600 "$mnt/s" || fail "chmod"
acl_of "$mnt/s" | grep -qx "mask::---" || fail "chmod 600 did not set mask::---: $(acl_of "$mnt/s")"
as $A cat "$mnt/s" >/dev/null 2>&1 && fail "user read after chmod 600 masked the entry"
chmod 640 "$mnt/s" || fail "chmod"
acl_of "$mnt/s" | grep -qx "mask::r--" || fail "chmod 640 did not set mask::r--: $(acl_of "$mnt/s")"
acl_of "$mnt/s" | grep -qx "user:1001:rw-" || fail "chmod changed the named entry: $(acl_of "$mnt/s")"
[ "$(as $A head -1 "$mnt/s")" = secret ] || fail "user cannot read after chmod 640"
as $A sh -c "echo x >>'$mnt/s'" 2>/dev/null && fail "mask r-- still let the user write"

# Default ACL: inherited by new files (no umask) and subdirectories (as default and access).
mkdir "$mnt/d" && chmod 755 "$mnt/d" || fail "mkdir"
setfacl -m u:1001:rwx "$mnt/d" && setfacl -d -m u:1001:rwx,o::- "$mnt/d" || fail "setfacl -d"
(umask 077 && touch "$mnt/d/f") || fail "touch d/f"
[ "$(stat -c %a "$mnt/d/f")" = 660 ] || fail "inherited file mode $(stat -c %a "$mnt/d/f"), expected 660 (0666 limited by the default ACL, no umask)"
acl_of "$mnt/d/f" | grep -qx "user:1001:rwx" || fail "file did not inherit user:1001: $(acl_of "$mnt/d/f")"
acl_of "$mnt/d/f" | grep -qx "mask::rw-" || fail "inherited mask: $(acl_of "$mnt/d/f")"
as $A sh -c "echo via-default >>'$mnt/d/f'" || fail "inherited entry did not grant write"
as $B cat "$mnt/d/f" >/dev/null 2>&1 && fail "other user read a file whose default ACL gives other nothing"
(umask 077 && mkdir "$mnt/d/sub") || fail "mkdir d/sub"
[ "$(stat -c %a "$mnt/d/sub")" = 770 ] || fail "inherited directory mode $(stat -c %a "$mnt/d/sub")"
acl_of "$mnt/d/sub" | grep -qx "default:user:1001:rwx" || fail "subdirectory did not inherit the default ACL: $(acl_of "$mnt/d/sub")"
acl_of "$mnt/d/sub" | grep -qx "user:1001:rwx" || fail "subdirectory access ACL: $(acl_of "$mnt/d/sub")"
as $A sh -c "umask 022; echo a >'$mnt/d/sub/byA' && mkdir '$mnt/d/sub/dirA'" || fail "user cannot create through the inherited ACL"
[ "$(stat -c %u:%a "$mnt/d/sub/byA")" = 1001:660 ] || fail "user's file in a default-ACL directory: $(stat -c %u:%a "$mnt/d/sub/byA")"
acl_of "$mnt/d/sub/dirA" | grep -qx "default:user:1001:rwx" || fail "two levels down: $(acl_of "$mnt/d/sub/dirA")"
ln -s f "$mnt/d/link" && [ "$(stat -c %a "$mnt/d/link")" = 777 ] || fail "symlink in a default-ACL directory"
# Without a default ACL the umask applies (the filesystem applies it: the kernel does not).
(umask 027 && touch "$mnt/plain" && mkdir "$mnt/plaind") || fail "create"
[ "$(stat -c %a "$mnt/plain"):$(stat -c %a "$mnt/plaind")" = 640:750 ] || fail "umask not applied: $(stat -c %a "$mnt/plain") $(stat -c %a "$mnt/plaind")"
getfacl -cp "$mnt/plain" | grep -q "^user:[0-9]" && fail "a plain file has named entries"
setfacl -k "$mnt/d" || fail "setfacl -k"
(umask 022 && touch "$mnt/d/after") || fail "touch"
[ "$(stat -c %a "$mnt/d/after")" = 644 ] || fail "after removing the default ACL: $(stat -c %a "$mnt/d/after")"

# getfacl round-trips through setfacl --set-file onto another directory.
mkdir "$mnt/copy" || fail "mkdir"
getfacl -p "$mnt/d/sub" >"$SCRATCH/sub.acl" || fail "getfacl"
sed 's|^# file: .*|# file: '"${mnt#/}"'/copy|' "$SCRATCH/sub.acl" >"$SCRATCH/copy.acl"
(cd / && setfacl --restore="$SCRATCH/copy.acl") || fail "setfacl --restore"
[ "$(acl_of "$mnt/copy")" = "$(acl_of "$mnt/d/sub")" ] || fail "round trip: $(acl_of "$mnt/copy") vs $(acl_of "$mnt/d/sub")"
setfacl -b "$mnt/copy" || fail "setfacl -b"
[ "$(acl_of "$mnt/copy" | grep -c .)" = 3 ] || fail "setfacl -b left entries: $(acl_of "$mnt/copy")"

# A malformed ACL value is refused.
python3 - "$mnt/plain" <<'PY' || fail "malformed ACL"
import errno, os, sys
# (An empty or header-only value means "remove the ACL" to the kernel, as on any filesystem;
# a version other than 2 is EOPNOTSUPP, as on any filesystem.)
def acl(*entries):
    return b"\x02\x00\x00\x00" + b"".join(t.to_bytes(2, "little") + p.to_bytes(2, "little") + i.to_bytes(4, "little") for t, p, i in entries)
N = 0xFFFFFFFF
cases = [
    (b"\x02\x00\x00\x00\x01\x00\x07\x00", errno.EINVAL),                  # partial entry
    (acl((4, 5, N), (1, 7, N), (0x20, 5, N)), errno.EINVAL),                # out of order
    (acl((1, 7, N), (2, 7, 1001), (4, 5, N), (0x20, 5, N)), errno.EINVAL),  # named entry, no mask
    (acl((1, 0o17, N), (4, 5, N), (0x20, 5, N)), errno.EINVAL),             # perm beyond rwx
    (b"\x01\x00\x00\x00" + acl((1, 7, N), (4, 5, N), (0x20, 5, N))[4:], errno.EOPNOTSUPP),
]
before = os.stat(sys.argv[1]).st_mode
for bad, want in cases:
    try:
        os.setxattr(sys.argv[1], "system.posix_acl_access", bad)
    except OSError as e:
        if e.errno != want:
            raise SystemExit(f"FAIL: {bad!r}: errno {e.errno}, expected {want}")
        continue
    raise SystemExit(f"FAIL: malformed ACL {bad!r} accepted")
if os.stat(sys.argv[1]).st_mode != before:
    raise SystemExit("FAIL: a refused ACL changed the mode")
PY

# Setting an access ACL clears the set-group-ID bit when its owner is not in the file's group
# (as on local filesystems); root, or an owner in the group, keeps it.
mkdir -p "$mnt/sg" && chmod 777 "$mnt/sg"
as $A touch "$mnt/sg/out" "$mnt/sg/in"
chown 1001:0 "$mnt/sg/out" && chmod 2770 "$mnt/sg/out"      # group root: user 1001 is not in it
chown 1001:1001 "$mnt/sg/in" && chmod 2770 "$mnt/sg/in"     # its own group
as $A setfacl -m u:1002:r "$mnt/sg/out" || fail "owner's setfacl on sg/out"
as $A setfacl -m u:1002:r "$mnt/sg/in" || fail "owner's setfacl on sg/in"
[ $(( 0$(stat -c %a "$mnt/sg/out") & 02000 )) -eq 0 ] || fail "setgid kept by a non-member's ACL: $(stat -c %a "$mnt/sg/out")"
[ $(( 0$(stat -c %a "$mnt/sg/in") & 02000 )) -ne 0 ] || fail "setgid lost by a member's ACL: $(stat -c %a "$mnt/sg/in")"
chown 1001:0 "$mnt/sg/in" && chmod 2770 "$mnt/sg/in" && setfacl -m u:1002:rw "$mnt/sg/in" || fail "root's setfacl"
[ $(( 0$(stat -c %a "$mnt/sg/in") & 02000 )) -ne 0 ] || fail "setgid lost by root's ACL: $(stat -c %a "$mnt/sg/in")"

# Everything survives remount; fsck is clean.
before=$(cd "$mnt" && getfacl -R -p . 2>/dev/null)
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n: $OUT"
mount_fs "$img" "$mnt" -o allow_other
[ "$(cd "$mnt" && getfacl -R -p . 2>/dev/null)" = "$before" ] || fail "ACLs changed across remount"
[ "$(as $A head -1 "$mnt/s")" = secret ] || fail "ACL grant lost across remount"
umount_fs "$mnt"
exit 0
