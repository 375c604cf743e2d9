// Open-but-unlinked files: an inode whose last link goes while it is held (an open file, a
// FUSE lookup reference) stays usable on the on-disk orphan list until its last hold goes;
// unmount and the mount after a crash free what is left; fsck accepts orphans, frees them in
// repair mode and reports stale orphan entries.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "bounce/aligned_buffer.h"
#include "bounce/memory_device.h"
#include "fs/data/file_mapper.h"
#include "fs/namespace/filesystem.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "fs/inode/orphan_list.h"
#include "fs/volume.h"
#include "iomap/space.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"

namespace stablefs {
namespace {

constexpr uint64_t kDeviceBytes = 16ull << 20;
const Credentials kCred{1000, 1000};

std::unique_ptr<Filesystem> open_fs(BlockDevice& dev) {
  auto r = Filesystem::open(dev, {});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return std::move(r).value();
}

// Runs fsck on dev; every problem line is collected into *problems.
FsckReport fsck(BlockDevice& dev, bool repair, std::string* problems) {
  FsckOptions o;
  o.repair = repair;
  o.on_problem = [&](const std::string& p) { *problems += p + "\n"; };
  return run_fsck(dev, o);
}

// fsck -n must find dev clean; returns its report.
FsckReport fsck_clean(BlockDevice& dev) {
  std::string problems;
  FsckReport r = fsck(dev, false, &problems);
  INFO(problems);
  CHECK(problems.empty());
  CHECK(r.exit_code() == kFsckClean);
  return r;
}

uint64_t free_blocks(Filesystem& fs) { return fs.store().allocator().free_blocks(); }
bool orphan_bit(Filesystem& fs) { return fs.store().superblock().ro_compat & kRoCompatOrphans; }

// A regular file of `extents` separate one-block unwritten extents (every other file block,
// so they never merge) on a MemoryDevice filesystem.
Inode make_fragmented_file(Filesystem& fs, const std::string& name, uint64_t extents) {
  auto f = fs.mknod(kRootIno, name, S_IFREG | 0644, 0, kCred);
  REQUIRE(f.ok());
  FileMapper mapper(fs.inodes());
  const uint64_t bs = fs.statfs().block_size;
  for (uint64_t i = 0; i < extents; ++i) REQUIRE(iomap_preallocate(mapper, f->ino, 2 * i * bs, bs).ok());
  auto again = fs.getattr(f->ino);
  REQUIRE(again.ok());
  CHECK(again->rec.blocks == extents);
  return *again;
}

using TempImage = test::FormattedImage;

std::vector<uint8_t> pattern(size_t n, uint32_t seed) { return test::random_bytes(n, seed); }

}  // namespace

TEST_CASE("orphan: a file unlinked while held stays readable and writable; the last release frees it exactly") {
  TempImage img(64ull << 20);
  auto opened = Volume::open(img.path, {});
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  std::unique_ptr<Volume> vol = std::move(opened).value();
  Volume& v = *vol;
  Filesystem& fs = v.fs();
  REQUIRE(fs.sync().ok());
  const uint64_t baseline = free_blocks(fs);

  auto f = fs.mknod(kRootIno, "f", S_IFREG | 0644, 0, kCred);
  REQUIRE(f.ok());
  fs.acquire_inode(f->ino);  // the open handle
  fs.acquire_inode(f->ino);  // the kernel's lookup reference
  AlignedBuffer buf(1 << 20);
  auto data = pattern(buf.size(), 7);
  std::copy(data.begin(), data.end(), buf.data());
  auto w = v.write(f->ino, 0, buf.span());
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  REQUIRE(*w == data.size());
  REQUIRE(v.sync().ok());
  const uint64_t with_file = free_blocks(fs);
  CHECK(with_file <= baseline - 256);

  REQUIRE(fs.unlink(kRootIno, "f").ok());
  CHECK(fs.lookup(kRootIno, "f").status().code() == ENOENT);
  auto st = fs.getattr(f->ino);
  REQUIRE(st.ok());
  CHECK(st->rec.nlink == 0);
  CHECK(st->rec.size == data.size());
  CHECK(fs.orphan_count() == 1);
  CHECK(orphan_bit(fs));
  REQUIRE(v.sync().ok());
  CHECK(free_blocks(fs) == with_file);  // nothing freed while held

  // Reads and writes go on through the holds.
  std::vector<uint8_t> back(data.size());
  auto r = v.read(f->ino, 0, back);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(*r == data.size());
  CHECK(back == data);
  auto more = pattern(256 << 10, 8);
  w = v.write(f->ino, 1 << 20, more);
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  std::vector<uint8_t> back2(more.size());
  REQUIRE(v.read(f->ino, 1 << 20, back2).ok());
  CHECK(back2 == more);
  CHECK(fs.getattr(f->ino)->rec.size == data.size() + more.size());
  // Overwrite in the middle (out of place with checksums) and read the whole file again.
  auto patch = pattern(10000, 9);
  REQUIRE(v.write(f->ino, 5000, patch).ok());
  std::copy(patch.begin(), patch.end(), data.begin() + 5000);
  REQUIRE(v.read(f->ino, 0, back).ok());
  CHECK(back == data);

  // The first release leaves it; the last frees it, in full.
  REQUIRE(fs.release_inode(f->ino).ok());
  CHECK(fs.getattr(f->ino).ok());
  CHECK(fs.orphan_count() == 1);
  REQUIRE(fs.release_inode(f->ino).ok());
  CHECK(fs.getattr(f->ino).status().code() == ENOENT);
  CHECK(fs.orphan_count() == 0);
  CHECK_FALSE(orphan_bit(fs));
  REQUIRE(v.sync().ok());
  CHECK(free_blocks(fs) == baseline);
  CHECK(fs.statfs().inodes == 1);
  REQUIRE(v.close().ok());
  vol.reset();  // releases the device
  auto dev = FileDevice::open(img.path, {.read_only = true});
  REQUIRE(dev.ok());
  fsck_clean(**dev);
}

TEST_CASE("orphan: holds on linked inodes free nothing; an unheld unlink frees at once") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  Inode a = make_fragmented_file(*fs, "a", 5);
  fs->acquire_inode(a.ino, 3);
  REQUIRE(fs->release_inode(a.ino, 3).ok());
  CHECK(fs->getattr(a.ino).ok());  // still linked: a release never frees a linked file
  CHECK(fs->orphan_count() == 0);
  // A hard link keeps it alive through one unlink even while held.
  fs->acquire_inode(a.ino);
  REQUIRE(fs->link(a.ino, kRootIno, "a2").ok());
  REQUIRE(fs->unlink(kRootIno, "a").ok());
  CHECK(fs->getattr(a.ino)->rec.nlink == 1);
  CHECK(fs->orphan_count() == 0);
  REQUIRE(fs->release_inode(a.ino).ok());
  // Nobody holds it now: the last unlink frees it in the same operation.
  REQUIRE(fs->unlink(kRootIno, "a2").ok());
  CHECK(fs->getattr(a.ino).status().code() == ENOENT);
  CHECK(fs->orphan_count() == 0);
  CHECK(free_blocks(*fs) == baseline);
  // Releasing holds nobody took, or of inodes that never existed, is harmless.
  CHECK(fs->release_inode(a.ino).ok());
  CHECK(fs->release_inode(987654).ok());
  REQUIRE(fs->close().ok());
  fsck_clean(dev);
}

