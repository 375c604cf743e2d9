// Unit tests of the B+tree (fs/meta/btree.h) against a std::map model, on the in-memory metadata space.
#include "fs/meta/btree.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fs/format/endian.h"
#include "support/memory_metadata.h"

namespace stablefs {
namespace {

using test::MemoryMetadata;
using Bytes = std::vector<uint8_t>;
// Key order spelt out field by field: much cheaper than the synthesized <=> in a Debug build.
struct KeyLess {
  bool operator()(const Key& a, const Key& b) const {
    if (a.objectid != b.objectid) return a.objectid < b.objectid;
    if (a.type != b.type) return a.type < b.type;
    return a.offset < b.offset;
  }
};
using Model = std::map<Key, Bytes, KeyLess>;

constexpr uint64_t kFirst = 100;               // MemoryMetadata's first block
constexpr uint64_t kEnd = kFirst + (1u << 22);  // and its end

#define EXPECT_OK(expr)                                   \
  do {                                                    \
    auto&& st_ = (expr);                                  \
    if (!st_.ok()) FAIL(#expr << ": " << st_.status().message()); \
  } while (0)

// A tree on its own in-memory metadata space, recording the root as an owner would.
struct Harness {
  explicit Harness(uint32_t block_size) : meta(block_size) {
    Result<uint64_t> r = BTree::create_empty(meta, 0);
    REQUIRE(r.ok());
    recorded_root = *r;
    tree = std::make_unique<BTree>(meta, recorded_root, [this](uint64_t b) {
      recorded_root = b;
      ++root_changes;
    });
  }
  MemoryMetadata meta;
  uint64_t recorded_root = 0;
  int root_changes = 0;
  std::unique_ptr<BTree> tree;
};

// Key i of an ordered key space: key order equals index order, and every byte of the encoding
// is exercised (high bytes of objectid and offset, type values up to 231).
Key key_at(uint64_t i) {
  return Key{(i >> 6) * 0x0000010000000001ull, static_cast<uint8_t>(((i >> 3) & 7) * 33),
             (i & 7) * 0x0100000000000001ull};
}

// n bytes that depend on seed: its low byte throughout, the seed itself at both ends.
Bytes pattern(size_t n, uint64_t seed) {
  Bytes v(n, static_cast<uint8_t>(seed));
  if (n == 0) return v;
  uint8_t s[8];
  std::memcpy(s, &seed, 8);
  std::memcpy(v.data(), s, std::min<size_t>(n, 8));
  if (n > 8) std::memcpy(v.data() + n - std::min<size_t>(n - 8, 8), s, std::min<size_t>(n - 8, 8));
  return v;
}

// Value sizes: empty, maximal, small, or uniform in [0, max].
Bytes random_value(std::mt19937_64& rng, size_t max) {
  size_t n;
  switch (rng() % 10) {
    case 0: n = 0; break;
    case 1: n = max; break;
    case 2: case 3: case 4: n = rng() % std::min<size_t>(33, max + 1); break;
    default: n = rng() % (max + 1);
  }
  return pattern(n, rng());
}

uint16_t node_level(MemoryMetadata& meta, uint64_t b) {
  return get16((*meta.read(b, BlockType::kBtreeNode))->data() + 48);
}
uint16_t node_count(MemoryMetadata& meta, uint64_t b) {
  return get16((*meta.read(b, BlockType::kBtreeNode))->data() + 50);
}

struct CheckReport {
  std::vector<std::string> problems;
  std::vector<uint64_t> blocks;
  size_t items = 0;
  bool items_match = true;
  std::string mismatch;
};

// Runs check(); with a model, compares every leaf item with it in order.
CheckReport check_tree(BTree& tree, const Model* model, uint64_t first = kFirst, uint64_t end = kEnd) {
  CheckReport rep;
  Model::const_iterator it;
  if (model) it = model->begin();
  BTree::CheckCallbacks cb;
  cb.problem = [&](const std::string& p) { rep.problems.push_back(p); };
  cb.on_block = [&](uint64_t b) { rep.blocks.push_back(b); };
  cb.on_item = [&](const Key& k, std::span<const uint8_t> v) {
    ++rep.items;
    if (!model || !rep.items_match) return;
    if (it == model->end() || it->first != k || !std::equal(v.begin(), v.end(), it->second.begin(), it->second.end())) {
      rep.items_match = false;
      rep.mismatch = "item " + k.to_string() + " differs from the model" +
                     (it == model->end() ? std::string(" (model exhausted)") : " (model has " + it->first.to_string() + ")");
      return;
    }
    ++it;
  };
  tree.check(first, end, cb);
  if (model && rep.items_match && it != model->end()) {
    rep.items_match = false;
    rep.mismatch = "model item " + it->first.to_string() + " missing from the tree";
  }
  return rep;
}

// The tree holds exactly the model, check() is clean and the tree owns every live block.
void expect_matches(Harness& h, const Model& model) {
  CheckReport rep = check_tree(*h.tree, &model);
  INFO("first problem: " << (rep.problems.empty() ? std::string("none") : rep.problems[0]));
  CHECK(rep.problems.empty());
  INFO("mismatch: " << rep.mismatch);
  CHECK(rep.items_match);
  CHECK(rep.items == model.size());
  CHECK(rep.blocks.size() == h.meta.live_blocks());
  CHECK(h.tree->root() == h.recorded_root);
}

void expect_scan_equals(BTree& tree, const Model& model, const Key& from, const Key& to, size_t limit) {
  auto it = model.lower_bound(from);
  size_t n = 0;
  bool same = true;
  Status st = tree.scan(from, to, [&](const Key& k, std::span<const uint8_t> v) {
    if (it == model.end() || it->first != k || !std::equal(v.begin(), v.end(), it->second.begin(), it->second.end()))
      same = false;
    else
      ++it;
    return ++n < limit;
  });
  if (!st.ok()) FAIL("scan: " << st.message());
  if (!same) FAIL("scan from " << from.to_string() << " differs from the model at item " << n);
  const bool model_done = n == limit || it == model.end() || to < it->first;
  if (!model_done) FAIL("scan from " << from.to_string() << " stopped early at " << it->first.to_string());
}

void expect_lookup_le(BTree& tree, const Model& model, const Key& k) {
  Key found;
  Bytes v;
  Result<bool> r = tree.lookup_le(k, &found, &v);
  if (!r.ok()) FAIL("lookup_le: " << r.status().message());
  auto it = model.upper_bound(k);
  if (it == model.begin()) {
    if (*r) FAIL("lookup_le " << k.to_string() << " found " << found.to_string() << ", model has nothing");
    return;
  }
  --it;
  if (!*r || found != it->first || v != it->second)
    FAIL("lookup_le " << k.to_string() << " differs from the model's " << it->first.to_string());
}

// Removes every item in random order; the tree ends as one empty root leaf.
void drain(Harness& h, Model& model, std::mt19937_64& rng) {
  std::vector<Key> keys;
  for (auto& [k, v] : model) keys.push_back(k);
  std::shuffle(keys.begin(), keys.end(), rng);
  h.meta.fail_allocations_after(0);  // removing never allocates
  for (const Key& k : keys) EXPECT_OK(h.tree->remove(k));
  h.meta.fail_allocations_after(-1);
  model.clear();
  expect_matches(h, model);
  CHECK(h.meta.live_blocks() == 1);
  CHECK(node_level(h.meta, h.tree->root()) == 0);
  CHECK(node_count(h.meta, h.tree->root()) == 0);
}

struct RandomRun {
  uint32_t block_size;
  size_t ops;
  uint64_t key_space;
  size_t phase;        // operations per phase; phases alternate growing and shrinking
  size_t check_every;  // full check() against the model
  uint64_t seed;
  // Percent of operations whose key lies within 64 of the last one's, so that runs of
  // operations land in one leaf (the finger's case) while splits and joins go on around it.
  unsigned nearby_percent = 0;
};

// Random insert / put / remove / lookup / lookup_le / scan checked against a std::map.
void random_operations(const RandomRun& cfg) {
  Harness h(cfg.block_size);
  BTree& tree = *h.tree;
  std::mt19937_64 rng(cfg.seed);
  Model model;
  const size_t max = tree.max_value_size();
  uint16_t max_level = 0;
  size_t max_items = 0;
  Bytes got;
  uint64_t last_index = 0;
  for (size_t op = 0; op < cfg.ops; ++op) {
    const bool growing = (op / cfg.phase) % 2 == 0;
    const unsigned r = rng() % 100;
    uint64_t index = rng() % cfg.key_space;
    if (rng() % 100 < cfg.nearby_percent) index = (last_index + rng() % 128 + cfg.key_space - 64) % cfg.key_space;
    last_index = index;
    const Key k = key_at(index);
    if (r < (growing ? 35u : 10u)) {
      Bytes v = random_value(rng, max);
      Status st = tree.insert(k, v);
      if (model.count(k)) {
        if (st.code() != EEXIST) FAIL("insert of a present key: " << st.code() << " " << st.message());
      } else {
        if (!st.ok()) FAIL("insert " << k.to_string() << ": " << st.message());
        model.emplace(k, std::move(v));
      }
    } else if (r < (growing ? 60u : 25u)) {
      Bytes v = random_value(rng, max);
      EXPECT_OK(tree.put(k, v));
      model[k] = std::move(v);
    } else if (r < 75) {
      Status st = tree.remove(k);
      if (model.erase(k)) {
        if (!st.ok()) FAIL("remove " << k.to_string() << ": " << st.message());
      } else if (st.code() != ENOENT) {
        FAIL("remove of an absent key: " << st.code() << " " << st.message());
      }
    } else if (r < 85) {
      Result<bool> res = tree.lookup(k, &got);
      if (!res.ok()) FAIL("lookup: " << res.status().message());
      auto it = model.find(k);
      if (*res != (it != model.end()) || (*res && got != it->second)) FAIL("lookup " << k.to_string() << " differs");
    } else if (r < 95) {
      expect_lookup_le(tree, model, k);
    } else {
      const Key to = key_at(index + rng() % 100);
      const size_t limit = rng() % 4 == 0 ? 1 + rng() % 20 : SIZE_MAX;
      expect_scan_equals(tree, model, k, to, limit);
    }
    max_items = std::max(max_items, model.size());
    if ((op + 1) % cfg.check_every == 0) {
      max_level = std::max(max_level, node_level(h.meta, tree.root()));
      expect_matches(h, model);
    }
  }
  expect_matches(h, model);
  MESSAGE("block size " << cfg.block_size << ": " << cfg.ops << " operations, up to " << max_items
                        << " items, root level up to " << max_level << ", " << h.root_changes << " root changes");
  CHECK(h.root_changes > 0);
  drain(h, model, rng);
  EXPECT_OK(tree.destroy());
  CHECK(h.meta.live_blocks() == 0);
}

TEST_CASE("btree: empty tree and limits") {
  for (uint32_t bs : {4096u, 65536u}) {
    Harness h(bs);
    BTree& tree = *h.tree;
    CHECK(tree.max_value_size() == (bs - 56) / 4 - 21);
    CHECK(BTree::max_value_size_for(4096) == 989);
    CHECK(BTree::max_value_size_for(65536) == 16349);
    Bytes v;
    Key found;
    CHECK(*tree.lookup(key_at(1), &v) == false);
    CHECK(*tree.lookup_le(kMaxKey, &found, &v) == false);
    CHECK(tree.remove(key_at(1)).code() == ENOENT);
    size_t calls = 0;
    EXPECT_OK(tree.scan(kMinKey, kMaxKey, [&](const Key&, std::span<const uint8_t>) { return ++calls, true; }));
    CHECK(calls == 0);
    Bytes too_big(tree.max_value_size() + 1, 7);
    CHECK(tree.insert(key_at(1), too_big).code() == E2BIG);
    CHECK(tree.put(key_at(1), too_big).code() == E2BIG);
    Model model;
    expect_matches(h, model);

    // Extreme keys and a maximal value.
    Bytes big = pattern(tree.max_value_size(), 42);
    EXPECT_OK(tree.insert(kMaxKey, big));
    EXPECT_OK(tree.insert(kMinKey, {}));
    CHECK(tree.insert(kMinKey, big).code() == EEXIST);
    model[kMaxKey] = big;
    model[kMinKey] = {};
    CHECK(*tree.lookup(kMaxKey, &v));
    CHECK(v == big);
    CHECK(*tree.lookup_le(key_at(5), &found, &v));
    CHECK(found == kMinKey);
    CHECK(v.empty());
    expect_matches(h, model);
    EXPECT_OK(tree.remove(kMaxKey));
    EXPECT_OK(tree.remove(kMinKey));
    CHECK(h.meta.live_blocks() == 1);
  }
}

TEST_CASE("btree: leaf layout on disk") {
  Harness h(4096);
  const Key k{0x0102030405060708ull, 0x09, 0x1112131415161718ull};
  const Bytes v = {0xaa, 0xbb, 0xcc};
  EXPECT_OK(h.tree->insert(k, v));
  EXPECT_OK(h.tree->insert(key_at(0), {}));  // sorts first: slot 0, empty value
  const uint8_t* d = (*h.meta.read(h.tree->root(), BlockType::kBtreeNode))->data();
  for (size_t i = 0; i < 48; ++i) CHECK(d[i] == 0);  // the common header is the journal's
  CHECK(get16(d + 48) == 0);                          // level
  CHECK(get16(d + 50) == 2);                          // nritems
  CHECK(get32(d + 52) == 0);                          // reserved
  // Item 0: key_at(0) = (0,0,0), empty value ending at the block end.
  CHECK(get64(d + 56) == 0);
  CHECK(get16(d + 56 + 17) == 4096 - 48);
  CHECK(get16(d + 56 + 19) == 0);
  // Item 1: the key little-endian, its value packed just below item 0's.
  const uint8_t key_bytes[17] = {8, 7, 6, 5, 4, 3, 2, 1, 9, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};
  CHECK(std::memcmp(d + 77, key_bytes, 17) == 0);
  CHECK(get16(d + 77 + 17) == 4096 - 48 - 3);
  CHECK(get16(d + 77 + 19) == 3);
  CHECK(std::memcmp(d + 4096 - 3, v.data(), 3) == 0);
}

TEST_CASE("btree: 1000000 random operations against a model with 4 KiB blocks") {
  random_operations({4096, 1'000'000, 36'000, 125'000, 100'000, 1});
}

TEST_CASE("btree: random operations near one another against a model (the finger's runs in one leaf)") {
  random_operations({4096, 400'000, 36'000, 50'000, 50'000, 3, 90});
}

TEST_CASE("btree: random operations against a model with 64 KiB blocks") {
  random_operations({65536, 80'000, 5'000, 20'000, 40'000, 2});
}

TEST_CASE("btree: sequential and reverse inserts") {
  for (uint32_t bs : {4096u, 65536u}) {
    for (bool reverse : {false, true}) {
      CAPTURE(bs);
      CAPTURE(reverse);
      Harness h(bs);
      Model model;
      std::mt19937_64 rng(bs + reverse);
      const uint64_t n = bs == 4096 ? 25'000 : 8'000;
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t idx = reverse ? n - 1 - i : i;
        Bytes v = pattern(8, idx);
        EXPECT_OK(h.tree->insert(key_at(idx), v));
        model.emplace(key_at(idx), std::move(v));
      }
      expect_matches(h, model);
      // Loads at the edge of the tree keep the old nodes full: close to the minimum of leaves.
      const size_t per_leaf = (bs - 56) / (21 + 8);
      const size_t min_leaves = (n + per_leaf - 1) / per_leaf;
      INFO("live blocks " << h.meta.live_blocks() << ", minimum leaves " << min_leaves);
      CHECK(h.meta.live_blocks() <= min_leaves + min_leaves / 20 + 3);
      if (bs == 4096) CHECK(node_level(h.meta, h.tree->root()) == 2);
      expect_scan_equals(*h.tree, model, kMinKey, kMaxKey, SIZE_MAX);
      for (int i = 0; i < 200; ++i) expect_lookup_le(*h.tree, model, key_at(rng() % (n + 10)));

      // Delete in key order (or reverse), half of it, then the rest at random.
      for (uint64_t i = 0; i < n / 2; ++i) {
        const uint64_t idx = reverse ? n - 1 - i : i;
        EXPECT_OK(h.tree->remove(key_at(idx)));
        model.erase(key_at(idx));
      }
      expect_matches(h, model);
      drain(h, model, rng);
    }
  }
}

TEST_CASE("btree: an underfull internal node borrows from a full sibling") {
  // A sequential load leaves the first level-1 node one short of full (its split keeps two
  // entries for the new node) and the last one short.
  // Emptying the last leaves makes the last level-1 node underfull; with its full neighbour it
  // cannot merge, so entries move across and the separator in the root changes.
  Harness h(4096);
  Model model;
  const uint64_t n = 25'000;
  for (uint64_t i = 0; i < n; ++i) {
    EXPECT_OK(h.tree->insert(key_at(i), pattern(8, i)));
    model.emplace(key_at(i), pattern(8, i));
  }
  const uint64_t root = h.tree->root();
  REQUIRE(node_level(h.meta, root) == 2);
  REQUIRE(node_count(h.meta, root) == 2);
  const uint8_t* r = (*h.meta.read(root, BlockType::kBtreeNode))->data();
  const uint64_t first_child = get64(r + 56 + 17), last_child = get64(r + 56 + 25 + 17);
  const size_t full = internal_capacity(4096) - 1;
  REQUIRE(node_count(h.meta, first_child) == full);
  REQUIRE(node_count(h.meta, last_child) < 40);
  const Key old_separator = decode_key(r + 56 + 25);
  for (uint64_t i = n - 1; i >= n - 400; --i) {
    EXPECT_OK(h.tree->remove(key_at(i)));
    model.erase(key_at(i));
  }
  expect_matches(h, model);
  REQUIRE(h.tree->root() == root);
  CHECK(decode_key(r + 56 + 25) < old_separator);
  CHECK(node_count(h.meta, first_child) < full);
  CHECK(node_count(h.meta, last_child) >= 40);
  std::mt19937_64 rng(9);
  drain(h, model, rng);
}

// The rightmost level-1 node right after the sequential load first split it: its last entry.
struct RightEdge {
  uint64_t level1;  // the last level-1 node
  uint64_t leaf;    // its last leaf
};
RightEdge right_edge(Harness& h) {
  uint64_t b = h.tree->root();
  RightEdge e{0, 0};
  while (node_level(h.meta, b) > 0) {
    const uint8_t* d = (*h.meta.read(b, BlockType::kBtreeNode))->data();
    if (node_level(h.meta, b) == 1) e.level1 = b;
    b = get64(d + 56 + 25 * (node_count(h.meta, b) - 1) + 17);
  }
  e.leaf = b;
  return e;
}

// Sequential inserts (key_at(0), key_at(1), ...) until the root reaches `level`; returns how
// many were inserted.
uint64_t load_until_root_level(Harness& h, Model& model, uint16_t level) {
  uint64_t i = 0;
  for (; node_level(h.meta, h.tree->root()) < level; ++i) {
    EXPECT_OK(h.tree->insert(key_at(i), pattern(8, i)));
    model.emplace(key_at(i), pattern(8, i));
  }
  return i;
}

// Removes the largest key n times, checking the whole tree after every removal; then the tree
// must hold exactly the model.
void remove_from_right_end(Harness& h, Model& model, size_t n) {
  for (size_t removed = 0; removed < n; ++removed) {
    const Key last = std::prev(model.end())->first;
    EXPECT_OK(h.tree->remove(last));
    model.erase(last);
    CheckReport rep = check_tree(*h.tree, &model);
    if (!rep.problems.empty()) FAIL("after removing " << removed + 1 << ": " << rep.problems[0]);
  }
  expect_matches(h, model);
}

TEST_CASE("btree: emptying the newest leaf after a sequential internal split") {
  // Regression: a sequential load that splits an internal node at the right edge must leave
  // the new internal node with a sibling for its leaves, so that emptying the last leaf merges
  // it away instead of leaving an empty non-root leaf ("non-root node is empty").
  Harness h(4096);
  Model model;
  uint64_t i = load_until_root_level(h, model, 2);
  const RightEdge edge = right_edge(h);
  CHECK(node_count(h.meta, edge.level1) >= 2);
  // Remove from the right end, checking the whole tree after each removal.
  for (uint64_t removed = 0; removed < 600; ++removed) {
    --i;
    EXPECT_OK(h.tree->remove(key_at(i)));
    model.erase(key_at(i));
    if (removed % 10 == 0 || removed < 300) {
      CheckReport rep = check_tree(*h.tree, &model);
      if (!rep.problems.empty()) FAIL("after removing " << removed + 1 << ": " << rep.problems[0]);
    }
  }
  expect_matches(h, model);
  std::mt19937_64 rng(11);
  drain(h, model, rng);
}

TEST_CASE("btree: a one-entry internal node (an older image's shape) is rebalanced through its parent") {
  // Older versions split internal nodes at the right edge into a full node and a one-entry node.
  // Build that shape by hand: drop all but the first leaf of the last level-1 node, then empty
  // that leaf. Every removal must leave a valid tree.
  Harness h(4096);
  Model model;
  load_until_root_level(h, model, 2);
  const RightEdge edge = right_edge(h);
  {
    BufferRef buf = *h.meta.read(edge.level1, BlockType::kBtreeNode);
    Result<NodeView> node = NodeView::open(buf);
    REQUIRE(node.ok());
    h.meta.modify(buf);
    while (node->count() > 1) {
      const size_t last = node->count() - 1;
      const uint64_t leaf = node->child(last);
      const uint8_t* d = (*h.meta.read(leaf, BlockType::kBtreeNode))->data();
      const Key first = decode_key(d + 56);
      for (auto it = model.lower_bound(first); it != model.end();) it = model.erase(it);
      node->internal_remove(last);
      REQUIRE(h.meta.free(leaf).ok());
    }
  }
  expect_matches(h, model);
  REQUIRE(node_count(h.meta, edge.level1) == 1);
  const size_t in_leaf = node_count(h.meta, right_edge(h).leaf);
  remove_from_right_end(h, model, in_leaf + 5);
  std::mt19937_64 rng(12);
  drain(h, model, rng);
}

TEST_CASE("btree: a chain of one-entry internal nodes (an older image's shape) is rebalanced from the top") {
  // Older versions could leave a one-entry node under a one-entry node (two levels split at the
  // right edge at once). Build that by hand above a loaded tree: a new root over the old one
  // and a chain level 2 -> level 1 -> leaf, each node with a single entry, holding keys above
  // every other. Removing those keys must keep the tree valid at every step.
  Harness h(4096);
  Model model;
  const uint64_t loaded = load_until_root_level(h, model, 2);
  const uint64_t old_root = h.tree->root();
  auto node = [&](uint16_t level) {
    Result<BufferRef> b = h.meta.allocate(BlockType::kBtreeNode, 0);
    REQUIRE(b.ok());
    return NodeView::format(*b, level);
  };
  NodeView leaf = node(0);
  const Key first_new = key_at(loaded + 1000);
  for (uint64_t k = 0; k < 20; ++k) {
    const uint64_t i = loaded + 1000 + k;
    leaf.leaf_append(key_at(i), pattern(8, i));
    model.emplace(key_at(i), pattern(8, i));
  }
  NodeView l1 = node(1);
  l1.internal_insert(0, first_new, leaf.blocknr());
  NodeView l2 = node(2);
  l2.internal_insert(0, first_new, l1.blocknr());
  NodeView root = node(3);
  root.internal_insert(0, kMinKey, old_root);
  root.internal_insert(1, first_new, l2.blocknr());
  h.recorded_root = root.blocknr();
  h.tree = std::make_unique<BTree>(h.meta, h.recorded_root, [&h](uint64_t b) {
    h.recorded_root = b;
    ++h.root_changes;
  });
  expect_matches(h, model);
  remove_from_right_end(h, model, 25);
  std::mt19937_64 rng(13);
  drain(h, model, rng);
}

TEST_CASE("btree: put grows and shrinks values in place and across splits") {
  Harness h(4096);
  Model model;
  std::mt19937_64 rng(7);
  const size_t max = h.tree->max_value_size();
  for (uint64_t i = 0; i < 3000; ++i) {
    Bytes v = pattern(rng() % 16, i);
    EXPECT_OK(h.tree->put(key_at(i), v));
    model[key_at(i)] = std::move(v);
  }
  for (int round = 0; round < 4; ++round) {
    for (uint64_t i = 0; i < 3000; i += 1 + rng() % 3) {
      Bytes v = pattern(round % 2 == 0 ? max - rng() % 50 : rng() % 10, i + round);
      EXPECT_OK(h.tree->put(key_at(i), v));
      model[key_at(i)] = std::move(v);
    }
    expect_matches(h, model);
  }
  drain(h, model, rng);
}

TEST_CASE("btree: destroy frees every block") {
  Harness h(4096);
  std::mt19937_64 rng(3);
  for (uint64_t i = 0; i < 20'000; ++i) EXPECT_OK(h.tree->put(key_at(rng() % 100'000), pattern(rng() % 200, i)));
  CHECK(node_level(h.meta, h.tree->root()) >= 2);
  CHECK(h.meta.live_blocks() > 100);
  EXPECT_OK(h.tree->destroy());
  CHECK(h.meta.live_blocks() == 0);

  // A fresh tree, and another BTree object over the same root sees the same items.
  Harness g(4096);
  for (uint64_t i = 0; i < 500; ++i) EXPECT_OK(g.tree->insert(key_at(i), pattern(100, i)));
  BTree again(g.meta, g.recorded_root, nullptr);
  Bytes v;
  CHECK(*again.lookup(key_at(321), &v));
  CHECK(v == pattern(100, 321));
  EXPECT_OK(again.destroy());
  CHECK(g.meta.live_blocks() == 0);
}

TEST_CASE("btree: an allocation failure leaves the tree unchanged") {
  Harness h(4096);
  BTree& tree = *h.tree;
  Model model;
  std::mt19937_64 rng(11);
  const size_t max = tree.max_value_size();
  // 161 full leaves of four maximal items under a full root: the next insert must split a
  // leaf and the root and add a new root, three blocks.
  const size_t icap = (4096 - 56) / 25;
  for (uint64_t i = 0; i < icap * 4; ++i) {
    Bytes v = pattern(max, i);
    EXPECT_OK(tree.insert(key_at(i * 16), v));
    model.emplace(key_at(i * 16), std::move(v));
  }
  REQUIRE(node_level(h.meta, tree.root()) == 1);
  REQUIRE(node_count(h.meta, tree.root()) == icap);
  expect_matches(h, model);

  auto expect_unchanged = [&](const Status& st, uint64_t root, size_t live) {
    CHECK(st.code() == ENOSPC);
    CHECK(tree.root() == root);
    CHECK(h.meta.live_blocks() == live);
    expect_matches(h, model);
  };
  for (long fail_after : {0L, 1L, 2L}) {
    const uint64_t root = tree.root();
    const size_t live = h.meta.live_blocks();
    h.meta.fail_allocations_after(fail_after);
    Status st = tree.insert(key_at(100 * 16 + 5), pattern(10, 1));
    h.meta.fail_allocations_after(-1);
    expect_unchanged(st, root, live);
    // Even an empty item does not fit in a full leaf.
    h.meta.fail_allocations_after(fail_after);
    st = tree.insert(key_at(37 * 16 + 1), {});
    h.meta.fail_allocations_after(-1);
    expect_unchanged(st, root, live);
  }
  EXPECT_OK(tree.insert(key_at(100 * 16 + 5), pattern(10, 1)));
  model.emplace(key_at(100 * 16 + 5), pattern(10, 1));
  CHECK(node_level(h.meta, tree.root()) == 2);
  expect_matches(h, model);

  // Random inserts and puts with failures after 0..2 allocations; removes in between.
  size_t failures = 0;
  for (int i = 0; i < 4000; ++i) {
    const Key k = key_at(rng() % (icap * 4 * 16));
    if (rng() % 4 == 0) {
      Status st = tree.remove(k);
      if (model.erase(k)) EXPECT_OK(st);
      continue;
    }
    Bytes v = random_value(rng, max);
    const bool use_put = rng() % 2;
    const uint64_t root = tree.root();
    const size_t live = h.meta.live_blocks();
    h.meta.fail_allocations_after(static_cast<long>(rng() % 3));
    Status st = use_put ? tree.put(k, v) : tree.insert(k, v);
    h.meta.fail_allocations_after(-1);
    if (st.code() == ENOSPC) {
      ++failures;
      CHECK(tree.root() == root);
      CHECK(h.meta.live_blocks() == live);
      if (failures % 8 == 0) expect_matches(h, model);
      continue;
    }
    if (!use_put && model.count(k)) {
      CHECK(st.code() == EEXIST);
      continue;
    }
    EXPECT_OK(st);
    model[k] = std::move(v);
  }
  MESSAGE(failures << " injected allocation failures");
  CHECK(failures > 100);
  expect_matches(h, model);
  drain(h, model, rng);
}

// A deep copy of a tree's blocks into a fresh metadata space that allocates far above them.
std::unique_ptr<MemoryMetadata> clone_blocks(MemoryMetadata& src, const std::vector<uint64_t>& blocks, uint32_t bs) {
  auto dst = std::make_unique<MemoryMetadata>(bs, 1ull << 32, 1u << 20);
  for (uint64_t b : blocks) {
    BufferRef from = *src.read(b, BlockType::kBtreeNode);
    BufferRef to = dst->create_fixed(b, BlockType::kBtreeNode);
    std::memcpy(to->data(), from->data(), bs);
  }
  return dst;
}

// Runs every operation on a damaged tree: each must return (an error or a result), never crash.
void exercise_damaged(MemoryMetadata& meta, uint64_t root, std::mt19937_64& rng, uint64_t key_space,
                      size_t* problems_found, size_t* errors_seen) {
  BTree tree(meta, root, [](uint64_t) {});
  Bytes v;
  Key found;
  auto note = [&](const Status& st) {
    if (!st.ok() && st.code() != ENOENT && st.code() != EEXIST) {
      ++*errors_seen;
      if (st.message().find("block") == std::string::npos) FAIL("error does not name a block: " << st.message());
    }
  };
  for (int i = 0; i < 8; ++i) note(tree.lookup(key_at(rng() % key_space), &v).status());
  for (int i = 0; i < 8; ++i) note(tree.lookup_le(key_at(rng() % key_space), &found, &v).status());
  size_t seen = 0;
  note(tree.scan(kMinKey, kMaxKey, [&](const Key&, std::span<const uint8_t>) { return ++seen < 100000; }));
  BTree::CheckCallbacks cb;
  size_t problems = 0;
  cb.problem = [&](const std::string& p) {
    ++problems;
    if (p.find("block") == std::string::npos) FAIL("problem does not name a block: " << p);
  };
  tree.check(kFirst, 1ull << 33, cb);
  for (int i = 0; i < 6; ++i) note(tree.insert(key_at(rng() % key_space), pattern(rng() % 300, i)));
  for (int i = 0; i < 6; ++i) note(tree.put(key_at(rng() % key_space), pattern(rng() % 300, i)));
  for (int i = 0; i < 10; ++i) note(tree.remove(key_at(rng() % key_space)));
  tree.check(kFirst, 1ull << 33, cb);
  *problems_found += problems;
}

TEST_CASE("btree: damaged nodes give errors, never crashes") {
  const uint32_t bs = 4096;
  Harness h(bs);
  std::mt19937_64 rng(5);
  const uint64_t key_space = 20'000;
  for (int i = 0; i < 7000; ++i) EXPECT_OK(h.tree->put(key_at(rng() % key_space), pattern(60 + rng() % 200, i)));
  REQUIRE(node_level(h.meta, h.tree->root()) == 2);
  CheckReport rep = check_tree(*h.tree, nullptr);
  REQUIRE(rep.problems.empty());
  std::vector<uint64_t> internal, leaves;
  for (uint64_t b : rep.blocks) (node_level(h.meta, b) ? internal : leaves).push_back(b);
  const uint64_t root = h.tree->root();

  SUBCASE("random byte flips") {
    size_t problems = 0, errors = 0, detected_trials = 0;
    const int trials = 210;
    for (int t = 0; t < trials; ++t) {
      auto meta = clone_blocks(h.meta, rep.blocks, bs);
      const int pick = t % 3;
      const uint64_t victim = pick == 0   ? root
                              : pick == 1 ? internal[rng() % internal.size()]
                                          : leaves[rng() % leaves.size()];
      uint8_t* d = (*meta->read(victim, BlockType::kBtreeNode))->data();
      const size_t count = get16(d + 50);
      const size_t table_end = 56 + count * (node_level(*meta, victim) ? 25 : 21);
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Mostly the node header and item table, sometimes anywhere in the body.
        const size_t off = rng() % 4 ? 48 + rng() % (table_end - 48) : 48 + rng() % (bs - 48);
        d[off] ^= static_cast<uint8_t>(1u << (rng() % 8));
      }
      size_t before = problems + errors;
      exercise_damaged(*meta, root, rng, key_space, &problems, &errors);
      if (problems + errors > before) ++detected_trials;
    }
    MESSAGE(detected_trials << " of " << trials << " damaged trees reported; " << problems << " check problems, "
                            << errors << " operation errors");
    CHECK(detected_trials > trials / 2);
  }

