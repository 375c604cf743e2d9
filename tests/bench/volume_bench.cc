// stablefs-volume-bench: O_DIRECT throughput through the library (Volume, no FUSE).
//
//   stablefs-volume-bench DEVICE --bounce always|never|auto --bs 4096 --jobs 8 --seconds 10
//
// Formats nothing: DEVICE must hold a stablefs filesystem. Creates one file, fills it
// (sequential writes of --bs), then runs random reads for --seconds with --jobs threads each
// issuing synchronous requests (queue depth = jobs). Prints one line per phase:
//   phase=write bs=4096 jobs=8 bounce=yes MiB/s=... IOPS=... user_us/IO=... sys_us/IO=...
// (the process's CPU time in the phase per request, all threads: the library's cost per I/O).
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <cstdio>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "fs/volume.h"

using namespace stablefs;
using Clock = std::chrono::steady_clock;

namespace {

// The process's user and system CPU time so far, in microseconds.
std::pair<double, double> cpu_us() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) { return double(t.tv_sec) * 1e6 + double(t.tv_usec); };
  return {us(ru.ru_utime), us(ru.ru_stime)};
}

void report(const char* phase, uint64_t bytes, uint64_t ios, double secs, size_t bs, unsigned jobs, bool bounce,
            std::pair<double, double> cpu_before) {
  const auto [user, sys] = cpu_us();
  const double n = ios ? double(ios) : 1.0;
  std::printf("phase=%s bs=%zu jobs=%u bounce=%s MiB/s=%.1f IOPS=%.0f user_us/IO=%.2f sys_us/IO=%.2f\n", phase, bs,
              jobs, bounce ? "yes" : "no", double(bytes) / secs / (1 << 20), double(ios) / secs,
              (user - cpu_before.first) / n, (sys - cpu_before.second) / n);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device, policy_text = "auto";
  size_t bs = 1 << 20;
  unsigned jobs = 4;
  double seconds = 5;
  uint64_t file_bytes = 256ull << 20;
  CLI::App app{"O_DIRECT throughput through the stablefs library"};
  app.add_option("device", device, "Image file or block device holding a stablefs filesystem")->required();
  app.add_option("--bounce", policy_text, "auto, always or never");
  app.add_option("--bs", bs, "Request size in bytes (multiple of 4096)");
  app.add_option("--jobs", jobs, "Threads issuing requests");
  app.add_option("--seconds", seconds, "Duration of each phase");
  app.add_option("--file-bytes", file_bytes, "Size of the test file");
  CLI11_PARSE(app, argc, argv);
  auto policy = parse_bounce_policy(policy_text);
  if (!policy.ok()) {
    std::fprintf(stderr, "stablefs-volume-bench: %s\n", policy.status().message().c_str());
    return 1;
  }
  auto vol = Volume::open(device, {.bounce = *policy});
  if (!vol.ok()) {
    std::fprintf(stderr, "stablefs-volume-bench: %s\n", vol.status().message().c_str());
    return 1;
  }
  Volume& v = **vol;
  std::string name = "bench-" + std::to_string(::getpid());
  auto f = v.fs().mknod(kRootIno, name, S_IFREG | 0644, 0, {});
  if (!f.ok()) {
    std::fprintf(stderr, "stablefs-volume-bench: %s\n", f.status().message().c_str());
    return 1;
  }
  const uint64_t blocks = file_bytes / bs;
  const bool bounce = v.bounce_decision().bounce;

  // One timed phase: jobs threads, each asking next_block for its next block until it says stop.
  using NextBlock = std::function<std::optional<uint64_t>(unsigned job, std::mt19937_64& rng, uint64_t& done)>;
  auto run_phase = [&](const char* phase, bool is_write, const NextBlock& next_block) {
    std::atomic<uint64_t> bytes{0}, ios{0};
    std::atomic<bool> failed{false};
    const auto cpu_before = cpu_us();
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (unsigned j = 0; j < jobs; ++j) {
      threads.emplace_back([&, j] {
        AlignedBuffer buf(bs);
        std::memset(buf.data(), int('a' + j), bs);
        std::mt19937_64 rng(j + 1);
        uint64_t done = 0;
        while (!failed) {
          std::optional<uint64_t> b = next_block(j, rng, done);
          if (!b) return;
          auto r = is_write ? v.write(f->ino, *b * bs, buf.span()) : v.read(f->ino, *b * bs, buf.span());
          if (!r.ok()) {
            std::fprintf(stderr, "%s: %s\n", phase, r.status().message().c_str());
            failed = true;
            return;
          }
          bytes += *r;
          ios++;
          done++;
        }
      });
    }
    for (auto& t : threads) t.join();
    if (!failed) report(phase, bytes, ios, std::chrono::duration<double>(Clock::now() - start).count(), bs, jobs, bounce,
                       cpu_before);
    return !failed;
  };
  // Fill sequentially, each job its own stripe; then random overwrites (out of place with
  // checksums) and random reads for a fixed time.
  const bool ok = run_phase("write", true, [&](unsigned j, std::mt19937_64&, uint64_t& done) -> std::optional<uint64_t> {
    uint64_t b = j + done * jobs;
    return b < blocks ? std::optional<uint64_t>(b) : std::nullopt;
  });
  if (!ok) return 1;
  const auto stop = [&] { return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)); };
  for (bool is_write : {true, false}) {
    const auto until = stop();
    if (!run_phase(is_write ? "randwrite" : "randread", is_write,
                   [&](unsigned, std::mt19937_64& rng, uint64_t&) -> std::optional<uint64_t> {
                     if (Clock::now() >= until) return std::nullopt;
                     return rng() % blocks;
                   }))
      return 1;
  }
  auto st = v.fs().unlink(kRootIno, name);
  if (st.ok()) st = v.close();
  if (!st.ok()) {
    std::fprintf(stderr, "stablefs-volume-bench: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
