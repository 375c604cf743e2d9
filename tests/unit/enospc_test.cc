// A write that runs out of space part way: the mappings that got space are written and
// recorded, the first that gets none ends the write short with exactly what was written, and
// nothing is reserved twice, leaked or left reserved (the out-of-place path reserves space at
// begin and claims it at ioend). Through Volume on an image with data checksums (overwrites
// out of place).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
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

// Writes 0x77 to a new file until the data path refuses: afterwards no data block is free.
uint64_t fill(Volume& v) {
  const uint64_t ino = make_file(v, "filler");
  AlignedBuffer buf(1 << 20);
  std::fill(buf.data(), buf.data() + buf.size(), 0x77);
  uint64_t off = 0;
  for (;;) {
    auto w = v.write(ino, off, buf.span());
    if (!w.ok()) {
      REQUIRE_MESSAGE(w.status().code() == ENOSPC, w.status().message());
      break;
    }
    off += *w;
    if (*w < buf.size()) break;
  }
  REQUIRE(v.sync().ok());
  return ino;
}

TEST_CASE("enospc: an overwrite that gets space for part of its range writes exactly that part") {
  FormattedImage img(96ull << 20, {}, "enospc");
  auto v = open_volume(img.path);
  const uint64_t target = make_file(*v, "target");
  const size_t target_bytes = 2 << 20;
  write_at(*v, target, 0, std::vector<uint8_t>(target_bytes, 0x11));
  const uint64_t filler = fill(*v);
  REQUIRE(v->fs().statfs().free_blocks == 0);

  for (uint64_t k : {uint64_t(1), uint64_t(37), uint64_t(100)}) {
    CAPTURE(k);
    // Free exactly k blocks at the filler's end; once committed they are what data may take.
    auto attr = v->fs().getattr(filler);
    REQUIRE(attr.ok());
    REQUIRE(attr->rec.size >= k * kBs);
    REQUIRE(v->set_size(filler, attr->rec.size / kBs * kBs - k * kBs).ok());
    REQUIRE(v->sync().ok());
    REQUIRE(v->fs().statfs().free_blocks == k);

    AlignedBuffer buf(target_bytes);
    std::fill(buf.data(), buf.data() + buf.size(), static_cast<uint8_t>(0x20 + k));
    auto w = v->write(target, 0, buf.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    CHECK(*w == k * kBs);  // short by exactly what found no space
    CHECK(v->mapper().reserved_blocks() == 0);
    REQUIRE(v->sync().ok());
    // The new blocks replaced as many old ones, which are free again now.
    CHECK(v->fs().statfs().free_blocks == k);
    std::vector<uint8_t> want(target_bytes, 0x11);
    std::fill(want.begin(), want.begin() + static_cast<long>(k * kBs), static_cast<uint8_t>(0x20 + k));
    // Later rounds overwrite the start again: what earlier rounds wrote past k stays.
    const std::vector<uint8_t> got = read_at(*v, target, 0, target_bytes);
    CHECK(std::equal(got.begin(), got.begin() + static_cast<long>(k * kBs), want.begin()));
    CHECK(std::all_of(got.begin() + static_cast<long>(100 * kBs), got.end(), [](uint8_t b) { return b == 0x11; }));
    // Nothing free: the write is refused whole. (An append to the filler takes the k blocks.)
    auto filler_attr = v->fs().getattr(filler);
    REQUIRE(filler_attr.ok());
    write_at(*v, filler, filler_attr->rec.size, std::vector<uint8_t>(k * kBs, 0x77));
    REQUIRE(v->sync().ok());
    REQUIRE(v->fs().statfs().free_blocks == 0);
    auto refused = v->write(target, 0, buf.span());
    CHECK(refused.status().code() == ENOSPC);
    CHECK(v->mapper().reserved_blocks() == 0);
  }
  REQUIRE(v->close().ok());
  v.reset();
  expect_fsck_clean(img.path);
}

}  // namespace
}  // namespace stablefs
