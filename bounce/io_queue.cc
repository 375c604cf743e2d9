#include "bounce/io_queue.h"

#include <liburing.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

#include "bounce/mutex.h"
#include "bounce/submit_plug.h"

#if defined(__SANITIZE_THREAD__)
// A request is handed from the submitting thread to the completion thread through the
// kernel (SQ tail release, CQ tail acquire), an edge ThreadSanitizer cannot see.
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define SFS_HANDOFF_RELEASE(p) __tsan_release(p)
#define SFS_HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#else
#define SFS_HANDOFF_RELEASE(p) ((void)0)
#define SFS_HANDOFF_ACQUIRE(p) ((void)0)
#endif

namespace stablefs {
namespace {

// user_data of the NOP that stops the completion thread; requests are never at address 0.
constexpr uint64_t kStopTag = 0;
// EINTR/EAGAIN resubmissions of one request before its error is reported.
constexpr unsigned kMaxRetries = 1000;
// The kernel transfers at most this much per read/write call.
constexpr size_t kMaxRwCount = INT_MAX & ~size_t{4095};

const char* op_name(IoRequest::Op op) {
  switch (op) {
    case IoRequest::Op::kRead:
      return "read";
    case IoRequest::Op::kWrite:
      return "write";
    case IoRequest::Op::kFlush:
      return "flush";
  }
  return "io";
}

uint64_t iov_total(const std::vector<iovec>& iov) {
  uint64_t n = 0;
  for (const iovec& v : iov) n += v.iov_len;
  return n;
}

}  // namespace

struct IoQueue::Impl {
  io_uring ring{};
  int fd = -1;
  Mode mode = Mode::kRing;
  unsigned depth = 0;
  iovec registered{};
  bool has_registered = false;
  IoTap* tap = nullptr;
  std::thread completer;
  std::thread::id completer_id;

  Mutex mu;
  CondVar space;                                    // signalled when a request completes
  std::vector<IoRequest*> staged GUARDED_BY(mu);   // nullptr stages the stop NOP
  std::vector<IoRequest*> batch;                   // the flusher's; only touched while flushing
  unsigned in_flight GUARDED_BY(mu) = 0;           // accepted and not yet completed
  bool flushing GUARDED_BY(mu) = false;            // a thread is moving staged to the ring
  bool backlog GUARDED_BY(mu) = false;             // the completion thread left work to retry
  bool reaping = false;              // completion thread only: running a batch of callbacks

  std::atomic<uint64_t> submitted{0}, enter_calls{0}, fixed_ios{0}, resubmits{0};

  ~Impl() {
    if (ring.ring_fd > 0) io_uring_queue_exit(&ring);
  }

  // Accepts a request (counting it in flight unless it is a continuation) and flushes the
  // staged requests to the ring unless another thread is already doing so.
  void enqueue(IoRequest* req, bool continuation) {
    bool on_completer = std::this_thread::get_id() == completer_id;
    MutexLock lock(mu);
    if (!continuation) {
      if (!on_completer) space.wait(mu, [&]() REQUIRES(mu) { return in_flight < depth; });
      ++in_flight;
    }
    staged.push_back(req);
    // A plugged thread submits when it flushes its plug or waits (bounce/submit_plug.h).
    if (!on_completer && !continuation && submit_plug_take(this, &Impl::flush_plugged)) return;
    // The completion thread flushes once after running a whole batch of callbacks, so
    // resubmissions and follow-up I/O from callbacks share one enter.
    if (on_completer && reaping) return;
    flush_locked();
    submit_plug_forget(this);  // what this thread's plug held went with the others
  }

  // A submission plug's flush (bounce/submit_plug.h): submits what is staged. It may run
  // from a CondVar wait; it throws nothing.
  static void flush_plugged(void* self) {
    auto* impl = static_cast<Impl*>(self);
    MutexLock lock(impl->mu);
    impl->flush_locked();
  }

