// A write that runs out of space part way: the mappings that got space are written and
// recorded, the first that gets none ends the write short with exactly what was written, and
// nothing is reserved twice, leaked or left reserved (the out-of-place path reserves space at
// begin and claims it at ioend). Through Volume on an image with data checksums (overwrites
// out of place).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
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

// Runs out of space at every allocation of a workload in turn: the free space left to data
// sweeps from 0 blocks up, one block more each round, under the same seeded workload of
// scattered writes, overwrites (out of place) and punches in three files — the writes that
// grow the extent and checksum trees take their nodes from the metadata reserve, so only data
// runs out. Every call is whole, short by exactly what found no space, or ENOSPC with nothing
// changed; nothing stays reserved; the store never shuts down; deleting the files gives back
// exactly the free space the round began with; fsck is clean.
TEST_CASE("enospc: out of space at every allocation of a workload: exact short counts, nothing leaked") {
  FormattedImage img(32ull << 20, {}, "enospc-sweep");
  auto v = open_volume(img.path);
  const uint64_t filler = fill(*v);
  REQUIRE(v->fs().statfs().free_blocks == 0);
  constexpr uint64_t kFileBlocks = 48;
  constexpr uint64_t kRounds = 200;
  uint64_t short_writes = 0, refused = 0, whole = 0;
  for (uint64_t free_blocks = 0; free_blocks < kRounds; ++free_blocks) {
    CAPTURE(free_blocks);
    if (free_blocks > 0) {  // one block more than last round: the filler gives up its last one
      auto attr = v->fs().getattr(filler);
      REQUIRE(attr.ok());
      REQUIRE(v->set_size(filler, attr->rec.size - kBs).ok());
    }
    REQUIRE(v->sync().ok());
    // About free_blocks: a step of the truncate may take or give back a tree node.
    const uint64_t free_before = v->fs().statfs().free_blocks;
    REQUIRE(free_before + 2 >= free_blocks);
    REQUIRE(free_before <= free_blocks + 2);
    std::mt19937_64 rng(99);
    std::vector<uint64_t> inos;
    std::vector<std::map<uint64_t, uint8_t>> model(3);  // block -> fill byte (absent: zeros)
    for (int i = 0; i < 3; ++i) inos.push_back(make_file(*v, ("w" + std::to_string(i)).c_str()));
    uint8_t next_byte = 1;
    for (int op = 0; op < 40; ++op) {
      CAPTURE(op);
      const size_t f = rng() % 3;
      const uint64_t first = rng() % (kFileBlocks - 4), n = 1 + rng() % 4;
      if (rng() % 5 == 0) {
        Status st = v->fallocate(inos[f], kFallocPunchHole | kFallocKeepSize, first * kBs, n * kBs);
        REQUIRE_MESSAGE(st.ok(), st.message());
        for (uint64_t b = first; b < first + n; ++b) model[f].erase(b);
        continue;
      }
      const uint8_t byte = next_byte++;
      AlignedBuffer buf(n * kBs);
      std::fill(buf.data(), buf.data() + buf.size(), byte);
      auto w = v->write(inos[f], first * kBs, buf.span());
      uint64_t done = 0;
      if (w.ok()) {
        REQUIRE(*w % kBs == 0);
        done = *w / kBs;
        REQUIRE(done >= 1);
        (done == n ? whole : short_writes)++;
      } else {
        REQUIRE_MESSAGE(w.status().code() == ENOSPC, w.status().message());
        ++refused;
      }
      for (uint64_t b = first; b < first + done; ++b) model[f][b] = byte;
      REQUIRE(v->mapper().reserved_blocks() == 0);
      REQUIRE(!v->fs().health().shut_down);
    }
    for (size_t f = 0; f < 3; ++f) {
      auto attr = v->fs().getattr(inos[f]);
      REQUIRE(attr.ok());
      const std::vector<uint8_t> got = read_at(*v, inos[f], 0, attr->rec.size);
      for (uint64_t b = 0; b * kBs < got.size(); ++b) {
        const uint8_t want = model[f].count(b) ? model[f][b] : 0;
        REQUIRE_MESSAGE(std::all_of(got.begin() + static_cast<long>(b * kBs), got.begin() + static_cast<long>((b + 1) * kBs),
                                    [&](uint8_t x) { return x == want; }),
                        "file " << f << " block " << b << " is not what the calls reported");
      }
      REQUIRE(v->fs().unlink(kRootIno, "w" + std::to_string(f)).ok());
    }
    REQUIRE(v->sync().ok());
    CHECK_MESSAGE(v->fs().statfs().free_blocks == free_before, "space leaked by the round");
    if (free_blocks % 35 == 34) {  // fsck now and then: the volume closes and opens again
      REQUIRE(v->close().ok());
      v.reset();
      expect_fsck_clean(img.path);
      v = open_volume(img.path);
    }
  }
  MESSAGE("out-of-space sweep: " << whole << " whole writes, " << short_writes << " short, " << refused << " refused");
  CHECK(short_writes > 0);
  CHECK(refused > 0);
  REQUIRE(v->close().ok());
  v.reset();
  expect_fsck_clean(img.path);
}

}  // namespace
}  // namespace stablefs
