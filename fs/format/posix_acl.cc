// POSIX ACL xattr values and their mode rules (see posix_acl.h).
#include "fs/format/posix_acl.h"

#include <sys/stat.h>

#include "fs/format/endian.h"

namespace stablefs {
namespace {

constexpr uint32_t kAclXattrVersion = 2;
constexpr uint32_t kUndefinedId = 0xFFFFFFFFu;
constexpr size_t kHeaderSize = 4;
constexpr size_t kEntrySize = 8;

Status invalid(const char* why) { return Status::error(EINVAL, std::string("invalid POSIX ACL: ") + why); }

// The kernel's posix_acl_valid() state machine.
Status validate(const PosixAcl& acl) {
  enum { kWantUserObj, kUsers, kGroups, kWantOther, kDone } state = kWantUserObj;
  bool needs_mask = false;
  for (const AclEntry& e : acl.entries) {
    if (e.perm & ~7u) return invalid("permission bits beyond rwx");
    switch (e.tag) {
      case kAclUserObj:
        if (state != kWantUserObj) return invalid("USER_OBJ out of place");
        state = kUsers;
        break;
      case kAclUser:
        if (state != kUsers) return invalid("USER out of place");
        needs_mask = true;
        break;
      case kAclGroupObj:
        if (state != kUsers) return invalid("GROUP_OBJ out of place");
        state = kGroups;
        break;
      case kAclGroup:
        if (state != kGroups) return invalid("GROUP out of place");
        needs_mask = true;
        break;
      case kAclMask:
        if (state != kGroups) return invalid("MASK out of place");
        state = kWantOther;
        break;
      case kAclOther:
        if (state == kWantOther || (state == kGroups && !needs_mask)) {
          state = kDone;
          break;
        }
        return invalid("OTHER out of place, or MASK missing");
      default:
        return invalid("unknown tag");
    }
  }
  if (state != kDone) return invalid("incomplete");
  return {};
}

AclEntry* find_tag(PosixAcl& acl, uint16_t tag) {
  for (AclEntry& e : acl.entries)
    if (e.tag == tag) return &e;
  return nullptr;
}

const AclEntry* find_tag(const PosixAcl& acl, uint16_t tag) { return find_tag(const_cast<PosixAcl&>(acl), tag); }

}  // namespace

bool is_acl_xattr(std::string_view name) { return name == kAclAccessXattr || name == kAclDefaultXattr; }

Result<PosixAcl> parse_acl_xattr(std::span<const uint8_t> value) {
  if (value.size() < kHeaderSize) return invalid("shorter than its header");
  if (get32(value.data()) != kAclXattrVersion) return invalid("not version 2");
  if ((value.size() - kHeaderSize) % kEntrySize != 0) return invalid("partial entry");
  const size_t count = (value.size() - kHeaderSize) / kEntrySize;
  if (count == 0) return invalid("no entries");
  PosixAcl acl;
  acl.entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* p = value.data() + kHeaderSize + i * kEntrySize;
    AclEntry e{get16(p), get16(p + 2), get32(p + 4)};
    if (e.tag != kAclUser && e.tag != kAclGroup) e.id = kUndefinedId;
    acl.entries.push_back(e);
  }
  SFS_TRY(validate(acl));
  return acl;
}

std::vector<uint8_t> encode_acl_xattr(const PosixAcl& acl) {
  std::vector<uint8_t> out(kHeaderSize + acl.entries.size() * kEntrySize);
  put32(out.data(), kAclXattrVersion);
  for (size_t i = 0; i < acl.entries.size(); ++i) {
    uint8_t* p = out.data() + kHeaderSize + i * kEntrySize;
    const AclEntry& e = acl.entries[i];
    put16(p, e.tag);
    put16(p + 2, e.perm);
    put32(p + 4, (e.tag == kAclUser || e.tag == kAclGroup) ? e.id : kUndefinedId);
  }
  return out;
}

PosixAcl acl_from_mode(uint32_t mode) {
  return PosixAcl{{{kAclUserObj, static_cast<uint16_t>((mode >> 6) & 7), kUndefinedId},
                   {kAclGroupObj, static_cast<uint16_t>((mode >> 3) & 7), kUndefinedId},
                   {kAclOther, static_cast<uint16_t>(mode & 7), kUndefinedId}}};
}

bool acl_is_minimal(const PosixAcl& acl) { return acl.entries.size() <= 3; }

uint32_t acl_mode_bits(const PosixAcl& acl) {
  const AclEntry* user = find_tag(acl, kAclUserObj);
  const AclEntry* group = find_tag(acl, kAclMask);
  if (!group) group = find_tag(acl, kAclGroupObj);
  const AclEntry* other = find_tag(acl, kAclOther);
  return (user ? uint32_t(user->perm) << 6 : 0) | (group ? uint32_t(group->perm) << 3 : 0) | (other ? other->perm : 0);
}

void acl_chmod(PosixAcl& acl, uint32_t mode) {
  if (AclEntry* e = find_tag(acl, kAclUserObj)) e->perm = static_cast<uint16_t>((mode >> 6) & 7);
  AclEntry* group = find_tag(acl, kAclMask);
  if (!group) group = find_tag(acl, kAclGroupObj);
  if (group) group->perm = static_cast<uint16_t>((mode >> 3) & 7);
  if (AclEntry* e = find_tag(acl, kAclOther)) e->perm = static_cast<uint16_t>(mode & 7);
}

InheritedAcl inherit_acl(const std::optional<PosixAcl>& parent_default, uint32_t mode, uint32_t umask) {
  InheritedAcl out;
  if (S_ISLNK(mode)) {
    out.mode = mode;
    return out;
  }
  if (!parent_default) {
    out.mode = mode & ~(umask & 0777);
    return out;
  }
  // posix_acl_create_masq: every entry that mirrors the mode is limited by the requested
  // bits, and the requested bits by it; named entries are kept as they are (the mask limits them).
  PosixAcl acl = *parent_default;
  uint32_t perm = mode & 0777;
  AclEntry* group_obj = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : acl.entries) {
    switch (e.tag) {
      case kAclUserObj:
        e.perm &= static_cast<uint16_t>((perm >> 6) & 7);
        perm &= (uint32_t(e.perm) << 6) | ~0700u;
        break;
      case kAclGroupObj:
        group_obj = &e;
        break;
      case kAclMask:
        mask = &e;
        break;
      case kAclOther:
        e.perm &= static_cast<uint16_t>(perm & 7);
        perm &= e.perm | ~0007u;
        break;
      default:
        break;
    }
  }
  if (AclEntry* g = mask ? mask : group_obj) {
    g->perm &= static_cast<uint16_t>((perm >> 3) & 7);
    perm &= (uint32_t(g->perm) << 3) | ~0070u;
  }
  out.mode = (mode & ~0777u) | (perm & 0777);
  if (!acl_is_minimal(acl)) out.access = acl;
  if (S_ISDIR(mode)) out.default_acl = *parent_default;
  return out;
}

}  // namespace stablefs
