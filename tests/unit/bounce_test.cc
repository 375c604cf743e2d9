// bounce/: the bounce pool, the io_uring queue, the I/O unit and the stable-pages policy,
// against real O_DIRECT files in /var/tmp (and /dev/zram0, a hand-configured loop device).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "bounce/aligned_buffer.h"
#include "bounce/bounce_pool.h"
#include "bounce/checksum.h"
#include "bounce/file_device.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"
#include "bounce/io_unit.h"
#include "bounce/mutex.h"
#include "bounce/stable_pages.h"
#include "bounce/submission.h"
#include "bounce/submit_plug.h"

namespace stablefs {
namespace {

using namespace std::chrono_literals;
constexpr auto kWaitLimit = 20s;  // every wait in these tests is bounded by this

// A file in /var/tmp, removed when the test ends however it ends.
struct TempImage {
  std::string path;
  explicit TempImage(uint64_t size) {
    char name[] = "/var/tmp/stablefs-bounce-XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    REQUIRE(FileDevice::create_image(path, size).ok());
  }
  ~TempImage() { ::unlink(path.c_str()); }
};

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The pattern byte range [offset, offset+len) of a device written with seed (offset, len
// multiples of 8).
void fill_pattern(uint8_t* p, uint64_t offset, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = mix((offset + i) ^ seed);
    std::memcpy(p + i, &v, 8);
  }
}

bool matches_pattern(const uint8_t* p, uint64_t offset, size_t len, uint64_t seed) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = mix((offset + i) ^ seed), got;
    std::memcpy(&got, p + i, 8);
    if (v != got) return false;
  }
  return true;
}

// I/O still in flight references the test's buffers, so a test cannot unwind past it: a wait
// that times out ends the run loudly instead of hanging or corrupting memory.
[[noreturn]] void die_waiting(const char* what) {
  std::fprintf(stderr, "bounce_test: timed out waiting for %s\n", what);
  std::abort();
}

// Counts down completions from any thread; wait() is bounded.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int64_t count;
  explicit Latch(int64_t n) : count(n) {}
  void arrive() {
    std::lock_guard<std::mutex> lock(mu);
    if (--count <= 0) cv.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, kWaitLimit, [&] { return count <= 0; })) die_waiting("I/O completions");
    return true;
  }
};

std::unique_ptr<FileDevice> open_image(const std::string& path) {
  auto dev = FileDevice::open(path, OpenOptions{});
  REQUIRE(dev.ok());
  REQUIRE((*dev)->direct_io());
  return std::move(dev).value();
}

