// ReplyBuffers: aligned memory for READ replies that are answered from the I/O completion.
//
// A read reply's buffer must live until the engine's done() has sent it, which is after the
// FUSE worker has returned, so each request leases its own buffer instead of using the
// worker's. Leased buffers are aligned for O_DIRECT (the engine reads straight into them) and
// come back to a bounded free list when the last reference to the lease goes.
// Thread-safe; a Lease may be released on any thread (the completion thread, typically).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/mutex.h"

namespace stablefs {

class ReplyBuffers {
 public:
  // A buffer of at least the asked size; returned to the pool when destroyed.
  class Lease {
   public:
    Lease(ReplyBuffers& pool, AlignedBuffer buf, size_t size) : pool_(pool), buf_(std::move(buf)), size_(size) {}
    ~Lease() { pool_.give_back(std::move(buf_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    std::span<uint8_t> span() { return {buf_.data(), size_}; }

   private:
    ReplyBuffers& pool_;
    AlignedBuffer buf_;
    size_t size_;
  };

  // Buffers come in size classes; a request above the largest gets memory of its own size
  // that is not kept. Each class keeps up to its own count free: small reads (database pages)
  // are the many in flight at once, so their class keeps the most; a fresh buffer is zeroed,
  // which a kept one saves.
  struct SizeClass {
    size_t bytes;
    size_t keep;
  };
  static constexpr SizeClass kClasses[] = {{16u << 10, 256}, {128u << 10, 32}, {1u << 20, 32}};
  // The most the free lists keep, in bytes (what exists with no read in flight).
  static constexpr size_t kept_bound() {
    size_t n = 0;
    for (const SizeClass& c : kClasses) n += c.bytes * c.keep;
    return n;
  }

  // Counts the bytes of every buffer that exists (leased or kept) into *bytes from now on.
  // Call before the first get(); bytes must outlive the pool.
  void count_into(std::atomic<uint64_t>* bytes) { bytes_ = bytes; }

  // May throw std::bad_alloc (the FUSE adapter turns that into ENOMEM).
  std::shared_ptr<Lease> get(size_t size);

 private:
  static constexpr size_t kClassCount = std::size(kClasses);
  // The class a request of size bytes is served from; kClassCount: none (too large).
  static size_t class_for(size_t size);
  void give_back(AlignedBuffer buf);

  void count(int64_t delta) {
    if (bytes_) bytes_->fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  }

  std::atomic<uint64_t>* bytes_ = nullptr;
  Mutex mu_;
  std::vector<AlignedBuffer> free_[kClassCount] GUARDED_BY(mu_);
};

}  // namespace stablefs
