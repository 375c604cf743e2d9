// The FUSE session loop of the daemon: worker threads that read requests from /dev/fuse into
// receive buffers of their own, laid out so that a WRITE's payload starts block-aligned.
//
// libfuse's own loops read into malloc'd memory, where a WRITE's data lands 80 bytes in
// (fuse_in_header + fuse_write_in), so the engine must copy it before an O_DIRECT submission.
// Here each buffer starts kWritePayloadOffset bytes before a 4096-byte boundary: the payload
// is aligned and the engine's zero-copy path can submit it as it is. The buffer must then stay
// unchanged until the device has the data: the operation takes it over with
// keep_receive_buffer() (fs/fuse/current_request.h) and the worker reads its next request into
// another buffer, so neither the worker nor the data waits.
//
// Threads: run() starts `threads` workers and returns when the session has ended (the kernel
// reports the unmount with ENODEV, or fuse_session_exit() was called, e.g. by libfuse's
// signal handlers) and every worker has stopped. One worker at a time waits on /dev/fuse, the
// holder of the reader's turn (fs/fuse/reader_turn.h); it serves quick requests itself and
// passes the turn on before ones that may wait for long. The holder reads /dev/fuse without
// blocking (the loop sets O_NONBLOCK on it while it runs) and waits in poll() when nothing is
// queued. A worker waiting in poll() is woken with a no-op SIGUSR2 (installed without
// SA_RESTART) once the session has exited; the others see the exit within 50 ms.
//
// Memory: at most `threads` + 64 receive buffers (about 1 MiB each) exist at once; a worker
// that needs one at the bound waits until a write in flight returns its buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "fs/fuse/transport_stats.h"

struct fuse_session;

namespace stablefs {

// Protocol flags of the INIT reply (bits of fuse_init_out's flags | flags2 << 32) that libfuse
// 3.14 has no capability for. kFuseDirectIoAllowMmap lets a file opened with FOPEN_DIRECT_IO
// be mapped shared (the kernel keeps the mapping coherent with the direct I/O).
inline constexpr uint64_t kFuseDirectIoAllowMmap = uint64_t{1} << 36;  // FUSE_DIRECT_IO_ALLOW_MMAP, 7.39
// kFuseHandleKillprivV2 (FUSE_HANDLE_KILLPRIV_V2, 7.33): the filesystem takes set-id bits and
// capabilities away on write, truncate and chown, and the kernel stops looking up
// security.capability before every buffered write.
inline constexpr uint64_t kFuseHandleKillprivV2 = uint64_t{1} << 28;

// Makes the loop write se's replies itself (libfuse's custom I/O, on the fd se was mounted
// with), so that the reply to the kernel's INIT also carries those of `flags` the kernel
// offered. Call after fuse_session_mount and before run_aligned_receive_loop; one session per
// process (the flags are kept process-wide). Returns 0 or a negative errno.
int add_init_reply_flags(fuse_session* se, uint64_t flags);

struct ReceiveLoopOptions {
  unsigned threads = 32;  // /dev/fuse workers
  // Entries per queue of FUSE over io_uring (fs/fuse/fuse_uring_transport.h); 0: /dev/fuse
  // only. With it, the INIT reply asks for io_uring where the kernel offers it, and the
  // queues take over the requests once registered (INIT, FORGET and INTERRUPT stay on
  // /dev/fuse, as does everything when the kernel does not offer it).
  unsigned uring_entries_per_queue = 0;
  // The data path's I/O is made by the thread that starts it (bounce/submission.h), so READ
  // and WRITE are answered before their handlers return: the reader's turn then treats them
  // as such (fs/fuse/reader_turn.h).
  bool inline_io = false;
  // Called once the workers have stopped and before the io_uring transport does: waits
  // until no reply is owed (replies answered from I/O completions may still come). Empty:
  // none can be owed then.
  std::function<void()> drain = {};
  // Shared with every buffer the loop hands out (a write may keep one past the loop's end)
  // and with `stablefs stats`; null: the loop keeps its own.
  std::shared_ptr<TransportStats> stats = {};
};

// Runs the session's loop (one at a time per process: the reply writer and its io_uring
// transport are process-wide). Returns 0, or a negative errno if reading the device failed
// for another reason.
int run_aligned_receive_loop(fuse_session* se, const ReceiveLoopOptions& opts);

}  // namespace stablefs
