#include "fs/meta/btree.h"

#include <unordered_set>
#include <utility>

namespace stablefs {
namespace {

// Where a split puts the boundary: balanced halves, or (for loads at the far right / far left
// of the tree) the old node kept as full as possible.
enum class SplitBias { kBalanced, kFillLeft, kFillRight };

// Chooses k so that items [0, k) and [k, n) each fit in capacity bytes and neither is empty.
Result<size_t> plan_leaf_split(const LeafItems& items, size_t capacity, SplitBias bias, uint64_t blocknr) {
  size_t total = 0;
  for (size_t i = 0; i < items.size(); ++i) total += items.item_bytes(i);
  size_t best = 0;
  size_t best_diff = SIZE_MAX;
  size_t left = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    left += items.item_bytes(k - 1);
    const size_t right = total - left;
    if (left > capacity) break;
    if (right > capacity) continue;
    if (bias == SplitBias::kFillRight) return k;
    const size_t diff = left > right ? left - right : right - left;
    if (bias == SplitBias::kFillLeft || diff < best_diff) {
      best = k;
      best_diff = diff;
    }
  }
  if (best == 0) return node_corrupt(blocknr, "items cannot be divided between two nodes");
  return best;
}

// Every non-root internal node keeps at least two entries, so that each of its children has a
// sibling to merge with or borrow from (rebalance relies on it). n >= 4 (a full node plus one).
size_t plan_internal_split(size_t n, SplitBias bias) {
  if (bias == SplitBias::kFillLeft) return n - 2;
  if (bias == SplitBias::kFillRight) return 2;
  return n / 2;
}

// fsck walk of one tree; see BTree::check.
class TreeChecker {
 public:
  TreeChecker(MetadataSpace& meta, uint64_t first, uint64_t end, const BTree::CheckCallbacks& cb)
      : meta_(meta), first_(first), end_(end), cb_(cb) {}

  void run(uint64_t root) {
    if (root < first_ || root >= end_) {
      problem(root, "btree block " + std::to_string(root) + ": root lies outside the data area [" + std::to_string(first_) +
              ", " + std::to_string(end_) + ")");
      return;
    }
    visit(root, -1, kMinKey, std::nullopt, 0);
  }

 private:
  // A problem of node blocknr: the line names it too.
  void problem(uint64_t blocknr, const std::string& line) {
    if (cb_.problem) cb_.problem(line);
    if (cb_.bad_node) cb_.bad_node(blocknr);
  }
  static std::string where(uint64_t blocknr) { return "btree block " + std::to_string(blocknr) + ": "; }

  void visit(uint64_t blocknr, int expected_level, const Key& lo, const std::optional<Key>& hi, size_t depth) {
    const bool is_root = expected_level < 0;
    if (!seen_.insert(blocknr).second) {
      problem(blocknr, where(blocknr) + "node is reached more than once");
      return;
    }
    if (cb_.on_block) cb_.on_block(blocknr);
    Result<BufferRef> buf = meta_.read(blocknr, BlockType::kBtreeNode);
    if (!buf.ok()) {
      problem(blocknr, where(blocknr) + buf.status().message());
      return;
    }
    Result<NodeView> opened = NodeView::open(*buf);
    if (!opened.ok()) {
      problem(blocknr, opened.status().message());
      return;
    }
    const NodeView& node = *opened;
    if (!is_root && node.level() != expected_level) {
      problem(blocknr, where(blocknr) + "level " + std::to_string(node.level()) + " where " + std::to_string(expected_level) +
              " is expected");
      return;
    }
    if (node.count() == 0) {
      if (!is_root) problem(blocknr, where(blocknr) + "non-root node is empty");
      else if (!node.is_leaf()) problem(blocknr, where(blocknr) + "internal root has no entries");
      return;
    }
    if (is_root && !node.is_leaf() && node.count() == 1) problem(blocknr, where(blocknr) + "internal root has a single child");
    if (Status s = node.check_key_order(); !s.ok()) {
      problem(blocknr, s.message());
      return;
    }
    const Key first = node.key(0);
    const Key last = node.key(node.count() - 1);
    if (node.is_leaf() ? first < lo : first != lo) {
      problem(blocknr, where(blocknr) + "first key " + first.to_string() + (node.is_leaf() ? " is below " : " differs from ") +
              "the lower bound " + lo.to_string() + " set by the parent");
      return;
    }
    if (hi && !(last < *hi)) {
      problem(blocknr, where(blocknr) + "last key " + last.to_string() + " is not below the bound " + hi->to_string() +
              " set by the parent");
      return;
    }
    if (node.is_leaf()) {
      if (leaf_depth_ && *leaf_depth_ != depth) {
        problem(blocknr, where(blocknr) + "leaf at depth " + std::to_string(depth) + ", other leaves at depth " +
                std::to_string(*leaf_depth_));
        return;
      }
      leaf_depth_ = depth;
      if (cb_.on_item)
        for (size_t i = 0; i < node.count(); ++i) cb_.on_item(node.key(i), node.value(i));
      return;
    }
    for (size_t i = 0; i < node.count(); ++i) {
      const uint64_t child = node.child(i);
      if (child < first_ || child >= end_) {
        problem(blocknr, where(blocknr) + "entry " + std::to_string(i) + " points to block " + std::to_string(child) +
                " outside the data area [" + std::to_string(first_) + ", " + std::to_string(end_) + ")");
        continue;
      }
      std::optional<Key> child_hi = i + 1 < node.count() ? std::optional<Key>(node.key(i + 1)) : hi;
      visit(child, node.level() - 1, node.key(i), child_hi, depth + 1);
    }
  }

