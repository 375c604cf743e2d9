#include "fs/namespace/filesystem.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdio>

#include "fs/inode/inode_release.h"
#include "fs/inode/orphan_list.h"
#include "fs/inode/truncate_list.h"
#include "fs/meta/item_scan.h"

namespace stablefs {
namespace {

// Metadata blocks an ordinary namespace operation may dirty at most: a few tree paths plus
// the superblock and a bitmap block.
constexpr size_t kOpBlocks = 48;

Status check_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos)
    return Status::error(EINVAL, "invalid file name");
  if (name.size() > 255) return Status::error(ENAMETOOLONG, "file name longer than 255 bytes");
  return {};
}

Key inode_key(uint64_t ino) { return {ino, kItemInode, 0}; }

Status no_entry(std::string_view name) { return Status::error(ENOENT, "no such entry: " + std::string(name)); }

}  // namespace

uint8_t dtype_of_mode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return DT_REG;
    case S_IFDIR: return DT_DIR;
    case S_IFLNK: return DT_LNK;
    case S_IFIFO: return DT_FIFO;
    case S_IFSOCK: return DT_SOCK;
    case S_IFCHR: return DT_CHR;
    case S_IFBLK: return DT_BLK;
  }
  return DT_UNKNOWN;
}

Filesystem::Filesystem(std::unique_ptr<MetadataStore> store) : inodes_(std::move(store)) {}
Filesystem::~Filesystem() = default;

Result<std::unique_ptr<Filesystem>> Filesystem::open(BlockDevice& dev, StoreOptions opts) {
  SFS_ASSIGN(auto store, MetadataStore::open(dev, opts));
  std::unique_ptr<Filesystem> fs(new Filesystem(std::move(store)));
  if (!opts.read_only) {
    // After a crash nothing can still use an orphan: free them all before the first operation.
    MutexLock lock(fs->inodes_.mutex());
    auto freed = fs->inodes_.reclaim_all_orphans();
    if (freed.ok()) {
      fs->orphans_freed_at_open_ = *freed;
    } else if (freed.status().code() == ENOSPC && !fs->store_locked().shut_down()) {
      // Too full to free them now (an image filled to the last block): the filesystem still
      // mounts, with the orphans listed, to be freed at close or a later mount once deleting
      // other files made room.
      std::fprintf(stderr, "stablefs: %s: orphaned inodes not freed yet: %s\n", dev.name().c_str(),
                   freed.status().message().c_str());
    } else {
      return freed.status().with_context(dev.name() + ": freeing orphaned inodes");
    }
    // A truncate a crash interrupted is finished before any operation can grow the file.
    auto truncates = list_pending_truncates(fs->inodes_.store());
    if (!truncates.ok()) return truncates.status().with_context(dev.name());
    for (uint64_t ino : *truncates) {
      auto finished = finish_truncate(fs->inodes_.store(), ino);
      if (!finished.ok())
        return finished.status().with_context(dev.name() + ": finishing the interrupted truncate of inode " + std::to_string(ino));
    }
    fs->truncates_finished_at_open_ = truncates->size();
  }
  return fs;
}

Status Filesystem::format(BlockDevice& dev, const Superblock& sb) {
  SFS_ASSIGN(auto store, MetadataStore::format(dev, sb));
  Inode root;
  root.ino = kRootIno;
  root.rec.mode = S_IFDIR | 0755;
  root.rec.nlink = 2;
  root.rec.parent = kRootIno;
  root.rec.generation = store->superblock().next_generation++;
  Timespec now = now_timespec();
  root.rec.atime = root.rec.mtime = root.rec.ctime = root.rec.btime = now;
  SFS_TRY(store->fs_tree().insert(inode_key(kRootIno), root.rec.encode()));
  store->superblock().inode_count = 1;
  store->superblock().next_ino = kRootIno + 1;
  return store->close();
}

Status Filesystem::close() { return inodes_.close(); }

Status Filesystem::set_read_only(bool read_only) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(store_locked().set_read_only(read_only));
  if (!read_only) SFS_TRY(inodes_.reclaim_released_orphans().status());
  return {};
}

