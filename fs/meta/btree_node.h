// B+tree node format and NodeView, a bounds-checked view over one node block.
//
// docs/on-disk-format-btree.md is the byte-by-byte reference; keep the two in step.
//
//   [0, 48)  common block header (fs/format/format.h); the journal stamps it at commit, so nothing
//            here ever writes these bytes
//   48  u16 level      0 = leaf, parent level = child level + 1
//   50  u16 nritems    number of items (leaf) or entries (internal)
//   52  u32 reserved   0
//   56  item table, nritems fixed-size slots in ascending key order:
//         leaf item (21 bytes):      key[17]  u16 value_offset  u16 value_length
//         internal entry (25 bytes): key[17]  u64 child block number
//   Leaf values are packed downward from the block end in item order with no gaps: item 0's
//   value ends at the block end, item i's ends where item i-1's begins. value_offset counts
//   from byte 48 (so it stays below 65536 in 64 KiB blocks).
//   A key is u64 objectid, u8 type, u64 offset (little-endian), ordered as fs/format/btree_key.h.
//   Entry 0 of an internal node carries the lower bound of the node's key range: the parent's
//   key for this child, or kMinKey at the root. Child i holds keys in [key i, key i+1).
//
// NodeView does not own the block's bytes: it keeps a reference to the cached Buffer and caches
// level, item count and (leaves) the start of the value area. open() distrusts every byte
// and validates the layout (counts, item table and values in bounds, values packed), so each
// accessor afterwards is memory-safe for any index below count(). Key order is validated
// separately (check_key_order(), O(n) comparisons). Mutators REQUIRE that the caller has
// called MetadataSpace::modify() on the buffer and has checked that the change fits.
//
// Not thread-safe: REQUIRES the filesystem's metadata lock, like the buffers it views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bounce/status.h"
#include "fs/format/btree_key.h"
#include "fs/meta/buffer_cache.h"
#include "fs/format/format.h"

namespace stablefs {

inline constexpr size_t kNodeHeaderOffset = kHeaderSize;  // 48
inline constexpr size_t kNodeLevelOffset = kNodeHeaderOffset + 0;
inline constexpr size_t kNodeCountOffset = kNodeHeaderOffset + 2;
inline constexpr size_t kNodeReservedOffset = kNodeHeaderOffset + 4;
inline constexpr size_t kNodeItemsOffset = kNodeHeaderOffset + 8;  // 56
inline constexpr size_t kLeafItemSize = kKeyDiskSize + 4;          // 21
inline constexpr size_t kInternalItemSize = kKeyDiskSize + 8;      // 25
// Levels above this are corruption (a tree of 2^64 items is far lower).
inline constexpr uint16_t kMaxNodeLevel = 15;

// Bytes of a leaf that items (table slots plus values) may use.
inline constexpr size_t leaf_capacity(uint32_t block_size) { return block_size - kNodeItemsOffset; }
// Entries an internal node holds at most.
inline constexpr size_t internal_capacity(uint32_t block_size) {
  return (block_size - kNodeItemsOffset) / kInternalItemSize;
}
// Largest value: a leaf always holds at least four items of this size.
inline constexpr size_t max_leaf_value_size(uint32_t block_size) {
  return leaf_capacity(block_size) / 4 - kLeafItemSize;
}

void encode_key(uint8_t* p, const Key& key);
Key decode_key(const uint8_t* p);

// The items of leaves, copied out, for rebuilding nodes (split, merge, redistribution).
class LeafItems {
 public:
  void append(const Key& key, std::span<const uint8_t> value);
  size_t size() const { return keys_.size(); }
  const Key& key(size_t i) const { return keys_[i]; }
  std::span<const uint8_t> value(size_t i) const { return {bytes_.data() + offsets_[i], lengths_[i]}; }
  // Table slot plus value.
  size_t item_bytes(size_t i) const { return kLeafItemSize + lengths_[i]; }

