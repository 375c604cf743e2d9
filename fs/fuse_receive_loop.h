// The FUSE session loop of the daemon: worker threads that read requests from /dev/fuse into
// receive buffers of their own, laid out so that a WRITE's payload starts block-aligned.
//
// libfuse's own loops read into malloc'd memory, where a WRITE's data lands 80 bytes in
// (fuse_in_header + fuse_write_in), so the engine must copy it before an O_DIRECT submission.
// Here each buffer starts kWritePayloadOffset bytes before a 4096-byte boundary: the payload
// is aligned and the engine's zero-copy path can submit it as it is (the worker then waits
// for the device before it reads the next request, so the buffer stays stable).
//
// Threads: run() starts `threads` workers and returns when the session has ended (the kernel
// reports the unmount with ENODEV, or fuse_session_exit() was called, e.g. by libfuse's
// signal handlers) and every worker has stopped. Workers blocked in read() are woken with a
// no-op SIGUSR2 (installed without SA_RESTART) once the session has exited.
#pragma once

struct fuse_session;

namespace stablefs {

// Returns 0, or a negative errno if reading the device failed for another reason.
int run_aligned_receive_loop(fuse_session* se, unsigned threads);

}  // namespace stablefs