Status Filesystem::sync() {
  MutexLock lock(inodes_.mutex());
  if (store_locked().read_only()) return {};
  SFS_TRY(store_locked().commit());
  return store_locked().flush_device();
}

Result<Inode> Filesystem::load_dir(uint64_t ino) {
  SFS_ASSIGN(Inode dir, inodes_.load(ino));
  if (!S_ISDIR(dir.rec.mode)) return Status::error(ENOTDIR, "inode " + std::to_string(ino) + " is not a directory");
  return dir;
}

void Filesystem::touch_times(Inode& inode, bool mtime, bool ctime) {
  Timespec now = now_timespec();
  if (mtime) inode.rec.mtime = now;
  if (ctime) inode.rec.ctime = now;
}

Result<std::optional<Filesystem::DirentSlot>> Filesystem::find_dirent(uint64_t dir, std::string_view name) {
  SFS_ASSIGN(auto found, find_named_item<DirentRecord>(store_locked().fs_tree(), dir, kItemDirent, name));
  if (!found) return std::optional<DirentSlot>();
  return std::optional<DirentSlot>(DirentSlot{found->first, std::move(found->second)});
}

Status Filesystem::add_dirent(uint64_t dir, std::string_view name, uint64_t ino, uint32_t mode) {
  SFS_ASSIGN(const uint64_t slot, free_name_slot(store_locked().fs_tree(), dir, kItemDirent, name));
  DirentRecord rec{ino, dtype_of_mode(mode), std::string(name)};
  return store_locked().fs_tree().insert({dir, kItemDirent, slot}, rec.encode());
}

Status Filesystem::remove_dirent(uint64_t dir, uint64_t slot) { return store_locked().fs_tree().remove({dir, kItemDirent, slot}); }

Result<Inode> Filesystem::new_inode(const Inode& parent, uint32_t mode, uint64_t rdev, Credentials cred) {
  Superblock& sb = store_locked().superblock();
  Inode inode;
  inode.ino = sb.next_ino++;
  inode.rec.mode = mode;
  inode.rec.uid = cred.uid;
  inode.rec.gid = cred.gid;
  // setgid directories: new entries take the directory's group; subdirectories keep the bit.
  if (parent.rec.mode & S_ISGID) {
    inode.rec.gid = parent.rec.gid;
    if (S_ISDIR(mode)) inode.rec.mode |= S_ISGID;
  }
  inode.rec.nlink = S_ISDIR(mode) ? 2 : 1;
  inode.rec.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
  inode.rec.generation = sb.next_generation++;
  inode.rec.parent = S_ISDIR(mode) ? parent.ino : 0;
  Timespec now = now_timespec();
  inode.rec.atime = inode.rec.mtime = inode.rec.ctime = inode.rec.btime = now;
  sb.inode_count++;
  return inode;
}

Result<Inode> Filesystem::create_entry(uint64_t parent_ino, std::string_view name, uint32_t mode, uint64_t rdev,
                                       Credentials cred, std::string_view symlink_target) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_name(name));
  SFS_TRY(store_locked().begin_growing_operation(kOpBlocks));
  SFS_ASSIGN(Inode parent, load_dir(parent_ino));
  if (parent.rec.nlink == 0) return Status::error(ENOENT, "directory has been removed");
  SFS_ASSIGN(auto existing, find_dirent(parent_ino, name));
  if (existing) return Status::error(EEXIST, "entry exists: " + std::string(name));
  if (S_ISDIR(mode) && parent.rec.nlink >= 0xFFFFFFF0u) return Status::error(EMLINK, "too many subdirectories");
  auto made = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Result<Inode> {
    SFS_ASSIGN(Inode inode, new_inode(parent, mode, rdev, cred));
    SFS_ASSIGN(InheritedAcl acl, inherited_acl(parent, inode.rec.mode, cred.umask));
    inode.rec.mode = acl.mode;
    if (S_ISLNK(mode)) {
      size_t chunk = store_locked().fs_tree().max_value_size();
      for (size_t off = 0, i = 0; off < symlink_target.size(); off += chunk, ++i) {
        std::string_view part = symlink_target.substr(off, chunk);
        SFS_TRY(store_locked().fs_tree().insert({inode.ino, kItemSymlink, i},
                                         {reinterpret_cast<const uint8_t*>(part.data()), part.size()}));
      }
      inode.rec.size = symlink_target.size();
    }
    // insert, not put: an inode number already in use means a corrupt next_ino.
    Status created = store_locked().fs_tree().insert(inode_key(inode.ino), inode.rec.encode());
    if (created.code() == EEXIST)
      return Status::error(EUCLEAN, "inode " + std::to_string(inode.ino) + " is already in use (superblock next_ino is corrupt)");
    SFS_TRY(created);
    inodes_.note_change(inode.ino, InodeChange::kMetadata);  // fsync of the new file commits it
    SFS_TRY(store_inherited_acl(inode.ino, acl));
    SFS_TRY(add_dirent(parent_ino, name, inode.ino, mode));
    if (S_ISDIR(mode)) parent.rec.nlink++;
    touch_times(parent, true, true);
    SFS_TRY(inodes_.save(parent));
    return inode;
  });
  SFS_TRY(store_locked().end_operation(made.status()));
  return made;
}

