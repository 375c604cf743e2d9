// Speculative preallocation for appending streams (fs/data/file_mapper.h) and its trimming at close
// (Volume::release, Volume::close, FileSpace::trim_speculative), through Volume on an image.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "fs/inode/extent_map.h"
#include "fs/tools/fsck.h"
#include "fs/inode/speculative_list.h"
#include "fs/inode/truncate_list.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

using test::expect_fsck_clean;
using test::FormattedImage;
using test::open_volume;

struct ExtentCounts {
  size_t extents = 0;
  size_t speculative = 0;
  uint64_t speculative_blocks = 0;
};
ExtentCounts count_extents(Volume& v, uint64_t ino) {
  ExtentMap map(v.fs().store(), ino);
  auto all = map.all();
  REQUIRE(all.ok());
  ExtentCounts c;
  for (const DisplacedPiece& p : *all) {
    ++c.extents;
    if (p.extent.flags & kExtentSpeculative) {
      ++c.speculative;
      c.speculative_blocks += p.extent.nblocks;
    }
  }
  return c;
}

// Appends `total` bytes in `chunk`-byte writes, each a distinct pattern; returns the data.
std::vector<uint8_t> append_stream(Volume& v, uint64_t ino, size_t total, size_t chunk) {
  std::vector<uint8_t> all(total);
  std::mt19937 rng(7);
  for (auto& b : all) b = static_cast<uint8_t>(rng());
  AlignedBuffer buf(chunk);
  for (size_t off = 0; off < total; off += chunk) {
    std::copy(all.begin() + off, all.begin() + off + chunk, buf.data());
    auto w = v.write(ino, off, buf.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    REQUIRE(*w == chunk);
  }
  return all;
}

void expect_reads_back(Volume& v, uint64_t ino, const std::vector<uint8_t>& data) {
  AlignedBuffer buf(data.size());
  auto r = v.read(ino, 0, buf.span());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(*r == data.size());
  CHECK(std::equal(data.begin(), data.end(), buf.data()));
}

}  // namespace

TEST_CASE("preallocation: an appending stream gets few extents; close frees what it did not use") {
  FormattedImage img(256ull << 20);
  auto vol = open_volume(img.path);
  Volume& v = *vol;
  const uint64_t bs = v.fs().statfs().block_size;
  const uint64_t free_before = v.fs().statfs().free_blocks;

  // Two streams appended in turns: without preallocation their 16 KiB writes would interleave
  // on the device and each file would have one extent per write.
  const uint64_t a = v.fs().mknod(kRootIno, "a", S_IFREG | 0644, 0, {})->ino;
  const uint64_t b = v.fs().mknod(kRootIno, "b", S_IFREG | 0644, 0, {})->ino;
  const size_t total = 8u << 20, chunk = 16u << 10;
  std::vector<uint8_t> data(total);
  std::mt19937 rng(3);
  for (auto& x : data) x = static_cast<uint8_t>(rng());
  AlignedBuffer buf(chunk);
  for (size_t off = 0; off < total; off += chunk) {
    std::copy(data.begin() + off, data.begin() + off + chunk, buf.data());
    for (uint64_t ino : {a, b}) {
      auto w = v.write(ino, off, buf.span());
      REQUIRE_MESSAGE(w.ok(), w.status().message());
    }
  }
  const uint64_t file_blocks = total / bs;
  for (uint64_t ino : {a, b}) {
    const ExtentCounts c = count_extents(v, ino);
    MESSAGE("file " << ino << ": " << c.extents << " extents for " << total / chunk << " writes, "
                    << c.speculative_blocks << " blocks preallocated past EOF");
    CHECK(c.extents <= 24);  // one per doubling of the file (a few more where they meet)
    CHECK(c.speculative >= 1);
    CHECK(v.fs().getattr(ino)->rec.blocks == file_blocks + c.speculative_blocks);
    expect_reads_back(v, ino, data);
  }
  // Closing a frees its preallocation, not b's.
  const ExtentCounts b_before = count_extents(v, b);
  REQUIRE(v.release(a).ok());
  CHECK(count_extents(v, a).speculative == 0);
  CHECK(v.fs().getattr(a)->rec.blocks == file_blocks);
  CHECK(v.fs().getattr(a)->rec.size == total);
  CHECK(count_extents(v, b).speculative_blocks == b_before.speculative_blocks);
  expect_reads_back(v, a, data);
  // Closing again is harmless; then b.
  REQUIRE(v.release(a).ok());
  REQUIRE(v.release(b).ok());
  CHECK(v.fs().getattr(b)->rec.blocks == file_blocks);
  // Free space is down by the two files' data plus the metadata that maps and checksums them
  // (a few tree blocks), not by any preallocation.
  const uint64_t used = free_before - v.fs().statfs().free_blocks;
  MESSAGE("space used by two " << total << "-byte files: " << used << " blocks (" << 2 * file_blocks << " data)");
  CHECK(used >= 2 * file_blocks);
  CHECK(used <= 2 * file_blocks + 32);
  // SEEK_HOLE finds the end of the file, nothing before it.
  CHECK(*v.seek_hole(a, 0) == total);
  REQUIRE(v.close().ok());
  vol.reset();  // releases the device
  expect_fsck_clean(img.path);
}