// Submits a unit and waits (bounded) for done; returns its status.
Status run_unit(IoUnit& unit, IoQueue& queue, IoStats& stats) {
  auto done = std::make_shared<std::promise<Status>>();
  auto fut = done->get_future();
  unit.submit(queue, stats, [done](IoUnit&, Status s) { done->set_value(std::move(s)); });
  if (fut.wait_for(kWaitLimit) != std::future_status::ready) die_waiting("an I/O unit");
  return fut.get();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

std::string sh_output(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

// ---------------------------------------------------------------- BouncePool

TEST_CASE("bounce pool: greedy sizes, largest chunk first, halving down to min_chunk") {
  BouncePool pool(4u << 20, 4096);
  CHECK(pool.capacity() == (4u << 20));
  CHECK(reinterpret_cast<uintptr_t>(pool.arena().iov_base) % 4096 == 0);
  CHECK(pool.arena().iov_len == pool.capacity());
  BounceBuffer a = pool.get(1u << 20);
  CHECK(a.size() == (1u << 20));
  BounceBuffer b = pool.get(3u << 20);  // capped at max_chunk
  CHECK(b.size() == (1u << 20));
  BounceBuffer c = pool.get(12288);  // the largest power of two not above the request
  CHECK(c.size() == 8192);
  BounceBuffer d = pool.get(5000);  // rounded up to min_chunk multiples first
  CHECK(d.size() == 8192);
  BounceBuffer e = pool.get(0);
  CHECK(e.size() == 4096);
  CHECK(pool.try_get(SIZE_MAX).size() == (1u << 20));  // no overflow in the rounding
  CHECK(pool.get_total(SIZE_MAX).empty());
  CHECK(pool.in_use_bytes() == (2u << 20) + 8192 * 2 + 4096);
  // Chunks lie inside the arena, aligned to their size, and do not overlap.
  auto base = reinterpret_cast<uintptr_t>(pool.arena().iov_base);
  std::vector<std::pair<uintptr_t, size_t>> spans;
  for (BounceBuffer* x : {&a, &b, &c, &d, &e}) {
    auto p = reinterpret_cast<uintptr_t>(x->data());
    CHECK(p >= base);
    CHECK(p + x->size() <= base + pool.capacity());
    CHECK((p - base) % x->size() == 0);
    spans.push_back({p, x->size()});
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) CHECK(spans[i - 1].first + spans[i - 1].second <= spans[i].first);

  // Moves keep one owner; reset() returns at once.
  BounceBuffer moved = std::move(c);
  CHECK(c.empty());
  CHECK(moved.size() == 8192);
  moved.reset();
  CHECK(moved.empty());
  CHECK(pool.in_use_bytes() == (2u << 20) + 8192 + 4096);
  a = std::move(b);  // a's old chunk goes back
  CHECK(pool.in_use_bytes() == (1u << 20) + 8192 + 4096);
}

TEST_CASE("bounce pool: falls back to smaller chunks, and buddies merge back to whole max_chunks") {
  BouncePool pool(2u << 20, 4096);
  std::vector<BounceBuffer> small;
  for (;;) {
    BounceBuffer b = pool.try_get(4096);
    if (b.empty()) break;
    small.push_back(std::move(b));
  }
  CHECK(small.size() == 512);
  CHECK(pool.in_use_bytes() == pool.capacity());
  // Free every other block: 1 MiB free, but only in 4 KiB pieces that cannot merge.
  for (size_t i = 0; i < small.size(); i += 2) small[i].reset();
  BounceBuffer big = pool.try_get(1u << 20);
  CHECK(big.size() == 4096);  // a request never fails for want of a large chunk
  big.reset();
  auto set = pool.get_total(64 * 1024);
  CHECK(set.size() == 16);
  for (auto& b : set) CHECK(b.size() == 4096);
  set.clear();
  // Return everything: the pool is two whole 1 MiB chunks again.
  small.clear();
  CHECK(pool.in_use_bytes() == 0);
  BounceBuffer m1 = pool.try_get(1u << 20), m2 = pool.try_get(1u << 20);
  CHECK(m1.size() == (1u << 20));
  CHECK(m2.size() == (1u << 20));
  CHECK(pool.try_get(4096).empty());

  // Random sizes and return order always merge back completely.
  m1.reset();
  m2.reset();
  std::mt19937 rng(3);
  for (int round = 0; round < 20; ++round) {
    std::vector<BounceBuffer> held;
    for (;;) {
      BounceBuffer b = pool.try_get(4096u << (rng() % 9));
      if (b.empty()) break;
      held.push_back(std::move(b));
    }
    size_t total = 0;
    for (auto& b : held) total += b.size();
    CHECK(total == pool.capacity());
    std::shuffle(held.begin(), held.end(), rng);
    held.clear();
    CHECK(pool.in_use_bytes() == 0);
  }
  BounceBuffer w1 = pool.try_get(1u << 20), w2 = pool.try_get(1u << 20);
  CHECK((w1.size() == (1u << 20) && w2.size() == (1u << 20)));
}

TEST_CASE("bounce pool: an exhausted pool blocks get() until another thread returns a buffer") {
  BouncePool pool(1u << 20, 4096);
  BounceBuffer all = pool.get(1u << 20);
  CHECK(pool.try_get(4096).empty());
  std::atomic<bool> got{false};
  auto waiter = std::async(std::launch::async, [&] {
    BounceBuffer b = pool.get(64 * 1024);
    got = true;
    return b.size();
  });
  CHECK(waiter.wait_for(100ms) == std::future_status::timeout);
  CHECK_FALSE(got.load());
  all.reset();  // returned from this thread: the waiter resumes
  REQUIRE(waiter.wait_for(kWaitLimit) == std::future_status::ready);
  CHECK(waiter.get() == 64 * 1024);
  CHECK(pool.waits() == 1);
  CHECK(pool.in_use_bytes() == 0);
}

TEST_CASE("bounce pool: get_total takes a whole set at once and serves waiters in order") {
  BouncePool pool(2u << 20, 4096);
  CHECK(pool.get_total(0).empty());
  CHECK(pool.get_total((2u << 20) + 1).empty());  // could never be satisfied
  BounceBuffer h1 = pool.get(1u << 20), h2 = pool.get(1u << 20);
  std::mutex order_mu;
  std::vector<char> order;
  auto a = std::async(std::launch::async, [&] {
    auto set = pool.get_total(2u << 20);
    std::lock_guard<std::mutex> lock(order_mu);
    order.push_back('A');
    size_t n = 0;
    for (auto& b : set) n += b.size();
    return n;  // the set goes back as the task ends
  });
  for (int i = 0; i < 2000 && pool.waits() < 1; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(pool.waits() == 1);
  auto b = std::async(std::launch::async, [&] {
    auto set = pool.get_total(4096);
    std::lock_guard<std::mutex> lock(order_mu);
    order.push_back('B');
    return set.size();
  });
  for (int i = 0; i < 2000 && pool.waits() < 2; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(pool.waits() == 2);
  h1.reset();  // 1 MiB free: enough for B, but B queues behind A
  CHECK(b.wait_for(100ms) == std::future_status::timeout);
  h2.reset();
  REQUIRE(a.wait_for(kWaitLimit) == std::future_status::ready);
  REQUIRE(b.wait_for(kWaitLimit) == std::future_status::ready);
  CHECK(a.get() == (2u << 20));
  CHECK(b.get() == 1);
  CHECK(order == std::vector<char>{'A', 'B'});
  CHECK(pool.in_use_bytes() == 0);
}

TEST_CASE("bounce pool: concurrent users never exceed capacity nor share a byte") {
  BouncePool pool(4u << 20, 4096, 256 * 1024);
  std::atomic<bool> over{false}, shared{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 300; ++i) {
        std::vector<BounceBuffer> held;
        if (rng() % 2) {
          held = pool.get_total(4096 + rng() % (512 * 1024));
        } else {
          for (int k = 0; k < 3; ++k) {
            BounceBuffer b = pool.try_get(4096 + rng() % (256 * 1024));
            if (!b.empty()) held.push_back(std::move(b));
          }
        }
        if (pool.in_use_bytes() > pool.capacity()) over = true;
        for (auto& b : held) std::memset(b.data(), t + 1, b.size());
        std::this_thread::yield();
        for (auto& b : held)
          if (b.data()[0] != t + 1 || b.data()[b.size() - 1] != t + 1) shared = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK_FALSE(over.load());
  CHECK_FALSE(shared.load());
  CHECK(pool.in_use_bytes() == 0);
  std::vector<BounceBuffer> whole;
  for (int i = 0; i < 16; ++i) whole.push_back(pool.try_get(256 * 1024));
  for (auto& b : whole) CHECK(b.size() == 256 * 1024);
}

// ---------------------------------------------------------------- IoQueue

TEST_CASE("io queue: concurrent random reads and writes on an O_DIRECT file, fixed buffers, flush") {
  constexpr uint64_t kSize = 32u << 20;
  constexpr uint64_t kSeed = 0x5eed;
  TempImage img(kSize);
  auto dev = open_image(img.path);
  BouncePool pool(32u << 20, 4096);  // never exhausted here: 16 MiB at most in use
  iovec arena = pool.arena();
  auto q = IoQueue::create(dev->fd(), 32, &arena);
  REQUIRE(q.ok());
  IoQueue& queue = **q;
  CHECK(queue.fixed_buffers());
  CHECK(queue.depth() == 32);

  // Fill the file: 1 MiB writes from the pool (fixed) and from plain buffers (writev), two
  // segments each for the latter, all in flight together.
  {
    std::vector<AlignedBuffer> bufs;
    std::vector<BounceBuffer> chunks;
    std::vector<std::unique_ptr<IoRequest>> reqs;
    Latch latch(kSize >> 20);
    std::atomic<int> failures{0};
    for (uint64_t off = 0; off < kSize; off += 1u << 20) {
      auto req = std::make_unique<IoRequest>();
      req->op = IoRequest::Op::kWrite;
      req->offset = off;
      if ((off >> 20) % 2 == 0) {
        BounceBuffer c = pool.get(1u << 20);
        REQUIRE(c.size() == (1u << 20));
        fill_pattern(c.data(), off, c.size(), kSeed);
        req->iov = {{c.data(), c.size()}};
        chunks.push_back(std::move(c));
      } else {
        bufs.emplace_back(1u << 20);
        uint8_t* p = bufs.back().data();
        fill_pattern(p, off, 1u << 20, kSeed);
        req->iov = {{p, 256 * 1024}, {p + 256 * 1024, 768 * 1024}};
      }
      req->on_complete = [&](IoRequest&, int64_t r) {
        if (r != (1 << 20)) ++failures;
        latch.arrive();
      };
      reqs.push_back(std::move(req));
    }
    for (auto& r : reqs) queue.submit(r.get());
    REQUIRE(latch.wait());
    CHECK(failures == 0);
  }
  CHECK(queue.fixed_ios() >= 16);

  // Random concurrent I/O: reads are checked against the pattern, writes rewrite it (so any
  // interleaving reads the same bytes).
  std::atomic<int> bad{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      constexpr int kBatch = 16;
      for (int round = 0; round < 6; ++round) {
        std::vector<IoRequest> reqs(kBatch);
        std::vector<AlignedBuffer> bufs;
        std::vector<BounceBuffer> chunks;
        bufs.reserve(kBatch);
        Latch latch(kBatch);
        for (int i = 0; i < kBatch; ++i) {
          IoRequest& r = reqs[i];
          size_t len = 4096 * (1 + rng() % 64);
          uint64_t off = (rng() % ((kSize - len) / 4096)) * 4096;
          bool write = rng() % 3 == 0;
          uint8_t* p;
          BounceBuffer c = rng() % 2 ? pool.try_get(len) : BounceBuffer();
          if (!c.empty()) {
            p = c.data();
            len = std::min(len, c.size());
            r.iov = {{p, len}};
            chunks.push_back(std::move(c));
          } else {
            bufs.emplace_back(len);
            p = bufs.back().data();
            size_t cut = 4096 * (rng() % (len / 4096));
            if (cut) r.iov = {{p, cut}, {p + cut, len - cut}};
            else r.iov = {{p, len}};
          }
          r.op = write ? IoRequest::Op::kWrite : IoRequest::Op::kRead;
          r.offset = off;
          if (write) fill_pattern(p, off, len, kSeed);
          r.on_complete = [&, p, off, len, write](IoRequest&, int64_t res) {
            if (res != static_cast<int64_t>(len)) ++errors;
            else if (!write && !matches_pattern(p, off, len, kSeed)) ++bad;
            latch.arrive();
          };
          queue.submit(&r);
        }
        latch.wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(bad == 0);

  auto flushed = queue.run(IoRequest::Op::kFlush, 0, {});
  CHECK(flushed.ok());
  CHECK(queue.enter_calls() >= 1);
  CHECK(queue.enter_calls() <= queue.submitted());
  MESSAGE("io queue: ", queue.submitted(), " SQEs in ", queue.enter_calls(), " enters, ", queue.fixed_ios(), " fixed");

  // An independent reader (pread, buffered) sees the pattern everywhere.
  int fd = ::open(img.path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::vector<uint8_t> all(kSize);
  CHECK(::pread(fd, all.data(), kSize, 0) == static_cast<ssize_t>(kSize));
  ::close(fd);
  CHECK(matches_pattern(all.data(), 0, kSize, kSeed));
}

TEST_CASE("io queue: reading past the end is EIO, a bad buffer is the kernel's error, never a crash") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 8);
  REQUIRE(q.ok());
  IoQueue& queue = **q;
  CHECK_FALSE(queue.fixed_buffers());
  AlignedBuffer buf(3 * 4096);

  auto beyond = queue.run(IoRequest::Op::kRead, 1u << 20, {{buf.data(), 4096}});
  REQUIRE_FALSE(beyond.ok());
  CHECK(beyond.status().code() == EIO);
  CHECK(beyond.status().message().find("device byte 1048576") != std::string::npos);

  // Straddling the end: 4 KiB arrive, the rest is EOF.
  auto straddle = queue.run(IoRequest::Op::kRead, (1u << 20) - 4096, {{buf.data(), 8192}});
  REQUIRE_FALSE(straddle.ok());
  CHECK(straddle.status().code() == EIO);

  // O_DIRECT with a misaligned buffer: EINVAL from the device, reported not retried. (A read
  // of a hole is zero-filled without the check, so the block is written first.)
  auto misaligned_write = queue.run(IoRequest::Op::kWrite, 0, {{buf.data() + 1, 4096}});
  REQUIRE_FALSE(misaligned_write.ok());
  CHECK(misaligned_write.status().code() == EINVAL);
  CHECK(misaligned_write.status().message() == "write of 4096 bytes at device byte 0 failed: Invalid argument");
  REQUIRE(queue.run(IoRequest::Op::kWrite, 0, {{buf.data(), 4096}}).ok());
  auto misaligned = queue.run(IoRequest::Op::kRead, 0, {{buf.data() + 1, 4096}});
  REQUIRE_FALSE(misaligned.ok());
  CHECK(misaligned.status().code() == EINVAL);

  // Length 0 and a flush complete with 0.
  auto empty = queue.run(IoRequest::Op::kRead, 0, {});
  REQUIRE(empty.ok());
  CHECK(*empty == 0);
  auto flush = queue.run(IoRequest::Op::kFlush, 0, {});
  REQUIRE(flush.ok());
  CHECK(*flush == 0);

  // The queue still works after errors.
  auto fine = queue.run(IoRequest::Op::kRead, 0, {{buf.data(), 4096}});
  REQUIRE(fine.ok());
  CHECK(*fine == 4096);

  CHECK_FALSE(IoQueue::create(dev->fd(), 0).ok());
}

TEST_CASE("io queue: more segments than one system call takes are continued as a short transfer") {
  constexpr size_t kSegs = 1100;  // > IOV_MAX (1024)
  TempImage img(kSegs * 4096);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 4);
  REQUIRE(q.ok());
  AlignedBuffer src(kSegs * 4096), dst(kSegs * 4096);
  fill_pattern(src.data(), 0, src.size(), 9);
  std::vector<iovec> wv, rv;
  for (size_t i = 0; i < kSegs; ++i) {
    // Reverse order in memory so a wrong continuation would scramble the data.
    wv.push_back({src.data() + (kSegs - 1 - i) * 4096, 4096});
    rv.push_back({dst.data() + (kSegs - 1 - i) * 4096, 4096});
  }
  auto w = (*q)->run(IoRequest::Op::kWrite, 0, wv);
  REQUIRE(w.ok());
  CHECK(*w == kSegs * 4096);
  auto r = (*q)->run(IoRequest::Op::kRead, 0, rv);
  REQUIRE(r.ok());
  CHECK(*r == kSegs * 4096);
  CHECK(std::memcmp(src.data(), dst.data(), src.size()) == 0);
  CHECK((*q)->resubmits() >= 2);
}

TEST_CASE("io queue: destruction waits for in-flight I/O, including I/O submitted from callbacks") {
  TempImage img(8u << 20);
  auto dev = open_image(img.path);
  constexpr int kReqs = 64;
  std::atomic<int> completed{0}, follow_ups{0};
  std::vector<AlignedBuffer> bufs;
  std::vector<IoRequest> reqs(kReqs), chained(kReqs);
  for (int i = 0; i < kReqs; ++i) bufs.emplace_back(128 * 1024);
  {
    auto q = IoQueue::create(dev->fd(), 16);
    REQUIRE(q.ok());
    IoQueue* queue = q->get();
    for (int i = 0; i < kReqs; ++i) {
      chained[i].op = IoRequest::Op::kRead;
      chained[i].offset = static_cast<uint64_t>(i) * 128 * 1024;
      chained[i].iov = {{bufs[i].data(), 128 * 1024}};
      chained[i].on_complete = [&](IoRequest&, int64_t r) {
        if (r == 128 * 1024) ++follow_ups;
      };
      reqs[i].op = IoRequest::Op::kWrite;
      reqs[i].offset = chained[i].offset;
      reqs[i].iov = chained[i].iov;
      reqs[i].on_complete = [&, queue, i](IoRequest&, int64_t r) {
        if (r == 128 * 1024) ++completed;
        queue->submit(&chained[i]);  // from the completion thread: never waits for space
      };
      queue->submit(&reqs[i]);
    }
    // q is destroyed here with most of the I/O still in flight.
  }
  CHECK(completed == kReqs);
  CHECK(follow_ups == kReqs);
}

// When the thread that submitted a request has exited, io_uring cannot finish the request's
// deferred work in that thread and completes it with ECANCELED (a write the device pushed back
// with EAGAIN, a read armed for poll). The FUSE workers end at unmount while writes already
// answered may be in that state: each must still be done. A read from an empty pipe is the
// case the kernel makes reliable: it waits for data after its submitter is gone.
TEST_CASE("io queue: a request whose submitting thread exited is still done, not cancelled") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  AlignedBuffer buf(4096);
  std::mutex mu;
  std::condition_variable cv;
  std::optional<int64_t> result;
  IoRequest req;
  req.op = IoRequest::Op::kRead;
  req.iov = {{buf.data(), 4096}};
  req.on_complete = [&](IoRequest&, int64_t r) {
    std::lock_guard lock(mu);
    result = r;
    cv.notify_all();
  };
  {
    auto q = IoQueue::create(fds[0], 4);
    REQUIRE(q.ok());
    // Destroyed before q, on any way out: the write end's close ends a read still waiting
    // (end of file), so q's destructor, which waits for it, cannot hang.
    struct CloseWriteEnd {
      int& fd;
      ~CloseWriteEnd() {
        ::close(fd);
        fd = -1;
      }
    } close_write_end{fds[1]};
    std::thread([&] { (*q)->submit(&req); }).join();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the submitter has gone
    std::vector<char> data(4096, 'p');
    REQUIRE(::write(fds[1], data.data(), data.size()) == 4096);
    std::unique_lock lock(mu);
    CHECK(cv.wait_for(lock, std::chrono::seconds(10), [&] { return result.has_value(); }));
  }
  REQUIRE(result.has_value());
  CHECK(*result == 4096);
  CHECK(buf.data()[0] == 'p');
  CHECK(buf.data()[4095] == 'p');
  ::close(fds[0]);
}

// Reads of 4 KiB at i * 4 KiB that count their completions.
struct CountedReads {
  std::vector<AlignedBuffer> bufs;
  std::vector<IoRequest> reqs;
  std::atomic<int> completed{0};
  explicit CountedReads(int n) : reqs(static_cast<size_t>(n)) {
    for (int i = 0; i < n; ++i) {
      bufs.emplace_back(4096);
      reqs[i].op = IoRequest::Op::kRead;
      reqs[i].offset = static_cast<uint64_t>(i) * 4096;
      reqs[i].iov = {{bufs.back().data(), 4096}};
      reqs[i].on_complete = [this](IoRequest&, int64_t r) {
        if (r == 4096) ++completed;
      };
    }
  }
  bool wait_for(int n) {
    const auto end = std::chrono::steady_clock::now() + kWaitLimit;
    while (completed.load() < n && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
    return completed.load() >= n;
  }
};

TEST_CASE("io queue, plugged: requests wait in the thread's plug and go out in one enter when it flushes") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 64);
  REQUIRE(q.ok());
  constexpr int kReqs = 2 * SubmitPlug::kMaxStaged + 1;
  CountedReads reads(kReqs + 1);
  {
    SubmitPlug plug;
    const uint64_t enters = (*q)->enter_calls();
    for (unsigned i = 0; i < SubmitPlug::kMaxStaged; ++i) (*q)->submit(&reads.reqs[i]);
    std::this_thread::sleep_for(50ms);
    CHECK((*q)->enter_calls() == enters);  // nothing went to the kernel
    CHECK(reads.completed.load() == 0);
    plug.flush();
    REQUIRE(reads.wait_for(SubmitPlug::kMaxStaged));
    CHECK((*q)->enter_calls() == enters + 1);  // all of them in one io_uring_enter

    // A full plug submits the next request at once, with what it held: no flush needed.
    for (int i = SubmitPlug::kMaxStaged; i < kReqs; ++i) (*q)->submit(&reads.reqs[i]);
    REQUIRE(reads.wait_for(kReqs));
    (*q)->submit(&reads.reqs[kReqs]);
    std::this_thread::sleep_for(20ms);
    CHECK(reads.completed.load() == kReqs);  // held until the plug closes
  }
  REQUIRE(reads.wait_for(kReqs + 1));
}

TEST_CASE("io queue, plugged: a thread that waits flushes its plug first, so it never waits on its own I/O") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 4);  // small: the fifth submission waits for space
  REQUIRE(q.ok());
  IoQueue* queue = q->get();
  CountedReads reads(12);
  std::promise<void> finished;
  std::future<void> done = finished.get_future();
  std::thread plugged([&] {
    SubmitPlug plug;
    // The depth wait (a CondVar wait on the queue's own lock) flushes the staged four.
    for (int i = 0; i < 8; ++i) queue->submit(&reads.reqs[i]);
    // A wait of the thread's own on a completion it staged.
    Mutex mu;
    CondVar cv;
    bool last_done = false;
    reads.reqs[8].on_complete = [&](IoRequest&, int64_t r) {
      if (r == 4096) ++reads.completed;
      MutexLock lock(mu);
      last_done = true;
      cv.notify_all();
    };
    queue->submit(&reads.reqs[8]);
    {
      MutexLock lock(mu);
      cv.wait(mu, [&]() REQUIRES(mu) { return last_done; });
    }
    // A synchronous request on the plugged thread.
    auto r = queue->run(IoRequest::Op::kRead, 9 * 4096, reads.reqs[9].iov);
    if (r.ok() && *r == 4096) ++reads.completed;
    finished.set_value();
  });
  const bool in_time = done.wait_for(kWaitLimit) == std::future_status::ready;
  CHECK(in_time);
  if (!in_time) {
    // Submissions from any thread flush what is staged: unstick the thread before joining.
    queue->submit(&reads.reqs[10]);
    queue->submit(&reads.reqs[11]);
  }
  plugged.join();
  CHECK(reads.wait_for(10));
}

TEST_CASE("io queue: callbacks may flood a tiny ring far beyond its depth (SQ full, CQ overflow)") {
  TempImage img(4u << 20);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 2);  // SQ 2 entries, CQ 8
  REQUIRE(q.ok());
  IoQueue* queue = q->get();
  constexpr int kFanOut = 64;
  AlignedBuffer buf(kFanOut * 2 * 4096);
  std::vector<IoRequest> leaves(2 * kFanOut), roots(2);
  Latch latch(2 * kFanOut);
  std::atomic<int> ok{0};
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < kFanOut; ++i) {
      IoRequest& leaf = leaves[r * kFanOut + i];
      leaf.op = IoRequest::Op::kRead;
      leaf.offset = static_cast<uint64_t>(r * kFanOut + i) * 4096;
      leaf.iov = {{buf.data() + (r * kFanOut + i) * 4096, 4096}};
      leaf.on_complete = [&](IoRequest&, int64_t res) {
        if (res == 4096) ++ok;
        latch.arrive();
      };
    }
    roots[r].op = IoRequest::Op::kFlush;
    roots[r].on_complete = [&, r](IoRequest&, int64_t) {
      for (int i = 0; i < kFanOut; ++i) queue->submit(&leaves[r * kFanOut + i]);
    };
  }
  queue->submit(&roots[0]);
  queue->submit(&roots[1]);
  latch.wait();
  CHECK(ok == 2 * kFanOut);
  CHECK(queue->submitted() >= 2 + 2 * kFanOut);
}

