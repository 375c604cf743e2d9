// IoUnit: one contiguous device range of one direct I/O request — the analogue of a bio.
//
// How the unit gets its memory is decided once, when it is built:
//   zero-copy  the device reads or writes the caller's buffer itself. The buffer is stable
//              only while its owner waits, so the caller must not return (or reuse the
//              buffer) before done() has run.
//   bounce     write: the caller's bytes are copied into BouncePool chunks (greedy sizes) and
//              checksummed there, so what is checksummed is exactly what reaches the device
//              and the caller may reuse its buffer as soon as build_write() returns.
//              read: the device fills pool chunks, each block is verified there, and only
//              then are the bytes copied to the caller's buffer (unbounce); on any error
//              nothing is copied.
// A unit whose caller memory or device range is not aligned for O_DIRECT is always bounced.
// Submission never branches on the choice; completion differs only by the unbounce copy.
//
// Checksums are XXH3-64 per checksum block (the filesystem block), seed 0. Writes compute
// them at build time (a bounced write copies and hashes block by block, while the block is
// hot in cache); reads verify every block for which an expected value is given where the
// device put it (the caller's memory, or the pool chunks).
//
// A read that fails verification is read once more, whole, into memory of its own (a private
// aligned buffer no one else can reach) and verified there before anything is called
// corrupt: a block that matches then was a transient (the device, or — were the first
// destination not private — someone changing that memory) and counts in
// IoStats::checksum_transients; the unit then succeeds with the re-read bytes copied to the
// caller. Blocks that mismatch again fail the whole unit with EIO (bad_blocks() lists them
// with both checksums) and count in IoStats::checksum_failures. Each unit the device failed
// counts in device_errors. The re-read is submitted from the completion (IoQueue allows it);
// if its memory cannot be had, the first verdict stands.
//
// A bounced unit takes all its pool memory in one step (BouncePool::get_total), which may
// wait for other units to complete: do not hold a built but unsubmitted bounced unit while
// building another, or a small pool can wait forever. The chunks go back to the pool before
// done() runs (for reads after the unbounce copy), so done() may build the next unit.
//
// A unit built against the contract (empty, length or offset not a multiple of
// checksum_block, a bounced unit larger than the pool, expected of the wrong size) is built
// invalid: submit() calls done at once, on the calling thread, with EINVAL, without touching
// the device or the stats.
//
// Not thread-safe; owned by the caller until done() has run, and done() runs exactly once on
// the IoQueue's completion thread, or with an inline queue on the submitting thread before
// submit() returns (done may destroy the unit). The unit itself is the IoRequest's owner, so
// it must stay alive until then.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/bounce_pool.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"

namespace stablefs {

struct IoUnitGeometry {
  uint32_t checksum_block = 4096;  // bytes per checksum; dev offset and length are multiples
  uint32_t memory_alignment = 511;  // address mask zero-copy memory must satisfy
};

// A block of a read unit whose data did not match its checksum (on the re-read too).
struct BadBlock {
  size_t index = 0;  // within the unit
  uint64_t expected = 0;
  uint64_t found = 0;
};

class IoUnit {
 public:
  using Done = std::function<void(IoUnit& unit, Status status)>;

  // src.size() and dev_offset are multiples of geometry.checksum_block.
  static std::unique_ptr<IoUnit> build_write(uint64_t dev_offset, std::span<const uint8_t> src, bool bounce,
                                             BouncePool& pool, const IoUnitGeometry& geometry);
  // expected[i] is the checksum of block i, or empty to skip verifying it (unwritten data);
  // expected is either empty (verify nothing) or has one entry per block.
  static std::unique_ptr<IoUnit> build_read(uint64_t dev_offset, std::span<uint8_t> dst, bool bounce, BouncePool& pool,
                                            const IoUnitGeometry& geometry, std::vector<std::optional<uint64_t>> expected);
  ~IoUnit();

  // Starts the I/O; done(unit, status) runs once it has completed (and for reads been
  // verified and unbounced). Counts the unit in stats (bounced_* or zero_copy_*). A failed
  // unit's status names the operation and its device byte offset.
  void submit(IoQueue& queue, IoStats& stats, Done done);

  bool bounced() const { return bounced_; }
  bool is_write() const { return write_; }
  uint64_t dev_offset() const { return dev_offset_; }
  size_t length() const { return length_; }
  // Write units: the checksum of each block, as computed over the memory submitted.
  const std::vector<uint64_t>& checksums() const { return checksums_; }
  // Read units that failed verification: the blocks that mismatched on the re-read too, in
  // order, and the first one's index within the unit.
  const std::vector<BadBlock>& bad_blocks() const { return bad_blocks_; }
  std::optional<size_t> bad_block() const {
    return bad_blocks_.empty() ? std::nullopt : std::optional<size_t>(bad_blocks_.front().index);
  }
  // Read units: blocks that mismatched on the first read and matched on the re-read.
  size_t transient_blocks() const { return transient_blocks_; }
  // Memory segments handed to the device: the greedy pool chunks of a bounced unit, or the
  // one caller range of a zero-copy unit.
  size_t segments() const { return request_.iov.size(); }

 private:
  IoUnit() = default;
  // The fields every unit has, checked against the geometry (invalid_ says what is wrong).
  static std::unique_ptr<IoUnit> start_build(bool write, uint64_t dev_offset, uint8_t* user, size_t length,
                                             const IoUnitGeometry& geometry);
  // The one choice of memory: bounce (pool chunks, taken now) or the caller's range. False
  // when the unit cannot be built (then invalid).
  bool take_memory(bool bounce, BouncePool& pool);
  // The IoRequest, completing into complete().
  void finish_build();
  void complete(int64_t result);
  // The blocks whose bytes, where the device put them (the current request_.iov), do not
  // match expected_.
  std::vector<BadBlock> mismatches() const;
  // Sends the read again into recheck_ memory (first: what the first read found); false when
  // that memory cannot be had or the unit was never submitted to a queue.
  bool start_recheck(std::vector<BadBlock> first);
  // The verdict on a read that reached the device whole, bad being its mismatches (counts
  // transients and failures).
  Status verdict(std::vector<BadBlock> bad);
  void invalidate(const std::string& why);

  Status invalid_;  // not ok when the unit was built against the contract
  bool write_ = false;
  bool bounced_ = false;
  uint64_t dev_offset_ = 0;
  size_t length_ = 0;
  IoUnitGeometry geometry_;
  uint8_t* user_ = nullptr;  // caller memory: source of a zero-copy write, destination of a read
  std::vector<BounceBuffer> chunks_;
  std::vector<uint64_t> checksums_;
  std::vector<std::optional<uint64_t>> expected_;
  std::vector<BadBlock> bad_blocks_;
  std::vector<BadBlock> first_mismatches_;  // of the first read, once a re-read is under way
  AlignedBuffer recheck_;                   // the re-read's private memory
  bool rechecking_ = false;
  size_t transient_blocks_ = 0;
  IoRequest request_;
  IoStats* stats_ = nullptr;
  IoQueue* queue_ = nullptr;
  Done done_;
};

}  // namespace stablefs
