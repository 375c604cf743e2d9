// The online scrub (fs/scrub.h) through a Volume: exact reports of damaged blocks, no false
// report while files are rewritten under it, transients told apart, pause/resume/cancel, a
// rate limit, and a scrub interrupted by an unmount continued after the next mount.
#include <doctest/doctest.h>


#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "bounce/checksum.h"
#include "fs/scrub.h"
#include "support/fault_tap.h"
#include "support/formatted_image.h"
#include "support/image_file.h"
#include "support/random_bytes.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

constexpr uint64_t kBs = 4096;

// Waits (at most 60 s) until the scrub is no longer running; its status then.
ScrubStatus wait_done(Scrubber& s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    ScrubStatus st = s.status();
    if (st.state != ScrubState::kRunning) return st;
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "scrub still running after 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

uint64_t device_block_of(Volume& v, uint64_t ino, uint64_t offset) {
  uint64_t block = ~0ull;
  REQUIRE(v.map_extents(ino, offset, kBs, [&](const ReportedExtent& e) {
              REQUIRE(e.map.type == IomapType::kMapped);
              block = e.dev_addr() / kBs;
              return false;
            }).ok());
  return block;
}

struct Damage {
  uint64_t ino, offset, device_block, expected, found;
  auto operator<=>(const Damage&) const = default;
};

}  // namespace

TEST_CASE("scrub: reports exactly the damaged blocks, with both checksums, and nothing while files are rewritten") {
  test::FormattedImage img(128ull << 20);
  test::FaultTap tap;
  auto vol = test::open_volume(img.path, {.bounce = BouncePolicy::kNever, .io_tap = &tap});
  Volume& v = *vol;
  const uint64_t sizes[] = {3u << 20, 1u << 20, 64u << 10, 5000};
  std::vector<uint64_t> inos;
  std::map<uint64_t, std::vector<uint8_t>> contents;
  uint64_t data_bytes = 0;
  for (size_t i = 0; i < 4; ++i) {
    const uint64_t ino = test::make_file(v, ("f" + std::to_string(i)).c_str());
    contents[ino] = test::random_bytes(sizes[i], 100 + i);
    test::write_at(v, ino, 0, contents[ino]);
    inos.push_back(ino);
    data_bytes += (sizes[i] + kBs - 1) / kBs * kBs;
  }
  // A file the writer below keeps rewriting (out of place) while scrubs run.
  const uint64_t busy = test::make_file(v, "busy");
  test::write_at(v, busy, 0, test::random_bytes(2u << 20, 9));
  data_bytes += 2u << 20;
  REQUIRE(v.sync().ok());

  // Seven blocks damaged on the device, in several files.
  std::mt19937_64 rng(42);
  std::set<Damage> damaged;
  while (damaged.size() < 7) {
    const uint64_t ino = inos[rng() % 3];
    const uint64_t offset = rng() % (contents[ino].size() / kBs) * kBs;
    const uint64_t block = device_block_of(v, ino, offset);
    if (std::any_of(damaged.begin(), damaged.end(), [&](const Damage& d) { return d.device_block == block; })) continue;
    const uint64_t expected = xxh3_64(contents[ino].data() + offset, kBs);
    const uint64_t found = test::damage_block(img.path, block, static_cast<size_t>(rng() % kBs));
    damaged.insert({ino, offset, block, expected, found});
  }
  // And one read of another block that goes wrong once only: a transient, not a finding.
  const uint64_t flaky = device_block_of(v, inos[3], 0);
  tap.corrupt_reads(flaky * kBs + 10, 1);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rewrites{0};
  std::thread writer([&] {
    std::mt19937_64 r(7);
    AlignedBuffer b(64u << 10);
    while (!stop) {
      std::memset(b.data(), static_cast<int>(r() & 0xFF), b.size());
      const uint64_t off = r() % 32 * b.size();
      auto w = v.write(busy, off, b.span());
      REQUIRE_MESSAGE(w.ok(), w.status().message());
      ++rewrites;
    }
  });
  Scrubber s(v);
  CHECK(s.status().state == ScrubState::kNever);
  ScrubStatus st;
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    REQUIRE(s.start(0).ok());
    CHECK(s.start(0).code() == EBUSY);
    st = wait_done(s);
    REQUIRE(st.state == ScrubState::kFinished);
    std::set<Damage> reported;
    for (const ScrubFileFinding& f : st.findings) {
      CHECK_FALSE(f.finding.unreadable);
      CHECK(f.finding.length == kBs);
      reported.insert({f.ino, f.finding.file_offset, f.finding.device_block, f.finding.expected, f.finding.found});
    }
    CHECK(reported == damaged);
    CHECK(st.data_errors == damaged.size());
    CHECK(st.unreadable == 0);
    CHECK(st.metadata_errors == 0);
    CHECK(st.bytes_checked == data_bytes);
    CHECK(st.transients == (round == 0 ? 1u : 0u));
  }
  stop = true;
  writer.join();
  MESSAGE("rewrites of the busy file during the scrubs: " << rewrites.load());
  CHECK(rewrites > 0);
  // The damaged files are remembered for stablefs stats.
  std::set<uint64_t> files;
  for (const DamagedFile& f : v.data_errors().files()) files.insert(f.ino);
  std::set<uint64_t> want;
  for (const Damage& d : damaged) want.insert(d.ino);
  CHECK(files == want);
}

