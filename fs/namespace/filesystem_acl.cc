// Filesystem: POSIX ACLs — inheritance at create, chmod, and setting an ACL xattr (the mode
// rules themselves are in posix_acl.h). Each runs inside the caller's operation.
#include <sys/stat.h>

#include "fs/namespace/filesystem.h"
#include "fs/format/posix_acl.h"

namespace stablefs {
namespace {

// A stored ACL that no longer parses is metadata corruption, not a caller's error.
Result<PosixAcl> parse_stored(const std::vector<uint8_t>& value, uint64_t ino) {
  auto acl = parse_acl_xattr(value);
  if (!acl.ok()) return Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": " + acl.status().message());
  return acl;
}

}  // namespace

Result<InheritedAcl> Filesystem::inherited_acl(const Inode& parent, uint32_t mode, uint32_t umask) {
  std::optional<PosixAcl> parent_default;
  SFS_ASSIGN(auto stored, find_xattr(parent.ino, kAclDefaultXattr));
  if (stored) {
    SFS_ASSIGN(const std::vector<uint8_t> value, xattr_value(parent.ino, stored->second));
    SFS_ASSIGN(PosixAcl acl, parse_stored(value, parent.ino));
    parent_default = std::move(acl);
  }
  return inherit_acl(parent_default, mode, umask);
}

Status Filesystem::store_inherited_acl(uint64_t ino, const InheritedAcl& acl) {
  auto put = [&](std::string_view name, const PosixAcl& value) REQUIRES(inodes_.mutex()) -> Status {
    SFS_ASSIGN(uint64_t slot, free_xattr_slot(ino, name));
    return put_xattr(ino, slot, name, encode_acl_xattr(value), nullptr);
  };
  if (acl.access) SFS_TRY(put(kAclAccessXattr, *acl.access));
  if (acl.default_acl) SFS_TRY(put(kAclDefaultXattr, *acl.default_acl));
  return {};
}

Status Filesystem::chmod_acl(const Inode& inode) {
  SFS_ASSIGN(auto stored, find_xattr(inode.ino, kAclAccessXattr));
  if (!stored) return {};
  SFS_ASSIGN(const std::vector<uint8_t> value, xattr_value(inode.ino, stored->second));
  SFS_ASSIGN(PosixAcl acl, parse_stored(value, inode.ino));
  acl_chmod(acl, inode.rec.mode);
  return put_xattr(inode.ino, stored->first, kAclAccessXattr, encode_acl_xattr(acl), &stored->second);
}

Result<bool> Filesystem::set_acl_xattr(Inode& inode, std::string_view name, std::span<const uint8_t> value,
                                       bool kill_sgid) {
  SFS_ASSIGN(PosixAcl acl, parse_acl_xattr(value));
  if (name == kAclDefaultXattr) {
    if (!S_ISDIR(inode.rec.mode)) return Status::error(EACCES, "a default ACL is only for directories");
    return true;
  }
  inode.rec.mode = (inode.rec.mode & ~0777u) | acl_mode_bits(acl);
  if (kill_sgid) inode.rec.mode &= ~static_cast<uint32_t>(S_ISGID);
  return !acl_is_minimal(acl);
}

}  // namespace stablefs
