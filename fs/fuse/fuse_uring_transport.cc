#define FUSE_USE_VERSION 312  // the libfuse API the daemon is written against (as fs/fuse/fuse_adapter.cc)
#include "fs/fuse/fuse_uring_transport.h"

#include <fuse_lowlevel.h>
#include <liburing.h>
#include <linux/fuse.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bounce/submit_plug.h"
#include "fs/fuse/current_request.h"
#include "fs/fuse/fuse_uring_protocol.h"

namespace stablefs {
namespace {

constexpr size_t kAlign = 4096;
// Room in front of the payload for the request's fuse_in_header and fixed argument (at most
// 128 bytes), so that both and the payload are one contiguous request.
constexpr size_t kHeadroom = kAlign;
// At least the connection's largest request and reply: max_write and max_pages × 4096 are
// 1 MiB for libfuse 3.14's sessions (the kernel refuses a smaller registration).
constexpr size_t kPayloadBytes = (size_t{1} << 20) + kAlign;
constexpr uint64_t kWakeTag = 1;  // user_data of the eventfd read; entries are pointers
constexpr long long kWaitNanos = 100'000'000;

// Queues the kernel makes: one per possible CPU (/sys/devices/system/cpu/possible, "0-1").
unsigned possible_cpus() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string list;
  unsigned highest = 0;
  bool any = false;
  if (f && std::getline(f, list)) {
    std::stringstream ss(list);
    std::string range;
    while (std::getline(ss, range, ',')) {
      const size_t dash = range.find('-');
      const std::string last = dash == std::string::npos ? range : range.substr(dash + 1);
      char* end = nullptr;
      const unsigned long v = std::strtoul(last.c_str(), &end, 10);
      if (end != last.c_str()) {
        highest = std::max(highest, static_cast<unsigned>(v));
        any = true;
      }
    }
  }
  if (any) return highest + 1;
  const long n = sysconf(_SC_NPROCESSORS_CONF);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

void log_once(std::atomic<bool>& said, const std::string& msg) {
  if (!said.exchange(true)) std::fprintf(stderr, "stablefs: FUSE over io_uring: %s\n", msg.c_str());
}
std::atomic<bool> said_setup{false}, said_command{false};

}  // namespace

bool FuseUringTransport::kernel_enabled() {
  std::ifstream f("/sys/module/fuse/parameters/enable_uring");
  char c = 0;
  return f && (f >> c) && (c == 'Y' || c == 'y' || c == '1');
}

// One ring entry: the header and payload buffers registered with the kernel, and what stands
// between the request in it and its commit. The kernel writes the buffers only while the
// entry waits for a request (between a submitted command and its completion); the daemon
// only between that completion and the next command.
struct FuseUringTransport::Entry final : RequestMemory, std::enable_shared_from_this<Entry> {
  Entry(std::shared_ptr<Ring> r, uint16_t q) : ring(std::move(r)), qid(q) {}
  ~Entry() {
    std::free(header);
    std::free(memory);
  }
  bool allocate() {
    header = static_cast<UringRequestHeader*>(std::aligned_alloc(kAlign, kAlign));
    memory = static_cast<char*>(std::aligned_alloc(kAlign, kHeadroom + kPayloadBytes));
    if (!header || !memory) return false;
    std::memset(header, 0, sizeof *header);
    payload = memory + kHeadroom;
    iov[0] = {header, sizeof *header};
    iov[1] = {payload, kPayloadBytes};
    return true;
  }

  // The opcode of the request the kernel put in the entry (the ring thread reads it between
  // the completion that brought the request and serving it).
  uint32_t opcode() const {
    fuse_in_header in;
    std::memcpy(&in, header->in_out, sizeof in);
    return in.opcode;
  }

  // RequestMemory: the payload stays unchanged (the commit waits) while the handle lives.
  std::shared_ptr<const void> keep() override;
  void release_keep();

  // Stages a reply of just a header with `error` (0 or -errno) to the request in the entry.
  void stage_empty_reply(int error) REQUIRES(mu) {
    const fuse_out_header out{sizeof(fuse_out_header), error, unique};
    std::memcpy(header->in_out, &out, sizeof out);
    replied = true;
    use_staged = false;
    reply_bytes = 0;
  }

