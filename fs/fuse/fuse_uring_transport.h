// FuseUringTransport: serves a FUSE session's requests through the kernel's FUSE-over-io_uring
// queues (fs/fuse/fuse_uring_protocol.h), beside the /dev/fuse receive loop, which still
// carries INIT, FORGET, INTERRUPT and every request until all queues are registered.
//
// Layout: one queue per possible CPU (the kernel puts a request on the queue of the CPU its
// caller runs on), served by kThreadsPerQueue threads. They are not pinned to the queue's CPU:
// on this 2-CPU machine pinning made creates 0.78x as fast (the caller and its server then
// share one CPU; docs/performance.md). Each thread has a ring of its own with entries_per_queue / kThreadsPerQueue entries, waits on it and processes
// the requests its entries bring (fuse_session_process_buf) on itself. An entry's payload
// buffer is 4096-aligned, so a WRITE's data is aligned for zero-copy submission; the request's
// fixed headers are copied just in front of it, so libfuse sees one contiguous request.
//
// Replies: libfuse writes every reply through the session's reply writer
// (fs/fuse/fuse_receive_loop.cc), which offers it to reply() first. A reply to a request that
// came through an entry is staged in the entry and committed (kUringCommitAndFetch, which
// also waits for the entry's next request) once all three hold: the request is answered, its
// processing has returned, and no handle from keep() (a zero-copy write in flight) is alive.
// Only a ring's own thread submits to it (the ring is IORING_SETUP_SINGLE_ISSUER with deferred
// task work, so the kernel copies requests in while that thread waits): a reply from any
// other thread (an I/O completion) queues the entry for the ring's thread and wakes it
// through an eventfd if it sleeps.
//
// A thread serves the requests its entries brought one after another, so a slow one (an
// fsync) delays those it already holds; the kernel gives a new request to the entry that
// became free last, which is on a thread that is not stuck.
//
// Memory: every entry has a payload buffer of the connection's largest request (1 MiB), so
// entries_per_queue × queues MiB of address space; pages are touched as requests use them.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "bounce/mutex.h"
#include "fs/fuse/transport_stats.h"

struct fuse_session;

namespace stablefs {

class FuseUringTransport {
 public:
  static constexpr unsigned kThreadsPerQueue = 2;
  static constexpr unsigned kDefaultEntriesPerQueue = 32;

  // Whether the kernel serves FUSE over io_uring now (the fuse module's enable_uring
  // parameter; off by default). A mount asking for it is refused when it is off.
  static bool kernel_enabled();

  // Nothing runs until start(). `stats` is shared with `stablefs stats`.
  FuseUringTransport(fuse_session* se, unsigned entries_per_queue, std::shared_ptr<TransportStats> stats);
  // stop(), then frees the entries not held by a live keep() handle.
  ~FuseUringTransport();
  FuseUringTransport(const FuseUringTransport&) = delete;
  FuseUringTransport& operator=(const FuseUringTransport&) = delete;

  // Starts the queue threads, which register their entries. Called once, by the reply writer,
  // right after the kernel accepted an INIT reply carrying kFuseOverIoUring.
  void start();

  // The reply writer's hook, from any thread: if iov (fuse_out_header first) answers a
  // request that came through an entry, takes the reply (copying it; iov may go at once) and
  // returns true with *written the reply's length. False for any other reply (the writer
  // sends it to /dev/fuse), and for every reply once stop() has begun.
  bool reply(const iovec* iov, int count, ssize_t* written);

  // Ends and joins the queue threads and closes their rings. Called after the session has
  // exited, from the thread that called start() or any other; idempotent.
  void stop();

 private:
  struct Entry;
  class Ring;
  struct Shard {  // requests in progress through entries, by unique
    Mutex mu;
    std::vector<std::pair<uint64_t, std::shared_ptr<Entry>>> entries GUARDED_BY(mu);
  };
  static constexpr unsigned kShards = 16;

  void remember(uint64_t unique, std::shared_ptr<Entry> e);
  std::shared_ptr<Entry> take(uint64_t unique);
  bool stopping() const;

  fuse_session* const se_;
  const unsigned entries_per_thread_;
  const std::shared_ptr<TransportStats> stats_;
  std::atomic<bool> stopping_{false};
  Shard shards_[kShards];
  Mutex rings_mu_;
  std::vector<std::shared_ptr<Ring>> rings_ GUARDED_BY(rings_mu_);
};

}  // namespace stablefs