// ---------------------------------------------------------------- IoUnit

TEST_CASE("io queue, inline: each request completes on the submitting thread before submit returns") {
  TempImage img(4u << 20);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 8, nullptr, nullptr, IoQueue::Mode::kInline);
  REQUIRE(q.ok());
  IoQueue& queue = **q;
  CHECK(queue.mode() == IoQueue::Mode::kInline);
  CHECK_FALSE(queue.fixed_buffers());

  // Four threads write and read back their own quarter, checking where each callback ran.
  std::atomic<int> wrong_thread{0}, late{0}, mismatched{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      AlignedBuffer src(64 * 1024), dst(64 * 1024);
      for (int i = 0; i < 16; ++i) {
        const uint64_t off = (static_cast<uint64_t>(t) * 16 + i) * 64 * 1024;
        fill_pattern(src.data(), off, src.size(), 21);
        for (IoRequest::Op op : {IoRequest::Op::kWrite, IoRequest::Op::kRead}) {
          bool completed = false;
          IoRequest req;
          req.op = op;
          req.offset = off;
          req.iov = {{op == IoRequest::Op::kWrite ? src.data() : dst.data(), 64 * 1024}};
          const std::thread::id me = std::this_thread::get_id();
          req.on_complete = [&](IoRequest&, int64_t r) {
            if (std::this_thread::get_id() != me) ++wrong_thread;
            if (r != 64 * 1024) ++mismatched;
            completed = true;
          };
          queue.submit(&req);
          if (!completed) ++late;
        }
        if (!matches_pattern(dst.data(), off, dst.size(), 21)) ++mismatched;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong_thread == 0);
  CHECK(late == 0);
  CHECK(mismatched == 0);
  CHECK(queue.submitted() >= 128);
  CHECK(queue.enter_calls() == 0);

  // A callback may submit follow-up I/O (it completes inline, nested).
  AlignedBuffer a(4096), b(4096);
  fill_pattern(a.data(), 0, 4096, 22);
  int64_t second = -1;
  IoRequest follow;
  follow.op = IoRequest::Op::kRead;
  follow.offset = 0;
  follow.iov = {{b.data(), 4096}};
  follow.on_complete = [&](IoRequest&, int64_t r) { second = r; };
  IoRequest first;
  first.op = IoRequest::Op::kWrite;
  first.offset = 0;
  first.iov = {{a.data(), 4096}};
  first.on_complete = [&](IoRequest&, int64_t r) {
    if (r == 4096) queue.submit(&follow);
  };
  queue.submit(&first);
  CHECK(second == 4096);
  CHECK(std::memcmp(a.data(), b.data(), 4096) == 0);
}

