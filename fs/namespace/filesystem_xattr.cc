// Filesystem: extended attributes. Each xattr is one item (ino, kItemXattr, name slot).
#include <sys/stat.h>

#include "fs/namespace/filesystem.h"
#include "fs/format/posix_acl.h"
#include "fs/meta/item_scan.h"

namespace stablefs {
namespace {

constexpr size_t kXattrOpBlocks = 32;

Status check_xattr_name(std::string_view name) {
  if (name.empty()) return Status::error(EINVAL, "empty xattr name");
  if (name.size() > 255) return Status::error(ERANGE, "xattr name longer than 255 bytes");
  static constexpr std::string_view kNamespaces[] = {"user.", "trusted.", "security.", "system."};
  for (std::string_view ns : kNamespaces)
    if (name.substr(0, ns.size()) == ns && name.size() > ns.size()) return {};
  return Status::error(EOPNOTSUPP, "unsupported xattr namespace: " + std::string(name));
}

}  // namespace

size_t Filesystem::max_xattr_value() const {
  // One item holds the 5-byte header, the name (up to 255) and the value.
  return BTree::max_value_size_for(inodes_.block_size()) - 5 - 255;
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
  SFS_TRY(store_locked().begin_operation(kXattrOpBlocks));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  SFS_ASSIGN(auto existing, find_xattr(ino, name));
  if (existing && (flags & kXattrCreate)) return Status::error(EEXIST, "xattr exists: " + std::string(name));
  if (!existing && (flags & kXattrReplace)) return Status::error(ENODATA, "no such xattr: " + std::string(name));
  if (is_acl_xattr(name)) {
    // An ACL is validated and the access ACL sets the mode; one the mode expresses is not kept.
    const bool kill_sgid = name == kAclAccessXattr && !caller.root_or_in_group(inode.rec.gid);
    SFS_ASSIGN(bool keep, set_acl_xattr(inode, name, value, kill_sgid));
    if (!keep) {
      Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
        if (existing) SFS_TRY(store_locked().fs_tree().remove({ino, kItemXattr, existing->first}));
        touch_times(inode, false, true);
        return inodes_.save(inode);
      });
      return store_locked().end_operation(st);
    }
  }
  uint64_t slot = 0;
  if (existing) {
    slot = existing->first;
  } else {
    SFS_ASSIGN(slot, free_xattr_slot(ino, name));
  }
  XattrRecord rec{std::string(name), std::vector<uint8_t>(value.begin(), value.end())};
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(store_locked().fs_tree().put({ino, kItemXattr, slot}, rec.encode()));
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
  return std::move(existing->second.value);
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
  SFS_TRY(store_locked().begin_operation(kXattrOpBlocks));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  SFS_ASSIGN(auto existing, find_xattr(ino, name));
  if (!existing) return Status::error(ENODATA, "no such xattr: " + std::string(name));
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(store_locked().fs_tree().remove({ino, kItemXattr, existing->first}));
    touch_times(inode, false, true);
    return inodes_.save(inode);
  });
  return store_locked().end_operation(st);
}

}  // namespace stablefs