  // Moves the staged requests to the ring unless another thread is doing so. The flusher
  // loops while other threads stage more during its io_uring_enter, so a burst of submitters
  // shares enters. Releases mu during io_uring_enter and holds it again on return.
  void flush_locked() REQUIRES(mu) {
    if (flushing || (staged.empty() && !backlog)) return;  // the active flusher picks them up
    flushing = true;
    const bool on_completer = std::this_thread::get_id() == completer_id;
    for (;;) {
      batch.swap(staged);
      backlog = false;
      mu.unlock();
      size_t i = 0;
      bool stalled = false;
      for (; i < batch.size(); ++i) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        if (!sqe) {  // SQ full: hand what is queued to the kernel, then retry
          stalled = !submit_ready(on_completer);
          if (!stalled) sqe = io_uring_get_sqe(&ring);
          if (!sqe) {
            stalled = true;
            break;
          }
        }
        prepare(sqe, batch[i]);
      }
      if (!stalled) stalled = !submit_ready(on_completer);
      mu.lock();
      if (stalled) {
        // The kernel wants completions reaped first, and this is the thread that reaps them:
        // keep the rest (unprepared requests first in line, prepared SQEs in the SQ ring) and
        // retry after the next reaping.
        staged.insert(staged.begin(), batch.begin() + static_cast<std::ptrdiff_t>(i), batch.end());
        batch.clear();
        backlog = true;
        break;
      }
      batch.clear();
      if (staged.empty()) break;
    }
    flushing = false;
  }

  // io_uring_submit until the SQ is empty; only the flusher calls it. When the kernel refuses
  // for now (completions backed up, out of memory) another thread waits for the completion
  // thread to reap; the completion thread itself returns false instead, to reap first.
  bool submit_ready(bool on_completer) {
    while (io_uring_sq_ready(&ring) > 0) {
      int r = io_uring_submit(&ring);
      enter_calls.fetch_add(1, std::memory_order_relaxed);
      if (r > 0) {
        submitted.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
        continue;
      }
      if (r == -EINTR) continue;
      if (r == 0 || r == -EAGAIN || r == -EBUSY || r == -ENOMEM) {
        if (on_completer) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      // EBADF, EFAULT, EINVAL...: the ring itself is broken, nothing queued can be answered.
      std::fprintf(stderr, "stablefs: io_uring_enter failed: %s\n", std::strerror(-r));
      std::abort();
    }
    return true;
  }

  // Keeps a copy of req's segments not transferred yet in req->rest, the first one advanced
  // past what was, when a segment was transferred in part (remaining() reads it). Called
  // after each advance(), before the request goes out again. May throw std::bad_alloc.
  static void keep_rest(IoRequest* req) {
    if (req->iov_offset == 0) return;
    const iovec* vec = req->iov.data() + req->iov_index;
    req->rest.assign(vec, vec + (req->iov.size() - req->iov_index));
    req->rest[0].iov_base = static_cast<uint8_t*>(req->rest[0].iov_base) + req->iov_offset;
    req->rest[0].iov_len -= req->iov_offset;
  }

  // The segments of req not transferred yet, *count of them (keep_rest's copy when a segment
  // was transferred in part). Allocates nothing.
  static const iovec* remaining(const IoRequest* req, size_t* count) {
    *count = req->iov.size() - req->iov_index;
    if (req->iov_offset == 0) return req->iov.data() + req->iov_index;
    return req->rest.data();
  }

  // Fills sqe for what is left of req.
  void prepare(io_uring_sqe* sqe, IoRequest* req) {
    if (!req) {
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kStopTag);
      return;
    }
    if (req->tapped) {  // answered by the tap: a NOP carries it to the completion thread
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data(sqe, req);
      SFS_HANDOFF_RELEASE(req);
      return;
    }
    if (req->op == IoRequest::Op::kFlush) {
      io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
      io_uring_sqe_set_data(sqe, req);
      SFS_HANDOFF_RELEASE(req);
      return;
    }
    size_t count = 0;
    const iovec* vec = remaining(req, &count);
    // Empty segments would make a transfer of 0 look like the end of the device.
    while (count > 0 && vec->iov_len == 0) {
      ++vec;
      --count;
    }
    uint64_t offset = req->offset + req->done_bytes;
    bool write = req->op == IoRequest::Op::kWrite;
    if (count == 0) {
      io_uring_prep_nop(sqe);
    } else if (count == 1 && has_registered && inside_registered(*vec)) {
      auto len = static_cast<unsigned>(std::min(vec->iov_len, kMaxRwCount));
      if (write)
        io_uring_prep_write_fixed(sqe, fd, vec->iov_base, len, offset, 0);
      else
        io_uring_prep_read_fixed(sqe, fd, vec->iov_base, len, offset, 0);
      fixed_ios.fetch_add(1, std::memory_order_relaxed);
    } else {
      auto n = static_cast<unsigned>(std::min<size_t>(count, IOV_MAX));  // the rest follows as a short transfer
      if (write)
        io_uring_prep_writev(sqe, fd, vec, n, offset);
      else
        io_uring_prep_readv(sqe, fd, vec, n, offset);
    }
    io_uring_sqe_set_data(sqe, req);
    SFS_HANDOFF_RELEASE(req);  // after the last access: the completion thread owns it now
  }