TEST_CASE("orphan: rmdir and rename over a held inode; a removed directory takes no new entries") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  auto d = fs->mkdir(kRootIno, "d", 0755, kCred);
  REQUIRE(d.ok());
  auto other = fs->mknod(kRootIno, "other", S_IFREG | 0644, 0, kCred);
  REQUIRE(other.ok());
  fs->acquire_inode(d->ino);  // a process's working directory
  REQUIRE(fs->rmdir(kRootIno, "d").ok());
  CHECK(fs->getattr(kRootIno)->rec.nlink == 2);
  auto gone = fs->getattr(d->ino);
  REQUIRE(gone.ok());
  CHECK(gone->rec.nlink == 0);
  CHECK(fs->mknod(d->ino, "x", S_IFREG | 0644, 0, kCred).status().code() == ENOENT);
  CHECK(fs->mkdir(d->ino, "x", 0755, kCred).status().code() == ENOENT);
  CHECK(fs->link(other->ino, d->ino, "x").status().code() == ENOENT);
  CHECK(fs->rename(kRootIno, "other", d->ino, "x", 0).code() == ENOENT);
  int entries = 0;
  REQUIRE(fs->readdir(d->ino, 0, [&](const DirEntry&) {
    ++entries;
    return true;
  }).ok());
  CHECK(entries == 0);

  // rename over a held file: the replaced file is orphaned, the new name is the source.
  Inode t = make_fragmented_file(*fs, "target", 40);  // more extents than one reclaim step frees
  fs->acquire_inode(t.ino);
  REQUIRE(fs->rename(kRootIno, "other", kRootIno, "target", 0).ok());
  CHECK(fs->lookup(kRootIno, "target")->ino == other->ino);
  CHECK(fs->getattr(t.ino)->rec.nlink == 0);
  CHECK(fs->getattr(t.ino)->rec.blocks == 40);
  CHECK(fs->orphan_count() == 2);

  REQUIRE(fs->release_inode(d->ino).ok());
  REQUIRE(fs->release_inode(t.ino).ok());
  CHECK(fs->getattr(d->ino).status().code() == ENOENT);
  CHECK(fs->getattr(t.ino).status().code() == ENOENT);
  CHECK(fs->orphan_count() == 0);
  CHECK_FALSE(orphan_bit(*fs));
  REQUIRE(fs->unlink(kRootIno, "target").ok());
  CHECK(free_blocks(*fs) == baseline);
  REQUIRE(fs->close().ok());
  fsck_clean(dev);
}