TEST_CASE("io queue, inline: end of device, bad buffers, flush, empty and split requests as through the ring") {
  constexpr size_t kSegs = 1100;  // > IOV_MAX (1024)
  TempImage img(kSegs * 4096);
  auto dev = open_image(img.path);
  auto q = IoQueue::create(dev->fd(), 0, nullptr, nullptr, IoQueue::Mode::kInline);  // depth unused
  REQUIRE(q.ok());
  IoQueue& queue = **q;
  AlignedBuffer buf(3 * 4096);
  auto beyond = queue.run(IoRequest::Op::kRead, kSegs * 4096, {{buf.data(), 4096}});
  REQUIRE_FALSE(beyond.ok());
  CHECK(beyond.status().code() == EIO);
  auto straddle = queue.run(IoRequest::Op::kRead, (kSegs - 1) * 4096, {{buf.data(), 8192}});
  REQUIRE_FALSE(straddle.ok());
  CHECK(straddle.status().code() == EIO);
  auto misaligned = queue.run(IoRequest::Op::kWrite, 0, {{buf.data() + 1, 4096}});
  REQUIRE_FALSE(misaligned.ok());
  CHECK(misaligned.status().message() == "write of 4096 bytes at device byte 0 failed: Invalid argument");
  auto empty = queue.run(IoRequest::Op::kRead, 0, {});
  REQUIRE(empty.ok());
  CHECK(*empty == 0);
  auto flush = queue.run(IoRequest::Op::kFlush, 0, {});
  REQUIRE(flush.ok());
  CHECK(*flush == 0);

  // More segments than one system call takes: continued, in order.
  AlignedBuffer src(kSegs * 4096), dst(kSegs * 4096);
  fill_pattern(src.data(), 0, src.size(), 23);
  std::vector<iovec> wv, rv;
  for (size_t i = 0; i < kSegs; ++i) {
    wv.push_back({src.data() + (kSegs - 1 - i) * 4096, 4096});
    rv.push_back({dst.data() + (kSegs - 1 - i) * 4096, 4096});
  }
  const uint64_t resubmits0 = queue.resubmits();
  auto w = queue.run(IoRequest::Op::kWrite, 0, wv);
  REQUIRE(w.ok());
  CHECK(*w == kSegs * 4096);
  auto r = queue.run(IoRequest::Op::kRead, 0, rv);
  REQUIRE(r.ok());
  CHECK(*r == kSegs * 4096);
  CHECK(std::memcmp(src.data(), dst.data(), src.size()) == 0);
  CHECK(queue.resubmits() - resubmits0 >= 2);
}

