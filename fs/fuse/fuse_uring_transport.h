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
// Lifecycle: prepare() before the kernel's INIT is answered (the threads set up their rings),
// start() once the kernel took io_uring in the INIT reply (they register their entries),
// quiesce() once the session exited (no request is served after it), stop() once no reply is
// owed. A failure after start that would leave the kernel's requests waiting forever (a
// queue without entries, a ring that cannot be waited on) ends the session.
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
// A thread serves the requests its entries brought one after another and submits the replies
// it has before serving the next, so a slow request (an fsync) holds up no other reply, only
// the requests its thread already holds and those the kernel gives its free entries meanwhile.
//
// Memory: every entry has a payload buffer of the connection's largest request (1 MiB), so
// entries_per_queue × queues MiB of address space; pages are touched as requests use them.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
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

  // Nothing runs until prepare(). `stats` is shared with `stablefs stats`.
  FuseUringTransport(fuse_session* se, unsigned entries_per_queue, std::shared_ptr<TransportStats> stats);
  // stop(), then frees the entries not held by a live keep() handle.
  ~FuseUringTransport();
  FuseUringTransport(const FuseUringTransport&) = delete;
  FuseUringTransport& operator=(const FuseUringTransport&) = delete;

  // Before the kernel's INIT is answered: starts the queue threads, which set up their rings
  // and entries' memory, and waits (at most 10 s) until all have. False, with the reason
  // logged and the threads gone, if any could not: the INIT reply must then not ask for
  // io_uring, since the kernel, once it has it, holds every request until each queue has an
  // entry registered.
  bool prepare();

  // Lets the prepared threads register their entries. Called once, by the reply writer,
  // right after the kernel accepted an INIT reply carrying kFuseOverIoUring.
  void start();

  // The reply writer's hook, from any thread: if iov (fuse_out_header first) answers a
  // request that came through an entry, takes the reply (copying it; iov may go at once) and
  // returns true with *written the reply's length. False for any other reply (the writer
  // sends it to /dev/fuse), and for every reply once stop() has begun.
  bool reply(const iovec* iov, int count, ssize_t* written);

  // From the session's owner once the session has exited: makes every request that comes
  // through an entry from now on be answered ENOTCONN unserved (as the kernel answers the
  // requests still queued on /dev/fuse when the connection ends), and waits until no thread
  // serves one any more (a request being served is finished first, an fsync as well). The
  // replies owed after it are those of requests already served; the ring threads commit them.
  // Requests that arrive after the session exited are refused even before this is called.
  void quiesce();

  // Ends and joins the queue threads and closes their rings. The threads keep serving after
  // the session has ended (replies still owed go through them), so call this only once no
  // reply is owed any more; from any thread; idempotent.
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
  // From a ring thread once its ring is set up (rc 0) or not: whether to go on, decided
  // when every ring has reported.
  bool setup_done(int rc);
  void wait_for_start();
  // A ring thread's, around serving a request: false (nothing to end) when it is to be
  // refused instead.
  bool begin_serving();
  void end_serving() { serving_.fetch_sub(1, std::memory_order_seq_cst); }
  void stop_locked() REQUIRES(rings_mu_);
  // A failure the kernel cannot recover from (its requests would wait forever): logs it and
  // ends the session, which unmounts.
  void fail_session(const std::string& why);

  fuse_session* const se_;
  const unsigned entries_per_thread_;
  const std::shared_ptr<TransportStats> stats_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> refusing_{false};  // quiesce() was called
  std::atomic<unsigned> serving_{0};   // ring threads between begin_serving and end_serving
  std::unique_ptr<std::atomic<unsigned>[]> queue_entries_;  // live entries per queue; set by prepare()
  Shard shards_[kShards];
  Mutex rings_mu_;
  std::vector<std::shared_ptr<Ring>> rings_ GUARDED_BY(rings_mu_);
  Mutex setup_mu_;
  CondVar setup_cv_;
  int setup_error_ GUARDED_BY(setup_mu_) = 0;  // the first ring's failure, or 0
  unsigned setups_reported_ GUARDED_BY(setup_mu_) = 0;
  bool setup_final_ GUARDED_BY(setup_mu_) = false;
  bool started_ GUARDED_BY(setup_mu_) = false;
};

}  // namespace stablefs