  // Whether the reply may be committed now; if so, puts it in place for the commit and
  // makes the entry wait for the next request (so that it is committed once).
  bool take_ready() REQUIRES(mu) {
    if (!replied || processing || keeps > 0) return false;
    replied = false;
    if (use_staged && reply_bytes > 0) std::memcpy(payload, staged.data(), reply_bytes);
    use_staged = false;
    header->ring_ent_in_out.payload_sz = reply_bytes;
    return true;
  }

  const std::shared_ptr<Ring> ring;  // owns the ring this entry is registered on
  const uint16_t qid;
  UringRequestHeader* header = nullptr;
  char* memory = nullptr;   // kHeadroom + kPayloadBytes
  char* payload = nullptr;  // memory + kHeadroom: 4096-aligned
  iovec iov[2]{};

  Mutex mu;
  uint64_t unique GUARDED_BY(mu) = 0;  // the request being served
  bool processing GUARDED_BY(mu) = false;
  bool replied GUARDED_BY(mu) = false;  // a reply is staged and not yet committed
  unsigned keeps GUARDED_BY(mu) = 0;
  bool use_staged GUARDED_BY(mu) = false;  // the reply's payload is in staged, not in payload
  std::vector<char> staged GUARDED_BY(mu);
  uint32_t reply_bytes GUARDED_BY(mu) = 0;
  uint32_t request_payload GUARDED_BY(mu) = 0;  // bytes of the request in the payload buffer
  uint32_t last_command = 0;  // the ring thread's: the command it submitted last
};

// One ring and the thread that owns it: the only thread that submits to it or reaps it.
class FuseUringTransport::Ring {
 public:
  explicit Ring(uint16_t qid) : qid_(qid), efd_(::eventfd(0, EFD_CLOEXEC)) {}
  ~Ring() {
    if (efd_ >= 0) ::close(efd_);
  }

  // The thread's body: sets the ring up and reports it (FuseUringTransport::setup_done),
  // waits for start(), registers the entries, then serves the requests they bring and
  // commits the replies queued for them, until the transport stops.
  void run(FuseUringTransport& t);

  // Queues e's staged reply for commit by the ring's thread (from any thread); dropped once
  // the ring is closed.
  void enqueue_commit(Entry* e) EXCLUDES(mu_) {
    bool wake = false;
    {
      MutexLock lock(mu_);
      if (closed_) return;
      commits_.push_back(e);
      wake = sleeping_;
      sleeping_ = false;
    }
    if (wake) wake_up();
  }

  // Makes the thread look at its queue and the transport's state (from any thread).
  void wake_up() {
    const uint64_t one = 1;
    if (efd_ >= 0) (void)!::write(efd_, &one, sizeof one);
  }

  std::vector<std::shared_ptr<Entry>> entries;  // set before run(); cleared by the transport
  std::thread thread;

 private:
  int set_up();
  void serve(FuseUringTransport& t, Entry& e);
  // Answers the request in e with just `error`, without serving it.
  void answer_unserved(Entry& e, int error);
  bool prepare(FuseUringTransport& t, Entry& e, uint32_t op);
  bool submit_commits(FuseUringTransport& t);
  bool arm_wake();
  void failed(FuseUringTransport& t, Entry& e, int err);

