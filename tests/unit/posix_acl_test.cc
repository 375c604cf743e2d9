// POSIX ACLs: the xattr codec and validator, the mode rules (posix_acl.h), and the Filesystem
// applying them: setxattr validation and mode sync, chmod, inheritance at create, fsck clean.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <array>

#include "bounce/memory_device.h"
#include "fs/namespace/filesystem.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "fs/format/posix_acl.h"

namespace stablefs {
namespace {

constexpr uint32_t kNone = 0xFFFFFFFFu;

PosixAcl acl(std::initializer_list<AclEntry> e) { return PosixAcl{std::vector<AclEntry>(e)}; }

// u::rw-, u:1001:rw-, g::r--, m::rw-, o::---
PosixAcl named_user_acl() {
  return acl({{kAclUserObj, 6, kNone}, {kAclUser, 6, 1001}, {kAclGroupObj, 4, kNone}, {kAclMask, 6, kNone}, {kAclOther, 0, kNone}});
}

std::vector<uint8_t> raw(uint32_t version, std::initializer_list<std::array<uint32_t, 3>> entries) {
  std::vector<uint8_t> v(4 + 8 * entries.size());
  auto put = [&](size_t off, uint32_t x, int n) {
    for (int i = 0; i < n; ++i) v[off + i] = static_cast<uint8_t>(x >> (8 * i));
  };
  put(0, version, 4);
  size_t off = 4;
  for (auto& e : entries) {
    put(off, e[0], 2);
    put(off + 2, e[1], 2);
    put(off + 4, e[2], 4);
    off += 8;
  }
  return v;
}

}  // namespace

TEST_CASE("posix_acl: codec round trip and validation") {
  PosixAcl a = named_user_acl();
  auto bytes = encode_acl_xattr(a);
  CHECK(bytes.size() == 4 + 5 * 8);
  auto back = parse_acl_xattr(bytes);
  REQUIRE(back.ok());
  CHECK(*back == a);
  // The three-entry form, as setfacl writes for `chmod`-like ACLs.
  CHECK(parse_acl_xattr(raw(2, {{1, 7, kNone}, {4, 5, kNone}, {0x20, 5, kNone}})).ok());
  auto bad = [](const std::vector<uint8_t>& v) { return parse_acl_xattr(v).status().code(); };
  CHECK(bad({}) == EINVAL);
  CHECK(bad({2, 0, 0}) == EINVAL);                                                          // short header
  CHECK(bad(raw(2, {})) == EINVAL);                                                         // no entries
  CHECK(bad(raw(1, {{1, 7, kNone}, {4, 5, kNone}, {0x20, 5, kNone}})) == EINVAL);           // version
  auto partial = raw(2, {{1, 7, kNone}, {4, 5, kNone}, {0x20, 5, kNone}});
  partial.push_back(0);
  CHECK(bad(partial) == EINVAL);                                                            // partial entry
  CHECK(bad(raw(2, {{1, 8, kNone}, {4, 5, kNone}, {0x20, 5, kNone}})) == EINVAL);           // perm beyond rwx
  CHECK(bad(raw(2, {{4, 5, kNone}, {1, 7, kNone}, {0x20, 5, kNone}})) == EINVAL);           // order
  CHECK(bad(raw(2, {{1, 7, kNone}, {4, 5, kNone}})) == EINVAL);                             // no OTHER
  CHECK(bad(raw(2, {{1, 7, kNone}, {2, 7, 5}, {4, 5, kNone}, {0x20, 5, kNone}})) == EINVAL);  // named, no MASK
  CHECK(bad(raw(2, {{1, 7, kNone}, {1, 7, kNone}, {4, 5, kNone}, {0x20, 5, kNone}})) == EINVAL);  // two USER_OBJ
  CHECK(bad(raw(2, {{1, 7, kNone}, {4, 5, kNone}, {0x40, 5, kNone}, {0x20, 5, kNone}})) == EINVAL);  // unknown tag
  CHECK(parse_acl_xattr(raw(2, {{1, 7, kNone}, {2, 7, 5}, {4, 5, kNone}, {0x10, 7, kNone}, {0x20, 5, kNone}})).ok());
}

TEST_CASE("posix_acl: mode bits, chmod, inheritance") {
  PosixAcl a = named_user_acl();
  CHECK(acl_mode_bits(a) == 0660);  // group bits from the mask
  CHECK(acl_mode_bits(acl_from_mode(0754)) == 0754);
  CHECK(acl_is_minimal(acl_from_mode(0754)));
  CHECK_FALSE(acl_is_minimal(a));
  acl_chmod(a, 0640);
  CHECK(a.entries[0].perm == 6);
  CHECK(a.entries[1].perm == 6);  // named entries keep their bits: the mask limits them
  CHECK(a.entries[3].perm == 4);  // the mask follows the group bits
  CHECK(a.entries[4].perm == 0);

  // No default ACL: the umask applies.
  InheritedAcl none = inherit_acl(std::nullopt, S_IFREG | 0666, 022);
  CHECK(none.mode == (S_IFREG | 0644));
  CHECK_FALSE(none.access);
  CHECK_FALSE(none.default_acl);
  // Default ACL: no umask; the requested mode limits the ACL (posix_acl_create).
  PosixAcl def = acl({{kAclUserObj, 7, kNone}, {kAclUser, 7, 1001}, {kAclGroupObj, 5, kNone}, {kAclMask, 7, kNone}, {kAclOther, 0, kNone}});
  InheritedAcl file = inherit_acl(def, S_IFREG | 0666, 077);
  CHECK(file.mode == (S_IFREG | 0660));
  REQUIRE(file.access);
  CHECK(file.access->entries[0].perm == 6);
  CHECK(file.access->entries[1].perm == 7);  // named entry unchanged
  CHECK(file.access->entries[3].perm == 6);  // mask limited by the requested group bits
  CHECK_FALSE(file.default_acl);
  InheritedAcl dir = inherit_acl(def, S_IFDIR | 0777, 077);
  CHECK(dir.mode == (S_IFDIR | 0770));
  REQUIRE(dir.default_acl);
  CHECK(*dir.default_acl == def);
  // A minimal default ACL gives the mode only.
  InheritedAcl minimal = inherit_acl(acl_from_mode(0750), S_IFREG | 0666, 022);
  CHECK(minimal.mode == (S_IFREG | 0640));
  CHECK_FALSE(minimal.access);
  // Symlinks: nothing inherited, mode kept.
  CHECK(inherit_acl(def, S_IFLNK | 0777, 022).mode == (S_IFLNK | 0777));
}

TEST_CASE("posix_acl: through the Filesystem") {
  MemoryDevice dev(64ull << 20, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto opened = Filesystem::open(dev, {});
  REQUIRE(opened.ok());
  Filesystem& fs = **opened;
  const Credentials cred{1000, 1000, 022};
  auto f = fs.mknod(kRootIno, "f", S_IFREG | 0666, 0, cred);
  REQUIRE(f.ok());
  CHECK((f->rec.mode & 07777) == 0644);  // the umask, no default ACL

  // An access ACL sets the mode; an invalid one is EINVAL and changes nothing.
  auto value = encode_acl_xattr(named_user_acl());
  REQUIRE(fs.setxattr(f->ino, kAclAccessXattr, value, 0).ok());
  CHECK((fs.getattr(f->ino)->rec.mode & 07777) == 0660);
  CHECK(*fs.getxattr(f->ino, kAclAccessXattr) == value);
  std::vector<uint8_t> junk = {2, 0, 0, 0, 1, 0};
  CHECK(fs.setxattr(f->ino, kAclAccessXattr, junk, 0).code() == EINVAL);
  CHECK(*fs.getxattr(f->ino, kAclAccessXattr) == value);
  // chmod rewrites the mask (and the owner and other entries).
  SetAttrRequest chmod;
  chmod.mode = 0640;
  REQUIRE(fs.setattr(f->ino, chmod).ok());
  auto after = parse_acl_xattr(*fs.getxattr(f->ino, kAclAccessXattr));
  REQUIRE(after.ok());
  CHECK(after->entries[3] == AclEntry{kAclMask, 4, kNone});
  CHECK(after->entries[1] == AclEntry{kAclUser, 6, 1001});
  // A minimal ACL is the mode: stored as the mode only.
  REQUIRE(fs.setxattr(f->ino, kAclAccessXattr, encode_acl_xattr(acl_from_mode(0705)), 0).ok());
  CHECK((fs.getattr(f->ino)->rec.mode & 07777) == 0705);
  CHECK(fs.getxattr(f->ino, kAclAccessXattr).status().code() == ENODATA);
  // A default ACL only on a directory.
  PosixAcl def = acl({{kAclUserObj, 7, kNone}, {kAclUser, 7, 1001}, {kAclGroupObj, 5, kNone}, {kAclMask, 7, kNone}, {kAclOther, 0, kNone}});
  CHECK(fs.setxattr(f->ino, kAclDefaultXattr, encode_acl_xattr(def), 0).code() == EACCES);
  auto d = fs.mkdir(kRootIno, "d", 0777, cred);
  REQUIRE(d.ok());
  CHECK((d->rec.mode & 07777) == 0755);
  REQUIRE(fs.setxattr(d->ino, kAclDefaultXattr, encode_acl_xattr(def), 0).ok());
  CHECK((fs.getattr(d->ino)->rec.mode & 07777) == 0755);  // a default ACL leaves the mode alone
  // Inheritance: no umask, the ACL limited by the requested mode, directories get the default.
  auto child = fs.mknod(d->ino, "c", S_IFREG | 0666, 0, cred);
  REQUIRE(child.ok());
  CHECK((child->rec.mode & 07777) == 0660);
  auto inherited = parse_acl_xattr(*fs.getxattr(child->ino, kAclAccessXattr));
  REQUIRE(inherited.ok());
  CHECK(inherited->entries[1] == AclEntry{kAclUser, 7, 1001});
  CHECK(inherited->entries[3] == AclEntry{kAclMask, 6, kNone});
  CHECK(fs.getxattr(child->ino, kAclDefaultXattr).status().code() == ENODATA);
  auto sub = fs.mkdir(d->ino, "s", 0777, cred);
  REQUIRE(sub.ok());
  CHECK((sub->rec.mode & 07777) == 0770);
  CHECK(*fs.getxattr(sub->ino, kAclDefaultXattr) == encode_acl_xattr(def));
  CHECK(fs.getxattr(sub->ino, kAclAccessXattr).ok());
  auto grandchild = fs.mknod(sub->ino, "g", S_IFREG | 0600, 0, cred);
  REQUIRE(grandchild.ok());
  CHECK((grandchild->rec.mode & 07777) == 0600);
  auto link = fs.symlink(d->ino, "l", "target", cred);
  REQUIRE(link.ok());
  CHECK((link->rec.mode & 07777) == 0777);
  CHECK(fs.getxattr(link->ino, kAclAccessXattr).status().code() == ENODATA);
  // Removing the default ACL stops inheritance.
  REQUIRE(fs.removexattr(d->ino, kAclDefaultXattr).ok());
  auto plain = fs.mknod(d->ino, "p", S_IFREG | 0666, 0, cred);
  REQUIRE(plain.ok());
  CHECK((plain->rec.mode & 07777) == 0644);
  CHECK(fs.getxattr(plain->ino, kAclAccessXattr).status().code() == ENODATA);
  REQUIRE(fs.close().ok());
  opened->reset();
  std::string problems;
  FsckOptions o;
  o.on_problem = [&](const std::string& p) { problems += p + "\n"; };
  CHECK(run_fsck(dev, o).exit_code() == 0);
  CHECK(problems.empty());
}

TEST_CASE("posix_acl: an access ACL set by a caller outside the file's group clears set-group-ID") {
  MemoryDevice dev(64ull << 20, "mem");
  REQUIRE(make_filesystem(dev, MkfsOptions{}).ok());
  auto opened = Filesystem::open(dev, {});
  REQUIRE(opened.ok());
  Filesystem& fs = **opened;
  const Credentials owner{1000, 1000, 0};
  const auto value = encode_acl_xattr(named_user_acl());
  struct Case {
    const char* name;
    Credentials caller;
    bool keeps_sgid;
  };
  const Case cases[] = {
      {"root", Credentials{}, true},
      {"the file's group", Credentials{1000, 1000, 0}, true},
      {"a supplementary group", Credentials{1000, 2000, 0, {3000, 1000}}, true},
      {"outside the group", Credentials{1000, 2000, 0, {3000}}, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto f = fs.mknod(kRootIno, c.name, S_IFREG | 02775, 0, owner);
    REQUIRE(f.ok());
    REQUIRE((f->rec.mode & S_ISGID) != 0);
    REQUIRE(fs.setxattr(f->ino, kAclAccessXattr, value, 0, c.caller).ok());
    CHECK(((fs.getattr(f->ino)->rec.mode & S_ISGID) != 0) == c.keeps_sgid);
  }
  REQUIRE(fs.close().ok());
}

}  // namespace stablefs