TEST_CASE("orphan: unmount frees orphans that are still held") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  Inode a = make_fragmented_file(*fs, "a", 70);
  fs->acquire_inode(a.ino);
  REQUIRE(fs->unlink(kRootIno, "a").ok());
  CHECK(fs->orphan_count() == 1);
  REQUIRE(fs->close().ok());
  CHECK(fs->close().ok());  // only the first close acts
  fs.reset();
  fsck_clean(dev);
  fs = open_fs(dev);
  CHECK(fs->orphans_freed_at_open() == 0);
  CHECK(fs->getattr(a.ino).status().code() == ENOENT);
  CHECK(free_blocks(*fs) == baseline);
  CHECK_FALSE(orphan_bit(*fs));
  REQUIRE(fs->close().ok());
}

TEST_CASE("orphan: after a crash with an unlinked file in use, fsck accepts it and mount frees it") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  Inode a = make_fragmented_file(*fs, "a", 100);  // several reclaim steps
  REQUIRE(fs->setxattr(a.ino, "user.k", std::vector<uint8_t>(50, 'v'), 0).ok());
  Inode keep = make_fragmented_file(*fs, "keep", 3);
  fs->acquire_inode(a.ino);
  REQUIRE(fs->unlink(kRootIno, "a").ok());
  REQUIRE(fs->sync().ok());
  // The crash: the device as it is now, the filesystem never closed.
  const std::vector<uint8_t> crashed = dev.snapshot();
  fs.reset();

  SUBCASE("fsck -n: orphans are legal, and counted") {
    MemoryDevice img(crashed, "crashed");
    FsckReport r = fsck_clean(img);
    CHECK(r.orphans == 1);
    CHECK(r.orphans_freed == 0);
    CHECK(r.replayed_transactions > 0);
    // The superblock (replayed from the journal) says the list is not empty.
    auto store = MetadataStore::open(img, {.read_only = true});
    REQUIRE(store.ok());
    CHECK(((*store)->superblock().ro_compat & kRoCompatOrphans) != 0);
    auto list = list_orphans(**store);
    REQUIRE(list.ok());
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].ino == a.ino);
    CHECK((*list)[0].rec.generation == a.rec.generation);
  }
  SUBCASE("fsck repair frees them") {
    MemoryDevice img(crashed, "crashed");
    std::string problems;
    FsckReport r = fsck(img, true, &problems);
    INFO(problems);
    CHECK(problems.empty());
    CHECK(r.exit_code() == kFsckClean);
    CHECK(r.orphans == 1);
    CHECK(r.orphans_freed == 1);
    FsckReport again = fsck_clean(img);
    CHECK(again.orphans == 0);
    auto fs2 = open_fs(img);
    CHECK(fs2->orphans_freed_at_open() == 0);
    CHECK(fs2->getattr(a.ino).status().code() == ENOENT);
    CHECK(fs2->getattr(keep.ino).ok());
    REQUIRE(fs2->unlink(kRootIno, "keep").ok());
    CHECK(free_blocks(*fs2) == baseline);
    REQUIRE(fs2->close().ok());
  }
  SUBCASE("mount frees them") {
    MemoryDevice img(crashed, "crashed");
    auto fs2 = open_fs(img);
    CHECK(fs2->orphans_freed_at_open() == 1);
    CHECK(fs2->orphan_count() == 0);
    CHECK_FALSE(orphan_bit(*fs2));
    CHECK(fs2->getattr(a.ino).status().code() == ENOENT);
    auto k = fs2->lookup(kRootIno, "keep");
    REQUIRE(k.ok());
    CHECK(k->rec.blocks == 3);
    REQUIRE(fs2->unlink(kRootIno, "keep").ok());
    CHECK(free_blocks(*fs2) == baseline);
    REQUIRE(fs2->close().ok());
    FsckReport r = fsck_clean(img);
    CHECK(r.orphans == 0);
  }
}