  MetadataSpace& meta_;
  uint64_t first_, end_;
  const BTree::CheckCallbacks& cb_;
  std::unordered_set<uint64_t> seen_;
  std::optional<size_t> leaf_depth_;
};

}  // namespace

BTree::BTree(MetadataSpace& meta, uint64_t root_blocknr, std::function<void(uint64_t)> on_root_change)
    : meta_(meta), root_(root_blocknr), on_root_change_(std::move(on_root_change)) {}

Result<uint64_t> BTree::create_empty(MetadataSpace& meta, uint64_t goal) {
  const uint32_t bs = meta.block_size();
  if (bs < kMinBlockSize || bs > kMaxBlockSize)
    return Status::error(EINVAL, "btree: unsupported block size " + std::to_string(bs));
  SFS_ASSIGN(BufferRef buf, meta.allocate(BlockType::kBtreeNode, goal));
  NodeView::format(buf, 0);
  return buf->blocknr;
}

size_t BTree::max_value_size() const { return max_leaf_value_size(meta_.block_size()); }

Result<BTree::PathEntry> BTree::load(uint64_t blocknr, int expected_level, const Key& lo,
                                     const std::optional<Key>& hi) {
  SFS_ASSIGN(BufferRef buf, meta_.read(blocknr, BlockType::kBtreeNode));
  SFS_ASSIGN(NodeView node, NodeView::open(std::move(buf)));
  const bool is_root = expected_level < 0;
  if (!is_root && node.level() != expected_level)
    return node_corrupt(blocknr, "level " + std::to_string(node.level()) + " where " +
                                     std::to_string(expected_level) + " is expected");
  if (node.count() == 0) {
    if (!is_root) return node_corrupt(blocknr, "non-root node is empty");
    if (!node.is_leaf()) return node_corrupt(blocknr, "internal root has no entries");
  } else {
    const int first = node.compare(0, lo);
    if (node.is_leaf() ? first < 0 : first != 0)
      return node_corrupt(blocknr, "first key " + node.key(0).to_string() + " does not match the lower bound " +
                                       lo.to_string() + " set by the parent");
    if (hi && node.compare(node.count() - 1, *hi) >= 0)
      return node_corrupt(blocknr, "last key " + node.key(node.count() - 1).to_string() +
                                       " is not below the bound " + hi->to_string() + " set by the parent");
  }
  PathEntry e;
  e.node = std::move(node);
  e.lo = lo;
  e.hi = hi;
  return e;
}

Result<BTree::PathEntry> BTree::load_child(const PathEntry& parent, size_t slot) {
  const NodeView& p = parent.node;
  std::optional<Key> hi = slot + 1 < p.count() ? std::optional<Key>(p.key(slot + 1)) : parent.hi;
  return load(p.child(slot), p.level() - 1, p.key(slot), hi);
}

Status BTree::descend(const Key& key, Path* path, bool* exact) {
  path->clear();
  path->reserve(kMaxNodeLevel + 1);
  SFS_ASSIGN(PathEntry e, load(root_, -1, kMinKey, std::nullopt));
  // Levels strictly decrease (load checks each child's), so this ends within kMaxNodeLevel steps.
  while (!e.node.is_leaf()) {
    e.slot = e.node.child_slot(key);
    path->push_back(std::move(e));
    SFS_ASSIGN(PathEntry child, load_child(path->back(), path->back().slot));
    e = std::move(child);
  }
  e.slot = e.node.lower_bound(key, exact);
  path->push_back(std::move(e));
  return {};
}