Result<Inode> Filesystem::mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, Credentials cred) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) mode |= S_IFREG;
  else if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
    return Status::error(EINVAL, "mknod: unsupported file type");
  return create_entry(parent, name, mode & (S_IFMT | 07777), rdev, cred, {});
}

Result<Inode> Filesystem::mkdir(uint64_t parent, std::string_view name, uint32_t mode, Credentials cred) {
  return create_entry(parent, name, S_IFDIR | (mode & 07777), 0, cred, {});
}

Result<Inode> Filesystem::symlink(uint64_t parent, std::string_view name, std::string_view target, Credentials cred) {
  if (target.empty()) return Status::error(ENOENT, "empty symlink target");
  if (target.size() > kMaxSymlink) return Status::error(ENAMETOOLONG, "symlink target too long");
  return create_entry(parent, name, S_IFLNK | 0777, 0, cred, target);
}

Result<std::string> Filesystem::readlink(uint64_t ino) {
  MutexLock lock(inodes_.mutex());
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (!S_ISLNK(inode.rec.mode)) return Status::error(EINVAL, "not a symlink");
  std::string target;
  SFS_TRY(store_locked().fs_tree().scan({ino, kItemSymlink, 0}, {ino, kItemSymlink, ~0ull},
                                 [&](const Key&, std::span<const uint8_t> v) {
                                   target.append(reinterpret_cast<const char*>(v.data()), v.size());
                                   return target.size() <= kMaxSymlink;
                                 }));
  if (target.size() != inode.rec.size)
    return Status::error(EUCLEAN, "inode " + std::to_string(ino) + ": symlink target length disagrees with its size");
  return target;
}

Result<Inode> Filesystem::getattr(uint64_t ino) {
  MutexLock lock(inodes_.mutex());
  return inodes_.load(ino);
}

Result<Inode> Filesystem::lookup(uint64_t parent, std::string_view name) {
  MutexLock lock(inodes_.mutex());
  if (name.size() > 255) return Status::error(ENAMETOOLONG, "file name longer than 255 bytes");
  if (name == ".") {
    SFS_ASSIGN(Inode self, inodes_.load(parent));
    if (self.rec.nlink == 0) return Status::error(ENOENT, "inode " + std::to_string(parent) + " has been removed");
    return self;
  }
  SFS_ASSIGN(Inode dir, load_dir(parent));
  if (name == "..") return inodes_.load(dir.rec.parent);
  SFS_ASSIGN(auto entry, find_dirent(parent, name));
  if (!entry) return no_entry(name);
  return inodes_.load(entry->rec.ino);
}

Result<Inode> Filesystem::link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_name(new_name));
  SFS_TRY(store_locked().begin_growing_operation(kOpBlocks));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (S_ISDIR(inode.rec.mode)) return Status::error(EPERM, "cannot hard-link a directory");
  if (inode.rec.nlink >= 0xFFFFFFF0u) return Status::error(EMLINK, "too many links");
  if (inode.rec.nlink == 0) return Status::error(ENOENT, "file has been removed");
  SFS_ASSIGN(Inode parent, load_dir(new_parent));
  if (parent.rec.nlink == 0) return Status::error(ENOENT, "directory has been removed");
  SFS_ASSIGN(auto existing, find_dirent(new_parent, new_name));
  if (existing) return Status::error(EEXIST, "entry exists: " + std::string(new_name));
  auto done = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Result<Inode> {
    SFS_TRY(add_dirent(new_parent, new_name, ino, inode.rec.mode));
    inode.rec.nlink++;
    touch_times(inode, false, true);
    SFS_TRY(inodes_.save(inode));
    touch_times(parent, true, true);
    SFS_TRY(inodes_.save(parent));
    return inode;
  });
  SFS_TRY(store_locked().end_operation(done.status()));
  return done;
}