TEST_CASE("io unit: write then read back, bounced and zero-copy, with per-block XXH3 checksums") {
  TempImage img(8u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(4u << 20, 4096);
  iovec arena = pool.arena();
  auto q = IoQueue::create(dev->fd(), 16, &arena);
  REQUIRE(q.ok());
  IoStats stats;
  IoUnitGeometry geo;
  for (bool bounce : {false, true}) {
    CAPTURE(bounce);
    uint64_t off = bounce ? (2u << 20) : 0;
    AlignedBuffer src(1u << 20), dst(1u << 20);
    fill_pattern(src.data(), off, src.size(), 77);
    auto w = IoUnit::build_write(off, src.span(), bounce, pool, geo);
    CHECK(w->bounced() == bounce);
    CHECK(w->is_write());
    CHECK(w->length() == src.size());
    REQUIRE(w->checksums().size() == 256);
    for (size_t i = 0; i < 256; ++i) CHECK(w->checksums()[i] == xxh3_64(src.data() + i * 4096, 4096));
    if (bounce) CHECK(pool.in_use_bytes() == (1u << 20));
    Status ws = run_unit(*w, **q, stats);
    CHECK_MESSAGE(ws.ok(), ws.message());
    CHECK(pool.in_use_bytes() == 0);  // chunks are back once done() has run

    std::vector<std::optional<uint64_t>> expected(w->checksums().begin(), w->checksums().end());
    auto r = IoUnit::build_read(off, dst.span(), bounce, pool, geo, expected);
    CHECK(r->bounced() == bounce);
    Status rs = run_unit(*r, **q, stats);
    CHECK_MESSAGE(rs.ok(), rs.message());
    CHECK_FALSE(r->bad_block().has_value());
    CHECK(std::memcmp(src.data(), dst.data(), src.size()) == 0);
  }
  auto s = stats.snapshot();
  CHECK(s.bounced_ios == 2);
  CHECK(s.bounced_bytes == (2u << 20));
  CHECK(s.zero_copy_ios == 2);
  CHECK(s.zero_copy_bytes == (2u << 20));
  CHECK(s.checksum_failures == 0);
  CHECK(s.device_errors == 0);
  CHECK((*q)->fixed_ios() >= 2);  // the bounced 1 MiB units are one chunk in the arena
}

TEST_CASE("io unit: caller memory not aligned for O_DIRECT is always bounced") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(1u << 20, 4096);
  auto q = IoQueue::create(dev->fd(), 8);
  REQUIRE(q.ok());
  IoStats stats;
  AlignedBuffer sbuf(16384 + 4096), dbuf(16384 + 4096);
  std::span<const uint8_t> src(sbuf.data() + 80, 16384);  // like a FUSE write payload
  std::span<uint8_t> dst(dbuf.data() + 1, 16384);
  fill_pattern(sbuf.data() + 80, 8192, 16384, 5);
  auto w = IoUnit::build_write(8192, src, false, pool, IoUnitGeometry{});
  CHECK(w->bounced());
  REQUIRE(run_unit(*w, **q, stats).ok());
  std::vector<std::optional<uint64_t>> expected(w->checksums().begin(), w->checksums().end());
  auto r = IoUnit::build_read(8192, dst, false, pool, IoUnitGeometry{}, expected);
  CHECK(r->bounced());
  REQUIRE(run_unit(*r, **q, stats).ok());
  CHECK(std::memcmp(src.data(), dst.data(), 16384) == 0);
  CHECK(stats.snapshot().bounced_ios == 2);
  CHECK(stats.snapshot().zero_copy_ios == 0);
}

