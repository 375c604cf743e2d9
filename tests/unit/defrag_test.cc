// The defragmenter (fs/defragmenter.h) and its step, Volume::relocate_range: fragmented data
// moves into one extent with its bytes, checksums and times unchanged, never through bounce
// memory; a damaged block is never
// moved; holes end a run; a full filesystem is refused before anything is read; small writes
// become candidates that move once they have been quiet, and a whole file moves on request.
// (Crash points of a move are in crash_points_test.cc's workload.)
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <thread>

#include "fs/defragmenter.h"
#include "support/formatted_image.h"
#include "support/image_file.h"
#include "support/random_bytes.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

constexpr uint64_t kBs = 4096;

// Device-contiguous pieces of the written data of [offset, offset + length) of ino.
uint64_t pieces(Volume& v, uint64_t ino, uint64_t offset, uint64_t length) {
  uint64_t n = 0, next = ~0ull;
  REQUIRE(v.map_extents(ino, offset, length, [&](const ReportedExtent& e) {
              if (e.map.type != IomapType::kMapped) return true;
              if (e.dev_addr() != next) ++n;
              next = e.dev_addr() + e.len;
              return true;
            }).ok());
  return n;
}

uint64_t device_block_of(Volume& v, uint64_t ino, uint64_t offset) {
  uint64_t block = ~0ull;
  REQUIRE(v.map_extents(ino, offset, kBs, [&](const ReportedExtent& e) {
              block = e.dev_addr() / kBs;
              return false;
            }).ok());
  return block;
}

// Overwrites `count` distinct random blocks of [0, blocks) of ino with new bytes (also in
// `data`, the file's expected content): out of place, so the file's extents scatter.
void scatter(Volume& v, uint64_t ino, std::vector<uint8_t>& data, uint64_t blocks, uint64_t count, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> order(blocks);
  for (uint64_t i = 0; i < blocks; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t b = order[i];
    auto bytes = test::random_bytes(kBs, seed * 1000 + static_cast<uint32_t>(i));
    test::write_at(v, ino, b * kBs, bytes);
    std::copy(bytes.begin(), bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(b * kBs));
  }
}

}  // namespace

TEST_CASE("defrag: a fragmented range moves into one extent; bytes, checksums, times and space unchanged") {
  for (BouncePolicy policy : {BouncePolicy::kNever, BouncePolicy::kAlways}) {
    CAPTURE(bounce_policy_name(policy));
    test::FormattedImage img(64ull << 20);
    {
      auto vol = test::open_volume(img.path, {.bounce = policy});
      Volume& v = *vol;
      const uint64_t ino = test::make_file(v, "f");
      auto data = test::random_bytes(1u << 20, 7);
      test::write_at(v, ino, 0, data);
      scatter(v, ino, data, 256, 40, 3);
      REQUIRE(pieces(v, ino, 0, 1u << 20) >= 8);
      const Inode before = *v.fs().getattr(ino);
      const uint64_t free_before = v.fs().statfs().free_blocks;

      // Fewer pieces than asked for: nothing moves.
      AlignedBuffer buffer(1u << 20);
      auto r = v.relocate_range(ino, 0, 1u << 20, 1000, buffer.span());
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(r->bytes_moved == 0);
      CHECK(r->fragments == 0);  // no run lies in that many
      CHECK(r->next == (1u << 20));

      const uint64_t bounced_before = v.io_stats().bounced_bytes;
      r = v.relocate_range(ino, 0, 1u << 20, 8, buffer.span());
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(r->bytes_moved == (1u << 20));
      CHECK(r->next == (1u << 20));
      // The move's memory is its own: neither its read nor its write takes bounce memory.
      CHECK(v.io_stats().bounced_bytes == bounced_before);
      CHECK(pieces(v, ino, 0, 1u << 20) == 1);
      CHECK(test::read_at(v, ino, 0, data.size()) == data);
      const Inode after = *v.fs().getattr(ino);
      CHECK(after.rec.mtime.sec == before.rec.mtime.sec);
      CHECK(after.rec.mtime.nsec == before.rec.mtime.nsec);
      CHECK(after.rec.ctime.sec == before.rec.ctime.sec);
      CHECK(after.rec.ctime.nsec == before.rec.ctime.nsec);
      CHECK(after.rec.blocks == before.rec.blocks);
      CHECK(after.rec.size == before.rec.size);
      CHECK(v.mapper().reserved_blocks() == 0);
      REQUIRE(v.sync().ok());  // the old blocks are free again once the move has committed
      CHECK(v.fs().statfs().free_blocks == free_before);
      REQUIRE(v.close().ok());
    }
    test::expect_fsck_clean(img.path);
    // The new checksums are the data's: a fresh mount reads it back verified.
    auto vol = test::open_volume(img.path, {.bounce = policy});
    auto f = vol->fs().lookup(kRootIno, "f");
    REQUIRE(f.ok());
    const uint64_t ino = f->ino;
    auto back = test::read_at(*vol, ino, 0, 1u << 20);
    CHECK(vol->io_stats().checksum_failures == 0);
    CHECK(pieces(*vol, ino, 0, 1u << 20) == 1);
  }
}