Status Filesystem::drop_link(Inode& inode) {
  if (S_ISDIR(inode.rec.mode) || inode.rec.nlink <= 1) return inodes_.remove_last_link(inode);
  inode.rec.nlink--;
  touch_times(inode, false, true);
  return inodes_.save(inode);
}

Result<bool> Filesystem::dir_is_empty(uint64_t dir) {
  bool empty = true;
  SFS_TRY(store_locked().fs_tree().scan({dir, kItemDirent, 0}, {dir, kItemDirent, ~0ull}, [&](const Key&, std::span<const uint8_t>) {
    empty = false;
    return false;
  }));
  return empty;
}

Status Filesystem::unlink(uint64_t parent_ino, std::string_view name) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(check_name(name));
  SFS_TRY(store_locked().begin_operation(kOpBlocks));
  SFS_ASSIGN(Inode parent, load_dir(parent_ino));
  SFS_ASSIGN(auto entry, find_dirent(parent_ino, name));
  if (!entry) return no_entry(name);
  SFS_ASSIGN(Inode inode, inodes_.load(entry->rec.ino));
  if (S_ISDIR(inode.rec.mode)) return Status::error(EISDIR, "is a directory: " + std::string(name));
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(remove_dirent(parent_ino, entry->slot));
    SFS_TRY(drop_link(inode));
    touch_times(parent, true, true);
    return inodes_.save(parent);
  });
  return store_locked().end_operation(st);
}

Status Filesystem::rmdir(uint64_t parent_ino, std::string_view name) {
  MutexLock lock(inodes_.mutex());
  if (name == ".") return Status::error(EINVAL, "cannot remove '.'");
  if (name == "..") return Status::error(ENOTEMPTY, "cannot remove '..'");
  SFS_TRY(check_name(name));
  SFS_TRY(store_locked().begin_operation(kOpBlocks));
  SFS_ASSIGN(Inode parent, load_dir(parent_ino));
  SFS_ASSIGN(auto entry, find_dirent(parent_ino, name));
  if (!entry) return no_entry(name);
  SFS_ASSIGN(Inode dir, inodes_.load(entry->rec.ino));
  if (!S_ISDIR(dir.rec.mode)) return Status::error(ENOTDIR, "not a directory: " + std::string(name));
  SFS_ASSIGN(bool empty, dir_is_empty(dir.ino));
  if (!empty) return Status::error(ENOTEMPTY, "directory not empty: " + std::string(name));
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_TRY(remove_dirent(parent_ino, entry->slot));
    SFS_TRY(inodes_.remove_last_link(dir));
    parent.rec.nlink--;
    touch_times(parent, true, true);
    return inodes_.save(parent);
  });
  return store_locked().end_operation(st);
}

Result<bool> Filesystem::is_ancestor(uint64_t maybe_ancestor, uint64_t ino) {
  // Walks parent pointers up from ino; bounded so a corrupt loop cannot hang us.
  uint64_t cur = ino;
  for (int depth = 0; depth < 100000; ++depth) {
    if (cur == maybe_ancestor) return true;
    if (cur == kRootIno) return false;
    SFS_ASSIGN(Inode dir, inodes_.load(cur));
    cur = dir.rec.parent;
  }
  return Status::error(EUCLEAN, "directory parent chain does not reach the root");
}

