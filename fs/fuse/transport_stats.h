// Counters of the FUSE transports (the /dev/fuse receive loop, the io_uring queues and the READ
// reply buffers), shown
// by `stablefs stats`. Updated by the transports' threads, read by any thread (relaxed: each
// figure is exact, together they are a moment's approximation).
#pragma once

#include <atomic>
#include <cstdint>

namespace stablefs {

struct TransportStats {
  // /dev/fuse receive buffers (fs/fuse/fuse_receive_loop.h).
  std::atomic<uint64_t> allocated{0};  // buffers that exist (in use or kept for reuse)
  std::atomic<uint64_t> in_use{0};     // of those, holding a request or a write's payload
  std::atomic<uint64_t> waits{0};      // times a worker waited at the bound for a buffer
  std::atomic<uint64_t> bound{0};      // the most that may exist (set when the loop starts)
  std::atomic<uint64_t> device_requests{0};  // requests read from /dev/fuse
  // READ reply buffers (fs/fuse/reply_buffers.h): bytes that exist, leased or kept for reuse.
  std::atomic<uint64_t> reply_bytes{0};
  // FUSE over io_uring (fs/fuse/fuse_uring_transport.h).
  std::atomic<bool> uring_requested{false};  // the mount asked for it
  std::atomic<uint64_t> uring_queues{0};     // queues being served (0: not in use)
  std::atomic<uint64_t> uring_entries{0};    // entries registered with the kernel and not withdrawn
  std::atomic<uint64_t> uring_requests{0};   // requests served through them
};

}  // namespace stablefs