TEST_CASE("defrag: a file whose end lies inside its last block keeps its size") {
  test::FormattedImage img(64ull << 20);
  {
    auto vol = test::open_volume(img.path);
    Volume& v = *vol;
    const uint64_t ino = test::make_file(v, "f");
    auto data = test::random_bytes((1u << 20) - 100, 41);
    test::write_at(v, ino, 0, data);
    std::vector<uint8_t> padded = data;
    padded.resize(1u << 20, 0);
    scatter(v, ino, padded, 255, 40, 43);  // whole blocks below the partial last one
    std::copy(padded.begin(), padded.begin() + static_cast<std::ptrdiff_t>(data.size()), data.begin());
    auto tail = test::random_bytes(1000, 47);  // the partial last block rewritten too
    test::write_at(v, ino, data.size() - 1000, tail);
    std::copy(tail.begin(), tail.end(), data.end() - 1000);
    REQUIRE(pieces(v, ino, 0, 1u << 20) >= 8);
    AlignedBuffer buffer(1u << 20);
    auto r = v.relocate_range(ino, 0, 1u << 20, 8, buffer.span());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->bytes_moved == (1u << 20));
    CHECK(pieces(v, ino, 0, 1u << 20) == 1);
    CHECK(v.fs().getattr(ino)->rec.size == data.size());
    AlignedBuffer back(1u << 20);
    auto got = v.read(ino, 0, back.span());
    REQUIRE(got.ok());
    CHECK(*got == data.size());
    CHECK(std::equal(data.begin(), data.end(), back.data()));
    // Growing the file shows zeros past the old end, as before the move.
    REQUIRE(v.set_size(ino, 1u << 20).ok());
    auto grown = test::read_at(v, ino, data.size(), 100);
    CHECK(std::all_of(grown.begin(), grown.end(), [](uint8_t b) { return b == 0; }));
    REQUIRE(v.close().ok());
  }
  test::expect_fsck_clean(img.path);
}

TEST_CASE("defrag: a damaged block is never moved under a new checksum") {
  test::FormattedImage img(64ull << 20);
  auto vol = test::open_volume(img.path);
  Volume& v = *vol;
  const uint64_t ino = test::make_file(v, "f");
  auto data = test::random_bytes(1u << 20, 11);
  test::write_at(v, ino, 0, data);
  scatter(v, ino, data, 256, 40, 5);
  REQUIRE(v.sync().ok());
  const uint64_t victim = device_block_of(v, ino, 100 * kBs);
  test::damage_block(img.path, victim, 17);
  const uint64_t before = pieces(v, ino, 0, 1u << 20);
  AlignedBuffer buffer(1u << 20);
  auto r = v.relocate_range(ino, 0, 1u << 20, 8, buffer.span());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EIO);
  CHECK(device_block_of(v, ino, 100 * kBs) == victim);
  CHECK(pieces(v, ino, 0, 1u << 20) == before);
  CHECK(v.mapper().reserved_blocks() == 0);
  CHECK(v.data_errors().blocks_recorded() == 1);
  // The other blocks still read back as written.
  CHECK(test::read_at(v, ino, 0, 100 * kBs) == std::vector<uint8_t>(data.begin(), data.begin() + 100 * kBs));
}