TEST_CASE("orphan: a crash at any write from the unlink to the last release mounts clean and leaks nothing") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  Inode a = make_fragmented_file(*fs, "a", 100);
  REQUIRE(fs->sync().ok());
  const uint64_t with_file = free_blocks(*fs);
  const std::vector<uint8_t> base = dev.snapshot();

  dev.set_recording(true);
  fs->acquire_inode(a.ino);
  REQUIRE(fs->unlink(kRootIno, "a").ok());
  REQUIRE(fs->sync().ok());
  REQUIRE(fs->release_inode(a.ino).ok());
  REQUIRE(fs->sync().ok());
  REQUIRE(fs->close().ok());
  const auto log = dev.log();
  dev.set_recording(false);
  REQUIRE(log.size() > 4);

  std::vector<uint8_t> image = base;
  size_t cuts = 0, with_file_seen = 0, freed_at_mount = 0;
  for (size_t k = 0; k <= log.size(); ++k) {
    INFO("cut after log entry " << k << " of " << log.size());
    if (k > 0) {
      if (log[k - 1].is_flush) continue;  // a flush changes no bytes
      std::copy(log[k - 1].data.begin(), log[k - 1].data.end(), image.begin() + static_cast<long>(log[k - 1].offset));
    }
    ++cuts;
    MemoryDevice cut(image, "cut");
    {
      auto fs2 = open_fs(cut);
      freed_at_mount += fs2->orphans_freed_at_open();
      auto l = fs2->lookup(kRootIno, "a");
      if (l.ok()) {
        // The unlink had not committed: the file is whole.
        ++with_file_seen;
        CHECK(l->rec.blocks == 100);
        CHECK(free_blocks(*fs2) == with_file);
      } else {
        CHECK(l.status().code() == ENOENT);
        CHECK(fs2->getattr(a.ino).status().code() == ENOENT);
        CHECK(free_blocks(*fs2) == baseline);
      }
      CHECK_FALSE(orphan_bit(*fs2));
      REQUIRE(fs2->close().ok());
    }
    FsckReport r = fsck_clean(cut);
    CHECK(r.orphans == 0);
  }
  MESSAGE("crash points: " << cuts << ", file intact at " << with_file_seen << ", orphan freed at mount at "
                           << freed_at_mount);
  CHECK(with_file_seen > 0);
  CHECK(freed_at_mount > 0);
}