TEST_CASE("preallocation: unmount trims every open stream; after a crash the next mount does") {
  FormattedImage img(128ull << 20);
  const size_t total = 2u << 20;
  std::vector<uint8_t> data;
  uint64_t ino = 0;
  std::string crashed;
  {
    auto vol = open_volume(img.path);
    ino = vol->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
    data = append_stream(*vol, ino, total, 64u << 10);
    REQUIRE(count_extents(*vol, ino).speculative >= 1);
    CHECK((vol->fs().store().superblock().incompat & kIncompatSpeculative) != 0);
    REQUIRE(vol->sync().ok());
    crashed = img.crash_copy();  // the device as a crash now would leave it
    REQUIRE(vol->close().ok());  // clean unmount without a release: close trims
  }
  {
    auto vol = open_volume(img.path);
    CHECK(count_extents(*vol, ino).speculative == 0);
    CHECK(vol->fs().getattr(ino)->rec.blocks == total / vol->fs().statfs().block_size);
    CHECK((vol->fs().store().superblock().incompat & kIncompatSpeculative) == 0);  // the list is empty
    REQUIRE(vol->close().ok());
  }
  expect_fsck_clean(img.path);

  // After the crash the preallocation is still there, listed (fsck clean); a read-only mount
  // leaves it, a read-write mount trims it at once.
  expect_fsck_clean(crashed);
  uint64_t speculative_blocks = 0, free_before = 0;
  {
    auto ro = Volume::open(crashed, {.read_only = true});
    REQUIRE_MESSAGE(ro.ok(), ro.status().message());
    const ExtentCounts before = count_extents(**ro, ino);
    CHECK(before.speculative >= 1);
    speculative_blocks = before.speculative_blocks;
    free_before = (*ro)->fs().statfs().free_blocks;
    expect_reads_back(**ro, ino, data);
  }
  auto vol = open_volume(crashed);
  const uint64_t bs = vol->fs().statfs().block_size;
  CHECK(count_extents(*vol, ino).speculative == 0);
  CHECK(vol->fs().getattr(ino)->rec.blocks == total / bs);
  CHECK(vol->fs().statfs().free_blocks == free_before + speculative_blocks);
  CHECK((vol->fs().store().superblock().incompat & kIncompatSpeculative) == 0);
  expect_reads_back(*vol, ino, data);
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(crashed);
}

TEST_CASE("preallocation: fsck reports speculative extents missing from the list, and repairs it") {
  FormattedImage img(128ull << 20);
  uint64_t ino = 0;
  std::string crashed;
  {
    auto vol = open_volume(img.path);
    ino = vol->fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
    append_stream(*vol, ino, 1u << 20, 64u << 10);
    REQUIRE(count_extents(*vol, ino).speculative >= 1);
    // Drop the entry behind the data path's back (what an older or buggy writer could leave).
    MetadataStore& store = vol->fs().store();
    REQUIRE(store.begin_operation(8).ok());
    REQUIRE(store.end_operation(remove_speculative(store, ino)).ok());
    REQUIRE(vol->sync().ok());
    crashed = img.crash_copy();
  }
  {
    auto dev = FileDevice::open(crashed, {.read_only = true});
    REQUIRE(dev.ok());
    FsckReport rep = run_fsck(**dev, {});
    REQUIRE(rep.problems.size() == 1);
    CHECK(rep.problems[0].find("not on the speculative list") != std::string::npos);
  }
  {
    auto dev = FileDevice::open(crashed, {});
    REQUIRE(dev.ok());
    FsckOptions repair;
    repair.repair = true;
    FsckReport rep = run_fsck(**dev, repair);
    CHECK(rep.exit_code() == kFsckCorrected);
  }
  expect_fsck_clean(crashed);
  auto vol = open_volume(crashed);  // the repaired list lets the mount trim it
  CHECK(count_extents(*vol, ino).speculative == 0);
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(crashed);
}

