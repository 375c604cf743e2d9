// ReplyBuffers: leases of the size asked for, size classes kept for reuse up to their count,
// and the byte count `stablefs stats` shows (every buffer that exists, leased or kept).
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <vector>

#include "fs/fuse/reply_buffers.h"

namespace stablefs {

TEST_CASE("reply buffers: leases are counted while they exist, kept ones until they are dropped") {
  std::atomic<uint64_t> bytes{0};
  auto pool = std::make_unique<ReplyBuffers>();
  pool->count_into(&bytes);
  constexpr size_t small = ReplyBuffers::kClasses[0].bytes;
  constexpr size_t large = ReplyBuffers::kClasses[std::size(ReplyBuffers::kClasses) - 1].bytes;

  {
    auto a = pool->get(4096);
    CHECK(a->span().size() == 4096);
    CHECK(bytes == small);  // served from the smallest class
  }
  CHECK(bytes == small);  // kept for reuse
  {
    auto again = pool->get(small);
    CHECK(bytes == small);  // the kept one, no new memory
  }

  // Above the largest class: memory of its own, freed when the lease goes.
  {
    auto huge = pool->get(large + 4096);
    CHECK(huge->span().size() == large + 4096);
    CHECK(bytes == small + large + 4096);
  }
  CHECK(bytes == small);

  // More leases of a class at once than it keeps: the extra ones are freed on return.
  const size_t keep = ReplyBuffers::kClasses[0].keep;
  {
    std::vector<std::shared_ptr<ReplyBuffers::Lease>> many;
    for (size_t i = 0; i < keep + 3; ++i) many.push_back(pool->get(512));
    CHECK(bytes == (keep + 3) * small);
  }
  CHECK(bytes == keep * small);
  CHECK(bytes <= ReplyBuffers::kept_bound());
}

}  // namespace stablefs
