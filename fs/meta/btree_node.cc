#include "fs/meta/btree_node.h"

#include <cstring>

#include "fs/format/endian.h"

namespace stablefs {
namespace {

// Leaf item slot fields.
constexpr size_t kItemValueOffset = kKeyDiskSize;      // u16, from kNodeHeaderOffset
constexpr size_t kItemValueLength = kKeyDiskSize + 2;  // u16
// Internal entry fields.
constexpr size_t kEntryChild = kKeyDiskSize;  // u64

// Three-way comparison of the key encoded at p with key, without building a Key.
inline int compare_encoded(const uint8_t* p, const Key& key) {
  const uint64_t objectid = get64(p);
  if (objectid != key.objectid) return objectid < key.objectid ? -1 : 1;
  if (p[8] != key.type) return p[8] < key.type ? -1 : 1;
  const uint64_t offset = get64(p + 9);
  if (offset != key.offset) return offset < key.offset ? -1 : 1;
  return 0;
}

}  // namespace

Status node_corrupt(uint64_t blocknr, const std::string& what) {
  return Status::error(EUCLEAN, "btree block " + std::to_string(blocknr) + ": " + what);
}

void encode_key(uint8_t* p, const Key& key) {
  put64(p, key.objectid);
  p[8] = key.type;
  put64(p + 9, key.offset);
}

Key decode_key(const uint8_t* p) { return Key{get64(p), p[8], get64(p + 9)}; }

void LeafItems::append(const Key& key, std::span<const uint8_t> value) {
  keys_.push_back(key);
  offsets_.push_back(bytes_.size());
  lengths_.push_back(value.size());
  bytes_.insert(bytes_.end(), value.begin(), value.end());
}

NodeView::NodeView(BufferRef buf, uint32_t size, uint16_t level, uint16_t count, size_t data_start)
    : buf_(std::move(buf)), size_(size), level_(level), count_(count), data_start_(data_start) {}

Result<NodeView> NodeView::open(BufferRef buf) {
  const uint64_t blocknr = buf->blocknr;
  const size_t size = buf->bytes.size();
  if (size < kMinBlockSize || size > kMaxBlockSize || buf->data() == nullptr)
    return node_corrupt(blocknr, "unsupported node size " + std::to_string(size));
  const uint8_t* d = buf->data();
  const uint16_t level = get16(d + kNodeLevelOffset);
  const uint16_t count = get16(d + kNodeCountOffset);
  const uint32_t reserved = get32(d + kNodeReservedOffset);
  if (reserved != 0) return node_corrupt(blocknr, "reserved node header field is " + std::to_string(reserved));
  if (level > kMaxNodeLevel) return node_corrupt(blocknr, "level " + std::to_string(level) + " is too high");

  if (level > 0) {
    const size_t cap = internal_capacity(static_cast<uint32_t>(size));
    if (count > cap)
      return node_corrupt(blocknr, "internal node holds " + std::to_string(count) + " entries, at most " +
                                       std::to_string(cap) + " fit");
    return NodeView(std::move(buf), static_cast<uint32_t>(size), level, count, size);
  }

  const size_t table_end = kNodeItemsOffset + size_t(count) * kLeafItemSize;
  if (table_end > size)
    return node_corrupt(blocknr, "item table of " + std::to_string(count) + " items overruns the block");
  if (buf->node_checked) {  // the items were checked when the block came in; only this code changed them since
    const size_t data_start =
        count == 0 ? size : kNodeHeaderOffset + get16(d + kNodeItemsOffset + (count - 1) * kLeafItemSize + kItemValueOffset);
    return NodeView(std::move(buf), static_cast<uint32_t>(size), level, count, data_start);
  }

  const size_t max_value = max_leaf_value_size(static_cast<uint32_t>(size));
  size_t expected_end = size;  // where item i's value must end
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* s = d + kNodeItemsOffset + i * kLeafItemSize;
    const size_t start = kNodeHeaderOffset + get16(s + kItemValueOffset);
    const size_t len = get16(s + kItemValueLength);
    if (len > max_value)
      return node_corrupt(blocknr, "item " + std::to_string(i) + " value length " + std::to_string(len) +
                                       " exceeds the maximum " + std::to_string(max_value));
    if (start + len != expected_end)
      return node_corrupt(blocknr, "item " + std::to_string(i) + " value [" + std::to_string(start) + ", " +
                                       std::to_string(start + len) + ") is not packed against " +
                                       std::to_string(expected_end));
    expected_end = start;
  }
  if (expected_end < table_end)
    return node_corrupt(blocknr, "values overlap the item table (values start at " + std::to_string(expected_end) +
                                     ", table ends at " + std::to_string(table_end) + ")");
  buf->node_checked = true;
  return NodeView(std::move(buf), static_cast<uint32_t>(size), level, count, expected_end);
}

