#define FUSE_USE_VERSION 312  // the libfuse API the daemon is written against (as fs/fuse/fuse_adapter.cc)
#include "fs/fuse/fuse_receive_loop.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "bounce/mutex.h"
#include "bounce/submit_plug.h"
#include "fs/fuse/current_request.h"
#include "fs/fuse/fuse_uring_protocol.h"
#include "fs/fuse/fuse_uring_transport.h"
#include "fs/fuse/reader_turn.h"

namespace stablefs {
namespace {

// Where a WRITE request's data starts in the receive buffer.
constexpr size_t kWritePayloadOffset = sizeof(fuse_in_header) + sizeof(fuse_write_in);
constexpr size_t kAlign = 4096;
// The largest request: a 1 MiB WRITE (max_write) plus its headers, with room to spare. The
// kernel refuses a read() smaller than max_write plus the headers.
constexpr size_t kReceiveBytes = (1u << 20) + 2 * kAlign;
// Buffers that writes in flight may keep beyond one per worker (see BufferPool).
constexpr size_t kKeptBuffersBound = 64;

// Memory for one request: kReceiveBytes starting kWritePayloadOffset before a 4096 boundary.
class ReceiveBuffer {
 public:
  ReceiveBuffer() : base_(static_cast<char*>(std::aligned_alloc(kAlign, kAlign + kReceiveBytes))) {}
  ~ReceiveBuffer() { std::free(base_); }
  ReceiveBuffer(const ReceiveBuffer&) = delete;
  ReceiveBuffer& operator=(const ReceiveBuffer&) = delete;
  bool ok() const { return base_ != nullptr; }
  char* data() const { return base_ + kAlign - kWritePayloadOffset; }

 private:
  char* base_;
};

// The receive buffers: at most `bound` exist at once, so that writes in flight (each keeps
// its buffer until the device has the data) cannot make the daemon grow without limit; at the
// bound a worker waits for one to come back before it reads its next request (the kernel
// queues the requests meanwhile). Idle buffers are kept for reuse (a fresh one costs page
// faults on first touch). Shared by the buffers it hands out: a kept buffer may be released
// after the loop ended.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(size_t bound, std::shared_ptr<TransportStats> stats) : bound_(bound), stats_ptr_(std::move(stats)) {
    stats_.bound.store(bound, std::memory_order_relaxed);
  }

