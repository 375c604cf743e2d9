// Filesystem: the namespace of a stablefs filesystem — inodes, directories, links, symlinks,
// renames, attributes and xattrs — as operations on the metadata store.
//
// This is the API the FUSE adapter (and fsck's tests, and the crash harness) call. Each
// operation is atomic: it runs as one step of the running journal transaction under the
// filesystem's metadata lock, and is durable after sync(). Errors are Status values whose
// code() is the errno to return to a caller. Permission checks belong to the caller (the
// kernel with default_permissions); this layer enforces structure (ENOTEMPTY, EXDEV-free
// renames, loops, name rules). Thread-safe: every public method takes the metadata lock.
//
// Inodes in use: a caller that keeps using an inode after its last link may go (an open file,
// a FUSE lookup reference) holds it (acquire_inode/release_inode). Removing the last link of a
// held inode (unlink, rmdir, rename over it) leaves it with nlink 0, its data intact, on the
// on-disk orphan list (fs/inode/orphan_list.h) in the same transaction; dropping its last hold
// frees it. Mount frees the orphans a crash left behind, close() those still listed.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/format/posix_acl.h"
#include "fs/inode/inode_table.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

// Who asks. Root (uid 0) by default.
struct Credentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 0;            // masks a new inode's mode, unless its directory has a default ACL
  std::vector<uint32_t> groups{};  // supplementary groups (setxattr needs them)
  // Root, or gid is the caller's group or one of its supplementary groups.
  bool root_or_in_group(uint32_t g) const {
    return uid == 0 || gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
  }
};

// When a read of a file's data or a directory's listing moves its access time: the mount's
// atime options (noatime; relatime, the default; strictatime).
enum class AtimePolicy {
  kNever,     // noatime
  kRelative,  // relatime: when atime is not after mtime or ctime, or is a day old
  kAlways,    // strictatime: every time
};

// The xattr holding a file's capabilities (setcap(8)), which a change of its data takes away.
inline constexpr std::string_view kCapabilityXattr = "security.capability";

// Who changes a file's data, for the set-id bits the change takes away. Each question is
// asked only when the answer decides something, with the metadata lock held.
struct DataChanger {
  std::function<bool()> keeps_setid;           // holds CAP_FSETID
  std::function<bool(uint32_t gid)> in_group;  // gid is its group or a supplementary one
};

struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits and suid/sgid/sticky; the file type is kept
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<Timespec> atime;  // set to this value
  std::optional<Timespec> mtime;
  bool atime_now = false;  // UTIME_NOW
  bool mtime_now = false;
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint8_t dtype = 0;
  uint64_t next_cookie = 0;  // pass to readdir() to continue after this entry
};

// What the filesystem accepts now. After a failed metadata update it has shut down: reads are
// still served, every change fails with EIO, nothing more is written until unmount.
struct FsHealth {
  bool read_only = false;
  bool shut_down = false;
  std::string shutdown_cause;  // the failure that shut it down
};

struct FsStats {
  uint64_t block_size = 0;
  uint64_t total_blocks = 0;
  uint64_t free_blocks = 0;  // what file data can still take (the metadata reserve excluded)
  uint64_t used_blocks = 0;  // blocks in use past the journal and bitmaps: file data and tree nodes
  uint64_t inodes = 0;
  uint64_t max_name = 255;
};

// kRenameWhiteout (what overlayfs uses in its upper layer): the old name becomes a whiteout,
// a character device 0:0 owned by the caller; not with kRenameExchange.
enum RenameFlags : unsigned { kRenameNoReplace = 1u << 0, kRenameExchange = 1u << 1, kRenameWhiteout = 1u << 2 };
enum XattrFlags : int { kXattrCreate = 1, kXattrReplace = 2 };

class Filesystem {
 public:
  static Result<std::unique_ptr<Filesystem>> open(BlockDevice& dev, StoreOptions opts);
  // mkfs: formats dev with the geometry in sb, creates the root directory (owned by root:root,
  // mode 0755) and closes it clean.
  static Status format(BlockDevice& dev, const Superblock& sb);
  ~Filesystem();

  // Frees every orphan (whatever holds remain: nobody may use the filesystem any more), then
  // commits, writes everything home and marks the filesystem clean. Only the first call acts.
  Status close();
  // Makes every completed operation durable (journal commit + device flush).
  Status sync();
  // A remount (MetadataStore::set_read_only): read-only writes everything home and marks the
  // filesystem clean; read-write again frees the orphans whose last hold went meanwhile.
  Status set_read_only(bool read_only);
  // fsync(2)/fdatasync(2) of ino (InodeTable::sync_inode): commits only when the running
  // transaction holds a change of ino that must be durable; always flushes the device.
  Status fsync(uint64_t ino, bool datasync) { return inodes_.sync_inode(ino, datasync); }