TEST_CASE("scrub: pause, resume, cancel and a rate limit; interrupted by an unmount, it goes on after the next mount") {
  test::FormattedImage img(128ull << 20);
  uint64_t data_bytes = 0;
  ScrubStatus before_unmount;
  {
    auto vol = test::open_volume(img.path);
    Volume& v = *vol;
    for (int i = 0; i < 4; ++i) {
      const uint64_t ino = test::make_file(v, ("f" + std::to_string(i)).c_str());
      test::write_at(v, ino, 0, test::random_bytes(2u << 20, 10 + i));
      data_bytes += 2u << 20;
    }
    REQUIRE(v.sync().ok());
    Scrubber s(v);
    CHECK(s.pause().code() == EINVAL);
    CHECK(s.resume(std::nullopt).code() == EINVAL);
    CHECK(s.cancel().code() == EINVAL);
    constexpr uint64_t kRate = 4u << 20;  // 8 MiB of data: about 2 s
    REQUIRE(s.start(kRate).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    REQUIRE(s.pause().ok());
    ScrubStatus p1 = s.status();
    CHECK(p1.state == ScrubState::kPaused);
    CHECK(p1.bytes_checked > 0);
    CHECK(p1.bytes_checked < data_bytes);
    // The rate limit holds (a piece is a quarter second's worth: allow one piece over).
    CHECK(p1.bytes_checked <= kRate * p1.elapsed_seconds + kRate / 4 + 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ScrubStatus p2 = s.status();
    CHECK(p2.bytes_checked == p1.bytes_checked);  // paused means no progress
    CHECK(p2.elapsed_seconds == doctest::Approx(p1.elapsed_seconds));
    REQUIRE(s.resume(std::nullopt).ok());
    CHECK(s.status().state == ScrubState::kRunning);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    before_unmount = s.status();
    CHECK(before_unmount.bytes_checked > p1.bytes_checked);
    CHECK(before_unmount.bytes_checked < data_bytes);
    // The Scrubber goes with the mount: its position is saved.
  }
  {
    auto vol = test::open_volume(img.path);
    Volume& v = *vol;
    Scrubber s(v);
    ScrubStatus st = s.status();
    CHECK(st.state == ScrubState::kInterrupted);
    CHECK(st.bytes_checked >= before_unmount.bytes_checked);
    CHECK(st.bytes_checked < data_bytes);
    CHECK(st.rate_limit == 4u << 20);
    REQUIRE(s.resume(0).ok());  // without the limit now
    st = wait_done(s);
    CHECK(st.state == ScrubState::kFinished);
    CHECK(st.bytes_checked == data_bytes);  // every block once: none skipped, none twice
    CHECK(st.data_errors == 0);
    CHECK(st.findings.empty());
    CHECK(st.rate_limit == 0);
    CHECK(s.resume(std::nullopt).code() == EINVAL);
    // A new scrub, canceled part way, stays canceled.
    REQUIRE(s.start(1u << 20).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    REQUIRE(s.cancel().ok());
    st = s.status();
    CHECK(st.state == ScrubState::kCanceled);
    const uint64_t at_cancel = st.bytes_checked;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(s.status().bytes_checked == at_cancel);
    CHECK(s.resume(std::nullopt).code() == EINVAL);
  }
  {
    auto vol = test::open_volume(img.path);
    Scrubber s(*vol);
    CHECK(s.status().state == ScrubState::kCanceled);
  }
  test::expect_fsck_clean(img.path);
}

}  // namespace stablefs
