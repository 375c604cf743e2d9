// POSIX ACLs in their extended-attribute form ("system.posix_acl_access" and
// "system.posix_acl_default", the kernel's posix_acl_xattr layout): parsing and validation,
// and the rules that tie an ACL to a file's mode — the mode an ACL implies, chmod's effect on
// an ACL, and what a new inode inherits from its directory's default ACL.
//
// Pure functions on values; the Filesystem applies them (fs/namespace/filesystem_acl.cc). The kernel
// (FUSE_CAP_POSIX_ACL) enforces ACLs from these xattrs and caches them; stablefs stores them,
// keeps the mode in sync and does the inheritance, as a kernel filesystem's posix_acl_* helpers do.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "bounce/status.h"

namespace stablefs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

enum AclTag : uint16_t {
  kAclUserObj = 0x01,
  kAclUser = 0x02,
  kAclGroupObj = 0x04,
  kAclGroup = 0x08,
  kAclMask = 0x10,
  kAclOther = 0x20,
};

struct AclEntry {
  uint16_t tag = 0;
  uint16_t perm = 0;  // rwx bits: 4 read, 2 write, 1 execute
  uint32_t id = 0;    // uid or gid for kAclUser / kAclGroup; ignored (stored as -1) otherwise
  bool operator==(const AclEntry&) const = default;
};

struct PosixAcl {
  std::vector<AclEntry> entries;  // in the canonical order the validator requires
  bool operator==(const PosixAcl&) const = default;
};

// Whether name is one of the two ACL xattrs.
bool is_acl_xattr(std::string_view name);

// Decodes and validates an xattr value: version 2 header, whole 8-byte entries, at least one,
// perms within rwx, and the kernel's posix_acl_valid() order — USER_OBJ, USER..., GROUP_OBJ,
// GROUP..., MASK (required when there are named entries), OTHER, each *_OBJ/MASK/OTHER once.
// EINVAL for anything else.
Result<PosixAcl> parse_acl_xattr(std::span<const uint8_t> value);
// The xattr value of acl (little-endian, version 2).
std::vector<uint8_t> encode_acl_xattr(const PosixAcl& acl);

// The ACL of a plain mode: USER_OBJ, GROUP_OBJ, OTHER from its permission bits.
PosixAcl acl_from_mode(uint32_t mode);
// Whether acl says no more than a mode (three entries): it need not be stored.
bool acl_is_minimal(const PosixAcl& acl);
// The permission bits (0777) an ACL implies: owner from USER_OBJ, group from MASK if there is
// one, else GROUP_OBJ, other from OTHER.
uint32_t acl_mode_bits(const PosixAcl& acl);
// chmod: the ACL entries that mirror the mode (USER_OBJ, MASK or GROUP_OBJ, OTHER) take its bits.
void acl_chmod(PosixAcl& acl, uint32_t mode);

// What a new inode gets from its directory (the kernel's posix_acl_create):
struct InheritedAcl {
  uint32_t mode = 0;                   // the new inode's mode (type and all bits)
  std::optional<PosixAcl> access;      // store as system.posix_acl_access (absent: mode says it all)
  std::optional<PosixAcl> default_acl; // store as system.posix_acl_default (directories)
};
// parent_default: the directory's default ACL, if it has one. mode: the type and permission
// bits the creator asked for; umask: the creator's umask, applied only when there is no default
// ACL. Symlinks inherit nothing and keep their mode.
InheritedAcl inherit_acl(const std::optional<PosixAcl>& parent_default, uint32_t mode, uint32_t umask);

}  // namespace stablefs