  bool inside_registered(const iovec& v) const {
    auto p = reinterpret_cast<uintptr_t>(v.iov_base);
    auto base = reinterpret_cast<uintptr_t>(registered.iov_base);
    return p >= base && v.iov_len <= registered.iov_len && p - base <= registered.iov_len - v.iov_len;
  }

  // Moves req's cursor past n transferred bytes.
  static void advance(IoRequest* req, uint64_t n) {
    req->done_bytes += n;
    while (n > 0 && req->iov_index < req->iov.size()) {
      size_t left = req->iov[req->iov_index].iov_len - req->iov_offset;
      if (n < left) {
        req->iov_offset += n;
        return;
      }
      n -= left;
      ++req->iov_index;
      req->iov_offset = 0;
    }
  }

  // Calls on_complete and retires the request. The request is not touched afterwards.
  void finish(IoRequest* req, int64_t result) {
    req->done_bytes = 0;
    req->iov_index = 0;
    req->iov_offset = 0;
    req->retries = 0;
    req->rest.clear();
    if (req->tapped) result = *std::exchange(req->tapped, std::nullopt);
    else if (tap) result = tap->after_complete(*req, result);
    req->on_complete(*req, result);
    MutexLock lock(mu);
    --in_flight;
    space.notify_all();
  }

  void handle(IoRequest* req, int res) {
    SFS_HANDOFF_ACQUIRE(req);
    if (req->tapped) return finish(req, 0);
    // ECANCELED: the queue never cancels a request, but io_uring completes with it what it
    // could not finish in the thread that submitted the request because that thread exited
    // (deferred work of an exiting task). Submitted again from this thread, it is done.
    if (res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
      if (++req->retries <= kMaxRetries) {
        resubmits.fetch_add(1, std::memory_order_relaxed);
        enqueue(req, true);
      } else {
        finish(req, res);
      }
      return;
    }
    if (res < 0) return finish(req, res);
    if (req->op == IoRequest::Op::kFlush) return finish(req, 0);
    uint64_t total = iov_total(req->iov);
    if (req->done_bytes + static_cast<uint64_t>(res) >= total) {
      return finish(req, static_cast<int64_t>(total));
    }
    // Short: nothing at all means the end of the file/device was reached.
    if (res == 0) return finish(req, -EIO);
    advance(req, static_cast<uint64_t>(res));
    try {
      keep_rest(req);
    } catch (const std::bad_alloc&) {
      return finish(req, -ENOMEM);
    }
    resubmits.fetch_add(1, std::memory_order_relaxed);
    enqueue(req, true);
  }

  // Inline mode: the whole request on the calling thread, then on_complete.
  void run_inline(IoRequest* req) {
    {
      MutexLock lock(mu);
      ++in_flight;
    }
    if (req->tapped) return finish(req, 0);
    int64_t result;
    try {
      result = transfer_inline(req);
    } catch (const std::bad_alloc&) {  // the continuation's segment list
      result = -ENOMEM;
    }
    finish(req, result);
  }

