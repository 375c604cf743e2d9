#!/usr/bin/env bash
# copy_file_range(2) through a mount: the daemon copies (holes of the source stay holes in the
# destination, which the kernel's read/write fallback would fill), sizes grow, overlapping
# ranges of one file are EINVAL, a write-only source or an O_APPEND destination EBADF, a
# destination on another filesystem EXDEV, flags EINVAL; data survives remount, fsck clean.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/cfr.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 256M
mount_fs "$img" "$mnt"
python3 - "$mnt" "$SCRATCH" <<'PY' || fail "copy_file_range checks"
import errno, hashlib, os, sys
m, scratch = sys.argv[1], sys.argv[2]
def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)
def expect_errno(code, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        check(e.errno == code, f"{fn.__name__}: errno {e.errno} ({e.strerror}), expected {code}")
        return
    raise SystemExit(f"FAIL: {fn.__name__} succeeded, expected errno {code}")
def cfr(src, dst, n, off_src=None, off_dst=None):
    """copy_file_range until n bytes are copied or it returns 0."""
    total = 0
    while total < n:
        got = os.copy_file_range(src, dst, n - total,
                                 None if off_src is None else off_src + total,
                                 None if off_dst is None else off_dst + total)
        if got == 0:
            break
        total += got
    return total

# A sparse source: 64 KiB, a hole to 4 MiB, 4 KiB of data, a trailing hole to 8 MiB.
head, mid = os.urandom(65536), os.urandom(4096)
fd = os.open(f"{m}/src", os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, head, 0); os.pwrite(fd, mid, 4 << 20); os.ftruncate(fd, 8 << 20); os.close(fd)
src = os.open(f"{m}/src", os.O_RDONLY)
dst = os.open(f"{m}/dst", os.O_CREAT | os.O_WRONLY, 0o644)
check(cfr(src, dst, 8 << 20, 0, 0) == 8 << 20, "copy of 8 MiB")
os.close(dst)
st = os.stat(f"{m}/dst")
check(st.st_size == 8 << 20, f"destination size {st.st_size}")
check(st.st_blocks == os.stat(f"{m}/src").st_blocks, f"holes not kept: {st.st_blocks} blocks vs {os.stat(f'{m}/src').st_blocks} "
      "(the kernel's fallback would write zeros)")
data = open(f"{m}/dst", "rb").read()
check(data[:65536] == head and data[4 << 20:(4 << 20) + 4096] == mid, "copied data")
check(data[65536:4 << 20] == bytes((4 << 20) - 65536) and data[(4 << 20) + 4096:] == bytes((4 << 20) - 4096), "holes read zeros")

# Unaligned offsets with the file positions (offsets None): both positions advance.
big = os.urandom(3 << 20)
open(f"{m}/big", "wb").write(big)
a = os.open(f"{m}/big", os.O_RDONLY); b = os.open(f"{m}/copy", os.O_CREAT | os.O_RDWR, 0o644)
os.lseek(a, 12345, os.SEEK_SET); os.lseek(b, 777, os.SEEK_SET)
check(cfr(a, b, 2 << 20) == 2 << 20, "copy with file positions")
check(os.lseek(a, 0, os.SEEK_CUR) == 12345 + (2 << 20) and os.lseek(b, 0, os.SEEK_CUR) == 777 + (2 << 20), "positions advanced")
got = open(f"{m}/copy", "rb").read()
check(len(got) == 777 + (2 << 20) and got[:777] == bytes(777) and got[777:] == big[12345:12345 + (2 << 20)], "unaligned copy")
# At and past the source's end: 0 bytes; near it: short.
check(os.copy_file_range(a, b, 4096, len(big), 0) == 0, "copy at EOF")
check(os.copy_file_range(a, b, 4096, len(big) - 100, 0) == 100, "short copy at EOF")
os.close(a); os.close(b)

# One file: a non-overlapping copy works, an overlapping one is EINVAL.
f = os.open(f"{m}/big", os.O_RDWR)
check(cfr(f, f, 1 << 20, 0, 3 << 20) == 1 << 20, "copy within one file")
check(os.pread(f, 1 << 20, 3 << 20) == big[:1 << 20] and os.fstat(f).st_size == 4 << 20, "copy within one file: data, size")
expect_errno(errno.EINVAL, os.copy_file_range, f, f, 8192, 0, 4096)
expect_errno(errno.EINVAL, os.copy_file_range, f, f, 8192, 4096, 0)
check(os.pread(f, 16384, 0) == big[:16384], "overlapping copy changed data")
os.close(f)

# EBADF: source not readable, destination not writable or O_APPEND.
wo = os.open(f"{m}/big", os.O_WRONLY); ro = os.open(f"{m}/copy", os.O_RDONLY)
expect_errno(errno.EBADF, os.copy_file_range, wo, ro, 10, 0, 0)
ap = os.open(f"{m}/dst", os.O_WRONLY | os.O_APPEND)
expect_errno(errno.EBADF, os.copy_file_range, ro, ap, 10, 0, 0)
os.close(wo); os.close(ap)
# flags must be 0 (Python has no flags argument: call through libc).
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.copy_file_range.restype = ctypes.c_ssize_t
libc.copy_file_range.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
wr = os.open(f"{m}/dst", os.O_WRONLY)
check(libc.copy_file_range(ro, None, wr, None, 10, 1) == -1 and ctypes.get_errno() == errno.EINVAL, "flags != 0")
os.close(wr)
# Another filesystem: EXDEV.
other = os.open(f"{scratch}/outside", os.O_CREAT | os.O_WRONLY, 0o644)
expect_errno(errno.EXDEV, os.copy_file_range, ro, other, 10, 0, 0)
os.close(other); os.close(ro); os.close(src)
open(f"{m}/dst.sha", "w").write(hashlib.sha256(open(f"{m}/dst", "rb").read()).hexdigest())
PY
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n: $OUT"
mount_fs "$img" "$mnt"
[ "$(sha256sum <"$mnt/dst" | cut -d' ' -f1)" = "$(cat "$mnt/dst.sha")" ] || fail "copied file changed across remount"
umount_fs "$mnt"
exit 0
