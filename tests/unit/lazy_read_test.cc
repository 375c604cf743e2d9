// Reads that tell a corrupt block from a transient: a block failing its checksum is read once
// more into private memory; a match serves the data (a transient), a second mismatch is EIO
// for that block, recorded in the volume's DataErrorLog. Reads into private memory are never
// bounced, whatever the policy. Driven through a FaultTap on the volume's I/O queue.
#include <doctest/doctest.h>

#include <future>
#include <vector>

#include "fs/volume.h"
#include "support/fault_tap.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

constexpr size_t kBs = 4096;
constexpr size_t kBlocks = 16;
constexpr size_t kBad = 5;

Result<size_t> read_into(Volume& v, uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  v.read_async(ino, pos, dst, memory, [&p](Result<size_t> r) { p.set_value(std::move(r)); });
  return f.get();
}

// The device byte address of file offset `offset` of ino (written data).
uint64_t device_byte(Volume& v, uint64_t ino, uint64_t offset) {
  uint64_t at = ~0ull;
  REQUIRE(v.map_extents(ino, offset, kBs, [&](const ReportedExtent& e) {
              REQUIRE(e.map.type == IomapType::kMapped);
              at = e.dev_addr();
              return false;
            }).ok());
  return at;
}

}  // namespace

TEST_CASE("lazy reads: a transient mismatch is re-read and served; a persistent one is EIO, counted and remembered") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    for (ReadMemory memory : {ReadMemory::kPrivate, ReadMemory::kShared}) {
      CAPTURE(bounce_policy_name(policy));
      CAPTURE(memory == ReadMemory::kPrivate);
      test::FormattedImage img(64ull << 20);
      test::FaultTap tap;
      std::unique_ptr<Volume> vol = test::open_volume(img.path, {.bounce = policy, .io_tap = &tap});
      Volume& v = *vol;
      const uint64_t ino = test::make_file(v, "f");
      const std::vector<uint8_t> data = test::random_bytes(kBlocks * kBs, 7);
      test::write_at(v, ino, 0, data);
      REQUIRE(v.sync().ok());
      const uint64_t bad_byte = device_byte(v, ino, kBad * kBs) + 123;
      AlignedBuffer buf(kBlocks * kBs);

      // Transient: only the first read of the block comes back wrong.
      const IoStatsSnapshot before = v.io_stats();
      tap.corrupt_reads(bad_byte, 1);
      auto r = read_into(v, ino, 0, buf.span(), memory);
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(*r == data.size());
      CHECK(std::equal(data.begin(), data.end(), buf.data()));
      IoStatsSnapshot after = v.io_stats();
      CHECK(tap.reads_corrupted() == 1);
      CHECK(after.checksum_transients == before.checksum_transients + 1);
      CHECK(after.checksum_failures == before.checksum_failures);
      CHECK(v.data_errors().files().empty());
      // Private memory is never bounced; shared memory follows the policy.
      const bool bounced = policy == BouncePolicy::kAlways && memory == ReadMemory::kShared;
      CHECK((after.bounced_ios > before.bounced_ios) == bounced);
      CHECK((after.zero_copy_ios > before.zero_copy_ios) == !bounced);

      // Persistent: the re-read is wrong too. EIO for a read holding the block, remembered once.
      tap.corrupt_reads(bad_byte, 2);
      r = read_into(v, ino, 0, buf.span(), memory);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == EIO);
      CHECK_MESSAGE(r.status().message().find("offset " + std::to_string(kBad * kBs)) != std::string::npos,
                    r.status().message());
      after = v.io_stats();
      CHECK(after.checksum_failures == before.checksum_failures + 1);
      CHECK(after.checksum_transients == before.checksum_transients + 1);
      auto files = v.data_errors().files();
      REQUIRE(files.size() == 1);
      CHECK(files[0].ino == ino);
      CHECK(files[0].blocks == 1);
      CHECK(files[0].first_offset == kBad * kBs);
      tap.corrupt_reads(bad_byte, 2);
      CHECK_FALSE(read_into(v, ino, kBad * kBs, {buf.data(), kBs}, memory).ok());
      CHECK(v.data_errors().files()[0].blocks == 1);  // the same block is not counted twice
      CHECK(v.data_errors().blocks_recorded() == 1);

      // The blocks around it were never affected: they read on their own.
      r = read_into(v, ino, 0, {buf.data(), kBad * kBs}, memory);
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(std::equal(data.begin(), data.begin() + kBad * kBs, buf.data()));
      // Left alone, the device holds the right data: it reads back clean.
      r = read_into(v, ino, 0, buf.span(), memory);
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(std::equal(data.begin(), data.end(), buf.data()));

      // A device error on the read is that request's EIO (counted as a device error).
      tap.fail_reads(bad_byte, 1, EIO);
      r = read_into(v, ino, 0, buf.span(), memory);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == EIO);
      CHECK(v.io_stats().device_errors == before.device_errors + 1);
      vol.reset();
      test::expect_fsck_clean(img.path);
    }
  }
}

}  // namespace stablefs
