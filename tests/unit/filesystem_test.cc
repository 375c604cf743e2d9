// Namespace operations of fs/Filesystem on an in-memory device: semantics, persistence across
// close/open, and large directories.
#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <set>

#include "bounce/memory_device.h"
#include "fs/namespace/filesystem.h"
#include "fs/format/superblock_io.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "support/fs_dump.h"

namespace stablefs {
namespace {

struct Fixture {
  explicit Fixture(uint64_t bytes = 64ull << 20) : dev(bytes, "mem") {
    REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
    reopen();
  }
  void reopen() {
    if (fs) REQUIRE(fs->close().ok());
    fs.reset();
    auto r = Filesystem::open(dev, {});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    fs = std::move(r).value();
  }
  int fsck() {
    if (fs) REQUIRE(fs->close().ok());
    fs.reset();
    std::string problems;
    FsckOptions o;
    o.on_problem = [&](const std::string& p) { problems += p + "\n"; };
    int rc = run_fsck(dev, o).exit_code();
    INFO(problems);
    CHECK(problems.empty());
    return rc;
  }
  MemoryDevice dev;
  std::unique_ptr<Filesystem> fs;
  Credentials cred{1000, 1000};
};

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

}  // namespace

TEST_CASE("filesystem: create, lookup, readdir, unlink") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0640, 0, f.cred);
  REQUIRE(a.ok());
  CHECK(a->rec.uid == 1000);
  CHECK(a->rec.nlink == 1);
  CHECK(f.fs->mknod(kRootIno, "a", S_IFREG | 0640, 0, f.cred).status().code() == EEXIST);
  CHECK(f.fs->mknod(kRootIno, "p", S_IFIFO | 0600, 0, f.cred).ok());
  CHECK(f.fs->mknod(kRootIno, "c", S_IFCHR | 0600, makedev(1, 3), f.cred)->rec.rdev == makedev(1, 3));
  CHECK(f.fs->mknod(kRootIno, "s", S_IFSOCK | 0600, 0, f.cred).ok());
  CHECK(f.fs->mknod(kRootIno, "bad/name", S_IFREG, 0, f.cred).status().code() == EINVAL);
  CHECK(f.fs->mknod(kRootIno, std::string(256, 'x'), S_IFREG, 0, f.cred).status().code() == ENAMETOOLONG);
  CHECK(f.fs->mknod(a->ino, "x", S_IFREG, 0, f.cred).status().code() == ENOTDIR);
  auto l = f.fs->lookup(kRootIno, "a");
  REQUIRE(l.ok());
  CHECK(l->ino == a->ino);
  CHECK(f.fs->lookup(kRootIno, "nope").status().code() == ENOENT);
  std::set<std::string> names;
  REQUIRE(f.fs->readdir(kRootIno, 0, [&](const DirEntry& e) {
    names.insert(e.name);
    return true;
  }).ok());
  CHECK(names == std::set<std::string>{"a", "p", "c", "s"});
  REQUIRE(f.fs->unlink(kRootIno, "a").ok());
  CHECK(f.fs->lookup(kRootIno, "a").status().code() == ENOENT);
  CHECK(f.fs->getattr(a->ino).status().code() == ENOENT);
  CHECK(f.fs->unlink(kRootIno, "a").status().code() == ENOENT);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: list_directory gives dot, dot-dot and stable positions to resume from") {
  Fixture f;
  auto d = f.fs->mkdir(kRootIno, "d", 0755, f.cred);
  REQUIRE(d.ok());
  for (const char* n : {"x", "y", "z"}) REQUIRE(f.fs->mknod(d->ino, n, S_IFREG | 0644, 0, f.cred).ok());
  auto list = [&](uint64_t offset, size_t most) {
    std::vector<DirEntry> out;
    REQUIRE(f.fs->list_directory(d->ino, offset, [&](const DirEntry& e) {
      out.push_back(e);
      return out.size() < most;
    }).ok());
    return out;
  };
  const std::vector<DirEntry> all = list(0, 100);
  REQUIRE(all.size() == 5);
  CHECK(all[0].name == ".");
  CHECK(all[0].ino == d->ino);
  CHECK(all[0].next_cookie == 1);
  CHECK(all[1].name == "..");
  CHECK(all[1].ino == kRootIno);
  CHECK(all[1].next_cookie == 2);
  std::set<std::string> stored;
  for (size_t i = 2; i < all.size(); ++i) {
    CHECK(all[i].next_cookie > 2);
    stored.insert(all[i].name);
  }
  CHECK(stored == std::set<std::string>{"x", "y", "z"});
  // Resuming from each position gives exactly the rest, also after an entry before it went.
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    const std::vector<DirEntry> rest = list(all[i].next_cookie, 100);
    REQUIRE(rest.size() == all.size() - i - 1);
    for (size_t j = 0; j < rest.size(); ++j) CHECK(rest[j].name == all[i + 1 + j].name);
  }
  REQUIRE(f.fs->unlink(d->ino, all[2].name).ok());
  const std::vector<DirEntry> after = list(all[2].next_cookie, 100);
  REQUIRE(after.size() == 2);
  CHECK(after[0].name == all[3].name);
  // The root is its own parent.
  std::vector<DirEntry> root;
  REQUIRE(f.fs->list_directory(kRootIno, 0, [&](const DirEntry& e) {
    root.push_back(e);
    return root.size() < 2;
  }).ok());
  REQUIRE(root.size() == 2);
  CHECK(root[1].ino == kRootIno);
  CHECK(f.fs->list_directory(all[3].ino, 0, [](const DirEntry&) { return true; }).code() == ENOTDIR);  // a file
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: directories, link counts, rmdir") {
  Fixture f;
  auto d = f.fs->mkdir(kRootIno, "d", 0755, f.cred);
  REQUIRE(d.ok());
  CHECK(d->rec.nlink == 2);
  CHECK(f.fs->getattr(kRootIno)->rec.nlink == 3);
  auto e = f.fs->mkdir(d->ino, "e", 0700, f.cred);
  REQUIRE(e.ok());
  CHECK(f.fs->getattr(d->ino)->rec.nlink == 3);
  CHECK(f.fs->lookup(e->ino, "..")->ino == d->ino);
  CHECK(f.fs->rmdir(kRootIno, "d").code() == ENOTEMPTY);
  CHECK(f.fs->unlink(kRootIno, "d").code() == EISDIR);
  REQUIRE(f.fs->mknod(d->ino, "file", S_IFREG | 0644, 0, f.cred).ok());
  CHECK(f.fs->rmdir(d->ino, "file").code() == ENOTDIR);
  REQUIRE(f.fs->rmdir(d->ino, "e").ok());
  CHECK(f.fs->getattr(d->ino)->rec.nlink == 2);
  REQUIRE(f.fs->unlink(d->ino, "file").ok());
  REQUIRE(f.fs->rmdir(kRootIno, "d").ok());
  CHECK(f.fs->getattr(kRootIno)->rec.nlink == 2);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: hard links and setgid directories") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  auto d = f.fs->mkdir(kRootIno, "d", 0755, f.cred);
  REQUIRE((a.ok() && d.ok()));
  auto b = f.fs->link(a->ino, d->ino, "b");
  REQUIRE(b.ok());
  CHECK(b->rec.nlink == 2);
  CHECK(f.fs->link(d->ino, kRootIno, "dlink").status().code() == EPERM);
  REQUIRE(f.fs->unlink(kRootIno, "a").ok());
  CHECK(f.fs->getattr(a->ino)->rec.nlink == 1);
  SetAttrRequest sg;
  sg.mode = 02775;
  sg.gid = 500;
  REQUIRE(f.fs->setattr(d->ino, sg).ok());
  auto sub = f.fs->mkdir(d->ino, "sub", 0755, f.cred);
  REQUIRE(sub.ok());
  CHECK(sub->rec.gid == 500);
  CHECK((sub->rec.mode & S_ISGID) != 0);
  auto file = f.fs->mknod(d->ino, "f", S_IFREG | 0644, 0, f.cred);
  CHECK(file->rec.gid == 500);
  CHECK((file->rec.mode & S_ISGID) == 0);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: rename, RENAME_NOREPLACE, RENAME_EXCHANGE") {
  Fixture f;
  auto d1 = f.fs->mkdir(kRootIno, "d1", 0755, f.cred);
  auto d2 = f.fs->mkdir(kRootIno, "d2", 0755, f.cred);
  auto x = f.fs->mknod(d1->ino, "x", S_IFREG | 0644, 0, f.cred);
  auto y = f.fs->mknod(d2->ino, "y", S_IFREG | 0644, 0, f.cred);
  REQUIRE((d1.ok() && d2.ok() && x.ok() && y.ok()));
  CHECK(f.fs->rename(d1->ino, "x", d2->ino, "y", kRenameNoReplace).code() == EEXIST);
  REQUIRE(f.fs->rename(d1->ino, "x", d2->ino, "y", kRenameExchange).ok());
  CHECK(f.fs->lookup(d1->ino, "x")->ino == y->ino);
  CHECK(f.fs->lookup(d2->ino, "y")->ino == x->ino);
  REQUIRE(f.fs->rename(d1->ino, "x", d2->ino, "y", 0).ok());  // replaces
  CHECK(f.fs->lookup(d1->ino, "x").status().code() == ENOENT);
  CHECK(f.fs->getattr(x->ino).status().code() == ENOENT);
  // Directory moves fix link counts and "..".
  auto sub = f.fs->mkdir(d1->ino, "sub", 0755, f.cred);
  REQUIRE(f.fs->rename(d1->ino, "sub", d2->ino, "sub2", 0).ok());
  CHECK(f.fs->getattr(d1->ino)->rec.nlink == 2);
  CHECK(f.fs->getattr(d2->ino)->rec.nlink == 3);
  CHECK(f.fs->lookup(sub->ino, "..")->ino == d2->ino);
  CHECK(f.fs->rename(kRootIno, "d2", sub->ino, "loop", 0).code() == EINVAL);
  CHECK(f.fs->rename(d2->ino, "y", d2->ino, "sub2", 0).code() == EISDIR);
  CHECK(f.fs->rename(d2->ino, "sub2", d2->ino, "y", 0).code() == ENOTDIR);
  CHECK(f.fs->rename(d2->ino, "nope", d2->ino, "z", 0).code() == ENOENT);
  // Exchanging a directory and a file across parents.
  REQUIRE(f.fs->rename(d2->ino, "sub2", d1->ino, "nothing", 0).ok());
  REQUIRE(f.fs->mknod(d2->ino, "file", S_IFREG | 0644, 0, f.cred).ok());
  REQUIRE(f.fs->rename(d1->ino, "nothing", d2->ino, "file", kRenameExchange).ok());
  CHECK(f.fs->lookup(sub->ino, "..")->ino == d2->ino);
  CHECK(f.fs->getattr(d1->ino)->rec.nlink == 2);
  CHECK(f.fs->getattr(d2->ino)->rec.nlink == 3);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: symlinks and xattrs persist across remount") {
  Fixture f;
  std::string long_target(Filesystem::kMaxSymlink, 'q');
  auto s = f.fs->symlink(kRootIno, "s", long_target, f.cred);
  REQUIRE(s.ok());
  CHECK(f.fs->symlink(kRootIno, "t", std::string(Filesystem::kMaxSymlink + 1, 'q'), f.cred).status().code() == ENAMETOOLONG);
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(f.fs->setxattr(a->ino, "user.one", bytes("1"), 0).ok());
  std::string big(f.fs->max_xattr_value(), 'v');
  REQUIRE(f.fs->setxattr(a->ino, "user.big", bytes(big), 0).ok());
  CHECK(f.fs->setxattr(a->ino, "user.big", bytes(big + "v"), 0).code() == E2BIG);
  CHECK(f.fs->setxattr(a->ino, "user.one", bytes("2"), kXattrCreate).code() == EEXIST);
  CHECK(f.fs->setxattr(a->ino, "user.two", bytes("2"), kXattrReplace).code() == ENODATA);
  CHECK(f.fs->setxattr(a->ino, "bogus.two", bytes("2"), 0).code() == EOPNOTSUPP);
  REQUIRE(f.fs->setxattr(a->ino, "trusted.t", bytes(""), 0).ok());
  std::string before = *test::dump_namespace(*f.fs);
  f.reopen();
  CHECK(*test::dump_namespace(*f.fs) == before);
  CHECK(*f.fs->readlink(s->ino) == long_target);
  CHECK(f.fs->getxattr(a->ino, "user.big")->size() == big.size());
  REQUIRE(f.fs->removexattr(a->ino, "user.one").ok());
  CHECK(f.fs->getxattr(a->ino, "user.one").status().code() == ENODATA);
  CHECK(f.fs->listxattr(a->ino)->size() == 2);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: setattr and timestamps") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 06755, 0, f.cred);
  REQUIRE(a.ok());
  SetAttrRequest chown;
  chown.uid = 7;
  auto r = f.fs->setattr(a->ino, chown);
  REQUIRE(r.ok());
  CHECK(r->rec.uid == 7);
  CHECK((r->rec.mode & (S_ISUID | S_ISGID)) == 0);  // chown clears set-id bits
  SetAttrRequest times;
  times.atime = Timespec{100, 5};
  times.mtime = Timespec{200, 999999999};
  r = f.fs->setattr(a->ino, times);
  CHECK(r->rec.atime == Timespec{100, 5});
  CHECK(r->rec.mtime == Timespec{200, 999999999});
  times.mtime = Timespec{1, 1000000000};
  CHECK(f.fs->setattr(a->ino, times).status().code() == EINVAL);
  f.reopen();
  CHECK(f.fs->getattr(a->ino)->rec.mtime == Timespec{200, 999999999});
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: a large directory stays O(log n) per lookup and survives remount") {
#if defined(__SANITIZE_ADDRESS__)
  const int n = 100000;  // the sanitizer build is ~5x slower; the release build runs 1,000,000
