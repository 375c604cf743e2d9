// Benchmarks of bounce/: the pool's get/put rate, the io_uring queue's IOPS and bandwidth on
// a file in /var/tmp (with its io_uring_enter count per SQE), and I/O units bounced or not.
// Skipped by default; run them (best from a Release build) with
//   stablefs_unit_tests -tc='io bench*' --no-skip
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "bounce/aligned_buffer.h"
#include "bounce/bounce_pool.h"
#include "bounce/file_device.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"
#include "bounce/io_unit.h"

namespace stablefs {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct BenchImage {
  std::string path;
  std::unique_ptr<FileDevice> dev;
  explicit BenchImage(uint64_t size) {
    char name[] = "/var/tmp/stablefs-bench-XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    REQUIRE(FileDevice::create_image(path, size).ok());
    auto d = FileDevice::open(path, OpenOptions{});
    REQUIRE(d.ok());
    dev = std::move(d).value();
  }
  ~BenchImage() {
    dev.reset();
    ::unlink(path.c_str());
  }
};

// Keeps depth requests in flight from callbacks (the completion thread resubmits) until the
// deadline; returns completed requests.
uint64_t drive_from_callbacks(IoQueue& q, unsigned depth, IoRequest::Op op, size_t len, uint64_t span,
                              std::vector<AlignedBuffer>& bufs, double secs, bool sequential) {
  std::vector<IoRequest> reqs(depth);
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> next_seq{0};
  std::mutex mu;
  std::condition_variable cv;
  unsigned outstanding = depth;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::mt19937_64 rng(1);
  std::mutex rng_mu;
  auto pick = [&]() -> uint64_t {
    if (sequential) return (next_seq.fetch_add(1) * len) % span;
    std::lock_guard<std::mutex> lock(rng_mu);
    return (rng() % (span / len)) * len;
  };
  for (unsigned i = 0; i < depth; ++i) {
    reqs[i].op = op;
    reqs[i].iov = {{bufs[i].data(), len}};
    reqs[i].on_complete = [&](IoRequest& r, int64_t res) {
      REQUIRE(res == static_cast<int64_t>(len));
      done.fetch_add(1, std::memory_order_relaxed);
      if (Clock::now() < deadline) {
        r.offset = pick();
        q.submit(&r);
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (--outstanding == 0) cv.notify_all();
    };
  }
  for (auto& r : reqs) {
    r.offset = pick();
    q.submit(&r);
  }
  std::unique_lock<std::mutex> lock(mu);
  REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return outstanding == 0; }));
  return done.load();
}

}  // namespace

TEST_CASE("io bench: bounce pool get/put rate" * doctest::skip()) {
  BouncePool pool(64u << 20, 4096);
  for (size_t size : {size_t{4096}, size_t{64} << 10, size_t{1} << 20}) {
    auto t0 = Clock::now();
    constexpr int kN = 1000000;
    for (int i = 0; i < kN; ++i) {
      BounceBuffer b = pool.get(size);
      REQUIRE(!b.empty());
    }
    double s = seconds_since(t0);
    MESSAGE("pool get+put ", size, " B, 1 thread: ", kN / s / 1e6, " M/s");
  }
  {
    // get_total of a 1 MiB unit from a fragmented pool (every other 4 KiB chunk held).
    std::vector<BounceBuffer> held;
    for (int i = 0; i < 4096; ++i) held.push_back(pool.get(4096));
    for (size_t i = 0; i < held.size(); i += 2) held[i].reset();
    auto t0 = Clock::now();
    constexpr int kN = 20000;
    for (int i = 0; i < kN; ++i) {
      auto set = pool.get_total(1u << 20);
      REQUIRE(set.size() >= 1);
    }
    MESSAGE("pool get_total 1 MiB (largest-first, pool partly fragmented): ", kN / seconds_since(t0) / 1e6, " M/s");
  }
  for (int threads : {2, 4}) {
    std::atomic<uint64_t> ops{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        std::mt19937 rng(t);
        uint64_t n = 0;
        while (seconds_since(t0) < 1.0) {
          for (int i = 0; i < 1000; ++i) {
            BounceBuffer b = pool.get(4096u << (rng() % 9));
            ++n;
          }
        }
        ops += n;
      });
    for (auto& t : ts) t.join();
    MESSAGE("pool get+put random 4 KiB..1 MiB, ", threads, " threads: ", ops / seconds_since(t0) / 1e6, " M/s");
  }
}