Status Filesystem::rename(uint64_t parent_ino, std::string_view name, uint64_t new_parent_ino, std::string_view new_name,
                          unsigned flags, const Credentials& cred) {
  MutexLock lock(inodes_.mutex());
  if (flags & ~(kRenameNoReplace | kRenameExchange | kRenameWhiteout)) return Status::error(EINVAL, "unsupported rename flags");
  if ((flags & kRenameExchange) && (flags & (kRenameNoReplace | kRenameWhiteout)))
    return Status::error(EINVAL, "RENAME_EXCHANGE with RENAME_NOREPLACE or RENAME_WHITEOUT");
  SFS_TRY(check_name(name));
  SFS_TRY(check_name(new_name));
  SFS_TRY(store_locked().begin_operation(2 * kOpBlocks));
  SFS_ASSIGN(Inode src_parent, load_dir(parent_ino));
  SFS_ASSIGN(auto src_entry, find_dirent(parent_ino, name));
  if (!src_entry) return no_entry(name);
  SFS_ASSIGN(Inode src, inodes_.load(src_entry->rec.ino));
  SFS_ASSIGN(Inode dst_parent, load_dir(new_parent_ino));
  if (dst_parent.rec.nlink == 0) return Status::error(ENOENT, "directory has been removed");
  SFS_ASSIGN(auto dst_entry, find_dirent(new_parent_ino, new_name));
  const bool same_parent = parent_ino == new_parent_ino;

  if (flags & kRenameExchange) {
    if (!dst_entry) return no_entry(new_name);
  } else if (dst_entry && (flags & kRenameNoReplace)) {
    return Status::error(EEXIST, "entry exists: " + std::string(new_name));
  }
  if (dst_entry && dst_entry->rec.ino == src.ino) return {};  // same file: POSIX says do nothing

  // A directory may not move below itself.
  if (S_ISDIR(src.rec.mode) && !same_parent) {
    SFS_ASSIGN(bool loop, is_ancestor(src.ino, new_parent_ino));
    if (loop) return Status::error(EINVAL, "cannot move a directory into itself");
  }
  std::optional<Inode> dst;
  if (dst_entry) {
    SFS_ASSIGN(Inode d, inodes_.load(dst_entry->rec.ino));
    if (flags & kRenameExchange) {
      if (S_ISDIR(d.rec.mode) && !same_parent) {
        SFS_ASSIGN(bool loop, is_ancestor(d.ino, parent_ino));
        if (loop) return Status::error(EINVAL, "cannot move a directory into itself");
      }
    } else if (S_ISDIR(src.rec.mode) && !S_ISDIR(d.rec.mode)) {
      return Status::error(ENOTDIR, "cannot replace a non-directory with a directory");
    } else if (!S_ISDIR(src.rec.mode) && S_ISDIR(d.rec.mode)) {
      return Status::error(EISDIR, "cannot replace a directory with a non-directory");
    } else if (S_ISDIR(d.rec.mode)) {
      SFS_ASSIGN(bool empty, dir_is_empty(d.ino));
      if (!empty) return Status::error(ENOTEMPTY, "directory not empty: " + std::string(new_name));
    }
    dst = d;
  }

  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    Timespec now = now_timespec();
    // Directory link counts follow their ".." entries; same_parent moves leave them alone.
    auto move_dir = [&](Inode& dir, Inode& from, Inode& to) {
      if (!S_ISDIR(dir.rec.mode) || same_parent) return;
      dir.rec.parent = to.ino;
      from.rec.nlink--;
      to.rec.nlink++;
    };
    if (flags & kRenameExchange) {
      // Swap the two entries' targets in place.
      SFS_TRY(remove_dirent(parent_ino, src_entry->slot));
      SFS_TRY(remove_dirent(new_parent_ino, dst_entry->slot));
      SFS_TRY(store_locked().fs_tree().insert({parent_ino, kItemDirent, src_entry->slot},
                                       DirentRecord{dst->ino, dtype_of_mode(dst->rec.mode), std::string(name)}.encode()));
      SFS_TRY(store_locked().fs_tree().insert({new_parent_ino, kItemDirent, dst_entry->slot},
                                       DirentRecord{src.ino, dtype_of_mode(src.rec.mode), std::string(new_name)}.encode()));
      if (same_parent) {
        src_parent.rec.mtime = src_parent.rec.ctime = now;
        SFS_TRY(inodes_.save(src_parent));
      } else {
        move_dir(src, src_parent, dst_parent);
        move_dir(*dst, dst_parent, src_parent);
        src_parent.rec.mtime = src_parent.rec.ctime = now;
        dst_parent.rec.mtime = dst_parent.rec.ctime = now;
        SFS_TRY(inodes_.save(src_parent));
        SFS_TRY(inodes_.save(dst_parent));
      }
      src.rec.ctime = dst->rec.ctime = now;
      SFS_TRY(inodes_.save(src));
      return inodes_.save(*dst);
    }
    SFS_TRY(remove_dirent(parent_ino, src_entry->slot));
    if (dst) {
      SFS_TRY(remove_dirent(new_parent_ino, dst_entry->slot));
      if (S_ISDIR(dst->rec.mode)) {
        dst_parent.rec.nlink--;  // the replaced directory's ".." goes away
        if (same_parent) src_parent.rec.nlink--;
      }
      SFS_TRY(drop_link(*dst));
    }
    SFS_TRY(add_dirent(new_parent_ino, new_name, src.ino, src.rec.mode));
    if (flags & kRenameWhiteout) {
      SFS_ASSIGN(Inode whiteout, new_inode(src_parent, S_IFCHR, 0, cred));
      SFS_TRY(store_locked().fs_tree().insert(inode_key(whiteout.ino), whiteout.rec.encode()));
      SFS_TRY(add_dirent(parent_ino, name, whiteout.ino, whiteout.rec.mode));
    }
    if (same_parent) {
      src_parent.rec.mtime = src_parent.rec.ctime = now;
      SFS_TRY(inodes_.save(src_parent));
    } else {
      move_dir(src, src_parent, dst_parent);
      src_parent.rec.mtime = src_parent.rec.ctime = now;
      dst_parent.rec.mtime = dst_parent.rec.ctime = now;
      SFS_TRY(inodes_.save(src_parent));
      SFS_TRY(inodes_.save(dst_parent));
    }
    src.rec.ctime = now;
    return inodes_.save(src);
  });
  return store_locked().end_operation(st);
}

