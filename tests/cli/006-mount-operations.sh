#!/usr/bin/env bash
# Every namespace and data operation through a real FUSE mount (coreutils and python3), then
# `stablefs umount`, fsck -n clean, and everything is still there after a second mount.
. "$(dirname "$0")/lib.sh"
img=$SCRATCH/ops.img
mnt=$SCRATCH/mnt
expect_exit 0 "$STABLEFS" mkfs -q "$img" --size 512M
mount_fs "$img" "$mnt"
grep -q "^$img $mnt fuse.stablefs " /proc/mounts || fail "/proc/mounts does not show $img as fuse.stablefs: $(grep "$mnt" /proc/mounts)"

# coreutils
cd "$mnt" || fail "cd $mnt"
echo hello >f || fail "write"
[ "$(cat f)" = hello ] || fail "read back"
mkdir -p a/b/c && touch a/b/c/x && [ -f a/b/c/x ] || fail "mkdir -p / touch"
[ "$(stat -c %h a)" -eq 3 ] || fail "nlink of a directory with one subdirectory: $(stat -c %h a)"
ls -la a | grep -qE ' \.$' || fail "ls shows no ."
ln -s f sym && [ "$(readlink sym)" = f ] && [ "$(cat sym)" = hello ] || fail "symlink"
ln f hard && [ "$(stat -c %h f)" -eq 2 ] || fail "hard link"
mv hard moved && [ -e moved ] && [ ! -e hard ] || fail "mv"
chmod 0640 f && [ "$(stat -c %a f)" = 640 ] || fail "chmod"
chown 1234:5678 f && [ "$(stat -c %u:%g f)" = 1234:5678 ] || fail "chown"
rm -r a && [ ! -e a ] || fail "rm -r"
rmdir nonexistent 2>/dev/null && fail "rmdir of a missing directory succeeded"
mkdir full && touch full/x
rmdir full 2>/dev/null && fail "rmdir of a non-empty directory succeeded"
rm full/x && rmdir full || fail "rmdir"
df -B4096 . | tail -1 | awk '{exit !($2 > 100000)}' || fail "statfs: $(df -B4096 .)"
cd / || fail "cd /"