  const uint16_t qid_;
  const int efd_;  // made before the thread starts: wake_up() may come at once
  int fuse_fd_ = -1;
  uint64_t wake_value_ = 0;
  io_uring ring_{};
  Mutex mu_;
  std::vector<Entry*> commits_ GUARDED_BY(mu_);
  std::vector<Entry*> draining_;  // the thread's own
  bool sleeping_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
};

std::shared_ptr<const void> FuseUringTransport::Entry::keep() {
  {
    MutexLock lock(mu);
    ++keeps;
  }
  return std::shared_ptr<const void>(payload, [self = shared_from_this()](const void*) { self->release_keep(); });
}

void FuseUringTransport::Entry::release_keep() {
  bool ready;
  {
    MutexLock lock(mu);
    --keeps;
    ready = take_ready();
  }
  if (ready) ring->enqueue_commit(this);
}

// Prepares op for e. False (the session is ended) if the ring has no room, which its depth
// (one command per entry, plus the eventfd's read) rules out.
bool FuseUringTransport::Ring::prepare(FuseUringTransport& t, Entry& e, uint32_t op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe && io_uring_submit(&ring_) >= 0) sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    t.fail_session("a ring has no room for a command");
    return false;
  }
  std::memset(sqe, 0, 2 * sizeof *sqe);  // an SQE128: the command area must hold nothing else
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fuse_fd_, e.iov, 2, 0);
  sqe->cmd_op = op;
  UringCommand cmd{};
  cmd.qid = e.qid;
  if (op == kUringCommitAndFetch) {
    MutexLock lock(e.mu);
    cmd.commit_id = e.unique;
  }
  std::memcpy(sqe->cmd, &cmd, sizeof cmd);
  io_uring_sqe_set_data(sqe, &e);
  e.last_command = op;
  return true;
}

// Prepares the commits queued so far and submits them. False when the session was ended.
bool FuseUringTransport::Ring::submit_commits(FuseUringTransport& t) {
  {
    MutexLock lock(mu_);
    draining_.swap(commits_);
  }
  if (draining_.empty()) return true;
  bool ok = true;
  for (Entry* e : draining_) ok = ok && prepare(t, *e, kUringCommitAndFetch);
  draining_.clear();
  const int rc = ok ? io_uring_submit(&ring_) : 0;
  if (rc < 0) t.fail_session(std::string("submitting to a ring failed (") + std::strerror(-rc) + ")");
  return ok && rc >= 0;
}

bool FuseUringTransport::Ring::arm_wake() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) return false;
  io_uring_prep_read(sqe, efd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
  return true;
}

// A command of e's ended with err instead of a request.
void FuseUringTransport::Ring::failed(FuseUringTransport& t, Entry& e, int err) {
  // The connection or the ring is going away: nothing more comes through the entry.
  const bool ending = t.stopping_.load(std::memory_order_acquire) || err == ENOTCONN || err == ECONNABORTED ||
                      err == ENODEV || err == ECANCELED;
  // A commit the kernel refused (it ended the request itself): register the buffers again.
  if (!ending && e.last_command == kUringCommitAndFetch) {
    log_once(said_command, std::string("a commit failed (") + std::strerror(err) + "); its entry registers again");
    if (prepare(t, e, kUringRegister)) return;
  }
  t.stats_->uring_entries.fetch_sub(1, std::memory_order_relaxed);
  if (t.queue_entries_[e.qid].fetch_sub(1, std::memory_order_acq_rel) != 1 || ending) return;
  // The queue has no entry left, so the kernel's requests for it would wait forever; it
  // serves through /dev/fuse instead only if no registration ever took.
  if (t.stats_->uring_requests.load(std::memory_order_relaxed) > 0)
    t.fail_session(std::string("queue ") + std::to_string(e.qid) + " has no entry left (" + std::strerror(err) + ")");
  else
    log_once(said_setup, std::string("the kernel refused the ring entries (") + std::strerror(err) +
                             "); serving through /dev/fuse");
}

void FuseUringTransport::Ring::answer_unserved(Entry& e, int error) {
  {
    MutexLock lock(e.mu);
    e.unique = e.header->ring_ent_in_out.commit_id;
    e.stage_empty_reply(error);
    (void)e.take_ready();
  }
  enqueue_commit(&e);
}