Result<bool> BTree::next_leaf(Path* path) {
  Path& p = *path;
  int d = static_cast<int>(p.size()) - 2;
  while (d >= 0 && p[d].slot + 1 >= p[d].node.count()) --d;
  if (d < 0) return false;
  ++p[d].slot;
  for (size_t e = d + 1; e < p.size(); ++e) {
    SFS_ASSIGN(PathEntry child, load_child(p[e - 1], p[e - 1].slot));
    child.slot = 0;
    p[e] = std::move(child);
  }
  return true;
}

Result<bool> BTree::prev_leaf(Path* path) {
  Path& p = *path;
  int d = static_cast<int>(p.size()) - 2;
  while (d >= 0 && p[d].slot == 0) --d;
  if (d < 0) return false;
  --p[d].slot;
  for (size_t e = d + 1; e < p.size(); ++e) {
    SFS_ASSIGN(PathEntry child, load_child(p[e - 1], p[e - 1].slot));
    child.slot = child.node.count() - 1;  // non-root nodes are never empty (load checks)
    p[e] = std::move(child);
  }
  return true;
}

Result<bool> BTree::lookup(const Key& key, std::vector<uint8_t>* value) {
  Path path;
  bool exact = false;
  SFS_TRY(descend(key, &path, &exact));
  if (!exact) return false;
  if (value) {
    auto v = path.back().node.value(path.back().slot);
    value->assign(v.begin(), v.end());
  }
  return true;
}

Result<bool> BTree::lookup_le(const Key& k, Key* found, std::vector<uint8_t>* value) {
  Path path;
  bool exact = false;
  SFS_TRY(descend(k, &path, &exact));
  if (!exact) {
    if (path.back().slot > 0) {
      --path.back().slot;
    } else {
      SFS_ASSIGN(bool moved, prev_leaf(&path));
      if (!moved) return false;
    }
  }
  const PathEntry& leaf = path.back();
  if (found) *found = leaf.node.key(leaf.slot);
  if (value) {
    auto v = leaf.node.value(leaf.slot);
    value->assign(v.begin(), v.end());
  }
  return true;
}

Status BTree::scan(const Key& from, const Key& to,
                   const std::function<bool(const Key&, std::span<const uint8_t>)>& fn) {
  if (to < from) return {};
  Path path;
  bool exact = false;
  SFS_TRY(descend(from, &path, &exact));
  // Keys must strictly increase across the whole walk: a corrupt tree that leads back to a leaf
  // already seen stops with an error instead of looping.
  std::optional<Key> prev;
  size_t i = path.back().slot;
  while (true) {
    const PathEntry& leaf = path.back();
    for (; i < leaf.node.count(); ++i) {
      const Key k = leaf.node.key(i);
      if (prev && !(*prev < k))
        return node_corrupt(leaf.node.blocknr(), "key " + k.to_string() + " does not follow " + prev->to_string());
      prev = k;
      if (to < k) return {};
      if (k < from) continue;
      if (!fn(k, leaf.node.value(i))) return {};
    }
    // Every key right of this leaf is >= its upper bound.
    if (leaf.hi && to < *leaf.hi) return {};
    SFS_ASSIGN(bool more, next_leaf(&path));
    if (!more) return {};
    i = 0;
  }
}

Result<bool> BTree::contains_any(const Key& from, const Key& to) {
  bool any = false;
  SFS_TRY(scan(from, to, [&](const Key&, std::span<const uint8_t>) {
    any = true;
    return false;
  }));
  return any;
}

Status BTree::insert(const Key& key, std::span<const uint8_t> value) { return store(key, value, false); }

Status BTree::put(const Key& key, std::span<const uint8_t> value) { return store(key, value, true); }

