// The FUSE session loop of the daemon: worker threads that read requests from /dev/fuse into
// receive buffers of their own, laid out so that a WRITE's payload starts block-aligned.
//
// libfuse's own loops read into malloc'd memory, where a WRITE's data lands 80 bytes in
// (fuse_in_header + fuse_write_in), so the engine must copy it before an O_DIRECT submission.
// Here each buffer starts kWritePayloadOffset bytes before a 4096-byte boundary: the payload
// is aligned and the engine's zero-copy path can submit it as it is. The buffer must then stay
// unchanged until the device has the data: the operation takes it over with
// keep_receive_buffer() and the worker reads its next request into another buffer, so neither
// the worker nor the data waits.
//
// Threads: run() starts `threads` workers and returns when the session has ended (the kernel
// reports the unmount with ENODEV, or fuse_session_exit() was called, e.g. by libfuse's
// signal handlers) and every worker has stopped. Workers blocked in read() are woken with a
// no-op SIGUSR2 (installed without SA_RESTART) once the session has exited.
//
// Memory: at most `threads` + 64 receive buffers (about 1 MiB each) exist at once; a worker
// that needs one at the bound waits until a write in flight returns its buffer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

struct fuse_session;

namespace stablefs {

// For an operation running on a receive-loop worker: the buffer holding the current request
// (and a WRITE's payload) stays allocated and unchanged for as long as the returned handle
// lives; the worker takes another buffer for its next request. Null on any other thread (the
// caller must then finish with the request's memory before it returns).
std::shared_ptr<const void> keep_receive_buffer();

// For a WRITE being processed on a receive-loop worker: the kernel's write_flags
// (FUSE_WRITE_*), which libfuse 3.14 does not pass on. FUSE_WRITE_KILL_SUIDGID among them says
// the writer lacks CAP_FSETID (the kernel sets it on every direct write by such a writer).
// nullopt on any other thread or while serving another request.
std::optional<uint32_t> current_write_flags();

// Protocol flags of the INIT reply (bits of fuse_init_out's flags | flags2 << 32) that libfuse
// 3.14 has no capability for. kFuseDirectIoAllowMmap lets a file opened with FOPEN_DIRECT_IO
// be mapped shared (the kernel keeps the mapping coherent with the direct I/O).
inline constexpr uint64_t kFuseDirectIoAllowMmap = uint64_t{1} << 36;  // FUSE_DIRECT_IO_ALLOW_MMAP, 7.39

// Makes the loop write se's replies itself (libfuse's custom I/O, on the fd se was mounted
// with), so that the reply to the kernel's INIT also carries those of `flags` the kernel
// offered. Call after fuse_session_mount and before run_aligned_receive_loop; one session per
// process (the flags are kept process-wide). Returns 0 or a negative errno.
int add_init_reply_flags(fuse_session* se, uint64_t flags);

// Receive-buffer accounting, shown by `stablefs stats`: updated by the loop's threads, read by
// any thread (relaxed: each figure is exact, together they are a moment's approximation).
struct ReceiveBufferStats {
  std::atomic<uint64_t> allocated{0};  // buffers that exist (in use or kept for reuse)
  std::atomic<uint64_t> in_use{0};     // of those, holding a request or a write's payload
  std::atomic<uint64_t> waits{0};      // times a worker waited at the bound for a buffer
  std::atomic<uint64_t> bound{0};      // the most that may exist (set when the loop starts)
};

// Returns 0, or a negative errno if reading the device failed for another reason. The loop
// shares stats (null: it keeps its own) with every buffer it hands out, since a write may
// keep a buffer past the loop's end.
int run_aligned_receive_loop(fuse_session* se, unsigned threads, std::shared_ptr<ReceiveBufferStats> stats);

}  // namespace stablefs