void FuseUringTransport::Ring::serve(FuseUringTransport& t, Entry& e) {
  fuse_in_header in;
  std::memcpy(&in, e.header->in_out, sizeof in);
  const UringEntryInOut io = e.header->ring_ent_in_out;
  const size_t fixed = in.len >= sizeof in + io.payload_sz ? in.len - sizeof in - io.payload_sz : SIZE_MAX;
  if (fixed > sizeof e.header->op_in || io.payload_sz > kPayloadBytes) {  // not as the protocol says
    answer_unserved(e, -EIO);
    return;
  }
  char* start = e.payload - sizeof in - fixed;
  std::memcpy(start, &in, sizeof in);
  std::memcpy(start + sizeof in, e.header->op_in, fixed);
  {
    MutexLock lock(e.mu);
    e.unique = io.commit_id;
    e.processing = true;
    e.replied = false;
    e.request_payload = io.payload_sz;
  }
  t.remember(in.unique, e.shared_from_this());
  t.stats_->uring_requests.fetch_add(1, std::memory_order_relaxed);
  {
    CurrentRequestScope scope({start, in.len}, &e);
    fuse_buf fb{};
    fb.size = in.len;
    fb.mem = start;
    fuse_session_process_buf(t.se_, &fb);
  }
  bool ready;
  bool no_reply = false;
  {
    MutexLock lock(e.mu);
    e.processing = false;
    if (!e.replied && (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET)) {
      // These have no reply; the entry is answered empty so that it fetches again.
      e.stage_empty_reply(0);
      no_reply = true;
    }
    ready = e.take_ready();
  }
  if (no_reply) (void)t.take(in.unique);
  if (ready) enqueue_commit(&e);
}

// Sets up the ring and the entries' memory; 0 or a negative errno.
int FuseUringTransport::Ring::set_up() {
  if (efd_ < 0) return -EMFILE;
  io_uring_params p{};
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  const unsigned depth = static_cast<unsigned>(entries.size()) + 2;
  int rc = io_uring_queue_init_params(depth, &ring_, &p);
  if (rc == -EINVAL) {  // a kernel without deferred task work: the thread is the only issuer anyway
    p = {};
    p.flags = IORING_SETUP_SQE128;
    rc = io_uring_queue_init_params(depth, &ring_, &p);
  }
  if (rc < 0) return rc;
  if (!(p.features & IORING_FEAT_EXT_ARG)) rc = -EOPNOTSUPP;  // waits with a timeout need it
  for (const std::shared_ptr<Entry>& e : entries)
    if (rc == 0 && !e->allocate()) rc = -ENOMEM;
  if (rc < 0) io_uring_queue_exit(&ring_);
  return rc;
}

void FuseUringTransport::Ring::run(FuseUringTransport& t) {
  fuse_fd_ = fuse_session_fd(t.se_);
  const int rc = set_up();
  if (!t.setup_done(rc)) {  // this ring or another could not be set up: none is used
    MutexLock lock(mu_);
    closed_ = true;
    if (rc == 0) io_uring_queue_exit(&ring_);
    return;
  }
  t.wait_for_start();
  bool ok = !t.stopping_.load(std::memory_order_acquire);
  bool armed = ok && arm_wake();
  for (const std::shared_ptr<Entry>& e : entries) {
    if (!ok) break;
    if (!prepare(t, *e, kUringRegister)) {
      ok = false;
      break;
    }
    t.stats_->uring_entries.fetch_add(1, std::memory_order_relaxed);
    t.queue_entries_[qid_].fetch_add(1, std::memory_order_relaxed);
  }

  // Until stop(), also after the kernel ended the connection: replies still owed are taken
  // here until the owner of the session has waited for them and stopped the transport.
  while (ok && !t.stopping_.load(std::memory_order_acquire)) {
    if (!submit_commits(t)) break;
    {
      MutexLock lock(mu_);
      if (!commits_.empty()) continue;  // queued meanwhile: submit them before sleeping
      sleeping_ = true;
    }
    if (!armed) armed = arm_wake();
    __kernel_timespec ts{0, kWaitNanos};
    io_uring_cqe* cqe = nullptr;
    const int wait = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    {
      MutexLock lock(mu_);
      sleeping_ = false;
    }
    if (wait < 0 && wait != -ETIME && wait != -EINTR && wait != -EAGAIN && wait != -EBUSY) {
      t.fail_session(std::string("waiting on a ring failed (") + std::strerror(-wait) + ")");
      break;
    }
    unsigned head;
    unsigned seen = 0;
    std::vector<Entry*> ready;  // served after the queue is advanced: serving may take long
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      if (io_uring_cqe_get_data64(cqe) == kWakeTag) {
        armed = false;
        continue;
      }
      Entry* e = static_cast<Entry*>(io_uring_cqe_get_data(cqe));
      if (cqe->res == 0) ready.push_back(e);
      else failed(t, *e, -cqe->res);
    }
    io_uring_cq_advance(&ring_, seen);
    // The device I/O of the batch's READs and WRITEs goes to the kernel together (as the
    // /dev/fuse reader's): flushed before any other request and when the batch is done, before
    // this thread waits for the next.
    SubmitPlug plug;
    for (size_t i = 0; i < ready.size(); ++i) {
      const uint32_t opcode = ready[i]->opcode();
      if (opcode != FUSE_READ && opcode != FUSE_WRITE) plug.flush();
      if (t.begin_serving()) {
        serve(t, *ready[i]);
        t.end_serving();
      } else {
        answer_unserved(*ready[i], -ENOTCONN);
      }
      // Its reply (if it came at once) and those of I/O completions go out before the next
      // request of the batch is served, so a slow one holds up no other answer; after the
      // last, the wait at the top of the loop submits them in the same system call.
      if (i + 1 < ready.size() && !submit_commits(t)) {
        ok = false;
        break;
      }
    }
  }
  {
    MutexLock lock(mu_);
    closed_ = true;
    commits_.clear();
  }
  // Closing the ring cancels the commands still waiting for requests.
  io_uring_queue_exit(&ring_);
}

