#!/usr/bin/env bash
# POSIX permission semantics through the mount as unprivileged users (allow_other,
# default_permissions): denials, ownership of new files, chown refused, sticky directories,
# setgid directory inheritance, suid/sgid cleared when a non-owner writes.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/perm.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M
chmod 755 "$SCRATCH"
mount_fs "$img" "$mnt" -o allow_other
as() { local uid=$1 gid=$2; shift 2; setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"; }
A="1001 1001" B="1002 1002"

mkdir "$mnt/priv" && chmod 700 "$mnt/priv" && echo secret >"$mnt/priv/s"
as $A cat "$mnt/priv/s" 2>/dev/null && fail "user read inside a 0700 root directory"
as $A touch "$mnt/x" 2>/dev/null && fail "user created a file in root's 0755 directory"
echo data >"$mnt/ro" && chmod 644 "$mnt/ro"
as $A sh -c "echo x >>'$mnt/ro'" 2>/dev/null && fail "user wrote a 0644 root file"
[ "$(as $A cat "$mnt/ro")" = data ] || fail "user cannot read a 0644 file"

# New files belong to their creator; a user cannot give them away.
mkdir "$mnt/pub" && chmod 1777 "$mnt/pub"
as $A sh -c "echo a >'$mnt/pub/a'" || fail "user cannot create in a 1777 directory"
[ "$(stat -c %u:%g "$mnt/pub/a")" = 1001:1001 ] || fail "owner of a new file: $(stat -c %u:%g "$mnt/pub/a")"
as $A chown 1002 "$mnt/pub/a" 2>/dev/null && fail "user chowned a file to someone else"
as $A chmod 600 "$mnt/pub/a" || fail "owner cannot chmod"
as $B cat "$mnt/pub/a" 2>/dev/null && fail "other user read a 0600 file"
# Sticky: B may not remove or rename A's file in a 1777 directory; A may.
as $B rm -f "$mnt/pub/a" 2>/dev/null; [ -e "$mnt/pub/a" ] || fail "sticky directory let another user delete"
as $B mv "$mnt/pub/a" "$mnt/pub/b" 2>/dev/null && fail "sticky directory let another user rename"
as $A rm "$mnt/pub/a" || fail "owner cannot delete in a sticky directory"

# setgid directory: new entries take its group, subdirectories keep the bit.
mkdir "$mnt/sg" && chown 0:4242 "$mnt/sg" && chmod 2777 "$mnt/sg"
as $A touch "$mnt/sg/f" && as $A mkdir "$mnt/sg/d" || fail "create in setgid directory"
[ "$(stat -c %g "$mnt/sg/f")" = 4242 ] || fail "setgid dir: file group $(stat -c %g "$mnt/sg/f")"
[ "$(stat -c %g "$mnt/sg/d")" = 4242 ] && [ -g "$mnt/sg/d" ] || fail "setgid dir: subdirectory $(stat -c %a:%g "$mnt/sg/d")"

# suid/sgid cleared when a non-owner writes.
echo x >"$mnt/pub/suid" && chmod 6777 "$mnt/pub/suid"
as $A sh -c "echo y >>'$mnt/pub/suid'" || fail "user cannot write a 0777 file"
[ -u "$mnt/pub/suid" ] && fail "suid survived a write by a non-owner"
[ -g "$mnt/pub/suid" ] && fail "sgid survived a write by a non-owner"

# utimes: the owner may set times; another user only "now" with write access, never explicit.
as $A touch "$mnt/pub/t" || fail "touch"
as $A touch -d @1000000 "$mnt/pub/t" || fail "owner cannot set explicit times"
[ "$(stat -c %Y "$mnt/pub/t")" = 1000000 ] || fail "explicit mtime"
as $B touch -d @2000000 "$mnt/pub/t" 2>/dev/null && fail "non-owner set explicit times"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
exit 0