  // The system calls of one request: bytes transferred (all of them) or -errno.
  int64_t transfer_inline(IoRequest* req) {
    if (req->op == IoRequest::Op::kFlush) {
      submitted.fetch_add(1, std::memory_order_relaxed);
      while (::fdatasync(fd) != 0) {
        if (errno != EINTR || ++req->retries > kMaxRetries) return -errno;
      }
      return 0;
    }
    const uint64_t total = iov_total(req->iov);
    const bool write = req->op == IoRequest::Op::kWrite;
    while (req->done_bytes < total) {
      size_t count = 0;
      const iovec* vec = remaining(req, &count);
      const int n = static_cast<int>(std::min<size_t>(count, IOV_MAX));  // the rest follows as a short transfer
      const auto offset = static_cast<off_t>(req->offset + req->done_bytes);
      submitted.fetch_add(1, std::memory_order_relaxed);
      const ssize_t r = write ? ::pwritev(fd, vec, n, offset) : ::preadv(fd, vec, n, offset);
      if (r < 0) {
        const int err = errno;
        if ((err == EINTR || err == EAGAIN) && ++req->retries <= kMaxRetries) {
          resubmits.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        return -err;
      }
      if (r == 0) return -EIO;  // the end of the file/device
      advance(req, static_cast<uint64_t>(r));
      keep_rest(req);
      if (req->done_bytes < total) resubmits.fetch_add(1, std::memory_order_relaxed);
    }
    return static_cast<int64_t>(total);
  }

  void reap_loop() {
    constexpr unsigned kBatch = 64;
    io_uring_cqe* cqes[kBatch];
    struct Done {
      uint64_t tag;
      int res;
    } done[kBatch];
    { MutexLock lock(mu); }  // create() has published completer_id
    bool stop = false;
    bool retry_backlog = false;
    while (!stop) {
      io_uring_cqe* first = nullptr;
      int r;
      if (retry_backlog) {
        __kernel_timespec ts{0, 1000000};  // 1 ms, then try the refused submissions again
        r = io_uring_wait_cqe_timeout(&ring, &first, &ts);
      } else {
        r = io_uring_wait_cqe(&ring, &first);
      }
      if (r < 0) {
        if (r == -ETIME) {
          MutexLock lock(mu);
          flush_locked();
          retry_backlog = backlog;
        } else if (r != -EINTR && r != -EAGAIN) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        continue;
      }
      unsigned n = io_uring_peek_batch_cqe(&ring, cqes, kBatch);
      for (unsigned i = 0; i < n; ++i) done[i] = {io_uring_cqe_get_data64(cqes[i]), cqes[i]->res};
      io_uring_cq_advance(&ring, n);  // free the CQ slots before running callbacks
      reaping = true;
      for (unsigned i = 0; i < n; ++i) {
        if (done[i].tag == kStopTag) {
          stop = true;
          continue;
        }
        handle(reinterpret_cast<IoRequest*>(done[i].tag), done[i].res);
      }
      reaping = false;
      MutexLock lock(mu);
      flush_locked();
      retry_backlog = backlog;
    }
  }
};

Result<std::unique_ptr<IoQueue>> IoQueue::create(int fd, unsigned depth, const iovec* registered, IoTap* tap,
                                                 Mode mode) {
  if (mode == Mode::kInline) {
    auto impl = std::make_unique<Impl>();
    impl->fd = fd;
    impl->mode = mode;
    impl->depth = depth;
    impl->tap = tap;
    return std::unique_ptr<IoQueue>(new IoQueue(std::move(impl)));
  }
  if (depth == 0 || depth > 4096) {
    std::string msg = "io queue depth ";
    msg += std::to_string(depth);
    msg += " is out of range (1..4096)";
    return Status::error(EINVAL, msg);
  }
  auto impl = std::make_unique<Impl>();
  impl->fd = fd;
  impl->depth = depth;
  impl->tap = tap;
  io_uring_params params{};
  // Room for every in-flight request's completion with margin (callbacks may add requests).
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  params.cq_entries = depth * 4;
  int r = io_uring_queue_init_params(depth, &impl->ring, &params);
  if (r == -EINVAL) {  // kernels before 5.18 lack SUBMIT_ALL
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = depth * 4;
    r = io_uring_queue_init_params(depth, &impl->ring, &params);
  }
  if (r < 0) {
    impl->ring.ring_fd = -1;
    std::string msg = "cannot set up io_uring: ";
    msg += std::strerror(-r);
    return Status::error(-r, msg);
  }
  if (registered && registered->iov_base && registered->iov_len > 0) {
    // Refused registration (RLIMIT_MEMLOCK, > 1 GiB) only costs the fixed-buffer fast path.
    if (io_uring_register_buffers(&impl->ring, registered, 1) == 0) {
      impl->registered = *registered;
      impl->has_registered = true;
    }
  }
  impl->batch.reserve(depth);
  Impl* raw = impl.get();
  {
    // completer_id must be known before any submit() compares against it.
    MutexLock lock(raw->mu);
    raw->staged.reserve(depth);
    raw->completer = std::thread([raw] { raw->reap_loop(); });
    raw->completer_id = raw->completer.get_id();
  }
  return std::unique_ptr<IoQueue>(new IoQueue(std::move(impl)));
}

IoQueue::IoQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

IoQueue::~IoQueue() {
  Impl& q = *impl_;
  {
    MutexLock lock(q.mu);
    q.space.wait(q.mu, [&]() REQUIRES(q.mu) { return q.in_flight == 0; });
  }
  if (q.mode == Mode::kInline) return;  // no ring, no completion thread
  q.enqueue(nullptr, true);  // the stop NOP: the completion thread exits when it sees it
  q.completer.join();
}

void IoQueue::submit(IoRequest* req) {
  req->done_bytes = 0;
  req->iov_index = 0;
  req->iov_offset = 0;
  req->retries = 0;
  req->tapped = impl_->tap ? impl_->tap->before_submit(*req) : std::nullopt;
  if (impl_->mode == Mode::kInline) return impl_->run_inline(req);
  impl_->enqueue(req, false);
}

Result<uint64_t> IoQueue::run(IoRequest::Op op, uint64_t offset, std::vector<iovec> iov) {
  if (std::this_thread::get_id() == impl_->completer_id)
    return Status::error(EDEADLK, "IoQueue::run called on the completion thread");
  Mutex m;
  CondVar cv;
  bool finished = false;  // guarded by m
  int64_t result = 0;
  IoRequest req;
  req.op = op;
  req.offset = offset;
  req.iov = std::move(iov);
  uint64_t length = iov_total(req.iov);
  req.on_complete = [&](IoRequest&, int64_t r) {
    MutexLock lock(m);
    result = r;
    finished = true;
    cv.notify_one();
  };
  submit(&req);
  {
    MutexLock lock(m);
    cv.wait(m, [&]() REQUIRES(m) { return finished; });
  }
  if (result >= 0) return static_cast<uint64_t>(result);
  std::string msg = op_name(op);
  if (op != IoRequest::Op::kFlush) {
    msg += " of ";
    msg += std::to_string(length);
    msg += " bytes at device byte ";
    msg += std::to_string(offset);
  }
  msg += " failed: ";
  msg += std::strerror(static_cast<int>(-result));
  return Status::error(static_cast<int>(-result), msg);
}

uint64_t IoQueue::submitted() const { return impl_->submitted.load(std::memory_order_relaxed); }
uint64_t IoQueue::enter_calls() const { return impl_->enter_calls.load(std::memory_order_relaxed); }
uint64_t IoQueue::fixed_ios() const { return impl_->fixed_ios.load(std::memory_order_relaxed); }
uint64_t IoQueue::resubmits() const { return impl_->resubmits.load(std::memory_order_relaxed); }
bool IoQueue::fixed_buffers() const { return impl_->has_registered; }
unsigned IoQueue::depth() const { return impl_->depth; }
IoQueue::Mode IoQueue::mode() const { return impl_->mode; }

}  // namespace stablefs