TEST_CASE("io bench: queue IOPS at 4 KiB and bandwidth at 1 MiB on a /var/tmp file" * doctest::skip()) {
  constexpr uint64_t kSpan = 512u << 20;
  BenchImage img(kSpan);
  BouncePool pool(64u << 20, 4096);
  iovec arena = pool.arena();
  constexpr unsigned kDepth = 32;
  auto q = IoQueue::create(img.dev->fd(), kDepth, &arena);
  REQUIRE(q.ok());
  IoQueue& queue = **q;
  std::vector<AlignedBuffer> big;
  for (unsigned i = 0; i < kDepth; ++i) big.emplace_back(1u << 20);
  for (auto& b : big) std::memset(b.data(), 0x6b, b.size());

  auto report = [&](const std::string& what, uint64_t ios, size_t len, double s, uint64_t sub0, uint64_t ent0) {
    uint64_t sub = queue.submitted() - sub0, ent = queue.enter_calls() - ent0;
    MESSAGE(what, ": ", ios / s / 1000, " kIOPS, ", ios * len / s / (1 << 20), " MiB/s; ", sub, " SQEs in ", ent,
            " enters (", ent ? static_cast<double>(sub) / ent : 0.0, " per enter)");
  };

  // Fill the file (so reads hit data, not holes): 1 MiB sequential writes, QD8.
  {
    uint64_t s0 = queue.submitted(), e0 = queue.enter_calls();
    auto t0 = Clock::now();
    std::vector<AlignedBuffer> bufs;
    for (int i = 0; i < 8; ++i) bufs.emplace_back(1u << 20);
    uint64_t n = drive_from_callbacks(queue, 8, IoRequest::Op::kWrite, 1u << 20, kSpan, bufs, 3.0, true);
    report("1 MiB sequential writes, QD8, callback-driven", n, 1u << 20, seconds_since(t0), s0, e0);
    REQUIRE(queue.run(IoRequest::Op::kFlush, 0, {}).ok());
  }
  {
    uint64_t s0 = queue.submitted(), e0 = queue.enter_calls();
    auto t0 = Clock::now();
    std::vector<AlignedBuffer> bufs;
    for (int i = 0; i < 8; ++i) bufs.emplace_back(1u << 20);
    uint64_t n = drive_from_callbacks(queue, 8, IoRequest::Op::kRead, 1u << 20, kSpan, bufs, 2.0, true);
    report("1 MiB sequential reads, QD8, callback-driven", n, 1u << 20, seconds_since(t0), s0, e0);
  }
  {
    uint64_t s0 = queue.submitted(), e0 = queue.enter_calls();
    auto t0 = Clock::now();
    std::vector<AlignedBuffer> bufs;
    for (unsigned i = 0; i < kDepth; ++i) bufs.emplace_back(4096);
    uint64_t n = drive_from_callbacks(queue, kDepth, IoRequest::Op::kRead, 4096, kSpan, bufs, 2.0, false);
    report("4 KiB random reads, QD32, callback-driven", n, 4096, seconds_since(t0), s0, e0);
  }
  for (unsigned threads : {1u, 8u, 32u}) {
    // FUSE-worker style: each thread submits one request and waits for it (zero-copy rule).
    uint64_t s0 = queue.submitted(), e0 = queue.enter_calls();
    std::atomic<uint64_t> ios{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        AlignedBuffer buf(4096);
        std::mt19937_64 rng(t);
        uint64_t n = 0;
        while (seconds_since(t0) < 2.0) {
          auto r = queue.run(IoRequest::Op::kRead, (rng() % (kSpan / 4096)) * 4096, {{buf.data(), 4096}});
          REQUIRE(r.ok());
          ++n;
        }
        ios += n;
      });
    for (auto& t : ts) t.join();
    std::string what = "4 KiB random reads, ";
    what += std::to_string(threads);
    what += " threads each waiting (run())";
    report(what, ios, 4096, seconds_since(t0), s0, e0);
  }
  {
    // Baseline: the same with pread from 32 threads.
    std::atomic<uint64_t> ios{0};
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < 32; ++t)
      ts.emplace_back([&, t] {
        AlignedBuffer buf(4096);
        std::mt19937_64 rng(t);
        uint64_t n = 0;
        while (seconds_since(t0) < 2.0) {
          REQUIRE(::pread(img.dev->fd(), buf.data(), 4096, static_cast<off_t>((rng() % (kSpan / 4096)) * 4096)) == 4096);
          ++n;
        }
        ios += n;
      });
    for (auto& t : ts) t.join();
    MESSAGE("baseline: 4 KiB random pread, 32 threads: ", ios / seconds_since(t0) / 1000, " kIOPS");
  }

  // I/O units: 1 MiB writes with checksums, bounced versus zero-copy, 8 in flight.
  for (bool bounce : {false, true}) {
    IoStats stats;
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    uint64_t units = 0;
    auto t0 = Clock::now();
    uint64_t off = 0;
    std::vector<std::unique_ptr<IoUnit>> live(8);
    while (seconds_since(t0) < 2.0) {
      int slot;
      {
        std::unique_lock<std::mutex> lock(mu);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return in_flight < 8; }));
        slot = -1;
        for (int i = 0; i < 8; ++i)
          if (!live[i]) {
            slot = i;
            break;
          }
        ++in_flight;
      }
      REQUIRE(slot >= 0);
      live[slot] = IoUnit::build_write(off, big[slot].span(), bounce, pool, IoUnitGeometry{});
      off = (off + (1u << 20)) % kSpan;
      ++units;
      live[slot]->submit(queue, stats, [&, slot](IoUnit&, Status s) {
        REQUIRE(s.ok());
        std::lock_guard<std::mutex> lock(mu);
        live[slot].reset();
        --in_flight;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return in_flight == 0; }));
    double s = seconds_since(t0);
    std::string mode = bounce ? "bounced" : "zero-copy";
    MESSAGE("IoUnit 1 MiB writes with XXH3 per 4 KiB, ", mode, ", 8 in flight: ", units / s, " MiB/s");
  }
}

}  // namespace stablefs