  // A buffer; null when none could be allocated, or when stop() turned true while waiting
  // at the bound (checked every 100 ms).
  std::shared_ptr<ReceiveBuffer> get(const std::function<bool()>& stop) EXCLUDES(mu_) {
    std::unique_ptr<ReceiveBuffer> b;
    {
      MutexLock lock(mu_);
      if (free_.empty() && allocated_ >= bound_) {
        stats_.waits.fetch_add(1, std::memory_order_relaxed);
        while (free_.empty() && allocated_ >= bound_) {
          if (stop()) return nullptr;
          returned_.wait_for(mu_, std::chrono::milliseconds(100));
        }
      }
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      } else {
        ++allocated_;  // counted before the allocation, so that no other worker passes the bound
      }
    }
    if (!b) {
      b = std::make_unique<ReceiveBuffer>();
      if (!b->ok()) {
        MutexLock lock(mu_);
        --allocated_;
        return nullptr;
      }
      stats_.allocated.fetch_add(1, std::memory_order_relaxed);
    }
    stats_.in_use.fetch_add(1, std::memory_order_relaxed);
    return std::shared_ptr<ReceiveBuffer>(
        b.release(), [pool = shared_from_this()](ReceiveBuffer* r) { pool->put(std::unique_ptr<ReceiveBuffer>(r)); });
  }

 private:
  static constexpr size_t kKeep = 64;
  void put(std::unique_ptr<ReceiveBuffer> b) EXCLUDES(mu_) {
    stats_.in_use.fetch_sub(1, std::memory_order_relaxed);
    {
      MutexLock lock(mu_);
      if (free_.size() < kKeep) {
        free_.push_back(std::move(b));
      } else {
        --allocated_;
        stats_.allocated.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    returned_.notify_one();
  }
  const size_t bound_;
  const std::shared_ptr<TransportStats> stats_ptr_;
  TransportStats& stats_ = *stats_ptr_;
  Mutex mu_;
  CondVar returned_;
  size_t allocated_ GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<ReceiveBuffer>> free_ GUARDED_BY(mu_);
};

void wake_reader(int) {}  // interrupts the holder's poll(); nothing else

// add_init_reply_flags: what the INIT reply gains where the kernel offers it.
std::atomic<uint64_t> extra_init_flags{0};
// The io_uring transport of the running loop, if it has one: offered every reply first.
std::atomic<std::shared_ptr<FuseUringTransport>> uring_transport;
std::atomic<bool> said_not_offered{false};

// The current request, if it is the kernel's INIT: its header and arguments.
bool current_init_request(fuse_in_header* in, fuse_init_in* init) {
  const std::span<const char> bytes = current_request_bytes();
  if (bytes.size() < sizeof *in + sizeof *init) return false;
  std::memcpy(in, bytes.data(), sizeof *in);
  if (in->opcode != FUSE_INIT) return false;
  std::memcpy(init, bytes.data() + sizeof *in, sizeof *init);
  return true;
}

// libfuse's reply writer (custom I/O). A reply to a request that came through an io_uring
// entry goes back through it; every other reply is written to /dev/fuse unchanged, except a
// successful reply to INIT from the thread serving it, whose flags gain the extra ones the
// kernel offered (only in the extended form the kernel reads flags2 from). When those include
// FUSE over io_uring, the transport starts once the kernel has taken the reply.
ssize_t write_reply(int fd, iovec* iov, int count, void*) {
  const std::shared_ptr<FuseUringTransport> uring = uring_transport.load(std::memory_order_acquire);
  if (uring) {
    ssize_t written = 0;
    if (uring->reply(iov, count, &written)) return written;
  }
  fuse_in_header in;
  fuse_init_in init;
  const uint64_t extra = extra_init_flags.load(std::memory_order_relaxed) | (uring ? kFuseOverIoUring : 0);
  if (extra == 0 || count < 2 || iov[0].iov_len != sizeof(fuse_out_header) || !current_init_request(&in, &init))
    return ::writev(fd, iov, count);
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  fuse_init_out reply{};
  if (out.error != 0 || out.unique != in.unique || iov[1].iov_len < offsetof(fuse_init_out, flags2) + sizeof reply.flags2 ||
      iov[1].iov_len > sizeof reply)
    return ::writev(fd, iov, count);
  std::memcpy(&reply, iov[1].iov_base, iov[1].iov_len);
  uint64_t offered = init.flags;
  if (init.flags & FUSE_INIT_EXT) offered |= uint64_t{init.flags2} << 32;
  uint64_t added = 0;
  if (reply.flags & FUSE_INIT_EXT) {
    added = extra & offered;
    reply.flags |= static_cast<uint32_t>(added);
    reply.flags2 |= static_cast<uint32_t>(added >> 32);
  }
  std::vector<iovec> amended(iov, iov + count);
  amended[1].iov_base = &reply;
  const ssize_t rc = ::writev(fd, amended.data(), count);
  if (uring && rc >= 0 && (added & kFuseOverIoUring)) uring->start();
  else if (uring && !said_not_offered.exchange(true))
    std::fprintf(stderr, "stablefs: the kernel did not take FUSE over io_uring; serving through /dev/fuse\n");
  return rc;
}

ssize_t read_request(int fd, void* buf, size_t len, void*) { return ::read(fd, buf, len); }

struct Shared {
  fuse_session* se;
  Mutex mu;
  CondVar cv;
  unsigned stopped GUARDED_BY(mu) = 0;
  int error GUARDED_BY(mu) = 0;  // first failure
};

// The receive buffer a worker holds, as the current request's memory: keeping it makes the
// worker read its next request into another buffer.
class HeldBuffer final : public RequestMemory {
 public:
  explicit HeldBuffer(const std::shared_ptr<ReceiveBuffer>& buf) : buf_(buf) {}
  std::shared_ptr<const void> keep() override { return buf_; }

 private:
  const std::shared_ptr<ReceiveBuffer>& buf_;
};

// The fixed arguments (of type Args) that follow the header of a request read into buf (n
// bytes), if the request is long enough to hold them.
template <typename Args>
std::optional<Args> args_of(const char* buf, size_t n) {
  if (n < sizeof(fuse_in_header) + sizeof(Args)) return std::nullopt;
  Args args;
  std::memcpy(&args, buf + sizeof(fuse_in_header), sizeof args);
  return args;
}

// What the reader's turn looks at in a request read into buf (n bytes) whose header is in.
TurnRequest turn_request_of(const fuse_in_header& in, const char* buf, size_t n) {
  TurnRequest req;
  req.opcode = in.opcode;
  if (in.opcode == FUSE_OPEN) {
    if (auto open = args_of<fuse_open_in>(buf, n)) req.open_flags = open->flags;
  } else if (in.opcode == FUSE_READ) {
    if (auto read = args_of<fuse_read_in>(buf, n)) req.io_bytes = read->size;
  } else if (in.opcode == FUSE_WRITE) {
    if (auto write = args_of<fuse_write_in>(buf, n)) req.io_bytes = write->size;
  }
  return req;
}

// One worker: wait for the reader's turn, read a request, process it, until the session
// ends (fs/fuse/reader_turn.h). Returns 0 or -errno.
int serve(fuse_session* se, BufferPool& pool, ReaderTurn& turn, TransportStats& stats, bool inline_io) {
  const auto exited = [se] { return fuse_session_exited(se) != 0; };
  std::shared_ptr<ReceiveBuffer> buf = pool.get(exited);
  if (!buf) return exited() ? 0 : -ENOMEM;
  const int fd = fuse_session_fd(se);
  int rc = 0;
  bool holding = false;  // the turn
  std::chrono::microseconds spin = ReaderTurn::kSpin;  // when the next read finds nothing
  // The device I/O of READs and WRITEs read back to back goes to the kernel together: flushed
  // when the queue runs dry, before any other request, and before the turn is passed.
  SubmitPlug plug;
  while (!fuse_session_exited(se)) {
    if (buf.use_count() > 1) {  // the last request's operation kept it: read into another
      buf = pool.get(exited);
      if (!buf) {
        rc = exited() ? 0 : -ENOMEM;
        break;
      }
    }
    if (!holding) {
      if (!(holding = turn.take(exited))) break;
      spin = ReaderTurn::kSpin;
    }
    const ssize_t n = ::read(fd, buf->data(), kReceiveBytes);  // O_NONBLOCK: never waits
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN) {
        // Nothing queued: poll for the caller's next request for the spin, then wait for one
        // (a signal ends the wait, and the loop condition sees an exited session).
        plug.flush();
        if (spin.count() == 0 || !poll_for_request(fd, spin)) wait_for_request(fd);
        spin = std::chrono::microseconds(0);
        continue;
      }
      // EINTR: a signal; ENOENT: the request was interrupted. Look again.
      if (err == EINTR || err == ENOENT) continue;
      if (err == ENODEV) {  // unmounted
        fuse_session_exit(se);
        break;
      }
      rc = -err;
      break;
    }
    if (n == 0) {  // the device was closed
      fuse_session_exit(se);
      break;
    }
    stats.device_requests.fetch_add(1, std::memory_order_relaxed);
    fuse_in_header in{};
    if (static_cast<size_t>(n) >= sizeof in) std::memcpy(&in, buf->data(), sizeof in);
    spin = spin_after(in.opcode, inline_io);
    if (in.opcode != FUSE_READ && in.opcode != FUSE_WRITE) plug.flush();
    if (!serve_keeping_turn(turn_request_of(in, buf->data(), static_cast<size_t>(n)), inline_io)) {
      plug.flush();
      turn.pass();
      holding = false;
    }
    {
      HeldBuffer held(buf);
      CurrentRequestScope scope({buf->data(), static_cast<size_t>(n)}, &held);
      fuse_buf fb{};
      fb.size = static_cast<size_t>(n);
      fb.mem = buf->data();
      fuse_session_process_buf(se, &fb);
    }
    if (!holding) plug.flush();  // the next read waits for the turn
  }
  plug.flush();
  if (holding) turn.pass();
  return rc;
}

}  // namespace

