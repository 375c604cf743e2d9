#!/usr/bin/env bash
# Runs the upstream xfstests against stablefs (docs/xfstests.md, "The upstream xfstests").
#
#   sudo scripts/run-xfstests.sh XFSTESTS_CHECKOUT [CHECK-ARGS...]     (default: -g quick)
#
# XFSTESTS_CHECKOUT is a checkout of xfstests that this script never changes and never
# fetches: it is copied to a build directory under /var/tmp/stablefs-xfstests and built
# there (the Debian packages it needs are installed first). The stablefs under test is
# STABLEFS_BIN (default build-release/stablefs, built if missing). The script then
#   - makes two sparse image files (TEST_DEV, SCRATCH_DEV; XFSTESTS_IMAGE_SIZE, default 8G)
#     and formats both (xfstests makes no filesystem for FSTYP=fuse);
#   - writes a local.config: FSTYP=fuse, FUSE_SUBTYP=.stablefs and the mount options
#     allow_other,subtype= (the mount then shows source TEST_DEV and type fuse, as xfstests
#     expects), and puts stablefs where mount(8), mount.fuse3 and umount(8) find it;
#   - adds the users and groups xfstests wants (fsgqa, fsgqa2, 123456-fsgqa) if missing;
#   - runs ./check CHECK-ARGS... and prints its summary; results stay in the build directory.
# Everything it added (links, users, groups, mounts, images) is removed at exit, on failure
# and on Ctrl-C too. The build directory is kept for the next run (XFSTESTS_KEEP_BUILD=0:
# removed too).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "run-xfstests: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 XFSTESTS_CHECKOUT [CHECK-ARGS...]"
src=$(realpath "$1") || die "no such directory: $1"; shift
[ -f "$src/check" ] && [ -d "$src/tests/generic" ] || die "$src is not an xfstests checkout"
[ "$(id -u)" = 0 ] || die "must run as root"
check_args=("$@")
[ ${#check_args[@]} -gt 0 ] || check_args=(-g quick)

work=/var/tmp/stablefs-xfstests
build=$work/xfstests
size=${XFSTESTS_IMAGE_SIZE:-8G}
STABLEFS=${STABLEFS_BIN:-$root/build-release/stablefs}

packages=(acl attr automake autoconf bc fio gawk gcc indent libacl1-dev libaio-dev libcap-dev libgdbm-dev
          libgdbm-compat-dev libtool libtool-bin liburing-dev make psmisc python3 sed uuid-dev uuid-runtime
          xfsprogs xfslibs-dev libattr1-dev quota)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "package installation failed"
fi

if [ ! -x "$STABLEFS" ]; then
  echo "building stablefs (release)"
  cmake -S "$root" -B "$root/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$root/build-release" -j"$(nproc)" --target stablefs >/dev/null || die "stablefs build failed"
fi
STABLEFS=$(realpath "$STABLEFS")

# ---- what this run adds, removed at exit -------------------------------------------------------
made_links=() made_users=() made_groups=()
cleanup() {
  local m l u g
  for m in "$work/scratch" "$work/test"; do
    if awk -v m="$m" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
      timeout 60 "$STABLEFS" umount "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null
    fi
  done
  for l in "${made_links[@]}"; do rm -f "$l"; done
  for u in "${made_users[@]}"; do userdel -r "$u" 2>/dev/null; done
  for g in "${made_groups[@]}"; do groupdel "$g" 2>/dev/null; done
  rm -f "$work/test.img" "$work/scratch.img"
  [ "${XFSTESTS_KEEP_BUILD:-1}" = 0 ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "run-xfstests: interrupted"; exit 130' INT TERM

link() {  # link NAME: NAME -> the stablefs binary, unless NAME exists
  [ -e "$1" ] || [ -L "$1" ] && return 0
  ln -s "$STABLEFS" "$1" && made_links+=("$1")
}
# mount -t fuse.stablefs runs mount.fuse3, which runs `stablefs` from the standard PATH;
# umount(8) runs umount.stablefs (the daemon's utab entry) so that an unmount waits for the
# device to be released before xfstests mounts it again.
link /usr/local/sbin/stablefs
link /sbin/mount.stablefs
link /sbin/mount.fuse.stablefs
link /sbin/umount.stablefs
link /sbin/umount.fuse.stablefs
[ "$(realpath "$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v stablefs)")" = "$STABLEFS" ] ||
  die "another stablefs is first on the standard PATH: $(command -v stablefs)"

for g in fsgqa 123456-fsgqa; do
  getent group "$g" >/dev/null || { groupadd "$g" && made_groups+=("$g"); }
done
for u in fsgqa fsgqa2 123456-fsgqa; do
  getent passwd "$u" >/dev/null && continue
  grp=fsgqa; [ "$u" = 123456-fsgqa ] && grp=123456-fsgqa
  useradd -m -N -g "$grp" -s /bin/bash "$u" && made_users+=("$u")
done

# ---- build ---------------------------------------------------------------------------------------
mkdir -p "$work"
stamp=$(cd "$src" && git rev-parse HEAD 2>/dev/null || echo unversioned)
if [ ! -f "$build/.built-from" ] || [ "$(cat "$build/.built-from")" != "$stamp" ]; then
  echo "building xfstests from $src ($stamp) in $build"
  rm -rf "$build" && cp -a "$src" "$build" || die "cannot copy $src"
  (cd "$build" && make -j"$(nproc)" >"$work/build.log" 2>&1) || { tail -30 "$work/build.log"; die "xfstests build failed (see $work/build.log)"; }
  echo "$stamp" >"$build/.built-from"
fi

# ---- devices and configuration -----------------------------------------------------------------
mkdir -p "$work/test" "$work/scratch"
chmod 755 "$work" "$work/test" "$work/scratch"
for d in test scratch; do
  rm -f "$work/$d.img"
  "$STABLEFS" mkfs -q "$work/$d.img" --size "$size" || die "mkfs of $work/$d.img failed"
done
cat >"$build/local.config" <<EOF
export FSTYP=fuse
export FUSE_SUBTYP=.stablefs
export TEST_DEV=$work/test.img
export TEST_DIR=$work/test
export SCRATCH_DEV=$work/scratch.img
export SCRATCH_MNT=$work/scratch
export TEST_FS_MOUNT_OPTS="-o allow_other,subtype="
export MOUNT_OPTIONS="-o allow_other,subtype="
EOF

echo "running: ./check ${check_args[*]} (FSTYP=fuse, FUSE_SUBTYP=.stablefs, images of $size)"
start=$(date +%s)
(cd "$build" && ./check "${check_args[@]}") 2>&1 | tee "$work/check.out"
rc=${PIPESTATUS[0]}
echo "xfstests took $(( $(date +%s) - start )) s; results in $build/results"
exit "$rc"
