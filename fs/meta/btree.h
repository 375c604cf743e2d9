// BTree: the B+tree that holds every item of stablefs (the filesystem tree of inodes, directory
// entries, extents, xattrs and symlinks, and the separate tree of data checksums).
//
// Items are (Key, value) pairs, values 0..max_value_size() bytes, kept in leaves in key order;
// internal nodes hold (key, child) entries. Node layout: fs/meta/btree_node.h and
// docs/on-disk-format-btree.md. Every change goes through the MetadataSpace: nodes are read
// with read(), changed only after modify(), created with allocate() and released with free(),
// so each change belongs to the running journal transaction.
//
// Shape: all leaves at the same depth. Inserts split bottom-up; a split leaf's halves are
// balanced by bytes (at the far right or far left of the tree the split keeps the old node
// full, for sequential loads). Removes and shrinking puts rebalance a leaf below a quarter of
// its capacity in bytes, or an internal node below a quarter of its entries, by merging with a
// sibling when both fit in one node and by redistributing otherwise; a root left with one child
// is replaced by that child.
//
// Failure: nodes are distrusted; a corrupt node yields EUCLEAN naming the block. insert/put
// allocate every block a split needs before changing anything, so ENOSPC (or any error before
// the first change) leaves the tree as it was. remove never allocates. An error while
// rebalancing (a sibling that cannot be read) leaves a valid tree with an underfull node.
//
// The BTree object holds only the root block number; it may be re-created at will from the
// number the owner records. on_root_change runs inside the same call (and transaction) whenever
// the root moves.
//
// Not thread-safe: REQUIRES the filesystem's metadata lock for every call.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bounce/status.h"
#include "fs/format/btree_key.h"
#include "fs/meta/btree_node.h"
#include "fs/meta/metadata_space.h"

namespace stablefs {

class BTree {
 public:
  // root_blocknr: the existing root block. on_root_change is called (within the same
  // transaction) whenever the root block number changes, so the owner can record it.
  BTree(MetadataSpace& meta, uint64_t root_blocknr, std::function<void(uint64_t)> on_root_change);

  // Allocates an empty leaf to serve as the root of a new tree; returns its block number.
  static Result<uint64_t> create_empty(MetadataSpace& meta, uint64_t goal);
  // The largest value for a block size: (block_size - 56) / 4 - 21, so that a leaf always
  // holds four maximal items (989 bytes for 4 KiB blocks, 16349 for 64 KiB).
  static size_t max_value_size_for(uint32_t block_size) { return max_leaf_value_size(block_size); }

  size_t max_value_size() const;  // largest value insert/put accept (E2BIG beyond)
  uint64_t root() const { return root_; }

  // false: not present.
  Result<bool> lookup(const Key& key, std::vector<uint8_t>* value);
  // Last item with key <= k (extent lookups). false: none.
  Result<bool> lookup_le(const Key& k, Key* found, std::vector<uint8_t>* value);
  Status insert(const Key& key, std::span<const uint8_t> value);  // EEXIST if present
  Status put(const Key& key, std::span<const uint8_t> value);     // insert or replace
  Status remove(const Key& key);                                   // ENOENT if absent
  // Calls fn(key, value) for every item with from <= key <= to, ascending, until fn returns
  // false. fn must not modify the tree; the value span is valid only during the call.
  Status scan(const Key& from, const Key& to,
              const std::function<bool(const Key&, std::span<const uint8_t>)>& fn);
  // Whether any item has from <= key <= to.
  Result<bool> contains_any(const Key& from, const Key& to);
  // Frees every block of the tree (the tree is unusable afterwards). The whole tree is walked
  // first; if any node cannot be read or is corrupt nothing is freed and the error returned.
  Status destroy();

  // fsck: walks every node without trusting anything: each node's layout, strictly increasing
  // keys, keys within the separator bounds of the parent (entry 0 of an internal node equal to
  // its lower bound), level = parent level - 1, every leaf at the same depth, every non-root
  // node non-empty, an internal root with at least two children, child pointers inside
  // [first_data_block, end_block), no node reached twice. Reports each problem as one line
  // naming the block via problem(...), skips a bad subtree and goes on. Calls on_block once for
  // every distinct node reached (also those that then fail validation, as the tree still owns
  // them) and on_item for every item of every leaf that passed validation; bad_node with the
  // block of each problem (after problem). Any callback may be empty.
  struct CheckCallbacks {
    std::function<void(const std::string&)> problem;
    std::function<void(uint64_t blocknr)> on_block;
    std::function<void(const Key&, std::span<const uint8_t>)> on_item;
    std::function<void(uint64_t blocknr)> bad_node = {};
  };
  void check(uint64_t first_data_block, uint64_t end_block, const CheckCallbacks& cb);

 private:
  // One node of a root-to-leaf path, with the key range [lo, hi) its parent assigns it
  // (hi empty: unbounded) and the slot the path goes through (leaf: the search position).
  struct PathEntry {
    NodeView node;
    size_t slot = 0;
    Key lo;
    std::optional<Key> hi;
  };
  using Path = std::vector<PathEntry>;

  // Reads and validates a node: layout, level, non-empty unless the root leaf, first and last
  // key inside [lo, hi). expected_level < 0: the root.
  Result<PathEntry> load(uint64_t blocknr, int expected_level, const Key& lo, const std::optional<Key>& hi);
  // Loads child `slot` of parent.
  Result<PathEntry> load_child(const PathEntry& parent, size_t slot);
  // Root-to-leaf path towards key; the leaf's slot is its lower bound for key.
  Status descend(const Key& key, Path* path, bool* exact);
  // Moves the path to the first slot of the next leaf / last slot of the previous leaf.
  Result<bool> next_leaf(Path* path);
  Result<bool> prev_leaf(Path* path);

  Status store(const Key& key, std::span<const uint8_t> value, bool replace);
  Status split_and_store(Path* path, const Key& key, std::span<const uint8_t> value, bool replace_slot);
  // Fixes underfull nodes along path from the leaf up (merging with or borrowing from a
  // sibling), then collapses a one-child root.
  Status rebalance(Path* path);
  // Merges (*path)[d] with a sibling, or redistributes between the two when they do not fit
  // in one node; afterwards (*path)[d] and (*path)[d-1].slot name the node now holding the
  // entry the path went through. REQUIRES: the parent has >= 2 entries. Returns whether it
  // merged (the parent lost an entry). A failure to free the merged block is kept in
  // *free_error and does not stop the work.
  Result<bool> join_sibling(Path* path, size_t d, Status* free_error);
  // Makes (*path)[d-1] hold at least two entries, so (*path)[d] has a sibling to join: a
  // one-entry parent joins a sibling of its own first (recursively upwards). false when the
  // chain of one-entry nodes reaches the root (which then collapses instead).
  Result<bool> ensure_sibling(Path* path, size_t d, Status* free_error);
  bool underfull(const NodeView& node) const;

  MetadataSpace& meta_;
  uint64_t root_;
  std::function<void(uint64_t)> on_root_change_;
};

}  // namespace stablefs
