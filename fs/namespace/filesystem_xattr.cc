// Filesystem: extended attributes. Each xattr is one item (ino, kItemXattr, name slot) holding
// its name and value; a value too large for that item (above max_inline_xattr_value) goes
// into chunk items (fs_items.h: kItemXattrChunk) and the item holds its value id and size.
#include <sys/stat.h>

#include <algorithm>

#include "fs/namespace/filesystem.h"
#include "fs/format/posix_acl.h"
#include "fs/meta/item_scan.h"

namespace stablefs {
namespace {

constexpr size_t kXattrOpBlocks = 32;
// Linux's limit for one value (XATTR_SIZE_MAX): large ACLs and security labels fit.
constexpr size_t kMaxXattrValue = 65536;

// Metadata blocks an xattr operation may change whose old and new values have these sizes
// (chunks go about four to a leaf; twice that leaves room for splits).
size_t xattr_op_blocks(size_t chunk_bytes, size_t old_size, size_t new_size) {
  const auto chunks = [chunk_bytes](size_t n) { return (n + chunk_bytes - 1) / chunk_bytes; };
  return kXattrOpBlocks + chunks(old_size) + chunks(new_size);
}

Status check_xattr_name(std::string_view name) {
  if (name.empty()) return Status::error(EINVAL, "empty xattr name");
  if (name.size() > 255) return Status::error(ERANGE, "xattr name longer than 255 bytes");
  static constexpr std::string_view kNamespaces[] = {"user.", "trusted.", "security.", "system."};
  for (std::string_view ns : kNamespaces)
    if (name.substr(0, ns.size()) == ns && name.size() > ns.size()) return {};
  return Status::error(EOPNOTSUPP, "unsupported xattr namespace: " + std::string(name));
}

}  // namespace

size_t Filesystem::max_xattr_value() const { return kMaxXattrValue; }

size_t Filesystem::max_inline_xattr_value() const {
  // One item holds the 5-byte header, the name (up to 255) and the value.
  return BTree::max_value_size_for(inodes_.block_size()) - 5 - 255;
}

size_t Filesystem::xattr_chunk_bytes() const { return BTree::max_value_size_for(inodes_.block_size()); }

size_t Filesystem::xattr_removal_blocks(const XattrRecord& rec) const {
  return xattr_op_blocks(xattr_chunk_bytes(), rec.chunked_size, 0);
}

Result<std::vector<uint8_t>> Filesystem::xattr_value(uint64_t ino, const XattrRecord& rec) {
  if (!rec.value_id) return rec.value;
  std::vector<uint8_t> value;
  value.reserve(rec.chunked_size);
  const size_t chunk = xattr_chunk_bytes();
  uint64_t expect = 0;
  Status bad;
  SFS_TRY(store_locked().fs_tree().scan(xattr_chunk_key(ino, rec.value_id, 0),
                                        xattr_chunk_key(ino, rec.value_id, kXattrMaxChunks - 1),
                                        [&](const Key& k, std::span<const uint8_t> v) {
                                          const uint64_t index = k.offset & (kXattrMaxChunks - 1);
                                          const size_t want = std::min<size_t>(chunk, rec.chunked_size - value.size());
                                          if (index != expect || v.size() != want || value.size() >= rec.chunked_size) {
                                            bad = Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": xattr '" +
                                                                             rec.name + "' has a missing or malformed value chunk");
                                            return false;
                                          }
                                          value.insert(value.end(), v.begin(), v.end());
                                          ++expect;
                                          return true;
                                        }));
  SFS_TRY(bad);
  if (value.size() != rec.chunked_size)
    return Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": xattr '" + rec.name + "' is missing value chunks");
  return value;
}

Status Filesystem::remove_xattr_chunks(uint64_t ino, const XattrRecord& rec) {
  if (!rec.value_id) return {};
  const size_t chunks = (rec.chunked_size + xattr_chunk_bytes() - 1) / xattr_chunk_bytes();
  for (size_t i = 0; i < chunks; ++i) SFS_TRY(store_locked().fs_tree().remove(xattr_chunk_key(ino, rec.value_id, i)));
  return {};
}

