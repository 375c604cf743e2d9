// The request a FUSE transport thread is processing, for the operations that need more of it
// than libfuse 3.14 passes on: a WRITE's kernel write_flags, an OPEN's open_flags, and the
// memory holding the payload (which a zero-copy write keeps unchanged until the device has
// the data).
//
// A transport (the /dev/fuse receive loop, fs/fuse/fuse_receive_loop.h, or the io_uring one,
// fs/fuse/fuse_uring_transport.h) makes the request current with a CurrentRequestScope around
// fuse_session_process_buf, on the thread that calls it. Everything here is thread-local: on
// any other thread (an I/O completion, say) there is no current request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

namespace stablefs {

// Where the current request's bytes live. keep() returns a handle that keeps those bytes
// allocated and unchanged for as long as it lives (the transport reads its next request into
// other memory meanwhile); it may be released on any thread.
class RequestMemory {
 public:
  virtual std::shared_ptr<const void> keep() = 0;

 protected:
  ~RequestMemory() = default;
};

// Makes `bytes` (fuse_in_header first, then the arguments) the calling thread's current
// request until destroyed. `memory` must outlive the scope. Scopes do not nest.
class CurrentRequestScope {
 public:
  CurrentRequestScope(std::span<const char> bytes, RequestMemory* memory);
  ~CurrentRequestScope();
  CurrentRequestScope(const CurrentRequestScope&) = delete;
  CurrentRequestScope& operator=(const CurrentRequestScope&) = delete;
};

// The calling thread's current request; empty outside a scope.
std::span<const char> current_request_bytes();

// For an operation running inside a scope: a handle that keeps the current request's memory
// (and a WRITE's payload in it) unchanged while it lives. Null outside a scope (the caller
// must then finish with the request's memory before it returns).
std::shared_ptr<const void> keep_receive_buffer();

// For a WRITE being processed inside a scope: the kernel's write_flags (FUSE_WRITE_*), which
// libfuse 3.14 does not pass on. FUSE_WRITE_KILL_SUIDGID among them says the writer lacks
// CAP_FSETID (the kernel sets it on every direct write by such a writer). nullopt outside a
// scope or while serving another request.
std::optional<uint32_t> current_write_flags();
// The flags of the file a WRITE comes through (fuse_write_in::flags: the open flags, with
// O_DSYNC when the call asked for it, e.g. pwritev2 RWF_DSYNC); nullopt outside one.
std::optional<uint32_t> current_write_file_flags();

// For an OPEN being processed inside a scope: the kernel's open_flags (FUSE_OPEN_*), which
// libfuse 3.14 does not pass on. FUSE_OPEN_KILL_SUIDGID among them says an opener without
// CAP_FSETID truncates the file (O_TRUNC), so its set-id bits go. nullopt outside a scope or
// while serving another request.
std::optional<uint32_t> current_open_flags();

}  // namespace stablefs