Result<Inode> Filesystem::setattr(uint64_t ino, const SetAttrRequest& req) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(store_locked().begin_operation(kOpBlocks));
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  Timespec now = now_timespec();
  if (req.mode) inode.rec.mode = (inode.rec.mode & S_IFMT) | (*req.mode & 07777);
  if (req.mode) SFS_TRY(chmod_acl(inode));
  if (req.uid) inode.rec.uid = *req.uid;
  if (req.gid) inode.rec.gid = *req.gid;
  // chown clears set-id bits of non-directories (sgid without group-exec is a lock marker).
  if ((req.uid || req.gid) && !req.mode && !S_ISDIR(inode.rec.mode)) {
    inode.rec.mode &= ~S_ISUID;
    if (inode.rec.mode & S_IXGRP) inode.rec.mode &= ~S_ISGID;
  }
  if (req.atime_now) inode.rec.atime = now;
  else if (req.atime) inode.rec.atime = *req.atime;
  if (req.mtime_now) inode.rec.mtime = now;
  else if (req.mtime) inode.rec.mtime = *req.mtime;
  for (const Timespec* t : {&inode.rec.atime, &inode.rec.mtime})
    if (t->nsec >= 1000000000u) return Status::error(EINVAL, "invalid timestamp");
  inode.rec.ctime = now;
  const bool times_only = !req.mode && !req.uid && !req.gid;
  SFS_TRY(store_locked().end_operation(out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) {
    return inodes_.save(inode, times_only ? InodeChange::kTimesOnly : InodeChange::kMetadata);
  })));
  return inode;
}

Status Filesystem::note_access(uint64_t ino, AtimePolicy policy) {
  if (policy == AtimePolicy::kNever) return {};
  MutexLock lock(inodes_.mutex());
  if (store_locked().read_only()) return {};
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  const Timespec now = now_timespec();
  if (policy == AtimePolicy::kRelative) {
    const Timespec& a = inode.rec.atime;
    constexpr int64_t kDay = 24 * 60 * 60;
    const bool stale = a <= inode.rec.mtime || a <= inode.rec.ctime || now.sec - a.sec >= kDay;
    if (!stale) return {};
  }
  SFS_TRY(store_locked().begin_operation(kOpBlocks));
  inode.rec.atime = now;
  return store_locked().end_operation(out_of_memory_as_error(
      [&]() REQUIRES(inodes_.mutex()) { return inodes_.save(inode, InodeChange::kTimesOnly); }));
}

