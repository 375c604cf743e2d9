// ChecksumStore: random set/drop/get over device block ranges against a std::map model.
#include <doctest/doctest.h>

#include <map>
#include <random>

#include "fs/inode/checksum_store.h"
#include "support/memory_metadata.h"

namespace stablefs {

TEST_CASE("checksum store: random ranges match a model, and dropping everything empties the tree") {
  test::MemoryMetadata meta;
  auto root = BTree::create_empty(meta, 0);
  REQUIRE(root.ok());
  BTree tree(meta, *root, [](uint64_t) {});
  ChecksumStore store(tree);
  std::map<uint64_t, uint64_t> model;
  std::mt19937_64 rng(7);
  for (int op = 0; op < 3000; ++op) {
    uint64_t start = rng() % 20000, n = 1 + rng() % 300;
    if (rng() % 3) {
      std::vector<uint64_t> sums(n);
      for (auto& s : sums) s = rng();
      REQUIRE(store.set(start, sums).ok());
      for (uint64_t i = 0; i < n; ++i) model[start + i] = sums[i];
    } else {
      REQUIRE(store.drop(start, n).ok());
      for (uint64_t i = 0; i < n; ++i) model.erase(start + i);
    }
    if (op % 100 == 0) {
      std::vector<std::optional<uint64_t>> got(20400);
      REQUIRE(store.get(0, got).ok());
      for (uint64_t b = 0; b < got.size(); ++b) {
        auto it = model.find(b);
        if (it == model.end()) REQUIRE_FALSE(got[b].has_value());
        else REQUIRE((got[b].has_value() && *got[b] == it->second));
      }
    }
  }
  REQUIRE(store.drop(0, 20400).ok());
  size_t items = 0;
  REQUIRE(tree.scan(kMinKey, kMaxKey, [&](const Key&, std::span<const uint8_t>) {
    ++items;
    return true;
  }).ok());
  CHECK(items == 0);
  CHECK(meta.live_blocks() == 1);
}

}  // namespace stablefs