Status BTree::store(const Key& key, std::span<const uint8_t> value, bool replace) {
  if (value.size() > max_value_size())
    return Status::error(E2BIG, "btree: value of " + std::to_string(value.size()) + " bytes exceeds the maximum of " +
                                    std::to_string(max_value_size()));
  Path path;
  bool exact = false;
  SFS_TRY(descend(key, &path, &exact));
  PathEntry& leaf = path.back();
  if (exact && !replace) return Status::error(EEXIST, "btree: key " + key.to_string() + " already exists");
  // In-place changes check the neighbours of the slot (O(1)); a split rebuilds the whole node
  // and first checks the order of all its keys.
  if (!exact) {
    if (leaf.slot > 0 && leaf.node.compare(leaf.slot - 1, key) >= 0)
      return node_corrupt(leaf.node.blocknr(), "keys out of order around item " + std::to_string(leaf.slot));
    if (leaf.slot < leaf.node.count() && leaf.node.compare(leaf.slot, key) <= 0)
      return node_corrupt(leaf.node.blocknr(), "keys out of order around item " + std::to_string(leaf.slot));
  }
  const size_t old_bytes = exact ? kLeafItemSize + leaf.node.value_size(leaf.slot) : 0;
  const size_t new_bytes = kLeafItemSize + value.size();
  if (leaf.node.free_bytes() + old_bytes >= new_bytes) {
    meta_.modify(leaf.node.buffer());
    if (exact) leaf.node.leaf_replace(leaf.slot, value);
    else leaf.node.leaf_insert(leaf.slot, key, value);
    if (exact && new_bytes < old_bytes) return rebalance(&path);
    return {};
  }
  return split_and_store(&path, key, value, exact);
}

Status BTree::split_and_store(Path* path, const Key& key, std::span<const uint8_t> value, bool replace_slot) {
  Path& p = *path;
  NodeView& leaf = p.back().node;
  const size_t slot = p.back().slot;
  const uint32_t bs = meta_.block_size();
  const size_t icap = internal_capacity(bs);

  // Sequential loads: at the right edge of the tree keep the left node full, at the left edge
  // keep the right one full; elsewhere split evenly.
  bool rightmost = !replace_slot && slot == leaf.count();
  bool leftmost = !replace_slot && slot == 0;
  for (size_t d = 0; d + 1 < p.size(); ++d) {
    rightmost = rightmost && p[d].slot + 1 == p[d].node.count();
    leftmost = leftmost && p[d].slot == 0;
  }
  const SplitBias bias = rightmost ? SplitBias::kFillLeft : leftmost ? SplitBias::kFillRight : SplitBias::kBalanced;
  SFS_TRY(leaf.check_key_order());

  // Plan everything, check the nodes to be changed and allocate every new block before the
  // first change, so that a failure leaves the tree as it was.
  LeafItems items;
  leaf.leaf_copy_out(0, slot, &items);
  items.append(key, value);
  leaf.leaf_copy_out(replace_slot ? slot + 1 : slot, leaf.count(), &items);
  SFS_ASSIGN(const size_t split, plan_leaf_split(items, leaf_capacity(bs), bias, leaf.blocknr()));

  int d = static_cast<int>(p.size()) - 2;  // deepest internal node that takes an entry without splitting
  size_t needed = 1;
  while (d >= 0 && p[d].node.count() >= icap) {
    ++needed;
    --d;
  }
  const bool grow = d < 0;
  if (grow) {
    if (p[0].node.level() >= kMaxNodeLevel)
      return Status::error(EFBIG, "btree: the tree would exceed " + std::to_string(kMaxNodeLevel + 1) + " levels");
    ++needed;
  }
  for (size_t e = grow ? 0 : d; e + 1 < p.size(); ++e) SFS_TRY(p[e].node.check_key_order());

  std::vector<BufferRef> fresh;
  for (size_t i = 0; i < needed; ++i) {
    const size_t near = i < p.size() ? p.size() - 1 - i : 0;
    Result<BufferRef> r = meta_.allocate(BlockType::kBtreeNode, p[near].node.blocknr());
    if (!r.ok()) {
      for (const BufferRef& b : fresh) (void)meta_.free(b->blocknr);
      return r.status();
    }
    fresh.push_back(std::move(r).value());
  }

  // From here on nothing can fail.
  size_t next = 0;
  meta_.modify(leaf.buffer());
  NodeView right = NodeView::format(fresh[next++], 0);
  leaf.leaf_rebuild(items, 0, split);
  right.leaf_rebuild(items, split, items.size());
  Key sep = items.key(split);
  uint64_t new_child = right.blocknr();

  for (int e = static_cast<int>(p.size()) - 2; e >= 0; --e) {
    NodeView& node = p[e].node;
    const size_t pos = p[e].slot + 1;
    meta_.modify(node.buffer());
    if (node.count() < icap) {
      node.internal_insert(pos, sep, new_child);
      return {};
    }
    std::vector<InternalEntry> entries;
    node.internal_copy_out(0, pos, &entries);
    entries.push_back({sep, new_child});
    node.internal_copy_out(pos, node.count(), &entries);
    const size_t half = plan_internal_split(entries.size(), bias);
    NodeView sibling = NodeView::format(fresh[next++], node.level());
    node.internal_rebuild(entries, 0, half);
    sibling.internal_rebuild(entries, half, entries.size());
    sep = entries[half].key;
    new_child = sibling.blocknr();
  }

  // The root split: a new root above it.
  NodeView new_root = NodeView::format(fresh[next++], static_cast<uint16_t>(p[0].node.level() + 1));
  new_root.internal_insert(0, kMinKey, root_);
  new_root.internal_insert(1, sep, new_child);
  root_ = new_root.blocknr();
  if (on_root_change_) on_root_change_(root_);
  return {};
}

