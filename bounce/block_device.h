// BlockDevice: the one seam between stablefs and the storage under it.
//
// Everything above bounce/ (the metadata buffer cache, the journal, later the I/O engines)
// reaches the device only through this interface, so a recording or fault-injecting device
// can wrap any implementation. Offsets and lengths are in bytes and must be multiples of
// logical_block_size(); buffers must be aligned to memory_alignment() + 1.
// Implementations are safe to call from several threads at once for disjoint ranges.
// Calls block until the I/O is complete (this is the synchronous metadata path).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bounce/status.h"

namespace stablefs {

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Reads exactly len bytes at offset into buf. A short read past the end is EIO.
  virtual Status read(uint64_t offset, void* buf, size_t len) = 0;
  // Writes exactly len bytes at offset from buf. Durable only after flush().
  virtual Status write(uint64_t offset, const void* buf, size_t len) = 0;
  // Makes every completed write durable (a cache flush / fdatasync).
  virtual Status flush() = 0;

  virtual uint64_t size_bytes() const = 0;
  virtual uint32_t logical_block_size() const = 0;  // offset/length granularity
  virtual uint32_t memory_alignment() const = 0;    // buffer address mask (dma_alignment), e.g. 511
  virtual bool read_only() const = 0;
  // The user-visible name: the path it was opened with.
  virtual const std::string& name() const = 0;
};

}  // namespace stablefs