FuseUringTransport::FuseUringTransport(fuse_session* se, unsigned entries_per_queue, std::shared_ptr<TransportStats> stats)
    : se_(se),
      entries_per_thread_(std::max(1u, entries_per_queue / kThreadsPerQueue)),
      stats_(stats ? std::move(stats) : std::make_shared<TransportStats>()) {
  stats_->uring_requested.store(true, std::memory_order_relaxed);
}

FuseUringTransport::~FuseUringTransport() {
  stop();
  MutexLock lock(rings_mu_);
  for (const std::shared_ptr<Ring>& r : rings_) r->entries.clear();  // entries kept by a handle stay
}

bool FuseUringTransport::prepare() {
  const unsigned queues = possible_cpus();
  MutexLock lock(rings_mu_);
  if (!rings_.empty()) return false;
  queue_entries_ = std::make_unique<std::atomic<unsigned>[]>(queues);
  unsigned started = 0;
  try {
    for (unsigned q = 0; q < queues; ++q) {
      for (unsigned i = 0; i < kThreadsPerQueue; ++i) {
        auto ring = std::make_shared<Ring>(static_cast<uint16_t>(q));
        for (unsigned k = 0; k < entries_per_thread_; ++k)
          ring->entries.push_back(std::make_shared<Entry>(ring, static_cast<uint16_t>(q)));
        rings_.push_back(ring);
      }
    }
    for (const std::shared_ptr<Ring>& r : rings_) {
      r->thread = std::thread([this, r] { r->run(*this); });
      ++started;
    }
  } catch (const std::exception&) {  // no memory or no thread: as a ring that failed its setup
    MutexLock setup(setup_mu_);
    if (setup_error_ == 0) setup_error_ = -ENOMEM;
  }
  int err;
  {
    MutexLock setup(setup_mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (setups_reported_ < started && setup_error_ == 0 && std::chrono::steady_clock::now() < deadline)
      setup_cv_.wait_for(setup_mu_, std::chrono::milliseconds(100));
    if (setups_reported_ < started && setup_error_ == 0) setup_error_ = -ETIMEDOUT;
    err = setup_error_;
    setup_final_ = true;  // every ring thread goes on (or gives up) now
    setup_cv_.notify_all();
  }
  if (err == 0) {
    stats_->uring_queues.store(queues, std::memory_order_relaxed);
    return true;
  }
  std::fprintf(stderr, "stablefs: FUSE over io_uring: cannot set up the rings (%s); serving through /dev/fuse\n",
               std::strerror(-err));
  stop_locked();
  return false;
}

bool FuseUringTransport::setup_done(int rc) {
  MutexLock lock(setup_mu_);
  if (rc < 0 && setup_error_ == 0) setup_error_ = rc;
  ++setups_reported_;
  setup_cv_.notify_all();
  // Go on only once every ring is set up (prepare() has then decided).
  while (!setup_final_ && setup_error_ == 0) setup_cv_.wait_for(setup_mu_, std::chrono::milliseconds(100));
  return setup_error_ == 0;
}

void FuseUringTransport::start() {
  MutexLock lock(setup_mu_);
  started_ = true;
  setup_cv_.notify_all();
}

void FuseUringTransport::wait_for_start() {
  MutexLock lock(setup_mu_);
  while (!started_ && !stopping_.load(std::memory_order_acquire))
    setup_cv_.wait_for(setup_mu_, std::chrono::milliseconds(100));
}

bool FuseUringTransport::begin_serving() {
  // seq_cst on both sides: either quiesce() sees this thread counted, or the thread sees
  // refusing_.
  serving_.fetch_add(1, std::memory_order_seq_cst);
  if (!refusing_.load(std::memory_order_seq_cst) && fuse_session_exited(se_) == 0) return true;
  end_serving();
  return false;
}

void FuseUringTransport::quiesce() {
  refusing_.store(true, std::memory_order_seq_cst);
  while (serving_.load(std::memory_order_seq_cst) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void FuseUringTransport::stop() {
  MutexLock lock(rings_mu_);
  stop_locked();
}

void FuseUringTransport::stop_locked() {
  stopping_.store(true, std::memory_order_release);
  {
    MutexLock setup(setup_mu_);
    setup_cv_.notify_all();
  }
  for (const std::shared_ptr<Ring>& r : rings_) {
    r->wake_up();
    if (r->thread.joinable()) r->thread.join();
  }
  stats_->uring_queues.store(0, std::memory_order_relaxed);
}

void FuseUringTransport::fail_session(const std::string& why) {
  std::fprintf(stderr, "stablefs: FUSE over io_uring: %s; ending the session\n", why.c_str());
  fuse_session_exit(se_);
}

void FuseUringTransport::remember(uint64_t unique, std::shared_ptr<Entry> e) {
  Shard& s = shards_[unique % kShards];
  MutexLock lock(s.mu);
  s.entries.emplace_back(unique, std::move(e));
}

std::shared_ptr<FuseUringTransport::Entry> FuseUringTransport::take(uint64_t unique) {
  Shard& s = shards_[unique % kShards];
  MutexLock lock(s.mu);
  for (auto it = s.entries.begin(); it != s.entries.end(); ++it) {
    if (it->first != unique) continue;
    std::shared_ptr<Entry> e = std::move(it->second);
    *it = std::move(s.entries.back());
    s.entries.pop_back();
    return e;
  }
  return nullptr;
}

bool FuseUringTransport::reply(const iovec* iov, int count, ssize_t* written) {
  if (count < 1 || iov[0].iov_len != sizeof(fuse_out_header)) return false;
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (out.unique == 0 || stopping_.load(std::memory_order_acquire)) return false;
  std::shared_ptr<Entry> e = take(out.unique);
  if (!e) return false;
  size_t bytes = 0;
  for (int i = 1; i < count; ++i) bytes += iov[i].iov_len;
  if (bytes > kPayloadBytes) {  // larger than any request may be answered with: the kernel's EIO
    out.error = -EIO;
    out.len = sizeof out;
    bytes = 0;
    count = 1;
  }
  bool ready;
  {
    MutexLock lock(e->mu);
    std::memcpy(e->header->in_out, &out, sizeof out);
    // While the request's payload is kept, or may still be read by its processing, the
    // buffer is not free (a request with nothing in it, a READ say, lies in the headroom).
    e->use_staged = e->keeps > 0 || (e->processing && e->request_payload > 0);
    if (e->use_staged && e->staged.size() < bytes) e->staged.resize(bytes);
    char* dst = e->use_staged ? e->staged.data() : e->payload;
    for (int i = 1; i < count; ++i) {
      if (iov[i].iov_len == 0) continue;
      std::memcpy(dst, iov[i].iov_base, iov[i].iov_len);
      dst += iov[i].iov_len;
    }
    e->reply_bytes = static_cast<uint32_t>(bytes);
    e->replied = true;
    ready = e->take_ready();
  }
  if (ready) e->ring->enqueue_commit(e.get());
  *written = static_cast<ssize_t>(sizeof out + bytes);
  return true;
}

}  // namespace stablefs