TEST_CASE("io unit: a corrupted block fails the read with EIO, and a bounced read copies nothing") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(1u << 20, 4096);
  auto q = IoQueue::create(dev->fd(), 8);
  REQUIRE(q.ok());
  IoStats stats;
  IoUnitGeometry geo;
  AlignedBuffer src(8 * 4096);
  fill_pattern(src.data(), 65536, src.size(), 11);
  auto w = IoUnit::build_write(65536, src.span(), false, pool, geo);
  REQUIRE(run_unit(*w, **q, stats).ok());
  std::vector<std::optional<uint64_t>> expected(w->checksums().begin(), w->checksums().end());

  // Garbage over blocks 2 and 5, written behind the unit's back.
  AlignedBuffer junk(4096);
  std::memset(junk.data(), 0xEE, junk.size());
  REQUIRE(dev->write(65536 + 2 * 4096, junk.data(), 4096).ok());
  REQUIRE(dev->write(65536 + 5 * 4096, junk.data(), 4096).ok());

  for (bool bounce : {true, false}) {
    CAPTURE(bounce);
    AlignedBuffer dst(8 * 4096);
    std::memset(dst.data(), 0xAB, dst.size());
    uint64_t before = stats.snapshot().checksum_failures;
    auto r = IoUnit::build_read(65536, dst.span(), bounce, pool, geo, expected);
    Status st = run_unit(*r, **q, stats);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == EIO);
    CHECK(st.message().find("checksum mismatch in 2 of 8 blocks") != std::string::npos);
    CHECK(st.message().find("device byte 73728") != std::string::npos);  // 65536 + 2 * 4096
    REQUIRE(r->bad_block().has_value());
    CHECK(*r->bad_block() == 2);
    CHECK(stats.snapshot().checksum_failures == before + 2);
    if (bounce) {
      bool untouched = true;
      for (size_t i = 0; i < dst.size(); ++i) untouched = untouched && dst.data()[i] == 0xAB;
      CHECK(untouched);
    }
    CHECK(pool.in_use_bytes() == 0);
  }
  CHECK(stats.snapshot().device_errors == 0);

  // Blocks without an expected value (unwritten) are not verified.
  expected[2].reset();
  expected[5].reset();
  AlignedBuffer dst(8 * 4096);
  auto r = IoUnit::build_read(65536, dst.span(), true, pool, geo, expected);
  CHECK(run_unit(*r, **q, stats).ok());
  CHECK(std::memcmp(dst.data(), src.data(), 2 * 4096) == 0);
}

TEST_CASE("io unit: device errors name the offset, count once, and leave the caller's buffer alone") {
  TempImage img(1u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(1u << 20, 4096);
  auto q = IoQueue::create(dev->fd(), 8);
  REQUIRE(q.ok());
  IoStats stats;
  AlignedBuffer dst(2 * 4096);
  std::memset(dst.data(), 0xAB, dst.size());
  auto r = IoUnit::build_read((1u << 20) - 4096, dst.span(), true, pool, IoUnitGeometry{}, {});
  Status st = run_unit(*r, **q, stats);
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == EIO);
  CHECK(st.message() == "read of 8192 bytes at device byte 1044480 failed: Input/output error");
  CHECK(stats.snapshot().device_errors == 1);
  CHECK(stats.snapshot().checksum_failures == 0);
  bool untouched = true;
  for (size_t i = 0; i < dst.size(); ++i) untouched = untouched && dst.data()[i] == 0xAB;
  CHECK(untouched);
  CHECK(pool.in_use_bytes() == 0);

  // Units built against the contract fail at submit, synchronously, without I/O.
  AlignedBuffer buf(8192);
  auto bad_len = IoUnit::build_write(0, std::span<const uint8_t>(buf.data(), 1000), true, pool, IoUnitGeometry{});
  bool called = false;
  bad_len->submit(**q, stats, [&](IoUnit&, Status s) {
    called = true;
    CHECK(s.code() == EINVAL);
    CHECK(s.message().find("checksum block") != std::string::npos);
  });
  CHECK(called);
  auto bad_expected = IoUnit::build_read(0, buf.span(), false, pool, IoUnitGeometry{}, {std::nullopt});
  CHECK(run_unit(*bad_expected, **q, stats).code() == EINVAL);
  AlignedBuffer huge(2u << 20);
  auto too_big = IoUnit::build_write(0, huge.span(), true, pool, IoUnitGeometry{});
  CHECK(run_unit(*too_big, **q, stats).code() == EINVAL);
  CHECK(stats.snapshot().bounced_ios == 1);  // only the real unit counted
  CHECK(pool.in_use_bytes() == 0);
}

TEST_CASE("io unit: a bounced write is stable: scribbling over the source changes neither disk nor checksums") {
  TempImage img(4u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(2u << 20, 4096);
  auto q = IoQueue::create(dev->fd(), 8);
  REQUIRE(q.ok());
  IoStats stats;
  AlignedBuffer src(1u << 20), orig(1u << 20);
  fill_pattern(src.data(), 0, src.size(), 21);
  std::memcpy(orig.data(), src.data(), src.size());
  auto w = IoUnit::build_write(0, src.span(), true, pool, IoUnitGeometry{});
  std::memset(src.data(), 0x5A, src.size());  // the caller reuses its buffer at once
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    uint8_t v = 0;
    while (!stop) std::memset(src.data(), v++, src.size());
  });
  Status st = run_unit(*w, **q, stats);
  stop = true;
  scribbler.join();
  REQUIRE(st.ok());
  for (size_t i = 0; i < 256; ++i) CHECK(w->checksums()[i] == xxh3_64(orig.data() + i * 4096, 4096));
  AlignedBuffer disk(1u << 20);
  REQUIRE(dev->read(0, disk.data(), disk.size()).ok());
  CHECK(std::memcmp(disk.data(), orig.data(), disk.size()) == 0);
}