Result<Filesystem::PrivilegeChange> Filesystem::drop_privileges_for_data_change(uint64_t ino,
                                                                                const DataChanger& caller) {
  MutexLock lock(inodes_.mutex());
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  const uint32_t mode = inode.rec.mode;
  if (!S_ISREG(mode)) return PrivilegeChange::kNone;
  SFS_ASSIGN(auto capability, find_xattr(ino, kCapabilityXattr));
  const bool setid = mode & (S_ISUID | S_ISGID);
  if (!setid && !capability) return PrivilegeChange::kNone;
  uint32_t drop = 0;
  if (setid && !caller.keeps_setid()) {
    drop = mode & S_ISUID;
    if ((mode & S_ISGID) && ((mode & S_IXGRP) || !caller.in_group(inode.rec.gid))) drop |= S_ISGID;
  }
  if (!drop && !capability) return PrivilegeChange::kKept;
  const size_t blocks = capability ? xattr_removal_blocks(capability->second) : 0;
  SFS_TRY(store_locked().begin_operation(std::max<size_t>(kOpBlocks, blocks)));
  SFS_TRY(store_locked().end_operation(out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    if (capability) {
      SFS_TRY(remove_xattr_chunks(ino, capability->second));
      SFS_TRY(store_locked().fs_tree().remove({ino, kItemXattr, capability->first}));
    }
    inode.rec.mode &= ~drop;
    inode.rec.ctime = now_timespec();
    return inodes_.save(inode);
  })));
  return PrivilegeChange::kDropped;
}

Status Filesystem::list_directory(uint64_t dir, uint64_t offset, const std::function<bool(const DirEntry&)>& fn) {
  {
    MutexLock lock(inodes_.mutex());
    SFS_ASSIGN(Inode d, load_dir(dir));
    if (offset < 1 && !fn(DirEntry{".", dir, DT_DIR, 1})) return {};
    if (offset < 2 && !fn(DirEntry{"..", d.rec.parent ? d.rec.parent : dir, DT_DIR, 2})) return {};
  }
  // Stored entries' cookies are name slots (name_slot_base: 256 and up), above the dots.
  return readdir(dir, offset <= 2 ? 0 : offset, fn);
}

Status Filesystem::readdir(uint64_t dir, uint64_t cookie, const std::function<bool(const DirEntry&)>& fn) {
  MutexLock lock(inodes_.mutex());
  SFS_TRY(load_dir(dir));
  return scan_items<DirentRecord>(store_locked().fs_tree(), {dir, kItemDirent, cookie}, {dir, kItemDirent, ~0ull},
                                  [&](const Key& k, const DirentRecord& rec) {
                                    return fn(DirEntry{rec.name, rec.ino, rec.dtype, k.offset + 1});
                                  });
}

FsStats Filesystem::statfs() {
  MutexLock lock(inodes_.mutex());
  const Superblock& sb = store_locked().superblock();
  FsStats s;
  s.block_size = sb.block_size;
  s.total_blocks = sb.total_blocks;
  // What file data can still take: free space (including blocks that become reusable at the
  // next commit, which an allocation forces) less the reserve kept for metadata.
  const Allocator& alloc = store_locked().allocator();
  const uint64_t free = alloc.allocatable_blocks() + alloc.awaiting_reuse_blocks();
  s.free_blocks = free > kMetadataReserveBlocks ? free - kMetadataReserveBlocks : 0;
  const uint64_t area = sb.total_blocks > sb.data_start + 1 ? sb.total_blocks - sb.data_start - 1 : 0;  // less the backup superblock
  s.used_blocks = area > free ? area - free : 0;
  s.inodes = sb.inode_count;
  return s;
}

FsHealth Filesystem::health() {
  MutexLock lock(inodes_.mutex());
  const MetadataStore& store = store_locked();
  return {.read_only = store.read_only(), .shut_down = store.shut_down(), .shutdown_cause = store.shutdown_cause()};
}

}  // namespace stablefs