python3 - "$mnt" <<'PY' || fail "python operations"
import ctypes, errno, mmap, os, stat, sys, hashlib
m = sys.argv[1]
os.chdir(m)
libc = ctypes.CDLL(None, use_errno=True)
def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)
def expect_errno(code, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        check(e.errno == code, f"{fn.__name__}{a}: errno {e.errno}, expected {code}")
        return
    raise SystemExit(f"FAIL: {fn.__name__}{a} succeeded, expected errno {code}")

# create / O_EXCL / O_TRUNC / O_APPEND
fd = os.open("c", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.write(fd, b"0123456789"); os.close(fd)
check(stat.S_IMODE(os.stat("c").st_mode) == 0o600, "create mode")
expect_errno(errno.EEXIST, os.open, "c", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
fd = os.open("c", os.O_WRONLY | os.O_APPEND); os.write(fd, b"ab"); os.close(fd)
check(open("c", "rb").read() == b"0123456789ab", "O_APPEND")
fd = os.open("c", os.O_WRONLY | os.O_TRUNC); os.close(fd)
check(os.stat("c").st_size == 0, "O_TRUNC")

# mknod: fifo, socket, char and block devices
os.mkfifo("fifo"); check(stat.S_ISFIFO(os.stat("fifo").st_mode), "fifo")
os.mknod("sock", 0o644 | stat.S_IFSOCK); check(stat.S_ISSOCK(os.stat("sock").st_mode), "socket")
os.mknod("chr", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
st = os.stat("chr"); check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "char device")
os.mknod("blk", 0o644 | stat.S_IFBLK, os.makedev(7, 0))
st = os.stat("blk"); check(stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0), "block device")

# rename flags through renameat2
AT_FDCWD = -100
def renameat2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
open("r1", "w").write("one"); open("r2", "w").write("two")
expect_errno(errno.EEXIST, renameat2, "r1", "r2", 1)  # RENAME_NOREPLACE
renameat2("r1", "r2", 2)                                # RENAME_EXCHANGE
check(open("r1").read() == "two" and open("r2").read() == "one", "RENAME_EXCHANGE")
renameat2("r1", "r3", 1)
check(not os.path.exists("r1") and open("r3").read() == "two", "RENAME_NOREPLACE to a new name")
os.rename("r3", "r2"); check(open("r2").read() == "two", "rename over")
os.mkdir("d1"); os.mkdir("d2"); open("d2/x", "w").close()
expect_errno(errno.ENOTEMPTY, os.rename, "d1", "d2")
expect_errno(errno.EINVAL, os.rename, "d1", "d1/sub")

# timestamps: explicit nanoseconds, UTIME_NOW and UTIME_OMIT
open("t", "w").close()
os.utime("t", ns=(1_000_000_123, 2_000_000_456))
st = os.stat("t"); check(st.st_atime_ns == 1_000_000_123 and st.st_mtime_ns == 2_000_000_456, f"utime ns: {st}")
class TS(ctypes.Structure): _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
ts = (TS * 2)(TS(0, UTIME_NOW), TS(0, UTIME_OMIT))
check(libc.utimensat(AT_FDCWD, b"t", ts, 0) == 0, "utimensat")
st = os.stat("t"); check(st.st_mtime_ns == 2_000_000_456 and st.st_atime_ns > 2_000_000_456, "UTIME_NOW/OMIT")
before = os.stat("t").st_mtime_ns
fd = os.open("t", os.O_WRONLY); os.write(fd, b"x"); os.close(fd)
check(os.stat("t").st_mtime_ns > before, "write updates mtime")

# truncate: shrink keeps a prefix, growing reads zeros
data = os.urandom(100000)
open("tr", "wb").write(data)
os.truncate("tr", 5000); check(os.stat("tr").st_size == 5000, "shrink")
os.truncate("tr", 20000)
got = open("tr", "rb").read()
check(got[:5000] == data[:5000] and got[5000:] == bytes(15000), "truncate then extend reads zeros")

# fsync / fdatasync / directory fsync
fd = os.open("tr", os.O_RDWR); os.fsync(fd); os.fdatasync(fd); os.close(fd)
fd = os.open(".", os.O_RDONLY); os.fsync(fd); os.close(fd)

# readdir across several replies, and readdirplus attributes
os.mkdir("many")
names = {f"file-{i:04d}-{'x' * (i % 40)}" for i in range(600)}
for n in names: open("many/" + n, "w").close()
check(set(os.listdir("many")) == names, "listdir of 600 entries")
with os.scandir("many") as it:
    for e in it: check(e.is_file() and e.inode() > 1, "scandir entry")
for n in list(names)[:300]: os.unlink("many/" + n)
check(len(os.listdir("many")) == 300, "listdir after unlinks")

# statfs
sv = os.statvfs("."); check(sv.f_bsize == 4096 and sv.f_blocks > 0 and sv.f_bfree <= sv.f_blocks and sv.f_namemax == 255, f"statvfs {sv}")

# xattrs: set/get/list/remove, create/replace flags, size probe and ERANGE
open("x", "w").close()
os.setxattr("x", "user.a", b"value-a"); os.setxattr("x", "user.b", b"")
check(os.getxattr("x", "user.a") == b"value-a" and os.getxattr("x", "user.b") == b"", "getxattr")
check(sorted(os.listxattr("x")) == ["user.a", "user.b"], f"listxattr {os.listxattr('x')}")
expect_errno(errno.EEXIST, os.setxattr, "x", "user.a", b"v", os.XATTR_CREATE)
expect_errno(errno.ENODATA, os.setxattr, "x", "user.zz", b"v", os.XATTR_REPLACE)
os.setxattr("x", "user.a", b"longer-value-a", os.XATTR_REPLACE)
check(libc.getxattr(b"x", b"user.a", None, 0) == 14, "getxattr size probe")
buf = ctypes.create_string_buffer(4)
check(libc.getxattr(b"x", b"user.a", buf, 4) == -1 and ctypes.get_errno() == errno.ERANGE, "getxattr ERANGE")
check(libc.listxattr(b"x", None, 0) == len(b"user.a\0user.b\0"), "listxattr size probe")
check(libc.listxattr(b"x", buf, 4) == -1 and ctypes.get_errno() == errno.ERANGE, "listxattr ERANGE")
os.removexattr("x", "user.a"); expect_errno(errno.ENODATA, os.getxattr, "x", "user.a")
expect_errno(errno.ENODATA, os.removexattr, "x", "user.a")

# access
check(os.access("x", os.R_OK | os.W_OK) and not os.access("x", os.X_OK), "access")

# fallocate: default, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE; st_blocks follows
fd = os.open("fa", os.O_CREAT | os.O_RDWR, 0o644)
os.posix_fallocate(fd, 0, 1 << 20)
check(os.fstat(fd).st_size == 1 << 20 and os.fstat(fd).st_blocks >= 2048, "posix_fallocate")
check(os.pread(fd, 4096, 12345) == bytes(4096), "preallocated space reads zeros")
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
def falloc(mode, off, ln):
    if libc.fallocate(fd, mode, off, ln) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
falloc(1, 1 << 20, 1 << 20)  # KEEP_SIZE
check(os.fstat(fd).st_size == 1 << 20 and os.fstat(fd).st_blocks >= 4096, "KEEP_SIZE")
payload = os.urandom(1 << 20)
os.pwrite(fd, payload, 0)
blocks = os.fstat(fd).st_blocks
falloc(1 | 2, 65536, 131072)  # PUNCH_HOLE | KEEP_SIZE
check(os.fstat(fd).st_blocks <= blocks - 256, "punch frees blocks")
got = os.pread(fd, 1 << 20, 0)
check(got[:65536] == payload[:65536] and got[65536:196608] == bytes(131072) and got[196608:] == payload[196608:], "punched range")
falloc(0x10, 300000, 5000)  # ZERO_RANGE, unaligned
got = os.pread(fd, 1 << 20, 0)
check(got[300000:305000] == bytes(5000) and got[305000:] == payload[305000:] and got[299999] == payload[299999], "ZERO_RANGE")
expect_errno(errno.EOPNOTSUPP, falloc, 2, 0, 4096)  # PUNCH_HOLE without KEEP_SIZE

# lseek SEEK_DATA / SEEK_HOLE
os.close(fd)
fd = os.open("sparse", os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, b"a" * 4096, 1 << 20)
os.pwrite(fd, b"b" * 4096, 8 << 20)
check(os.lseek(fd, 0, os.SEEK_DATA) == 1 << 20, "SEEK_DATA")
check(os.lseek(fd, 1 << 20, os.SEEK_HOLE) == (1 << 20) + 4096, "SEEK_HOLE")
check(os.lseek(fd, (1 << 20) + 4096, os.SEEK_DATA) == 8 << 20, "second SEEK_DATA")
check(os.lseek(fd, 8 << 20, os.SEEK_HOLE) == (8 << 20) + 4096, "hole at EOF")
expect_errno(errno.ENXIO, os.lseek, fd, (8 << 20) + 4096, os.SEEK_DATA)
check(os.fstat(fd).st_blocks == 16, f"sparse st_blocks {os.fstat(fd).st_blocks}")
os.close(fd)

# O_DIRECT reads and writes with page-aligned buffers
fd = os.open("direct", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
wbuf = mmap.mmap(-1, 1 << 20); wbuf.write(os.urandom(1 << 20))
check(os.pwritev(fd, [wbuf], 0) == 1 << 20, "O_DIRECT write 1 MiB")
check(os.pwritev(fd, [memoryview(wbuf)[:4096]], 3 << 20) == 4096, "O_DIRECT write 4 KiB")
rbuf = mmap.mmap(-1, 1 << 20)
check(os.preadv(fd, [rbuf], 0) == 1 << 20 and rbuf[:] == wbuf[:], "O_DIRECT read back")
r4 = mmap.mmap(-1, 4096)
check(os.preadv(fd, [r4], 3 << 20) == 4096 and r4[:] == wbuf[:4096], "O_DIRECT read 4 KiB")
check(os.preadv(fd, [r4], 2 << 20) == 4096 and r4[:] == bytes(4096), "O_DIRECT read of a hole")
os.close(fd)
check(open("direct", "rb").read(1 << 20) == wbuf[:], "buffered read of O_DIRECT data")

# a larger file whose hash survives remount
big = os.urandom(6 << 20)
with open("big", "wb") as f: f.write(big)
open("big.sha", "w").write(hashlib.sha256(big).hexdigest())
os.unlink("c")
check(not os.path.exists("c"), "unlink")
PY

umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
grep -q "clean" <<<"$OUT" || fail "fsck -n after umount: $OUT"
mount_fs "$img" "$mnt"
[ "$(sha256sum <"$mnt/big" | cut -d' ' -f1)" = "$(cat "$mnt/big.sha")" ] || fail "big file changed across remount"
[ "$(cat "$mnt/f")" = hello ] && [ "$(readlink "$mnt/sym")" = f ] || fail "files lost across remount"
[ "$(stat -c %a:%u:%g "$mnt/f")" = 640:1234:5678 ] || fail "attributes lost across remount"
[ "$(ls "$mnt/many" | wc -l)" -eq 300 ] || fail "directory lost entries across remount"
python3 -c "import os,sys; sys.exit(os.getxattr('$mnt/x','user.b') != b'')" || fail "xattr lost across remount"
[ "$(stat -c %X "$mnt/t")" -gt 2 ] && [ "$(stat -c %Y "$mnt/t")" -gt 2 ] || fail "times lost"
umount_fs "$mnt"
expect_exit 0 "$STABLEFS" fsck -n "$img"
exit 0