TEST_CASE("io unit: fragmented pool memory, blocks straddling chunks, many units in flight") {
  TempImage img(8u << 20);
  auto dev = open_image(img.path);
  BouncePool pool(2u << 20, 4096);
  iovec arena = pool.arena();
  auto q = IoQueue::create(dev->fd(), 16, &arena);
  REQUIRE(q.ok());
  IoStats stats;
  IoUnitGeometry geo;
  geo.checksum_block = 16384;  // larger than the pool's min_chunk

  // Fragment the pool: hold every other 4 KiB chunk of the first 512 KiB.
  std::vector<BounceBuffer> frag;
  for (int i = 0; i < 128; ++i) frag.push_back(pool.get(4096));
  for (int i = 0; i < 128; i += 2) frag[i].reset();
  // Take the rest of the large chunks so the unit must use the 4 KiB holes.
  std::vector<BounceBuffer> rest;
  for (;;) {
    BounceBuffer b = pool.try_get(8192);
    if (b.empty() || b.size() < 8192) break;
    rest.push_back(std::move(b));
  }
  AlignedBuffer src(64 * 1024), dst(64 * 1024);
  fill_pattern(src.data(), 1u << 20, src.size(), 31);
  auto w = IoUnit::build_write(1u << 20, src.span(), true, pool, geo);
  CHECK(w->segments() == 16);  // sixteen 4 KiB chunks, each 16 KiB block straddles four
  for (size_t i = 0; i < 4; ++i) CHECK(w->checksums()[i] == xxh3_64(src.data() + i * 16384, 16384));
  REQUIRE(run_unit(*w, **q, stats).ok());
  std::vector<std::optional<uint64_t>> expected(w->checksums().begin(), w->checksums().end());
  auto r = IoUnit::build_read(1u << 20, dst.span(), true, pool, geo, expected);
  CHECK(r->segments() == 16);
  REQUIRE(run_unit(*r, **q, stats).ok());
  CHECK(std::memcmp(src.data(), dst.data(), src.size()) == 0);
  frag.clear();
  rest.clear();
  CHECK(pool.in_use_bytes() == 0);

  // Many units at once, more bytes than the pool holds: get_total waits for completions.
  constexpr int kUnits = 48;
  std::vector<AlignedBuffer> bufs;
  for (int i = 0; i < kUnits; ++i) {
    bufs.emplace_back(128 * 1024);
    fill_pattern(bufs.back().data(), static_cast<uint64_t>(i) * 128 * 1024, 128 * 1024, 41);
  }
  Latch latch(kUnits);
  std::atomic<int> failures{0};
  std::vector<std::unique_ptr<IoUnit>> units(kUnits);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kUnits; i += 3) {
        units[i] = IoUnit::build_write(static_cast<uint64_t>(i) * 128 * 1024, bufs[i].span(), true, pool, geo);
        units[i]->submit(**q, stats, [&](IoUnit&, Status s) {
          if (!s.ok()) ++failures;
          latch.arrive();
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(latch.wait());
  CHECK(failures == 0);
  AlignedBuffer all(kUnits * 128 * 1024);
  REQUIRE(dev->read(0, all.data(), all.size()).ok());
  CHECK(matches_pattern(all.data(), 0, all.size(), 41));
}

// ---------------------------------------------------------------- stable pages

TEST_CASE("stable pages: /dev/zram0 demands stable pages") {
  if (::access("/dev/zram0", F_OK) != 0 || ::access("/sys/block/zram0/queue/stable_writes", F_OK) != 0) {
    MESSAGE("skipped: no /dev/zram0");
    return;
  }
  auto info = detect_stable_pages("/dev/zram0");
  REQUIRE(info.ok());
  CHECK(info->required == (read_text("/sys/block/zram0/queue/stable_writes") == "1"));
  CHECK(info->required);
  CHECK(info->device == "/dev/zram0");
  struct stat st {};
  REQUIRE(::stat("/dev/zram0", &st) == 0);
  std::string want = "/dev/zram0 (";
  want += std::to_string(major(st.st_rdev));
  want += ':';
  want += std::to_string(minor(st.st_rdev));
  want += "): queue/stable_writes=1";
  CHECK(info->reason == want);
  auto d = decide_bounce(BouncePolicy::kAuto, *info);
  CHECK(d.bounce);
  CHECK(d.reason == "auto: " + want);
}

TEST_CASE("stable pages: an image file follows the block device under its filesystem") {
  TempImage img(4096);
  auto info = detect_stable_pages(img.path);
  REQUIRE(info.ok());
  struct stat st {};
  REQUIRE(::stat(img.path.c_str(), &st) == 0);
  std::string sys = "/sys/dev/block/";
  sys += std::to_string(major(st.st_dev));
  sys += ':';
  sys += std::to_string(minor(st.st_dev));
  if (::access(sys.c_str(), F_OK) != 0) {
    MESSAGE("skipped: /var/tmp is not on a block device");
    CHECK_FALSE(info->required);
    return;
  }
  std::string queue = ::access((sys + "/partition").c_str(), F_OK) == 0 ? sys + "/../queue" : sys + "/queue";
  std::string value = read_text(queue + "/stable_writes");
  CHECK(info->required == (value == "1"));
  CHECK(info->reason.rfind(img.path + " on /dev/", 0) == 0);
  CHECK(info->reason.find(": queue/stable_writes=" + value) != std::string::npos);
  MESSAGE(info->reason);
}

TEST_CASE("stable pages: a file on tmpfs needs no stable pages, and says why") {
  if (::access("/dev/shm", W_OK) != 0) {
    MESSAGE("skipped: no /dev/shm");
    return;
  }
  std::string path = "/dev/shm/stablefs-bounce-test";
  path += std::to_string(::getpid());
  { std::ofstream(path) << "x"; }
  auto info = detect_stable_pages(path);
  ::unlink(path.c_str());
  REQUIRE(info.ok());
  CHECK_FALSE(info->required);
  CHECK(info->device.empty());
  CHECK(info->reason.find("(tmpfs), not a block device: stable pages not required") != std::string::npos);
}

namespace {

// A loop device over a temporary image, detached (and the image removed) however the test
// ends.
struct LoopDevice {
  std::string image;
  std::string dev;
  // The image carries an MBR with one partition (sectors 2048..8191), for partition tests.
  LoopDevice() {
    char name[] = "/var/tmp/stablefs-bounce-loop-XXXXXX";
    int fd = ::mkstemp(name);
    if (fd < 0) return;
    image = name;
    uint8_t entry[16] = {0, 0, 0, 0, 0x83, 0, 0, 0, 0x00, 0x08, 0, 0, 0x00, 0x18, 0, 0};  // LBA 2048, 6144 sectors
    uint8_t signature[2] = {0x55, 0xAA};
    if (::ftruncate(fd, 4u << 20) != 0 || ::pwrite(fd, entry, 16, 446) != 16 || ::pwrite(fd, signature, 2, 510) != 2) {
      ::close(fd);
      return;
    }
    ::close(fd);
    std::string cmd = "losetup -f --show ";
    cmd += image;
    cmd += " 2>/dev/null";
    std::string out = sh_output(cmd);
    if (out.rfind("/dev/loop", 0) == 0) dev = out;
  }
  ~LoopDevice() {
    if (!saved_stable_writes.empty()) write_text(queue_attr(), saved_stable_writes.c_str());
    if (!dev.empty()) {
      std::string cmd = "losetup -d ";
      cmd += dev;
      cmd += " 2>/dev/null";
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "warning: could not detach %s\n", dev.c_str());
    }
    if (!image.empty()) ::unlink(image.c_str());
  }
  std::string queue_attr() const {
    std::string p = "/sys/block/";
    p += dev.substr(5);
    p += "/queue/stable_writes";
    return p;
  }
  // Sets queue/stable_writes, remembering the old value so the device goes back to other
  // users as it was.
  bool set_stable_writes(const char* v) {
    std::string old = read_text(queue_attr());
    if (!write_text(queue_attr(), v)) return false;
    if (saved_stable_writes.empty()) saved_stable_writes = old;
    return true;
  }
  std::string saved_stable_writes;

  static bool write_text(const std::string& path, const char* text) {
    std::ofstream out(path);
    out << text;
    out.flush();
    return static_cast<bool>(out);
  }
};

}  // namespace

TEST_CASE("stable pages: a loop device with stable_writes set by hand demands stable pages") {
  if (std::system("command -v losetup >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: losetup is not available");
    return;
  }
  LoopDevice loop;
  if (loop.dev.empty()) {
    MESSAGE("skipped: could not attach a loop device");
    return;
  }
  auto before = detect_stable_pages(loop.dev);
  REQUIRE(before.ok());
  CHECK(before->device == loop.dev);
  if (!loop.set_stable_writes("1")) {
    MESSAGE("skipped: cannot write ", loop.queue_attr());
    return;
  }
  auto info = detect_stable_pages(loop.dev);
  REQUIRE(info.ok());
  CHECK(info->required);
  struct stat st {};
  REQUIRE(::stat(loop.dev.c_str(), &st) == 0);
  std::string want = loop.dev;
  want += " (";
  want += std::to_string(major(st.st_rdev));
  want += ':';
  want += std::to_string(minor(st.st_rdev));
  want += "): queue/stable_writes=1";
  CHECK(info->reason == want);
  // A partition has no queue of its own: its disk's counts.
  std::string part = loop.dev + "p1";
  std::string cmd = "partx -a ";
  cmd += loop.dev;
  cmd += " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) {
    for (int i = 0; i < 200 && ::access(part.c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(10ms);
  }
  if (::access(part.c_str(), F_OK) == 0) {
    auto p = detect_stable_pages(part);
    REQUIRE(p.ok());
    CHECK(p->required);
    CHECK(p->device == part);
    struct stat pst {};
    REQUIRE(::stat(part.c_str(), &pst) == 0);
    std::string pwant = part;
    pwant += " (";
    pwant += std::to_string(major(pst.st_rdev));
    pwant += ':';
    pwant += std::to_string(minor(pst.st_rdev));
    pwant += ") on disk ";
    pwant += loop.dev;
    pwant += ": queue/stable_writes=1";
    CHECK(p->reason == pwant);
  } else {
    MESSAGE("partition part skipped: ", part, " did not appear");
  }
  REQUIRE(loop.set_stable_writes("0"));
  auto after = detect_stable_pages(loop.dev);
  REQUIRE(after.ok());
  CHECK_FALSE(after->required);
}

TEST_CASE("stable pages: policy parsing, names and decisions; a missing path is an error naming it") {
  CHECK(*parse_bounce_policy("auto") == BouncePolicy::kAuto);
  CHECK(*parse_bounce_policy("always") == BouncePolicy::kAlways);
  CHECK(*parse_bounce_policy("never") == BouncePolicy::kNever);
  for (const char* bad : {"", "Auto", "yes", "always ", "bounce=auto"}) {
    auto r = parse_bounce_policy(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("expected auto, always or never") != std::string::npos);
  }
  for (BouncePolicy p : {BouncePolicy::kAuto, BouncePolicy::kAlways, BouncePolicy::kNever})
    CHECK(*parse_bounce_policy(bounce_policy_name(p)) == p);

  StablePagesInfo stable{true, "/dev/zram0 (252:0): queue/stable_writes=1", "/dev/zram0"};
  StablePagesInfo plain{false, "/dev/vda (254:0): queue/stable_writes=0", "/dev/vda"};
  CHECK(decide_bounce(BouncePolicy::kAuto, stable).bounce);
  CHECK(decide_bounce(BouncePolicy::kAuto, stable).reason == "auto: /dev/zram0 (252:0): queue/stable_writes=1");
  CHECK_FALSE(decide_bounce(BouncePolicy::kAuto, plain).bounce);
  CHECK(decide_bounce(BouncePolicy::kAlways, plain).bounce);
  CHECK(decide_bounce(BouncePolicy::kAlways, plain).reason == "always: set by bounce=always");
  CHECK_FALSE(decide_bounce(BouncePolicy::kNever, stable).bounce);
  CHECK(decide_bounce(BouncePolicy::kNever, stable).reason == "never: set by bounce=never");

  auto missing = detect_stable_pages("/var/tmp/stablefs-no-such-file");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ENOENT);
  CHECK(missing.status().message().rfind("/var/tmp/stablefs-no-such-file: ", 0) == 0);
}

TEST_CASE("submission: zram works in the submitter's context, a loop device and an image file go through the ring") {
  if (::access("/sys/block/zram0/queue", F_OK) == 0) {
    auto z = detect_submission("/dev/zram0");
    REQUIRE(z.ok());
    CHECK(z->works_in_submitter);
    CHECK(z->reason.find("bio-based, no device under it") != std::string::npos);
    CHECK(decide_submission(SubmitPolicy::kAuto, *z).mode == IoQueue::Mode::kInline);
  } else {
    MESSAGE("zram part skipped: no /dev/zram0");
  }
  TempImage img(1u << 20);
  auto file = detect_submission(img.path);
  REQUIRE(file.ok());
  CHECK_FALSE(file->works_in_submitter);
  CHECK(file->reason == img.path + ": an image file");
  if (std::system("command -v losetup >/dev/null 2>&1") != 0) {
    MESSAGE("loop part skipped: losetup is not available");
    return;
  }
  LoopDevice loop;
  if (loop.dev.empty()) {
    MESSAGE("loop part skipped: could not attach a loop device");
    return;
  }
  auto l = detect_submission(loop.dev);
  REQUIRE(l.ok());
  CHECK_FALSE(l->works_in_submitter);
  CHECK(l->reason.find(": blk-mq") != std::string::npos);
  CHECK(decide_submission(SubmitPolicy::kAuto, *l).mode == IoQueue::Mode::kRing);
}

TEST_CASE("submission: policy parsing, names and decisions; a missing path is an error naming it") {
  CHECK(*parse_submit_policy("auto") == SubmitPolicy::kAuto);
  CHECK(*parse_submit_policy("ring") == SubmitPolicy::kRing);
  CHECK(*parse_submit_policy("inline") == SubmitPolicy::kInline);
  for (const char* bad : {"", "Ring", "sync", "inline ", "submit=auto"}) {
    auto r = parse_submit_policy(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("expected auto, ring or inline") != std::string::npos);
  }
  for (SubmitPolicy p : {SubmitPolicy::kAuto, SubmitPolicy::kRing, SubmitPolicy::kInline})
    CHECK(*parse_submit_policy(submit_policy_name(p)) == p);

  const SubmissionInfo in_submitter{true, "/dev/zram0 (252:0): bio-based, no device under it"};
  const SubmissionInfo completes{false, "/dev/vda (254:0): blk-mq"};
  CHECK(decide_submission(SubmitPolicy::kAuto, in_submitter).mode == IoQueue::Mode::kInline);
  CHECK(decide_submission(SubmitPolicy::kAuto, in_submitter).reason == "auto: /dev/zram0 (252:0): bio-based, no device under it");
  CHECK(decide_submission(SubmitPolicy::kAuto, completes).mode == IoQueue::Mode::kRing);
  CHECK(decide_submission(SubmitPolicy::kRing, in_submitter).mode == IoQueue::Mode::kRing);
  CHECK(decide_submission(SubmitPolicy::kRing, in_submitter).reason == "ring: set by submit=ring");
  CHECK(decide_submission(SubmitPolicy::kInline, completes).mode == IoQueue::Mode::kInline);
  CHECK(decide_submission(SubmitPolicy::kInline, completes).reason == "inline: set by submit=inline");

  auto missing = detect_submission("/var/tmp/stablefs-no-such-file");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ENOENT);
  CHECK(missing.status().message().rfind("/var/tmp/stablefs-no-such-file: ", 0) == 0);
}

}  // namespace stablefs