Status Filesystem::put_xattr(uint64_t ino, uint64_t slot, std::string_view name, std::span<const uint8_t> value,
                             const XattrRecord* old) {
  XattrRecord rec{std::string(name), {}, 0, 0};
  if (value.size() <= max_inline_xattr_value()) {
    if (old) SFS_TRY(remove_xattr_chunks(ino, *old));
    rec.value.assign(value.begin(), value.end());
    return store_locked().fs_tree().put({ino, kItemXattr, slot}, rec.encode());
  }
  const size_t chunk = xattr_chunk_bytes();
  if ((value.size() + chunk - 1) / chunk > kXattrMaxChunks)
    return Status::error(E2BIG, "xattr value too large for this block size");
  if (old && old->value_id) {
    SFS_TRY(remove_xattr_chunks(ino, *old));
    rec.value_id = old->value_id;
  } else {
    // A new id: one past the largest this inode uses (its chunk items sort by id).
    Key last{};
    std::vector<uint8_t> unused;
    SFS_ASSIGN(const bool any, store_locked().fs_tree().lookup_le(xattr_chunk_key(ino, kXattrMaxValueId, kXattrMaxChunks - 1),
                                                                  &last, &unused));
    const bool has_chunks = any && last.objectid == ino && last.type == kItemXattrChunk;
    rec.value_id = has_chunks ? (last.offset >> kXattrChunkIndexBits) + 1 : 1;
    if (rec.value_id > kXattrMaxValueId) return Status::error(ENOSPC, "no xattr value id left for this inode");
  }
  rec.chunked_size = static_cast<uint32_t>(value.size());
  for (size_t i = 0, off = 0; off < value.size(); ++i, off += chunk) {
    const size_t n = std::min(chunk, value.size() - off);
    SFS_TRY(store_locked().fs_tree().put(xattr_chunk_key(ino, rec.value_id, i), value.subspan(off, n)));
  }
  store_locked().superblock().incompat |= kIncompatXattrChunks;
  return store_locked().fs_tree().put({ino, kItemXattr, slot}, rec.encode());
}

Result<std::optional<std::pair<uint64_t, XattrRecord>>> Filesystem::find_xattr(uint64_t ino, std::string_view name) {
  return find_named_item<XattrRecord>(store_locked().fs_tree(), ino, kItemXattr, name);
}

Result<uint64_t> Filesystem::free_xattr_slot(uint64_t ino, std::string_view name) {
  return free_name_slot(store_locked().fs_tree(), ino, kItemXattr, name);
}

Status Filesystem::setxattr(uint64_t ino, std::string_view name, std::span<const uint8_t> value, int flags,
                            const Credentials& caller) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_xattr_name(name));
  if (value.size() > max_xattr_value())
    return Status::error(E2BIG, "xattr value larger than " + std::to_string(max_xattr_value()) + " bytes");
  SFS_ASSIGN(auto existing, find_xattr(ino, name));
  const size_t old_size = existing ? existing->second.chunked_size : 0;
  SFS_TRY(store_locked().begin_growing_operation(xattr_op_blocks(xattr_chunk_bytes(), old_size, value.size())));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (existing && (flags & kXattrCreate)) return Status::error(EEXIST, "xattr exists: " + std::string(name));
  if (!existing && (flags & kXattrReplace)) return Status::error(ENODATA, "no such xattr: " + std::string(name));
  if (is_acl_xattr(name)) {
    // An ACL is validated and the access ACL sets the mode; one the mode expresses is not kept.
    const bool kill_sgid = name == kAclAccessXattr && !caller.root_or_in_group(inode.rec.gid);
    SFS_ASSIGN(bool keep, set_acl_xattr(inode, name, value, kill_sgid));
    if (!keep) {
      Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
        if (existing) {
          SFS_TRY(remove_xattr_chunks(ino, existing->second));
          SFS_TRY(store_locked().fs_tree().remove({ino, kItemXattr, existing->first}));
        }
        touch_times(inode, false, true);
        return inodes_.save(inode);
      });
      return store_locked().end_operation(st);
    }
  }
  // Handles that saw the file without privileges look again before their next data change.
  if (name == kCapabilityXattr && S_ISREG(inode.rec.mode)) inodes_.note_privilege_gained();
  uint64_t slot = 0;
  if (existing) {
    slot = existing->first;
  } else {
    SFS_ASSIGN(slot, free_xattr_slot(ino, name));
  }
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(put_xattr(ino, slot, name, value, existing ? &existing->second : nullptr));
    touch_times(inode, false, true);
    return inodes_.save(inode);
  });
  return store_locked().end_operation(st);
}

Result<std::vector<uint8_t>> Filesystem::getxattr(uint64_t ino, std::string_view name) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_xattr_name(name));
  SFS_TRY(inodes_.load(ino));
  SFS_ASSIGN(auto existing, find_xattr(ino, name));
  if (!existing) return Status::error(ENODATA, "no such xattr: " + std::string(name));
  return xattr_value(ino, existing->second);
}

Result<std::vector<std::string>> Filesystem::listxattr(uint64_t ino) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(inodes_.load(ino));
  std::vector<std::string> names;
  SFS_TRY(scan_items<XattrRecord>(store_locked().fs_tree(), {ino, kItemXattr, 0}, {ino, kItemXattr, ~0ull},
                                  [&](const Key&, XattrRecord rec) {
                                    names.push_back(std::move(rec.name));
                                    return true;
                                  }));
  return names;
}

Status Filesystem::removexattr(uint64_t ino, std::string_view name) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_xattr_name(name));
  SFS_ASSIGN(auto existing, find_xattr(ino, name));
  if (!existing) return Status::error(ENODATA, "no such xattr: " + std::string(name));
  SFS_TRY(store_locked().begin_operation(xattr_removal_blocks(existing->second)));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(remove_xattr_chunks(ino, existing->second));
    SFS_TRY(store_locked().fs_tree().remove({ino, kItemXattr, existing->first}));
    touch_times(inode, false, true);
    return inodes_.save(inode);
  });
  return store_locked().end_operation(st);
}

}  // namespace stablefs