NodeView NodeView::format(BufferRef buf, uint16_t level) {
  const size_t size = buf->bytes.size();
  uint8_t* d = buf->data();
  std::memset(d + kNodeHeaderOffset, 0, size - kNodeHeaderOffset);
  put16(d + kNodeLevelOffset, level);
  put16(d + kNodeCountOffset, 0);
  put32(d + kNodeReservedOffset, 0);
  buf->node_checked = true;
  return NodeView(std::move(buf), static_cast<uint32_t>(size), level, 0, size);
}

size_t NodeView::table_end() const {
  return kNodeItemsOffset + size_t(count_) * (is_leaf() ? kLeafItemSize : kInternalItemSize);
}

size_t NodeView::value_start(size_t i) const { return kNodeHeaderOffset + get16(slot(i) + kItemValueOffset); }

size_t NodeView::value_end(size_t i) const { return i == 0 ? size_ : value_start(i - 1); }

void NodeView::set_value_start(size_t i, size_t abs_offset) {
  put16(slot(i) + kItemValueOffset, static_cast<uint16_t>(abs_offset - kNodeHeaderOffset));
}

void NodeView::set_count(size_t n) {
  count_ = static_cast<uint16_t>(n);
  put16(base() + kNodeCountOffset, count_);
}

std::span<const uint8_t> NodeView::value(size_t i) const {
  return {base() + value_start(i), value_size(i)};
}

size_t NodeView::value_size(size_t i) const { return get16(slot(i) + kItemValueLength); }

uint64_t NodeView::child(size_t i) const { return get64(slot(i) + kEntryChild); }

size_t NodeView::used_bytes() const {
  if (!is_leaf()) return size_t(count_) * kInternalItemSize;
  return size_t(count_) * kLeafItemSize + (size_ - data_start_);
}

size_t NodeView::free_bytes() const {
  if (!is_leaf()) return size_ - table_end();
  return data_start_ - table_end();
}

int NodeView::compare(size_t i, const Key& key) const { return compare_encoded(slot(i), key); }

