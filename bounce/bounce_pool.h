// BouncePool: stable memory for bounced direct I/O, bounded in total.
//
// One aligned arena of max_bytes is carved into power-of-two chunks between min_chunk (the
// filesystem block size) and max_chunk (1 MiB) by a buddy allocator. get() is greedy, like the
// kernel's folio_alloc_greedy: it hands out the largest free chunk not larger than the request
// (rounded up to min_chunk, capped at max_chunk), halving down to min_chunk, and only when not
// even a min_chunk is free does it wait for one to be returned. A request never fails for want
// of a large chunk. Returned chunks merge with their free buddies, so once everything is back
// the arena is whole max_chunks again. The arena can be registered with io_uring as one fixed
// buffer.
//
// get_total() is the form an I/O unit uses: it takes the whole set of greedy chunks covering a
// unit in one step, once that many bytes are free. A caller that took chunks one get() at a
// time and then waited for more could deadlock with another doing the same (each holding half
// the pool); get_total() never holds part of a request while it waits, and its waiters are
// served in arrival order so a large unit is not starved by a stream of small ones.
//
// Thread-safe. get() and get_total() may block (bounded only by other users returning
// chunks). A BounceBuffer returns its chunk when destroyed or reset(); the pool must outlive
// every buffer.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/mutex.h"

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
  // Returns the chunk to its pool now; the buffer becomes empty.
  void reset();

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
  // Greedy chunks, largest first, that together hold total bytes (the last may be up to
  // min_chunk - 1 bytes longer than needed), taken all at once: waits until total bytes are
  // free and every earlier get_total() caller has been served. Empty when total is 0 or more
  // than capacity() (it could never be satisfied).
  std::vector<BounceBuffer> get_total(size_t total);

  // The arena, for io_uring buffer registration.
  iovec arena() const;
  size_t capacity() const { return arena_.size(); }
  size_t in_use_bytes() const;
  size_t min_chunk() const { return min_chunk_; }
  size_t max_chunk() const { return max_chunk_; }
  // How many times get() or get_total() had to wait for memory.
  uint64_t waits() const;

 private:
  friend class BounceBuffer;
  void put(uint8_t* data, size_t size);
  BounceBuffer take_locked(size_t want) REQUIRES(mu_);
  void push_free_locked(uint32_t unit, unsigned order) REQUIRES(mu_);
  void remove_free_locked(uint32_t unit, unsigned order) REQUIRES(mu_);
  uint32_t pop_free_locked(unsigned order) REQUIRES(mu_);  // free_[order] not empty

  AlignedBuffer arena_;
  size_t min_chunk_;
  size_t max_chunk_;
  unsigned min_shift_ = 0;  // log2(min_chunk_)
  unsigned max_order_ = 0;  // log2(max_chunk_ / min_chunk_)
  mutable Mutex mu_;
  CondVar returned_;
  // Units are min_chunk-sized slots of the arena, numbered from 0. free_[order] lists the first
  // unit of each free chunk of min_chunk << order; free_order_[unit] is that order for a unit
  // that starts a free chunk (-1 otherwise) and free_pos_[unit] its index in free_[order], so
  // a buddy is found and unlinked in O(1).
  std::vector<std::vector<uint32_t>> free_ GUARDED_BY(mu_);
  std::vector<int8_t> free_order_ GUARDED_BY(mu_);
  std::vector<uint32_t> free_pos_ GUARDED_BY(mu_);
  size_t in_use_ GUARDED_BY(mu_) = 0;
  uint64_t waits_ GUARDED_BY(mu_) = 0;
  // get_total() waiters are served in ticket order.
  uint64_t next_ticket_ GUARDED_BY(mu_) = 0;
  uint64_t serving_ticket_ GUARDED_BY(mu_) = 0;
};

}  // namespace stablefs