#else
  const int n = 1000000;
#endif
  Fixture f(1ull << 30);
  auto d = f.fs->mkdir(kRootIno, "big", 0755, f.cred);
  REQUIRE(d.ok());
  for (int i = 0; i < n; ++i) {
    auto r = f.fs->mknod(d->ino, "entry-" + std::to_string(i), S_IFREG | 0644, 0, f.cred);
    if (!r.ok()) FAIL(r.status().message());
  }
  f.reopen();
  // Every lookup touches one tree path: count the blocks a lookup reads from a cold cache.
  for (int i : {0, n / 2, n - 1}) {
    auto r = f.fs->lookup(d->ino, "entry-" + std::to_string(i));
    REQUIRE(r.ok());
  }
  CHECK(f.fs->lookup(d->ino, "entry-" + std::to_string(n)).status().code() == ENOENT);
  uint64_t count = 0;
  REQUIRE(f.fs->readdir(d->ino, 0, [&](const DirEntry&) {
    ++count;
    return true;
  }).ok());
  CHECK(count == static_cast<uint64_t>(n));
  const uint64_t reads_before = f.fs->store().stats().block_reads;
  REQUIRE(f.fs->lookup(d->ino, "entry-" + std::to_string(n / 3)).ok());
  const uint64_t per_lookup = f.fs->store().stats().block_reads - reads_before;
  const uint64_t height = *f.fs->store().fs_tree_height();
  MESSAGE(n << " entries: tree height " << height << ", " << per_lookup << " node reads per lookup");
  // Three root-to-leaf paths (the directory's inode, the entry, the target's inode), plus at
  // most one neighbouring leaf when the entry's name slots straddle a leaf boundary.
  CHECK(per_lookup <= 3 * height + 1);
  CHECK(height <= 5);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: remount read-only and back (set_read_only)") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(a.ok());
  // An inode unlinked while held stays an orphan; released while read-only it stays listed
  // and is freed when the filesystem is writable again.
  auto b = f.fs->mknod(kRootIno, "b", S_IFREG | 0644, 0, f.cred);
  REQUIRE(b.ok());
  f.fs->acquire_inode(b->ino);
  REQUIRE(f.fs->unlink(kRootIno, "b").ok());
  CHECK(f.fs->orphan_count() == 1);
  REQUIRE(f.fs->set_read_only(true).ok());
  {
    // Clean on disk while still open: a crash now needs no replay.
    auto sb = read_superblock(f.dev, SuperblockCopy::kPrimary);
    REQUIRE(sb.ok());
    CHECK(sb->state == kStateClean);
    auto backup = read_superblock(f.dev, SuperblockCopy::kBackup);
    REQUIRE(backup.ok());
    CHECK(backup->state == kStateClean);
  }
  CHECK(f.fs->mknod(kRootIno, "c", S_IFREG | 0644, 0, f.cred).status().code() == EROFS);
  CHECK(f.fs->unlink(kRootIno, "a").code() == EROFS);
  CHECK(f.fs->lookup(kRootIno, "a").ok());
  CHECK(f.fs->release_inode(b->ino).ok());
  CHECK(f.fs->orphan_count() == 1);
  CHECK(f.fs->set_read_only(true).ok());  // again: nothing to do
  REQUIRE(f.fs->set_read_only(false).ok());
  CHECK(f.fs->orphan_count() == 0);
  CHECK(f.fs->mknod(kRootIno, "c", S_IFREG | 0644, 0, f.cred).ok());
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: a filesystem opened read-only is not made writable by a remount") {
  Fixture f;
  REQUIRE(f.fs->close().ok());
  f.fs.reset();
  auto ro = Filesystem::open(f.dev, {.read_only = true});
  REQUIRE(ro.ok());
  Status st = (*ro)->set_read_only(false);
  CHECK(st.code() == EROFS);
  CHECK(st.message().find("read-only from the start") != std::string::npos);
  CHECK((*ro)->mknod(kRootIno, "c", S_IFREG | 0644, 0, f.cred).status().code() == EROFS);
}