TEST_CASE("defrag: a hole ends a run; each run moves on its own; a full filesystem is refused before a read") {
  test::FormattedImage img(64ull << 20);
  auto vol = test::open_volume(img.path);
  Volume& v = *vol;
  const uint64_t ino = test::make_file(v, "f");
  // Blocks 0-99 and 150-255 written, a hole between.
  auto data = test::random_bytes(1u << 20, 13);
  std::fill(data.begin() + 100 * kBs, data.begin() + 150 * kBs, 0);
  test::write_at(v, ino, 0, std::vector<uint8_t>(data.begin(), data.begin() + 100 * kBs));
  test::write_at(v, ino, 150 * kBs, std::vector<uint8_t>(data.begin() + 150 * kBs, data.end()));
  for (uint64_t b = 1; b < 100; b += 9) {
    auto bytes = test::random_bytes(kBs, static_cast<uint32_t>(b));
    test::write_at(v, ino, b * kBs, bytes);
    std::copy(bytes.begin(), bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(b * kBs));
  }
  for (uint64_t b = 160; b < 256; b += 9) {
    auto bytes = test::random_bytes(kBs, static_cast<uint32_t>(b));
    test::write_at(v, ino, b * kBs, bytes);
    std::copy(bytes.begin(), bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(b * kBs));
  }
  AlignedBuffer buffer(1u << 20);
  auto r = v.relocate_range(ino, 0, 1u << 20, 2, buffer.span());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->bytes_moved == 100 * kBs);
  CHECK(r->next == 100 * kBs);
  r = v.relocate_range(ino, r->next, (1u << 20) - r->next, 2, buffer.span());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->bytes_moved == 106 * kBs);
  CHECK(r->next == (1u << 20));
  CHECK(pieces(v, ino, 0, 100 * kBs) == 1);
  CHECK(pieces(v, ino, 150 * kBs, 106 * kBs) == 1);
  CHECK(test::read_at(v, ino, 0, data.size()) == data);
  auto hole = v.seek_hole(ino, 0);
  REQUIRE(hole.ok());
  CHECK(*hole == 100 * kBs);  // the hole stayed a hole

  // Fill the filesystem but for 2 MiB (writes still fit; a sixteenth of it does not): a move
  // is refused with ENOSPC and nothing changes.
  const uint64_t filler = test::make_file(v, "filler");
  const uint64_t fill = v.fs().statfs().free_blocks * kBs - (2u << 20);
  AlignedBuffer big(fill);
  auto w = v.write(filler, 0, big.span());
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  REQUIRE(*w == fill);
  scatter(v, ino, data, 100, 30, 17);
  const uint64_t before = pieces(v, ino, 0, 100 * kBs);
  r = v.relocate_range(ino, 0, 100 * kBs, 2, buffer.span());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  CHECK(pieces(v, ino, 0, 100 * kBs) == before);
  CHECK(test::read_at(v, ino, 0, data.size()) == data);
}

