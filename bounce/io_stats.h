// IoStats: per-path counters of the direct-I/O data path, shown by `stablefs stats`.
// Lock-free; any thread may add; readers take a snapshot.
#pragma once

#include <atomic>
#include <cstdint>

namespace stablefs {

struct IoStatsSnapshot {
  uint64_t bounced_ios = 0, bounced_bytes = 0;
  uint64_t zero_copy_ios = 0, zero_copy_bytes = 0;
  uint64_t checksum_failures = 0;  // blocks whose data did not match their checksum, read twice
  uint64_t checksum_transients = 0;  // blocks that mismatched once and matched when read again
  uint64_t device_errors = 0;      // I/O units the device failed
  // Bytes the engine copied between the caller's memory and a request-private aligned buffer
  // because the request (offset, length or memory) was not aligned. The units of such a
  // request then count as zero-copy of that private buffer, not of the caller's memory.
  uint64_t unaligned_copy_bytes = 0;
};

struct IoStats {
  std::atomic<uint64_t> bounced_ios{0}, bounced_bytes{0};
  std::atomic<uint64_t> zero_copy_ios{0}, zero_copy_bytes{0};
  std::atomic<uint64_t> checksum_failures{0};
  std::atomic<uint64_t> checksum_transients{0};
  std::atomic<uint64_t> device_errors{0};
  std::atomic<uint64_t> unaligned_copy_bytes{0};

  IoStatsSnapshot snapshot() const {
    auto r = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    return {r(bounced_ios),       r(bounced_bytes), r(zero_copy_ios),          r(zero_copy_bytes),
            r(checksum_failures), r(checksum_transients), r(device_errors), r(unaligned_copy_bytes)};
  }
};

}  // namespace stablefs