TEST_CASE("filesystem: a data change takes capabilities away always and set-id bits from the unprivileged") {
  Fixture f;
  const std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  const DataChanger root{[] { return true; }, [](uint32_t) { return true; }};
  const DataChanger user{[] { return false; }, [](uint32_t) { return false; }};
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(a.ok());
  // Nothing to take: the answer holds while the epoch stays.
  uint64_t epoch = f.fs->privilege_epoch();
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, user) == Filesystem::PrivilegeChange::kNone);
  CHECK(f.fs->privilege_epoch() == epoch);
  // Capabilities move the epoch, and any writer's change takes them, root's too.
  REQUIRE(f.fs->setxattr(a->ino, std::string(kCapabilityXattr), bytes(cap), 0).ok());
  CHECK(f.fs->privilege_epoch() != epoch);
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, root) == Filesystem::PrivilegeChange::kDropped);
  CHECK(f.fs->getxattr(a->ino, kCapabilityXattr).status().code() == ENODATA);
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, root) == Filesystem::PrivilegeChange::kNone);
  // Set-id bits: root keeps them (its capabilities still go), a user loses them.
  SetAttrRequest setid;
  setid.mode = 06755;
  REQUIRE(f.fs->setattr(a->ino, setid).ok());
  REQUIRE(f.fs->setxattr(a->ino, std::string(kCapabilityXattr), bytes(cap), 0).ok());
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, root) == Filesystem::PrivilegeChange::kDropped);
  CHECK((f.fs->getattr(a->ino)->rec.mode & 07777) == 06755);
  CHECK(f.fs->getxattr(a->ino, kCapabilityXattr).status().code() == ENODATA);
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, root) == Filesystem::PrivilegeChange::kKept);
  CHECK(*f.fs->drop_privileges_for_data_change(a->ino, user) == Filesystem::PrivilegeChange::kDropped);
  CHECK((f.fs->getattr(a->ino)->rec.mode & 07777) == 0755);
  // Directories keep theirs.
  auto d = f.fs->mkdir(kRootIno, "d", 02755, f.cred);
  REQUIRE(d.ok());
  CHECK(*f.fs->drop_privileges_for_data_change(d->ino, user) == Filesystem::PrivilegeChange::kNone);
  f.reopen();
  CHECK((f.fs->getattr(a->ino)->rec.mode & 07777) == 0755);
  CHECK(f.fs->getxattr(a->ino, kCapabilityXattr).status().code() == ENODATA);
  CHECK(f.fsck() == 0);
}