int add_init_reply_flags(fuse_session* se, uint64_t flags) {
  extra_init_flags.store(flags, std::memory_order_relaxed);
  fuse_custom_io io{};
  io.writev = write_reply;
  io.read = read_request;  // unused: the workers read for themselves
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

int run_aligned_receive_loop(fuse_session* se, const ReceiveLoopOptions& opts) {
  std::shared_ptr<TransportStats> stats = opts.stats ? opts.stats : std::make_shared<TransportStats>();
  const unsigned threads = opts.threads;
  struct sigaction sa {};
  sa.sa_handler = wake_reader;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  // The holder reads without blocking and waits in poll() when nothing is queued, so a request
  // already queued costs one system call (fs/fuse/reader_turn.h).
  const int fd = fuse_session_fd(se);
  const int fd_flags = ::fcntl(fd, F_GETFL);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFL, fd_flags | O_NONBLOCK) != 0) return -errno;
  struct sigaction old {};
  if (sigaction(SIGUSR2, &sa, &old) != 0) {
    const int err = errno;
    (void)::fcntl(fd, F_SETFL, fd_flags);
    return -err;
  }

  std::shared_ptr<FuseUringTransport> uring;
  if (opts.uring_entries_per_queue > 0) {
    uring = std::make_shared<FuseUringTransport>(se, opts.uring_entries_per_queue, stats);
    if (uring->prepare()) uring_transport.store(uring, std::memory_order_release);
    else uring.reset();  // logged; the INIT reply does not ask for io_uring
  }
  Shared shared{se, {}, {}, 0, 0};
  ReaderTurn turn;
  auto pool = std::make_shared<BufferPool>(std::max(1u, threads) + kKeptBuffersBound, stats);
  std::vector<std::thread> workers;
  std::vector<std::unique_ptr<std::atomic<bool>>> done;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    done.push_back(std::make_unique<std::atomic<bool>>(false));
    std::atomic<bool>* flag = done.back().get();
    workers.emplace_back([&shared, &turn, pool, flag, stats, inline_io = opts.inline_io] {
      const int rc = serve(shared.se, *pool, turn, *stats, inline_io);
      flag->store(true);
      MutexLock lock(shared.mu);
      ++shared.stopped;
      if (rc < 0 && shared.error == 0) shared.error = rc;
      shared.cv.notify_all();
    });
  }
  {
    // A signal handler cannot notify: poll for an exited session as well.
    MutexLock lock(shared.mu);
    while (shared.stopped == 0 && !fuse_session_exited(se))
      shared.cv.wait_for(shared.mu, std::chrono::milliseconds(50));
  }
  fuse_session_exit(se);
  // Wake the workers still waiting in poll() until each has seen the exit. A worker busy with
  // a request finishes it first (its I/O completes; nothing here waits on the kernel).
  for (size_t i = 0; i < workers.size(); ++i) {
    while (!done[i]->load()) {
      pthread_kill(workers[i].native_handle(), SIGUSR2);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    workers[i].join();
  }
  // The ring threads serve no request from now on; then every reply still owed is one the
  // drain waits for.
  if (uring) uring->quiesce();
  if (opts.drain) opts.drain();
  if (uring) {
    uring->stop();
    uring_transport.store(nullptr, std::memory_order_release);
  }
  (void)::fcntl(fd, F_SETFL, fd_flags);
  sigaction(SIGUSR2, &old, nullptr);
  MutexLock lock(shared.mu);
  return shared.error;
}

}  // namespace stablefs