  Result<Inode> getattr(uint64_t ino);
  // name in directory parent. Two names answer what a file handle needs (the kernel asks them
  // to turn a handle back into a file after its cache dropped it): "." is parent itself, of
  // any type, ENOENT once it is unlinked (nlink 0); ".." is a directory's parent.
  Result<Inode> lookup(uint64_t parent, std::string_view name);
  // Regular files, fifos, sockets, character and block devices (type from mode).
  Result<Inode> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Credentials cred);
  Result<Inode> mkdir(uint64_t parent, std::string_view name, uint32_t mode, Credentials cred);
  Result<Inode> symlink(uint64_t parent, std::string_view name, std::string_view target, Credentials cred);
  Result<std::string> readlink(uint64_t ino);
  Result<Inode> link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Status unlink(uint64_t parent, std::string_view name);
  Status rmdir(uint64_t parent, std::string_view name);
  // cred: who renames (the owner of a whiteout).
  Status rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name, unsigned flags,
                const Credentials& cred = {});
  Result<Inode> setattr(uint64_t ino, const SetAttrRequest& req);
  // A read of ino (its data, or its listing for a directory) happened: moves its atime to now
  // as policy says. Nothing on a read-only store. A times-only change: fdatasync does not
  // commit for it.
  Status note_access(uint64_t ino, AtimePolicy policy);
  // A change of a regular file's data (a write, fallocate, truncate) takes privileges away,
  // as the kernel decides for local filesystems: its file capabilities (the
  // security.capability xattr) whoever the caller is; and, from a caller without
  // CAP_FSETID, set-user-ID always, set-group-ID when group members may execute the file or
  // the caller is not in its group. Call it before the change; says whether the file changed
  // (a kernel caching the inode's attributes must then be told). Nothing is written (and the
  // caller not asked) when the file has none of them (kNone): then it costs an inode and an
  // xattr lookup under the metadata lock, and while privilege_epoch() is what it was before
  // the call, the file still has none.
  enum class PrivilegeChange { kNone, kKept, kDropped };
  Result<PrivilegeChange> drop_privileges_for_data_change(uint64_t ino, const DataChanger& caller);
  // InodeTable::privilege_epoch: any thread, no lock.
  uint64_t privilege_epoch() const { return inodes_.privilege_epoch(); }
  // Entries after cookie (0: from the start), in cookie order, until fn returns false.
  // "." and ".." are not stored and not listed.
  Status readdir(uint64_t dir, uint64_t cookie, const std::function<bool(const DirEntry&)>& fn);
  // The listing readdir(3) sees, from position offset (0: the start): "." (its next position
  // is 1), ".." (2; the root is its own parent), then the stored entries from readdir(), whose
  // positions are their cookies (all above 2). Until fn returns false. A position stays valid
  // across changes to the directory (a removed entry is skipped, not shifted).
  Status list_directory(uint64_t dir, uint64_t offset, const std::function<bool(const DirEntry&)>& fn);

  // Setting an access ACL by a caller neither privileged nor in the file's group also clears
  // the set-group-ID bit, as the kernel decides for local filesystems.
  Status setxattr(uint64_t ino, std::string_view name, std::span<const uint8_t> value, int flags,
                  const Credentials& caller = {});
  Result<std::vector<uint8_t>> getxattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  Status removexattr(uint64_t ino, std::string_view name);

  // Holds: acquire_inode adds n holds on ino (no I/O; ino need not exist, the caller got it
  // from a successful lookup/create and takes the hold before handing it out). release_inode
  // drops n; when the last goes and ino is an orphan, it is freed with its data (may do I/O;
  // blocks other operations meanwhile). An error leaves the orphan listed, to be freed by
  // close() or the next mount.
  void acquire_inode(uint64_t ino, uint64_t n = 1) { inodes_.acquire(ino, n); }
  Status release_inode(uint64_t ino, uint64_t n = 1) { return inodes_.release(ino, n); }
  // Inodes on the orphan list (unlinked, still held) right now, and how many orphans left by
  // an unclean shutdown open() freed — and how many truncates it interrupted open() finished
  // (fs/inode/truncate_list.h).
  size_t orphan_count() { return inodes_.orphan_count(); }
  uint64_t orphans_freed_at_open() const { return orphans_freed_at_open_; }
  uint64_t truncates_finished_at_open() const { return truncates_finished_at_open_; }

  FsStats statfs();
  // Read-write, read-only or shut down (with the cause), for stablefs stats. Takes the
  // metadata lock; any thread.
  FsHealth health();
  // The online scrub's walk and its saved position (filesystem_scrub.cc; fs/scrub.h uses them).
  // The first regular file whose inode number is at least from; empty past the last one.
  Result<std::optional<Inode>> next_regular_file(uint64_t from);
  // The saved scrub state; empty when no scrub ever ran here.
  Result<std::optional<ScrubStateRecord>> load_scrub_state();
  // Saves rec in one operation (durable at the next commit). EROFS on a read-only filesystem.
  Status save_scrub_state(const ScrubStateRecord& rec);
  // Largest xattr value (64 KiB, as Linux allows) and symlink target this filesystem stores.
  size_t max_xattr_value() const;
  // Largest xattr value kept in the item that names it; larger ones go into chunk items.
  size_t max_inline_xattr_value() const;
  static constexpr size_t kMaxSymlink = 4095;

  // For fsck and tests: the store under the namespace. REQUIRES: no concurrent operations.
  MetadataStore& store() { return inodes_.store_unlocked(); }
  // The inodes under the namespace, shared with the data path (fs/data).
  InodeTable& inodes() { return inodes_; }

 private:
  explicit Filesystem(std::unique_ptr<MetadataStore> store);
  struct DirentSlot {
    uint64_t slot = 0;
    DirentRecord rec;
  };

  // Every helper below runs with the metadata lock held; those that change items, inside an
  // operation.
  MetadataStore& store_locked() REQUIRES(inodes_.mutex()) { return inodes_.store(); }
  Result<std::optional<DirentSlot>> find_dirent(uint64_t dir, std::string_view name) REQUIRES(inodes_.mutex());
  Status add_dirent(uint64_t dir, std::string_view name, uint64_t ino, uint32_t mode) REQUIRES(inodes_.mutex());
  Status remove_dirent(uint64_t dir, uint64_t slot) REQUIRES(inodes_.mutex());
  Result<Inode> load_dir(uint64_t ino) REQUIRES(inodes_.mutex());
  Result<Inode> new_inode(const Inode& parent, uint32_t mode, uint64_t rdev, Credentials cred)
      REQUIRES(inodes_.mutex());
  Result<Inode> create_entry(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Credentials cred,
                             std::string_view symlink_target) EXCLUDES(inodes_.mutex());
  // Drops one link; the last goes through InodeTable::remove_last_link().
  Status drop_link(Inode& inode) REQUIRES(inodes_.mutex());
  Result<bool> dir_is_empty(uint64_t dir) REQUIRES(inodes_.mutex());
  Result<bool> is_ancestor(uint64_t maybe_ancestor, uint64_t ino) REQUIRES(inodes_.mutex());
  Result<std::optional<std::pair<uint64_t, XattrRecord>>> find_xattr(uint64_t ino, std::string_view name)
      REQUIRES(inodes_.mutex());
  // A free item slot for a new xattr name of ino (filesystem_xattr.cc).
  Result<uint64_t> free_xattr_slot(uint64_t ino, std::string_view name) REQUIRES(inodes_.mutex());
  // An xattr's value, from its record or its chunk items (EUCLEAN when they do not add up).
  Result<std::vector<uint8_t>> xattr_value(uint64_t ino, const XattrRecord& rec) REQUIRES(inodes_.mutex());
  // Stores name = value at slot, in the record or in chunk items by size; old is what the slot
  // held (its chunks go; a chunked value keeps its id). Inside an operation sized for both.
  Status put_xattr(uint64_t ino, uint64_t slot, std::string_view name, std::span<const uint8_t> value,
                   const XattrRecord* old) REQUIRES(inodes_.mutex());
  // Removes the chunk items of rec's value, if it has any. Inside an operation.
  Status remove_xattr_chunks(uint64_t ino, const XattrRecord& rec) REQUIRES(inodes_.mutex());
  size_t xattr_chunk_bytes() const;  // bytes of a value in one chunk item
  // Metadata blocks an operation that removes the xattr rec may change.
  size_t xattr_removal_blocks(const XattrRecord& rec) const;
  // POSIX ACLs (filesystem_acl.cc), inside an operation.
  // The mode a new inode gets in parent (the requested mode, cred's umask unless parent has a
  // default ACL, the ACL's limits if it has), and the ACL xattrs to store with it.
  Result<InheritedAcl> inherited_acl(const Inode& parent, uint32_t mode, uint32_t umask) REQUIRES(inodes_.mutex());
  Status store_inherited_acl(uint64_t ino, const InheritedAcl& acl) REQUIRES(inodes_.mutex());
  // chmod: a stored access ACL follows the inode's new mode bits.
  Status chmod_acl(const Inode& inode) REQUIRES(inodes_.mutex());
  // setxattr of an ACL: validates value (EINVAL), a default ACL only on a directory (EACCES);
  // an access ACL sets the inode's mode bits. Returns whether to store the value (false: the
  // mode says it all; any stored one is to be removed). kill_sgid: an access ACL also clears
  // S_ISGID.
  Result<bool> set_acl_xattr(Inode& inode, std::string_view name, std::span<const uint8_t> value, bool kill_sgid)
      REQUIRES(inodes_.mutex());
  static void touch_times(Inode& inode, bool mtime, bool ctime);

  InodeTable inodes_;
  uint64_t orphans_freed_at_open_ = 0;
  uint64_t truncates_finished_at_open_ = 0;
};

// DT_* for a mode.
uint8_t dtype_of_mode(uint32_t mode);

}  // namespace stablefs