  SUBCASE("targeted damage is reported") {
    auto damaged = [&](auto&& poke) {
      auto meta = clone_blocks(h.meta, rep.blocks, bs);
      poke(*meta);
      std::vector<std::string> problems;
      BTree tree(*meta, root, nullptr);
      BTree::CheckCallbacks cb;
      cb.problem = [&](const std::string& p) { problems.push_back(p); };
      tree.check(kFirst, 1ull << 33, cb);
      std::vector<Status> errors;
      Bytes v;
      for (uint64_t i = 0; i < key_space; i += 97) errors.push_back(tree.lookup(key_at(i), &v).status());
      errors.push_back(tree.scan(kMinKey, kMaxKey, [](const Key&, std::span<const uint8_t>) { return true; }));
      bool eclean = false;
      for (const Status& s : errors) eclean = eclean || s.code() == EUCLEAN;
      return std::make_pair(problems, eclean);
    };
    auto bytes_of = [](MemoryMetadata& m, uint64_t b) { return (*m.read(b, BlockType::kBtreeNode))->data(); };
    const uint64_t leaf = leaves[leaves.size() / 2];
    const uint64_t mid = internal[1] == root ? internal[0] : internal[1];

    auto [p1, e1] = damaged([&](MemoryMetadata& m) { put16(bytes_of(m, leaf) + 50, 0xffff); });
    CHECK(e1);
    REQUIRE(p1.size() == 1);
    CHECK(p1[0].find("block " + std::to_string(leaf)) != std::string::npos);

    auto [p2, e2] = damaged([&](MemoryMetadata& m) { put16(bytes_of(m, leaf) + 56 + 19, 4000); });
    CHECK(e2);
    CHECK(p2.size() == 1);

    auto [p3, e3] = damaged([&](MemoryMetadata& m) { put16(bytes_of(m, leaf) + 48, 1); });
    CHECK(e3);
    CHECK(p3.size() == 1);

    // Two keys swapped: order violation, and an insert into that leaf refuses to touch it.
    auto [p4, e4] = damaged([&](MemoryMetadata& m) {
      uint8_t* d = bytes_of(m, leaf);
      uint8_t tmp[17];
      std::memcpy(tmp, d + 56, 17);
      std::memcpy(d + 56, d + 56 + 21, 17);
      std::memcpy(d + 56 + 21, tmp, 17);
    });
    CHECK(p4.size() == 1);

    // A child pointer to its own node, to the root, and outside the data area.
    for (uint64_t target : {mid, root, uint64_t{5}, uint64_t{1} << 40}) {
      CAPTURE(target);
      auto [p5, e5] = damaged([&](MemoryMetadata& m) { put64(bytes_of(m, mid) + 56 + 25 * 3 + 17, target); });
      CHECK(e5);
      CHECK(p5.size() >= 1);
    }

    // A leaf referenced twice (entry points at its neighbour's block).
    auto [p6, e6] = damaged([&](MemoryMetadata& m) {
      uint8_t* d = bytes_of(m, mid);
      put64(d + 56 + 25 * 4 + 17, get64(d + 56 + 25 * 3 + 17));
    });
    CHECK(p6.size() >= 1);
    (void)e6;

    auto [p7, e7] = damaged([&](MemoryMetadata& m) { put32(bytes_of(m, root) + 52, 1); });
    CHECK(e7);
    CHECK(p7.size() == 1);
  }
}

}  // namespace
}  // namespace stablefs
