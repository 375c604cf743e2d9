// Filesystem: the namespace of a stablefs filesystem — inodes, directories, links, symlinks,
// renames, attributes and xattrs — as operations on the metadata store.
//
// This is the API the FUSE adapter (and fsck's tests, and the crash harness) call. Each
// operation is atomic: it runs as one step of the running journal transaction under the
// filesystem's metadata lock, and is durable after sync(). Errors are Status values whose
// code() is the errno to return to a caller. Permission checks belong to the caller (the
// kernel with default_permissions); this layer enforces structure (ENOTEMPTY, EXDEV-free
// renames, loops, name rules). Thread-safe: every public method takes the metadata lock.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/fs_items.h"
#include "fs/metadata_store.h"

namespace stablefs {

struct Inode {
  uint64_t ino = 0;
  InodeRecord rec;
};

struct Credentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
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

struct FsStats {
  uint64_t block_size = 0;
  uint64_t total_blocks = 0;
  uint64_t free_blocks = 0;
  uint64_t inodes = 0;
  uint64_t max_name = 255;
};

enum RenameFlags : unsigned { kRenameNoReplace = 1u << 0, kRenameExchange = 1u << 1 };
enum XattrFlags : int { kXattrCreate = 1, kXattrReplace = 2 };

class Filesystem {
 public:
  static Result<std::unique_ptr<Filesystem>> open(BlockDevice& dev, StoreOptions opts);
  // mkfs: formats dev with the geometry in sb, creates the root directory (owned by root:root,
  // mode 0755) and closes it clean.
  static Status format(BlockDevice& dev, const Superblock& sb);
  ~Filesystem();

  // Commits, writes everything home and marks the filesystem clean.
  Status close();
  // Makes every completed operation durable (journal commit + device flush).
  Status sync();

  Result<Inode> getattr(uint64_t ino);
  Result<Inode> lookup(uint64_t parent, std::string_view name);
  // Regular files, fifos, sockets, character and block devices (type from mode).
  Result<Inode> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Credentials cred);
  Result<Inode> mkdir(uint64_t parent, std::string_view name, uint32_t mode, Credentials cred);
  Result<Inode> symlink(uint64_t parent, std::string_view name, std::string_view target, Credentials cred);
  Result<std::string> readlink(uint64_t ino);
  Result<Inode> link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Status unlink(uint64_t parent, std::string_view name);
  Status rmdir(uint64_t parent, std::string_view name);
  Status rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name, unsigned flags);
  Result<Inode> setattr(uint64_t ino, const SetAttrRequest& req);
  // Entries after cookie (0: from the start), in cookie order, until fn returns false.
  // "." and ".." are not stored and not listed.
  Status readdir(uint64_t dir, uint64_t cookie, const std::function<bool(const DirEntry&)>& fn);

  Status setxattr(uint64_t ino, std::string_view name, std::span<const uint8_t> value, int flags);
  Result<std::vector<uint8_t>> getxattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> listxattr(uint64_t ino);
  Status removexattr(uint64_t ino, std::string_view name);

  FsStats statfs();
  // Largest xattr value and symlink target this filesystem stores.
  size_t max_xattr_value() const;
  static constexpr size_t kMaxSymlink = 4095;

  // For fsck and tests: the store under the namespace. REQUIRES: no concurrent operations.
  MetadataStore& store() { return *store_; }

 private:
  friend class FileMapper;  // the data path works on files under the same metadata lock
  friend class FileSpace;
  explicit Filesystem(std::unique_ptr<MetadataStore> store);
  struct DirentSlot {
    uint64_t slot = 0;
    DirentRecord rec;
  };

  Result<Inode> load_inode(uint64_t ino);
  Status save_inode(const Inode& inode);
  Result<std::optional<DirentSlot>> find_dirent(uint64_t dir, std::string_view name);
  Status add_dirent(uint64_t dir, std::string_view name, uint64_t ino, uint32_t mode);
  Status remove_dirent(uint64_t dir, uint64_t slot);
  Result<Inode> load_dir(uint64_t ino);
  Result<Inode> new_inode(const Inode& parent, uint32_t mode, uint64_t rdev, Credentials cred);
  Result<Inode> create_entry(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Credentials cred,
                             std::string_view symlink_target);
  // Drops one link; frees the inode and everything it owns when the last goes.
  Status drop_link(Inode& inode);
  Status free_inode(const Inode& inode);
  Result<bool> dir_is_empty(uint64_t dir);
  Result<bool> is_ancestor(uint64_t maybe_ancestor, uint64_t ino);
  Result<std::optional<std::pair<uint64_t, XattrRecord>>> find_xattr(uint64_t ino, std::string_view name);
  void touch_times(Inode& inode, bool mtime, bool ctime);

  mutable std::mutex mu_;
  std::unique_ptr<MetadataStore> store_;
};

// DT_* for a mode.
uint8_t dtype_of_mode(uint32_t mode);
Timespec now_timespec();

}  // namespace stablefs
