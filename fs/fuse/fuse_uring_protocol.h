// The kernel's FUSE-over-io_uring interface (protocol 7.42, Linux 6.14 and later), which the
// system's headers (protocol 7.38) do not have yet. Layouts are the kernel's ABI.
//
// The server registers ring entries with IORING_OP_URING_CMD on the /dev/fuse fd of its
// connection, from a ring set up with IORING_SETUP_SQE128 (the command lives in the SQE's
// 80-byte tail). Each entry is two buffers, given as a 2-element iovec at registration: a
// UringRequestHeader and a payload buffer of at least the connection's largest request
// (max(max_write, max_pages * page size)). The kernel completes an entry's command when it has
// put a request in it: fuse_in_header in in_out, the operation's fixed argument (the first
// one, possibly empty) in op_in, the rest in the payload. The server answers with
// kUringCommitAndFetch: fuse_out_header in in_out, the reply's arguments in the payload, their
// size in ring_ent_in_out.payload_sz; the same command waits for the entry's next request.
// INIT, FORGET, INTERRUPT and notifications still travel through /dev/fuse.
#pragma once

#include <cstdint>

namespace stablefs {

// INIT flag (in flags2, the upper half): the server will serve requests through io_uring.
inline constexpr uint64_t kFuseOverIoUring = uint64_t{1} << 41;

// IORING_OP_URING_CMD command codes (the SQE's cmd_op).
inline constexpr uint32_t kUringRegister = 1;        // register an entry and wait for a request
inline constexpr uint32_t kUringCommitAndFetch = 2;  // answer the entry's request, wait for the next

struct UringEntryInOut {
  uint64_t flags;
  uint64_t commit_id;   // set by the kernel with a request; given back in UringCommand
  uint32_t payload_sz;  // bytes of the payload buffer in use, either way
  uint32_t padding;
  uint64_t reserved;
};
static_assert(sizeof(UringEntryInOut) == 32);

struct UringRequestHeader {
  char in_out[128];  // fuse_in_header from the kernel, fuse_out_header to it
  char op_in[128];   // the request's first (fixed-size) argument
  UringEntryInOut ring_ent_in_out;
};
static_assert(sizeof(UringRequestHeader) == 288);

// The command, in the SQE's cmd area.
struct UringCommand {
  uint64_t flags;
  uint64_t commit_id;  // kUringCommitAndFetch: the request answered
  uint16_t qid;        // the queue (one per possible CPU) the entry belongs to
  uint8_t padding[6];
};
static_assert(sizeof(UringCommand) == 24);

}  // namespace stablefs
