// IomapIter and RangeLock against a scripted filesystem.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "iomap/iomap_iter.h"
#include "iomap/range_lock.h"

namespace stablefs {
namespace {

// Mappings of 3 blocks each, alternating hole / mapped; records begin/end calls.
class ScriptedOps : public IomapOps {
 public:
  Result<Iomap> begin(uint64_t, uint64_t pos, uint64_t len, uint32_t) override {
    if (fail_at && pos >= *fail_at) return Status::error(ENOSPC, "scripted failure");
    Iomap m;
    const uint64_t unit = 3 * 4096;
    m.offset = pos / unit * unit;
    m.length = unit;
    m.type = (pos / unit) % 2 ? IomapType::kMapped : IomapType::kHole;
    m.dev_addr = 1000 * 4096 + m.offset;
    begins.push_back({pos, len});
    return m;
  }
  Status end(uint64_t, const Iomap&, uint64_t pos, uint64_t, uint64_t done, uint32_t) override {
    ends.push_back({pos, done});
    return {};
  }
  Status read_checksums(uint64_t, std::span<std::optional<uint64_t>>) override { return {}; }
  Result<uint64_t> file_size(uint64_t) override { return uint64_t(1) << 40; }
  uint32_t block_size() const override { return 4096; }

  std::optional<uint64_t> fail_at;
  std::vector<std::pair<uint64_t, uint64_t>> begins, ends;
};

}  // namespace

TEST_CASE("iomap iter: walks a range across mappings, ending each with what was processed") {
  ScriptedOps ops;
  IomapIter it(ops, 7, 4096, 7 * 4096, kIomapRead);
  std::vector<std::pair<uint64_t, uint64_t>> seen;  // (pos, length)
  while (it.next()) {
    seen.emplace_back(it.pos(), it.length());
    CHECK(it.dev_addr() == 1000 * 4096 + it.pos());
    it.advance(it.length());
  }
  CHECK(it.status().ok());
  CHECK(it.processed_total() == 7 * 4096);
  // [1,3) blocks in mapping 0, [3,6) in mapping 1, [6,8) in mapping 2.
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<uint64_t, uint64_t>{4096, 2 * 4096});
  CHECK(seen[1] == std::pair<uint64_t, uint64_t>{3 * 4096, 3 * 4096});
  CHECK(seen[2] == std::pair<uint64_t, uint64_t>{6 * 4096, 2 * 4096});
  REQUIRE(ops.ends.size() == 3);
  CHECK(ops.ends[1] == std::pair<uint64_t, uint64_t>{3 * 4096, 3 * 4096});
}

TEST_CASE("iomap iter: an actor failing part way through a mapping ends it with the part it advanced") {
  ScriptedOps ops;
  IomapIter it(ops, 7, 0, 9 * 4096, kIomapWrite);
  REQUIRE(it.next());
  it.advance(it.length());  // the first mapping whole
  REQUIRE(it.next());
  it.advance(4096);  // one block of the second was submitted, then building the rest failed
  it.fail(Status::error(ENOMEM, "scripted"));
  CHECK_FALSE(it.next());
  CHECK(it.status().code() == ENOMEM);
  REQUIRE(ops.ends.size() == 2);
  CHECK(ops.ends[1] == std::pair<uint64_t, uint64_t>{3 * 4096, 4096});  // not 0: that block is in flight
  CHECK(it.processed_total() == 4 * 4096);
}

TEST_CASE("iomap iter: advancing past the mapping fails the walk instead of clamping") {
  ScriptedOps ops;
  IomapIter it(ops, 7, 0, 9 * 4096, kIomapRead);
  REQUIRE(it.next());
  const uint64_t len = it.length();
  it.advance(len + 4096);
  CHECK_FALSE(it.next());
  CHECK(it.status().code() == EIO);
  CHECK(it.processed_total() == 0);
  REQUIRE(ops.ends.size() == 1);
  CHECK(ops.ends[0].second == 0);
}

TEST_CASE("iomap iter: a short actor stops the walk; a failed begin ends it with the error") {
  ScriptedOps ops;
  {
    IomapIter it(ops, 1, 0, 9 * 4096, kIomapWrite);
    int rounds = 0;
    while (it.next()) {
      ++rounds;
      it.advance(rounds == 2 ? 0 : it.length());
    }
    CHECK(rounds == 2);
    CHECK(it.processed_total() == 3 * 4096);
    CHECK(ops.ends.back().second == 0);
  }
  ScriptedOps failing;
  failing.fail_at = 6 * 4096;
  IomapIter it(failing, 1, 0, 9 * 4096, kIomapWrite);
  while (it.next()) it.advance(it.length());
  CHECK(it.status().code() == ENOSPC);
  CHECK(it.processed_total() == 6 * 4096);
  CHECK(failing.ends.size() == 2);
}

TEST_CASE("iomap range lock: overlapping exclusive ranges wait, disjoint ones do not") {
  FileRangeLocks locks;
  auto a = locks.lock(1, 0, 100, true);
  auto b = locks.lock(1, 100, 200, true);  // disjoint: granted at once
  auto c = locks.lock(2, 0, 100, true);    // another file
  auto r1 = locks.lock(1, 200, 210, false);  // shared, disjoint
  r1.reset();
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto d = locks.lock(1, 50, 150, false);  // overlaps a and b
    got = true;
    d.reset();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(got.load());
  a.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(got.load());
  b.reset();
  t.join();
  CHECK(got.load());
  c.reset();
}

}  // namespace stablefs