TEST_CASE("orphan: fsck reports stale orphan entries and a wrong feature bit, and repairs them") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  Inode linked = make_fragmented_file(*fs, "linked", 2);
  {
    MetadataStore& store = fs->store();
    REQUIRE(store.begin_operation(16).ok());
    REQUIRE(store.end_operation([&]() -> Status {
      SFS_TRY(add_orphan(store, linked.ino, linked.rec.generation));  // an inode with a link
      return add_orphan(store, 4242, 1);                               // no such inode
    }()).ok());
  }
  REQUIRE(fs->sync().ok());
  const std::vector<uint8_t> crashed = dev.snapshot();
  fs.reset();

  SUBCASE("check and repair") {
    MemoryDevice img(crashed, "stale");
    std::string problems;
    FsckReport r = fsck(img, false, &problems);
    CHECK(r.exit_code() == kFsckUncorrected);
    CHECK(r.problems.size() == 2);
    CHECK(problems.find("orphan list: inode " + std::to_string(linked.ino) + " has 1 links") != std::string::npos);
    CHECK(problems.find("orphan list: inode 4242 does not exist") != std::string::npos);
    problems.clear();
    r = fsck(img, true, &problems);
    CHECK(r.exit_code() == kFsckCorrected);
    std::string corrected;
    for (const std::string& c : r.corrected) corrected += c + "\n";
    INFO(corrected);
    CHECK(r.corrected.size() == 2);
    CHECK(r.orphans_freed == 0);
    fsck_clean(img);
    auto fs2 = open_fs(img);
    auto l = fs2->lookup(kRootIno, "linked");  // the inode an entry named stays
    REQUIRE(l.ok());
    CHECK(l->rec.blocks == 2);
    CHECK_FALSE(orphan_bit(*fs2));
    REQUIRE(fs2->close().ok());
  }
  SUBCASE("mount drops stale entries and keeps their inodes") {
    MemoryDevice img(crashed, "stale");
    auto fs2 = open_fs(img);
    CHECK(fs2->orphans_freed_at_open() == 0);
    CHECK(fs2->lookup(kRootIno, "linked").ok());
    CHECK_FALSE(orphan_bit(*fs2));
    REQUIRE(fs2->close().ok());
    fsck_clean(img);
  }
  SUBCASE("the feature bit over an empty list is harmless; repair clears it") {
    MemoryDevice img(crashed, "stale");
    REQUIRE(open_fs(img)->close().ok());  // drops the stale entries
    auto set_bit = [&](bool on) {
      auto store = MetadataStore::open(img, {});
      REQUIRE(store.ok());
      if (on) (*store)->superblock().ro_compat |= kRoCompatOrphans;
      else (*store)->superblock().ro_compat &= ~kRoCompatOrphans;
      REQUIRE((*store)->close().ok());  // close writes the superblock as it is
    };
    auto bit_on_disk = [&] {
      auto store = MetadataStore::open(img, {.read_only = true});
      REQUIRE(store.ok());
      return ((*store)->superblock().ro_compat & kRoCompatOrphans) != 0;
    };
    set_bit(true);
    CHECK(bit_on_disk());
    fsck_clean(img);
    std::string problems;
    FsckReport r = fsck(img, true, &problems);
    CHECK(problems.empty());
    CHECK(r.exit_code() == kFsckClean);
    CHECK_FALSE(bit_on_disk());
  }
}

TEST_CASE("orphan: fsck reports an orphan list the feature bit does not announce") {
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto fs = open_fs(dev);
  const uint64_t baseline = free_blocks(*fs);
  Inode a = make_fragmented_file(*fs, "a", 10);
  fs->acquire_inode(a.ino);
  REQUIRE(fs->unlink(kRootIno, "a").ok());
  REQUIRE(fs->sync().ok());
  MemoryDevice img(dev.snapshot(), "crashed");
  fs.reset();
  {
    // What an older binary's writes would leave: the list without the bit.
    auto store = MetadataStore::open(img, {});
    REQUIRE(store.ok());
    (*store)->superblock().ro_compat &= ~kRoCompatOrphans;
    REQUIRE((*store)->close().ok());
  }
  std::string problems;
  FsckReport r = fsck(img, false, &problems);
  CHECK(r.exit_code() == kFsckUncorrected);
  CHECK(r.problems.size() == 1);
  CHECK(problems.find("orphan feature bit is clear but the orphan list is not empty") != std::string::npos);
  problems.clear();
  r = fsck(img, true, &problems);
  CHECK(r.exit_code() == kFsckCorrected);
  CHECK(r.orphans_freed == 1);
  fsck_clean(img);
  auto fs2 = open_fs(img);
  CHECK(fs2->getattr(a.ino).status().code() == ENOENT);
  CHECK(free_blocks(*fs2) == baseline);
  REQUIRE(fs2->close().ok());
}

TEST_CASE("orphan: the orphan feature bit is read-only-compatible and a known feature") {
  CHECK((kKnownRoCompat & kRoCompatOrphans) != 0);
  // A read-write open refuses a ro_compat bit it does not know; the orphan bit is the next one
  // an older binary would see as unknown, so test the refusal with a bit nobody knows.
  MemoryDevice dev(kDeviceBytes, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  {
    auto fs = open_fs(dev);
    fs->store().superblock().ro_compat |= 1ull << 40;
    REQUIRE(fs->close().ok());
  }
  CHECK(Filesystem::open(dev, {}).status().code() == EROFS);
  auto ro = Filesystem::open(dev, {.read_only = true});
  CHECK(ro.ok());
}

}  // namespace stablefs