TEST_CASE("filesystem: xattr values up to 64 KiB, kept in chunks past what one item holds") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(a.ok());
  CHECK(f.fs->max_xattr_value() == 65536);
  auto pattern = [](size_t n, uint8_t seed) {
    std::string v(n, '\0');
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>((i * 131 + seed) & 0xff);
    return v;
  };
  const size_t inline_max = f.fs->max_inline_xattr_value();
  const std::string full = pattern(65536, 1), edge = pattern(inline_max, 2), over = pattern(inline_max + 1, 3);
  REQUIRE(f.fs->setxattr(a->ino, "user.full", bytes(full), 0).ok());
  REQUIRE(f.fs->setxattr(a->ino, "user.edge", bytes(edge), 0).ok());
  REQUIRE(f.fs->setxattr(a->ino, "user.over", bytes(over), 0).ok());
  CHECK(f.fs->setxattr(a->ino, "user.toobig", bytes(full + "x"), 0).code() == E2BIG);
  CHECK((f.fs->store().superblock().incompat & kIncompatXattrChunks) != 0);
  auto text = [](const Result<std::vector<uint8_t>>& r) { return r.ok() ? std::string(r->begin(), r->end()) : "error"; };
  CHECK(text(f.fs->getxattr(a->ino, "user.full")) == full);
  CHECK(text(f.fs->getxattr(a->ino, "user.over")) == over);
  // Replacing: chunked by chunked (shorter), chunked by inline, inline by chunked.
  const std::string shorter = pattern(5000, 4);
  REQUIRE(f.fs->setxattr(a->ino, "user.full", bytes(shorter), kXattrReplace).ok());
  REQUIRE(f.fs->setxattr(a->ino, "user.over", bytes("small"), 0).ok());
  REQUIRE(f.fs->setxattr(a->ino, "user.edge", bytes(full), 0).ok());
  f.reopen();
  CHECK(text(f.fs->getxattr(a->ino, "user.full")) == shorter);
  CHECK(text(f.fs->getxattr(a->ino, "user.over")) == "small");
  CHECK(text(f.fs->getxattr(a->ino, "user.edge")) == full);
  CHECK(f.fs->listxattr(a->ino)->size() == 3);
  REQUIRE(f.fs->removexattr(a->ino, "user.full").ok());
  // A second file with a large value, then removed with it: no chunk is left behind.
  auto b = f.fs->mknod(kRootIno, "b", S_IFREG | 0644, 0, f.cred);
  REQUIRE(b.ok());
  REQUIRE(f.fs->setxattr(b->ino, "user.big", bytes(full), 0).ok());
  REQUIRE(f.fs->unlink(kRootIno, "b").ok());
  CHECK(f.fsck() == 0);
}