TEST_CASE("preallocation: a file grown over its preallocation and shrunk again frees it with the truncate") {
  // Truncating up makes speculative extents ordinary ones inside EOF, and the last close then
  // unlists the file; truncating down puts them past EOF again until its steps free them. The
  // shrink puts the file on the pending-truncate list first, so a crash in between cannot
  // strand them (tests/unit/truncate_test.cc); the speculative list is not needed for them.
  FormattedImage img(128ull << 20);
  auto vol = open_volume(img.path);
  Volume& v = *vol;
  const uint64_t bs = v.fs().statfs().block_size;
  const uint64_t ino = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
  const size_t total = 1u << 20;
  append_stream(v, ino, total, 64u << 10);
  const ExtentCounts c = count_extents(v, ino);
  REQUIRE(c.speculative_blocks >= 2);
  auto listed = [&] {
    auto l = list_speculative(v.fs().store());
    REQUIRE(l.ok());
    return std::find(l->begin(), l->end(), ino) != l->end();
  };
  CHECK(listed());
  REQUIRE(v.set_size(ino, total + c.speculative_blocks * bs).ok());  // grown over all of it
  REQUIRE(v.release(ino).ok());
  CHECK(!listed());  // nothing past EOF to trim
  CHECK(v.fs().getattr(ino)->rec.blocks == total / bs + c.speculative_blocks);
  REQUIRE(v.set_size(ino, total).ok());
  CHECK(!listed());
  CHECK(v.fs().getattr(ino)->rec.blocks == total / bs);
  auto pending = list_pending_truncates(v.fs().store());
  REQUIRE(pending.ok());
  CHECK(pending->empty());
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
}

TEST_CASE("preallocation: fallocate KEEP_SIZE over preallocated space keeps it past close") {
  FormattedImage img(128ull << 20);
  auto vol = open_volume(img.path);
  Volume& v = *vol;
  const uint64_t bs = v.fs().statfs().block_size;
  const uint64_t ino = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
  const size_t total = 1u << 20;
  append_stream(v, ino, total, 64u << 10);
  const ExtentCounts c = count_extents(v, ino);
  REQUIRE(c.speculative_blocks >= 16);
  // The user asks for 16 blocks past EOF: those are theirs, the rest stays speculative.
  REQUIRE(v.fallocate(ino, kFallocKeepSize, total, 16 * bs).ok());
  REQUIRE(v.release(ino).ok());
  CHECK(v.fs().getattr(ino)->rec.blocks == total / bs + 16);
  CHECK(v.fs().getattr(ino)->rec.size == total);
  CHECK(count_extents(v, ino).speculative == 0);
  REQUIRE(v.close().ok());
  vol.reset();  // releases the device
  expect_fsck_clean(img.path);
}

TEST_CASE("preallocation: none for small files, sparse writes, or a nearly full filesystem") {
  FormattedImage img(64ull << 20);
  auto vol = open_volume(img.path);
  Volume& v = *vol;
  const uint64_t bs = v.fs().statfs().block_size;
  AlignedBuffer buf(64u << 10);
  std::fill(buf.data(), buf.data() + buf.size(), 0x5a);

  // A small file: a 64 KiB write into an empty file allocates what it writes.
  const uint64_t small = v.fs().mknod(kRootIno, "small", S_IFREG | 0644, 0, {})->ino;
  REQUIRE(v.write(small, 0, buf.span()).ok());
  CHECK(v.fs().getattr(small)->rec.blocks == buf.size() / bs);
  // A write into a hole before EOF is not an append.
  const uint64_t sparse = v.fs().mknod(kRootIno, "sparse", S_IFREG | 0644, 0, {})->ino;
  for (int i = 0; i < 4; ++i) REQUIRE(v.write(sparse, (10u << 20) + i * buf.size(), buf.span()).ok());
  const uint64_t sparse_blocks = v.fs().getattr(sparse)->rec.blocks;
  REQUIRE(v.write(sparse, 1u << 20, buf.span()).ok());
  CHECK(v.fs().getattr(sparse)->rec.blocks == sparse_blocks + buf.size() / bs);

  // Fill the filesystem to below 1/16 free: appends then allocate exactly what they write.
  const uint64_t filler = v.fs().mknod(kRootIno, "filler", S_IFREG | 0644, 0, {})->ino;
  const uint64_t total_blocks = v.fs().statfs().total_blocks;
  uint64_t off = 0;
  while (v.fs().statfs().free_blocks > total_blocks / 20) {
    auto w = v.write(filler, off, buf.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    off += buf.size();
  }
  REQUIRE(v.release(filler).ok());
  const uint64_t before = v.fs().getattr(filler)->rec.blocks;
  REQUIRE(v.write(filler, off, buf.span()).ok());
  CHECK(v.fs().getattr(filler)->rec.blocks == before + buf.size() / bs);
  CHECK(count_extents(v, filler).speculative == 0);
  REQUIRE(v.close().ok());
  vol.reset();  // releases the device
  expect_fsck_clean(img.path);
}

}  // namespace stablefs