size_t NodeView::lower_bound(const Key& key, bool* exact) const {
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (compare_encoded(slot(mid), key) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (exact) *exact = lo < count_ && compare_encoded(slot(lo), key) == 0;
  return lo;
}

size_t NodeView::child_slot(const Key& key) const {
  // First entry with key > key, minus one.
  size_t lo = 0, hi = count_;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (compare_encoded(slot(mid), key) > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo == 0 ? 0 : lo - 1;
}

Status NodeView::check_key_order() const {
  if (count_ < 2) return {};
  Key prev = key(0);
  for (size_t i = 1; i < count_; ++i) {
    if (compare_encoded(slot(i), prev) <= 0)
      return node_corrupt(blocknr(), "key " + key(i).to_string() + " of item " + std::to_string(i) +
                                         " does not follow " + prev.to_string());
    prev = key(i);
  }
  return {};
}

void NodeView::leaf_insert(size_t i, const Key& key, std::span<const uint8_t> value) {
  uint8_t* d = base();
  const size_t len = value.size();
  const size_t end = value_end(i);
  // Values of items [i, count) sit in [data_start_, end); they move down by len.
  std::memmove(d + data_start_ - len, d + data_start_, end - data_start_);
  for (size_t j = i; j < count_; ++j) set_value_start(j, value_start(j) - len);
  data_start_ -= len;
  // Slots [i, count) move up by one.
  std::memmove(slot(i + 1), slot(i), (count_ - i) * kLeafItemSize);
  uint8_t* s = slot(i);
  encode_key(s, key);
  put16(s + kItemValueOffset, static_cast<uint16_t>(end - len - kNodeHeaderOffset));
  put16(s + kItemValueLength, static_cast<uint16_t>(len));
  if (len) std::memcpy(d + end - len, value.data(), len);
  set_count(count_ + 1);
}

void NodeView::leaf_remove(size_t i) {
  uint8_t* d = base();
  const size_t len = value_size(i);
  const size_t start = value_start(i);
  // Values of items (i, count) sit in [data_start_, start); they move up by len.
  std::memmove(d + data_start_ + len, d + data_start_, start - data_start_);
  std::memset(d + data_start_, 0, len);
  for (size_t j = i + 1; j < count_; ++j) set_value_start(j, value_start(j) + len);
  data_start_ += len;
  std::memmove(slot(i), slot(i + 1), (count_ - i - 1) * kLeafItemSize);
  std::memset(slot(count_ - 1), 0, kLeafItemSize);
  set_count(count_ - 1);
}

void NodeView::leaf_replace(size_t i, std::span<const uint8_t> value) {
  uint8_t* d = base();
  const size_t old_len = value_size(i);
  const size_t new_len = value.size();
  const size_t end = value_end(i);
  const size_t start = end - old_len;
  if (new_len != old_len) {
    // Values of items (i, count) sit in [data_start_, start); they shift by the difference.
    const size_t new_data_start = data_start_ + old_len - new_len;
    std::memmove(d + new_data_start, d + data_start_, start - data_start_);
    if (new_len < old_len) std::memset(d + data_start_, 0, old_len - new_len);
    for (size_t j = i + 1; j < count_; ++j) set_value_start(j, value_start(j) + old_len - new_len);
    data_start_ = new_data_start;
    set_value_start(i, end - new_len);
    put16(slot(i) + kItemValueLength, static_cast<uint16_t>(new_len));
  }
  if (new_len) std::memcpy(d + end - new_len, value.data(), new_len);
}

void NodeView::leaf_append(const Key& key, std::span<const uint8_t> value) {
  const size_t len = value.size();
  uint8_t* s = slot(count_);
  data_start_ -= len;
  encode_key(s, key);
  put16(s + kItemValueOffset, static_cast<uint16_t>(data_start_ - kNodeHeaderOffset));
  put16(s + kItemValueLength, static_cast<uint16_t>(len));
  if (len) std::memcpy(base() + data_start_, value.data(), len);
  set_count(count_ + 1);
}

void NodeView::leaf_rebuild(const LeafItems& items, size_t begin, size_t end) {
  std::memset(base() + kNodeItemsOffset, 0, size_ - kNodeItemsOffset);
  data_start_ = size_;
  set_count(0);
  for (size_t i = begin; i < end; ++i) leaf_append(items.key(i), items.value(i));
}

void NodeView::leaf_copy_out(size_t begin, size_t end, LeafItems* out) const {
  for (size_t i = begin; i < end; ++i) out->append(key(i), value(i));
}

void NodeView::internal_insert(size_t i, const Key& key, uint64_t child) {
  std::memmove(slot(i + 1), slot(i), (count_ - i) * kInternalItemSize);
  uint8_t* s = slot(i);
  encode_key(s, key);
  put64(s + kEntryChild, child);
  set_count(count_ + 1);
}

void NodeView::internal_remove(size_t i) {
  std::memmove(slot(i), slot(i + 1), (count_ - i - 1) * kInternalItemSize);
  std::memset(slot(count_ - 1), 0, kInternalItemSize);
  set_count(count_ - 1);
}

void NodeView::internal_set_key(size_t i, const Key& key) { encode_key(slot(i), key); }

void NodeView::internal_rebuild(const std::vector<InternalEntry>& entries, size_t begin, size_t end) {
  std::memset(base() + kNodeItemsOffset, 0, size_ - kNodeItemsOffset);
  set_count(0);
  for (size_t i = begin; i < end; ++i) {
    uint8_t* s = slot(count_);
    encode_key(s, entries[i].key);
    put64(s + kEntryChild, entries[i].child);
    set_count(count_ + 1);
  }
}

void NodeView::internal_copy_out(size_t begin, size_t end, std::vector<InternalEntry>* out) const {
  for (size_t i = begin; i < end; ++i) out->push_back({key(i), child(i)});
}

}  // namespace stablefs
