// The range actors over the walker (iomap/report.h, iomap/space.h) through Volume on an image:
// the extent report against the extent map, and zeroing that writes only over written data.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "fs/inode/extent_map.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

using test::expect_fsck_clean;
using test::FormattedImage;
using test::make_file;
using test::open_volume;
using test::read_at;
using test::write_at;

constexpr uint64_t kBs = 4096;

struct Piece {
  IomapType type;
  uint32_t flags;
  uint64_t pos, len, dev;
};

std::vector<Piece> report(Volume& v, uint64_t ino, uint64_t off, uint64_t len) {
  std::vector<Piece> out;
  Status st = v.map_extents(ino, off, len, [&](const ReportedExtent& e) {
    out.push_back({e.map.type, e.map.flags, e.pos, e.len, e.map.type == IomapType::kHole ? 0 : e.dev_addr()});
    return true;
  });
  REQUIRE_MESSAGE(st.ok(), st.message());
  return out;
}

}  // namespace

TEST_CASE("range actors: the extent report covers the range and agrees with the extent map, flags included") {
  FormattedImage img(256ull << 20, {}, "report");
  auto v = open_volume(img.path);
  const uint64_t ino = make_file(*v, "f");
  v->open_file(ino);
  // An appending stream (speculative space past EOF), a hole, then KEEP_SIZE preallocation.
  for (uint64_t i = 0; i < 64; ++i) write_at(*v, ino, i * kBs, test::random_bytes(kBs, static_cast<uint32_t>(i)));
  REQUIRE(v->fallocate(ino, kFallocKeepSize, 4096 * kBs, 8 * kBs).ok());

  const uint64_t span = 8192 * kBs;
  const auto pieces = report(*v, ino, 0, span);
  REQUIRE_FALSE(pieces.empty());
  // Contiguous and exactly the range.
  CHECK(pieces.front().pos == 0);
  for (size_t i = 1; i < pieces.size(); ++i) CHECK(pieces[i].pos == pieces[i - 1].pos + pieces[i - 1].len);
  CHECK(pieces.back().pos + pieces.back().len == span);

  // Every extent the map holds is reported as it is stored; nothing else is backed.
  ExtentMap map(v->fs().store(), ino);
  auto all = map.all();
  REQUIRE(all.ok());
  std::vector<Piece> backed;
  for (const Piece& p : pieces)
    if (p.type != IomapType::kHole) backed.push_back(p);
  REQUIRE(backed.size() == all->size());
  bool saw_speculative = false, saw_unwritten = false, saw_written = false;
  for (size_t i = 0; i < backed.size(); ++i) {
    const DisplacedPiece& e = (*all)[i];
    CHECK(backed[i].pos == e.file_block * kBs);
    CHECK(backed[i].len == e.extent.nblocks * kBs);
    CHECK(backed[i].dev == e.extent.dev_block * kBs);
    CHECK((backed[i].type == IomapType::kUnwritten) == bool(e.extent.flags & kExtentUnwritten));
    CHECK(bool(backed[i].flags & kIomapSpeculative) == bool(e.extent.flags & kExtentSpeculative));
    saw_speculative |= bool(backed[i].flags & kIomapSpeculative);
    saw_unwritten |= backed[i].type == IomapType::kUnwritten && !(backed[i].flags & kIomapSpeculative);
    saw_written |= backed[i].type == IomapType::kMapped;
  }
  CHECK(saw_written);
  CHECK(saw_speculative);
  CHECK(saw_unwritten);

  // An unaligned range is clipped to its bytes.
  const auto clipped = report(*v, ino, 100, 3 * kBs);
  REQUIRE_FALSE(clipped.empty());
  CHECK(clipped.front().pos == 100);
  CHECK(clipped.back().pos + clipped.back().len == 100 + 3 * kBs);
  CHECK(clipped.front().dev == backed.front().dev + 100);

  // The close trims the speculative space; the report then shows none.
  REQUIRE(v->close_file(ino).ok());
  for (const Piece& p : report(*v, ino, 0, span)) CHECK((p.flags & kIomapSpeculative) == 0);
  REQUIRE(v->close().ok());
  v.reset();
  expect_fsck_clean(img.path);
}

TEST_CASE("range actors: zeroing unaligned edges writes nothing over holes and zeros over data") {
  FormattedImage img(64ull << 20, {}, "zero");
  auto v = open_volume(img.path);
  const uint64_t ino = make_file(*v, "f");
  REQUIRE(v->set_size(ino, 1 << 20).ok());

  // A sparse file: punching or zeroing partial blocks of a hole allocates nothing.
  REQUIRE(v->fallocate(ino, kFallocPunchHole | kFallocKeepSize, 100, 5000).ok());
  REQUIRE(v->fallocate(ino, kFallocZeroRange | kFallocKeepSize, 3 * kBs + 7, 100).ok());
  CHECK(v->fs().getattr(ino)->rec.blocks == 0);
  CHECK(v->fs().getattr(ino)->rec.size == (1u << 20));

  // Over written data the edges are zeroed and the rest is kept.
  const auto data = test::random_bytes(64 * kBs, 3);
  write_at(*v, ino, 0, data);
  REQUIRE(v->fallocate(ino, kFallocPunchHole | kFallocKeepSize, 100, 5000).ok());
  const auto got = read_at(*v, ino, 0, data.size());
  CHECK(std::equal(got.begin(), got.begin() + 100, data.begin()));
  CHECK(std::all_of(got.begin() + 100, got.begin() + 5100, [](uint8_t b) { return b == 0; }));
  CHECK(std::equal(got.begin() + 5100, got.end(), data.begin() + 5100));
  CHECK(v->fs().getattr(ino)->rec.blocks == 64);

  // Shrinking into a block of a hole allocates nothing either; into data it zeroes the tail.
  REQUIRE(v->set_size(ino, 200 * kBs + 10).ok());
  CHECK(v->fs().getattr(ino)->rec.blocks == 64);
  REQUIRE(v->set_size(ino, 10 * kBs + 10).ok());
  REQUIRE(v->set_size(ino, 11 * kBs).ok());
  const auto tail = read_at(*v, ino, 10 * kBs, kBs);
  CHECK(std::equal(tail.begin(), tail.begin() + 10, data.begin() + 10 * kBs));
  CHECK(std::all_of(tail.begin() + 10, tail.end(), [](uint8_t b) { return b == 0; }));
  CHECK(v->fs().getattr(ino)->rec.blocks == 11);
  REQUIRE(v->close().ok());
  v.reset();
  expect_fsck_clean(img.path);
}

}  // namespace stablefs
