// Out of bounce memory: 64 threads of mixed reads and writes (4 KiB to 512 KiB, each thread on
// its own file) through a Volume that bounces everything from a pool of 1 MiB — a few requests'
// worth. Requests wait for memory (the pool counts the waits); none fails, every read returns
// exactly what its thread wrote last, and once all is done the pool is whole again.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/bounce_pool.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
#include "support/volume_io.h"

namespace stablefs {

TEST_CASE("bounce pressure: 64 threads through a 1 MiB bounce pool wait for memory and never fail") {
  constexpr int kThreads = 64;
  constexpr uint64_t kBs = 4096, kFileBlocks = 256;  // 1 MiB per file
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kOpsPerThread = 10;
#else
  constexpr int kOpsPerThread = 40;
#endif
  test::FormattedImage img(256ull << 20, {}, "bounce-pressure");
  auto v = test::open_volume(img.path, {.bounce = BouncePolicy::kAlways, .bounce_pool_bytes = 1u << 20});
  REQUIRE(v->bounce_pool().capacity() == (1u << 20));
  std::vector<uint64_t> inos;
  for (int t = 0; t < kThreads; ++t) inos.push_back(test::make_file(*v, ("p" + std::to_string(t)).c_str()));

  std::atomic<int> failures{0};
  std::vector<std::string> first_failure(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<uint8_t> model(kFileBlocks * kBs, 0);
      uint64_t written_to = 0;  // the file's size
      AlignedBuffer buf(128 * kBs);
      auto fail = [&](const std::string& what) {
        if (first_failure[t].empty()) first_failure[t] = what;
        failures.fetch_add(1);
      };
      for (int op = 0; op < kOpsPerThread && first_failure[t].empty(); ++op) {
        const uint64_t n = 1 + rng() % 128, first = rng() % (kFileBlocks - n + 1);
        std::span<uint8_t> io{buf.data(), n * kBs};
        if (rng() % 2 == 0 || written_to == 0) {
          for (uint64_t i = 0; i < io.size(); i += 8) {
            const uint64_t x = rng();
            std::memcpy(io.data() + i, &x, 8);
          }
          auto w = v->write(inos[t], first * kBs, io);
          if (!w.ok() || *w != io.size()) {
            fail(w.ok() ? "short write" : "write: " + w.status().message());
            continue;
          }
          std::copy(io.begin(), io.end(), model.begin() + static_cast<long>(first * kBs));
          written_to = std::max(written_to, (first + n) * kBs);
        } else {
          auto r = v->read(inos[t], first * kBs, io);
          const uint64_t expect = first * kBs >= written_to ? 0 : std::min<uint64_t>(io.size(), written_to - first * kBs);
          if (!r.ok() || *r != expect) {
            fail(r.ok() ? "read returned " + std::to_string(*r) + " bytes" : "read: " + r.status().message());
            continue;
          }
          if (!std::equal(io.begin(), io.begin() + static_cast<long>(expect), model.begin() + static_cast<long>(first * kBs)))
            fail("read returned bytes its thread did not write last");
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK_MESSAGE(first_failure[t].empty(), "thread " << t << ": " << first_failure[t]);
  CHECK(failures.load() == 0);
  const uint64_t waits = v->bounce_pool().waits();
  MESSAGE("bounce pool of 1 MiB: " << waits << " waits for memory, bounced " << v->io_stats().bounced_ios << " I/Os");
  CHECK(waits > 0);
  CHECK(v->bounce_pool().in_use_bytes() == 0);
  REQUIRE(v->close().ok());
  v.reset();
  test::expect_fsck_clean(img.path);
}

}  // namespace stablefs