bool BTree::underfull(const NodeView& node) const {
  const uint32_t bs = meta_.block_size();
  if (node.is_leaf()) return node.used_bytes() < leaf_capacity(bs) / 4;
  return node.count() < internal_capacity(bs) / 4;
}

Result<bool> BTree::join_sibling(Path* path, size_t d, Status* free_error) {
  Path& p = *path;
  const uint32_t bs = meta_.block_size();
  PathEntry& parent = p[d - 1];
  PathEntry& self = p[d];
  if (parent.node.count() < 2)
    return node_corrupt(parent.node.blocknr(), "internal node with one entry gives its child no sibling");
  const size_t slot = parent.slot;
  const bool self_is_right = slot > 0;
  const size_t left_slot = self_is_right ? slot - 1 : slot;
  const size_t right_slot = left_slot + 1;
  SFS_ASSIGN(PathEntry sib, load_child(parent, self_is_right ? left_slot : right_slot));
  if (sib.node.blocknr() == self.node.blocknr())
    return node_corrupt(parent.node.blocknr(), "two entries point to block " + std::to_string(self.node.blocknr()));
  // Merging and redistributing rewrite whole nodes: check every key of the three first.
  SFS_TRY(self.node.check_key_order());
  SFS_TRY(sib.node.check_key_order());
  SFS_TRY(parent.node.check_key_order());
  PathEntry& left = self_is_right ? sib : self;
  PathEntry& right = self_is_right ? self : sib;
  const size_t left_count = left.node.count();
  // Where the path's slot of this level lies in the concatenation left + right.
  const size_t pos = self_is_right ? left_count + self.slot : self.slot;

  bool merge;
  size_t split = 0;  // redistribution: entries [0, split) stay left
  Key separator;
  if (self.node.is_leaf()) {
    merge = left.node.used_bytes() + right.node.used_bytes() <= leaf_capacity(bs);
    if (merge) {
      meta_.modify(left.node.buffer());
      for (size_t i = 0; i < right.node.count(); ++i) left.node.leaf_append(right.node.key(i), right.node.value(i));
    } else {
      LeafItems items;
      left.node.leaf_copy_out(0, left.node.count(), &items);
      right.node.leaf_copy_out(0, right.node.count(), &items);
      SFS_ASSIGN(split, plan_leaf_split(items, leaf_capacity(bs), SplitBias::kBalanced, left.node.blocknr()));
      meta_.modify(left.node.buffer());
      meta_.modify(right.node.buffer());
      meta_.modify(parent.node.buffer());
      left.node.leaf_rebuild(items, 0, split);
      right.node.leaf_rebuild(items, split, items.size());
      separator = items.key(split);
    }
  } else {
    merge = left.node.count() + right.node.count() <= internal_capacity(bs);
    if (merge) {
      // right's entry 0 carries its lower bound, the separator: entries simply concatenate.
      meta_.modify(left.node.buffer());
      for (size_t i = 0; i < right.node.count(); ++i)
        left.node.internal_insert(left.node.count(), right.node.key(i), right.node.child(i));
    } else {
      std::vector<InternalEntry> entries;
      left.node.internal_copy_out(0, left.node.count(), &entries);
      right.node.internal_copy_out(0, right.node.count(), &entries);
      split = entries.size() / 2;
      meta_.modify(left.node.buffer());
      meta_.modify(right.node.buffer());
      meta_.modify(parent.node.buffer());
      left.node.internal_rebuild(entries, 0, split);
      right.node.internal_rebuild(entries, split, entries.size());
      separator = entries[split].key;
    }
  }

  // Point the path at the node that now holds position pos.
  bool self_now_left;
  if (merge) {
    const uint64_t right_blocknr = right.node.blocknr();
    left.hi = right.hi;
    meta_.modify(parent.node.buffer());
    parent.node.internal_remove(right_slot);
    Status freed = meta_.free(right_blocknr);
    if (!freed.ok() && free_error->ok()) *free_error = freed;
    self_now_left = true;
    left.slot = pos;
  } else {
    parent.node.internal_set_key(right_slot, separator);
    left.hi = separator;
    right.lo = separator;
    self_now_left = pos < split;
    if (self_now_left) left.slot = pos;
    else right.slot = pos - split;
  }
  parent.slot = self_now_left ? left_slot : right_slot;
  const bool keep_self = self_now_left != self_is_right;
  if (!keep_self) p[d] = std::move(sib);
  return merge;
}

