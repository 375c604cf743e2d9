// BouncePool: stable memory for bounced direct I/O, bounded in total.
//
// One aligned arena of max_bytes is carved into power-of-two chunks between min_chunk (the
// filesystem block size) and max_chunk (1 MiB) by a buddy allocator. get() is greedy, like the
// kernel's folio_alloc_greedy: it hands out the largest free chunk not larger than the request
// (rounded up to min_chunk, capped at max_chunk), halving down to min_chunk, and only when not
// even a min_chunk is free does it wait for one to be returned. A request never fails for want
// of a large chunk. The arena can be registered with io_uring as one fixed buffer.
//
// Thread-safe. get() may block (bounded only by other users returning chunks). A
// BounceBuffer returns its chunk when destroyed; the pool must outlive every buffer.
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "bounce/aligned_buffer.h"

namespace stablefs {

class BouncePool;

class BounceBuffer {
 public:
  BounceBuffer() = default;
  ~BounceBuffer();
  BounceBuffer(BounceBuffer&& o) noexcept;
  BounceBuffer& operator=(BounceBuffer&& o) noexcept;
  BounceBuffer(const BounceBuffer&) = delete;
  BounceBuffer& operator=(const BounceBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

 private:
  friend class BouncePool;
  BounceBuffer(BouncePool* pool, uint8_t* data, size_t size) : pool_(pool), data_(data), size_(size) {}
  BouncePool* pool_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class BouncePool {
 public:
  // max_bytes is rounded down to a multiple of max_chunk and is at least one max_chunk.
  // min_chunk and max_chunk are powers of two, 4096 <= min_chunk <= max_chunk.
  BouncePool(size_t max_bytes, size_t min_chunk, size_t max_chunk = 1u << 20);
  ~BouncePool();
  BouncePool(const BouncePool&) = delete;
  BouncePool& operator=(const BouncePool&) = delete;

  // The largest available chunk for a request of want bytes (see above). Blocks while the
  // pool is exhausted.
  BounceBuffer get(size_t want);
  // Non-blocking form: an empty buffer when not even min_chunk is free.
  BounceBuffer try_get(size_t want);

  // The arena, for io_uring buffer registration.
  iovec arena() const;
  size_t capacity() const { return arena_.size(); }
  size_t in_use_bytes() const;
  size_t min_chunk() const { return min_chunk_; }
  size_t max_chunk() const { return max_chunk_; }

 private:
  friend class BounceBuffer;
  void put(uint8_t* data, size_t size);
  BounceBuffer take_locked(size_t want);  // REQUIRES: mu_ held

  AlignedBuffer arena_;
  size_t min_chunk_;
  size_t max_chunk_;
  mutable std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::vector<size_t>> free_;  // free_[order]: offsets of free chunks of min_chunk << order
  size_t in_use_ = 0;
};

}  // namespace stablefs