 private:
  std::vector<Key> keys_;
  std::vector<size_t> offsets_;
  std::vector<size_t> lengths_;
  std::vector<uint8_t> bytes_;
};

// The entries of internal nodes, copied out.
struct InternalEntry {
  Key key;
  uint64_t child = 0;
};

class NodeView {
 public:
  NodeView() = default;

  // Parses buf as a node and validates its layout. EUCLEAN naming the block on any fault.
  // A leaf's items are walked once per Buffer (Buffer::node_checked); later opens of the same
  // buffer check the header and the item table's bound.
  static Result<NodeView> open(BufferRef buf);
  // Formats buf (zeroed or not) as an empty node of `level`. REQUIRES: modify() called.
  static NodeView format(BufferRef buf, uint16_t level);

  uint64_t blocknr() const { return buf_->blocknr; }
  const BufferRef& buffer() const { return buf_; }
  uint32_t block_size() const { return size_; }
  uint16_t level() const { return level_; }
  bool is_leaf() const { return level_ == 0; }
  size_t count() const { return count_; }

  // REQUIRES: i < count() for all of these.
  Key key(size_t i) const { return decode_key(slot(i)); }
  // <0, 0, >0 as key(i) is below, equal to or above key.
  int compare(size_t i, const Key& key) const;
  std::span<const uint8_t> value(size_t i) const;  // leaf
  size_t value_size(size_t i) const;               // leaf
  uint64_t child(size_t i) const;                  // internal

  // Leaf: bytes taken by items (table slots plus values); internal: table bytes.
  size_t used_bytes() const;
  // Leaf: bytes still free between the item table and the values.
  size_t free_bytes() const;

  // First index whose key is >= key (count() if none); *exact tells whether it is equal.
  size_t lower_bound(const Key& key, bool* exact) const;
  // Internal: the child whose range holds key (the last entry with key <= key, or 0).
  size_t child_slot(const Key& key) const;
  // Keys strictly increasing. EUCLEAN naming the block and item otherwise.
  Status check_key_order() const;

  // Leaf mutators. REQUIRE: modify() called; the new bytes fit in free_bytes().
  void leaf_insert(size_t i, const Key& key, std::span<const uint8_t> value);
  void leaf_remove(size_t i);
  void leaf_replace(size_t i, std::span<const uint8_t> value);
  void leaf_append(const Key& key, std::span<const uint8_t> value);
  // Replaces the whole content by items [begin, end).
  void leaf_rebuild(const LeafItems& items, size_t begin, size_t end);
  // Copies items [begin, end) out.
  void leaf_copy_out(size_t begin, size_t end, LeafItems* out) const;

  // Internal mutators. REQUIRE: modify() called; count() < internal_capacity() to insert.
  void internal_insert(size_t i, const Key& key, uint64_t child);
  void internal_remove(size_t i);
  void internal_set_key(size_t i, const Key& key);
  void internal_rebuild(const std::vector<InternalEntry>& entries, size_t begin, size_t end);
  void internal_copy_out(size_t begin, size_t end, std::vector<InternalEntry>* out) const;

 private:
  NodeView(BufferRef buf, uint32_t size, uint16_t level, uint16_t count, size_t data_start);
  uint8_t* base() const { return buf_->data(); }
  uint8_t* slot(size_t i) const {
    return base() + kNodeItemsOffset + i * (level_ == 0 ? kLeafItemSize : kInternalItemSize);
  }
  size_t table_end() const;
  // Leaf: absolute offset where item i's value ends (item i-1's begins).
  size_t value_end(size_t i) const;
  size_t value_start(size_t i) const;
  void set_value_start(size_t i, size_t abs_offset);
  void set_count(size_t n);

  BufferRef buf_;
  uint32_t size_ = 0;
  uint16_t level_ = 0;
  uint16_t count_ = 0;
  size_t data_start_ = 0;  // leaf: absolute offset of the lowest value byte (size_ if none)
};

// Error for a corrupt node: EUCLEAN, "btree block N: what".
Status node_corrupt(uint64_t blocknr, const std::string& what);

}  // namespace stablefs