Result<bool> BTree::ensure_sibling(Path* path, size_t d, Status* free_error) {
  Path& p = *path;
  if (p[d - 1].node.count() >= 2) return true;
  if (d - 1 == 0) return false;  // a one-entry root: it collapses instead
  // A one-entry parent (older versions' right-edge internal splits made these, even in
  // chains): it joins a sibling of its own first, after making sure it has one.
  SFS_ASSIGN(const bool parent_has_sibling, ensure_sibling(path, d - 1, free_error));
  if (!parent_has_sibling) return false;
  SFS_TRY(join_sibling(path, d - 1, free_error).status());
  return p[d - 1].node.count() >= 2;
}

Status BTree::rebalance(Path* path) {
  Path& p = *path;
  Status free_error;
  for (size_t d = p.size() - 1; d >= 1; --d) {
    if (!underfull(p[d].node)) break;
    SFS_ASSIGN(const bool has_sibling, ensure_sibling(path, d, &free_error));
    if (!has_sibling) break;  // the root has this node alone: the root collapses below
    SFS_ASSIGN(const bool merged, join_sibling(path, d, &free_error));
    if (!merged) break;  // the parent keeps its entry count
  }

  // A root left with a single child hands the role to it.
  while (!p[0].node.is_leaf() && p[0].node.count() == 1) {
    SFS_ASSIGN(PathEntry child, load_child(p[0], 0));
    const uint64_t old_root = root_;
    root_ = child.node.blocknr();
    if (on_root_change_) on_root_change_(root_);
    p[0] = std::move(child);
    Status freed = meta_.free(old_root);
    if (!freed.ok() && free_error.ok()) free_error = freed;
  }
  return free_error;
}

Status BTree::remove(const Key& key) {
  Path path;
  bool exact = false;
  SFS_TRY(descend(key, &path, &exact));
  if (!exact) return Status::error(ENOENT, "btree: key " + key.to_string() + " not found");
  PathEntry& leaf = path.back();
  meta_.modify(leaf.node.buffer());
  leaf.node.leaf_remove(leaf.slot);
  return rebalance(&path);
}

Status BTree::destroy() {
  // Walk and validate everything first, free afterwards: a damaged tree is left alone.
  std::vector<uint64_t> blocks;
  std::unordered_set<uint64_t> seen;
  std::vector<PathEntry> stack;
  SFS_ASSIGN(PathEntry root, load(root_, -1, kMinKey, std::nullopt));
  stack.push_back(std::move(root));
  while (!stack.empty()) {
    PathEntry e = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(e.node.blocknr()).second) return node_corrupt(e.node.blocknr(), "node is reached twice");
    blocks.push_back(e.node.blocknr());
    if (e.node.is_leaf()) continue;
    for (size_t i = 0; i < e.node.count(); ++i) {
      SFS_ASSIGN(PathEntry child, load_child(e, i));
      if (child.node.is_leaf()) {
        if (!seen.insert(child.node.blocknr()).second)
          return node_corrupt(child.node.blocknr(), "node is reached twice");
        blocks.push_back(child.node.blocknr());
      } else {
        stack.push_back(std::move(child));
      }
    }
  }
  Status result;
  for (uint64_t b : blocks) {
    Status s = meta_.free(b);
    if (!s.ok() && result.ok()) result = s;
  }
  root_ = 0;
  return result;
}

void BTree::check(uint64_t first_data_block, uint64_t end_block, const CheckCallbacks& cb) {
  TreeChecker(meta_, first_data_block, end_block, cb).run(root_);
}

}  // namespace stablefs
