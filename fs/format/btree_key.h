// Key of every item in a stablefs B+tree: (objectid, type, offset), ordered lexicographically.
//
// In the filesystem tree objectid is an inode number, type says what the item is (inode,
// directory entry, extent, xattr, symlink chunk) and offset orders items of one kind (a
// name hash, a file block). On disk a key is 17 bytes: u64 objectid, u8 type, u64 offset.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace stablefs {

struct Key {
  uint64_t objectid = 0;
  uint8_t type = 0;
  uint64_t offset = 0;
  auto operator<=>(const Key&) const = default;
  std::string to_string() const {
    // Appended piecewise: GCC 12 -O2 warns falsely (-Wrestrict, bug 105329) on "(" + temporary.
    std::string s(1, '(');
    s += std::to_string(objectid);
    s += ',';
    s += std::to_string(type);
    s += ',';
    s += std::to_string(offset);
    s += ')';
    return s;
  }
};
inline constexpr size_t kKeyDiskSize = 17;
inline constexpr Key kMinKey{0, 0, 0};
inline constexpr Key kMaxKey{~0ull, 0xff, ~0ull};

}  // namespace stablefs
