// Typed walks over B+tree items: decode every value as a record type, and find names in the
// hashed slot ranges that directory entries and xattrs use.
//
// Record is an item type of fs/format/fs_items.h with `static Result<Record> decode(value,
// key)`. A value that does not decode ends the walk: the decode error is the result (metadata
// corruption, EUCLEAN), never skipped. REQUIRES: the metadata lock (as for any tree access);
// fn must not modify the tree.
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "fs/format/fs_items.h"
#include "fs/meta/btree.h"

namespace stablefs {

// Calls fn(key, record) for every item in [from, to], ascending, until fn returns false.
template <typename Record, typename Fn>
Status scan_items(BTree& tree, const Key& from, const Key& to, Fn&& fn) {
  Status decode_error;
  SFS_TRY(tree.scan(from, to, [&](const Key& k, std::span<const uint8_t> v) {
    auto rec = Record::decode(v, k);
    if (!rec.ok()) {
      decode_error = rec.status();
      return false;
    }
    return fn(k, std::move(rec).value());
  }));
  return decode_error;
}

// The slots of objectid's items of `type` where name may be stored: one range per name hash.
inline std::pair<Key, Key> name_slots(uint64_t objectid, uint8_t type, std::string_view name) {
  const uint64_t base = name_slot_base(name);
  return {Key{objectid, type, base}, Key{objectid, type, base + kSlotsPerHash - 1}};
}

// The item named `name` (Record has a `name` member) among objectid's items of `type`, with
// its slot (the key's offset); empty when there is none.
template <typename Record>
Result<std::optional<std::pair<uint64_t, Record>>> find_named_item(BTree& tree, uint64_t objectid, uint8_t type,
                                                                   std::string_view name) {
  const auto [from, to] = name_slots(objectid, type, name);
  std::optional<std::pair<uint64_t, Record>> found;
  SFS_TRY(scan_items<Record>(tree, from, to, [&](const Key& k, Record rec) {
    if (rec.name != name) return true;
    found.emplace(k.offset, std::move(rec));
    return false;
  }));
  return found;
}

// The first free slot for a new item named `name`; ENOSPC when all slots of its hash are taken.
inline Result<uint64_t> free_name_slot(BTree& tree, uint64_t objectid, uint8_t type, std::string_view name) {
  const auto [from, to] = name_slots(objectid, type, name);
  uint64_t slot = from.offset;
  SFS_TRY(tree.scan(from, to, [&](const Key& k, std::span<const uint8_t>) {
    if (k.offset != slot) return false;  // a gap: take it
    ++slot;
    return true;
  }));
  if (slot > to.offset) return Status::error(ENOSPC, "too many names with one hash");
  return slot;
}

}  // namespace stablefs