TEST_CASE("fsck: a missing xattr value chunk is reported") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(a.ok());
  REQUIRE(f.fs->setxattr(a->ino, "user.big", bytes(std::string(20000, 'z')), 0).ok());
  REQUIRE(f.fs->store().begin_operation(8).ok());
  // Value id 1, chunk 3: the fourth piece of the only chunked value.
  REQUIRE(f.fs->store().fs_tree().remove(xattr_chunk_key(a->ino, 1, 3)).ok());
  REQUIRE(f.fs->store().end_operation(f.fs->store().commit()).ok());
  CHECK(f.fs->getxattr(a->ino, "user.big").status().code() == EUCLEAN);
  REQUIRE(f.fs->close().ok());
  f.fs.reset();
  std::string problems;
  FsckOptions o;
  o.on_problem = [&](const std::string& p) { problems += p + "\n"; };
  CHECK(run_fsck(f.dev, o).exit_code() != 0);
  CHECK(problems.find("xattr 'user.big'") != std::string::npos);
}

TEST_CASE("filesystem: RENAME_WHITEOUT leaves a character device 0:0 owned by the caller") {
  Fixture f;
  auto a = f.fs->mknod(kRootIno, "a", S_IFREG | 0644, 0, f.cred);
  REQUIRE(a.ok());
  REQUIRE(f.fs->mknod(kRootIno, "c", S_IFREG | 0644, 0, f.cred).ok());
  CHECK(f.fs->rename(kRootIno, "a", kRootIno, "c", kRenameWhiteout | kRenameExchange, f.cred).code() == EINVAL);
  CHECK(f.fs->rename(kRootIno, "a", kRootIno, "c", kRenameWhiteout | kRenameNoReplace, f.cred).code() == EEXIST);
  REQUIRE(f.fs->rename(kRootIno, "a", kRootIno, "b", kRenameWhiteout, f.cred).ok());
  CHECK(f.fs->lookup(kRootIno, "b")->ino == a->ino);
  auto w = f.fs->lookup(kRootIno, "a");
  REQUIRE(w.ok());
  CHECK(w->ino != a->ino);
  CHECK(w->rec.mode == S_IFCHR);
  CHECK(w->rec.rdev == 0);
  CHECK(w->rec.uid == f.cred.uid);
  CHECK(f.fsck() == 0);
}

}  // namespace stablefs