TEST_CASE("defrag: small writes become candidates and move once quiet; defragment_file goes through a file") {
  test::FormattedImage img(64ull << 20);
  auto vol = test::open_volume(img.path);
  Volume& v = *vol;
  const uint64_t auto_ino = test::make_file(v, "auto");
  const uint64_t asked_ino = test::make_file(v, "asked");
  auto auto_data = test::random_bytes(2u << 20, 19);
  auto asked_data = test::random_bytes(3u << 20, 23);
  test::write_at(v, auto_ino, 0, auto_data);
  test::write_at(v, asked_ino, 0, asked_data);
  {
    Defragmenter automatic(v, {.automatic = true, .quiet_ms = 500});
    scatter(v, auto_ino, auto_data, 512, 100, 29);
    REQUIRE(pieces(v, auto_ino, 0, 2u << 20) >= 16);
    // Idle (nothing pending) with both chunks moved; a slow machine may have moved one while
    // the writes were still coming, and again after them.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    DefragStats s = automatic.stats();
    while (!(s.pending_chunks == 0 && s.moved_chunks >= 2) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      s = automatic.stats();
    }
    CHECK(s.pending_chunks == 0);
    CHECK(s.moved_chunks >= 2);
    CHECK(s.moved_bytes == s.moved_chunks << 20);
    CHECK(s.failed_chunks == 0);
    CHECK(pieces(v, auto_ino, 0, 1u << 20) == 1);
    CHECK(pieces(v, auto_ino, 1u << 20, 1u << 20) == 1);
    CHECK(test::read_at(v, auto_ino, 0, auto_data.size()) == auto_data);
  }
  // Without the automatic one, small writes leave a file as they made it until asked.
  scatter(v, asked_ino, asked_data, 768, 200, 31);
  REQUIRE(v.set_size(asked_ino, (5u << 20) + 100).ok());  // a hole, one written block, a hole
  asked_data.resize((5u << 20) + 100, 0);
  auto tail = test::random_bytes(kBs, 37);
  test::write_at(v, asked_ino, (5u << 20) - kBs, tail);
  std::copy(tail.begin(), tail.end(), asked_data.begin() + (5u << 20) - kBs);
  Defragmenter on_request(v, {.automatic = false});
  CHECK(pieces(v, asked_ino, 0, 3u << 20) >= 24);
  // In steps, as the control socket asks: two chunks, then the rest.
  auto r = on_request.defragment_file(asked_ino, 0, 2);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK_FALSE(r->done);
  CHECK(r->chunks == 2);
  CHECK(r->moved_chunks == 2);
  CHECK(r->next == (2u << 20));
  r = on_request.defragment_file(asked_ino, r->next);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->done);
  CHECK(r->moved_chunks == 1);
  CHECK(r->chunks == 2);  // the third written chunk and the one holding the last block
  CHECK(r->failed_chunks == 0);
  CHECK(on_request.stats().moved_chunks == 3);
  for (uint64_t c = 0; c < 3; ++c) CHECK(pieces(v, asked_ino, c << 20, 1u << 20) == 1);
  CHECK(test::read_at(v, asked_ino, 0, asked_data.size()) == asked_data);
  CHECK(on_request.defragment_file(kRootIno).status().code() == EINVAL);
  CHECK(on_request.defragment_file(999999).status().code() == ENOENT);
}

TEST_CASE("defrag: every file with small writes is looked at once; a busy file holds up no quiet one") {
  test::FormattedImage img(64ull << 20);
  auto vol = test::open_volume(img.path);
  Volume& v = *vol;
  const uint64_t scattered = test::make_file(v, "scattered");
  const uint64_t busy = test::make_file(v, "busy");
  auto data = test::random_bytes(1u << 20, 41);
  test::write_at(v, scattered, 0, data);
  test::write_at(v, busy, 0, test::random_bytes(1u << 20, 43));
  Defragmenter automatic(v, {.automatic = true, .quiet_ms = 500});
  // Many small files, one block each: candidates that never need a move.
  constexpr uint64_t kSmallFiles = 300;
  for (uint64_t i = 0; i < kSmallFiles; ++i)
    test::write_at(v, test::make_file(v, ("small" + std::to_string(i)).c_str()), 0, test::random_bytes(kBs, 100 + i));
  scatter(v, scattered, data, 256, 64, 47);
  REQUIRE(pieces(v, scattered, 0, 1u << 20) >= 16);
  // The busy file is written to every few milliseconds until the scattered one has moved.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  uint32_t seed = 0;
  while (pieces(v, scattered, 0, 1u << 20) != 1 && std::chrono::steady_clock::now() < deadline) {
    test::write_at(v, busy, (seed % 256) * kBs, test::random_bytes(kBs, 1000 + seed));
    ++seed;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(pieces(v, scattered, 0, 1u << 20) == 1);
  CHECK(automatic.stats().pending_chunks >= 1);  // the busy file's chunk, still waiting
  // Once the writes stop, everything is looked at exactly once and only the two big files move.
  DefragStats s = automatic.stats();
  while (s.pending_chunks != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s = automatic.stats();
  }
  CHECK(s.pending_chunks == 0);
  CHECK(s.checked_chunks == kSmallFiles + 2);
  CHECK(s.moved_chunks <= 2);
  CHECK(s.moved_chunks >= 1);
  CHECK(s.failed_chunks == 0);
  CHECK(s.dropped_candidates == 0);
  CHECK(test::read_at(v, scattered, 0, data.size()) == data);
}

}  // namespace stablefs
