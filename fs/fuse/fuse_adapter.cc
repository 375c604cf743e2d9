#define FUSE_USE_VERSION 312
#include "fs/fuse/fuse_adapter.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <unordered_map>
#include <vector>

#include "bounce/mutex.h"
#include "fs/copy_range.h"
#include "fs/format/format.h"
#include "fs/fuse/current_request.h"
#include "fs/fuse/fuse_receive_loop.h"
#include "fs/fuse/fuse_uring_transport.h"
#include "fs/fuse/reply_buffers.h"
#include "fs/fuse/request_caller.h"

namespace stablefs {

struct FuseServer::State {
  Volume* volume = nullptr;
  FuseMountOptions opts;
  uint32_t block_size = 4096;
  ReplyBuffers read_buffers;  // READ replies, answered from the I/O completion
  fuse_session* session = nullptr;  // set once at mount, before the first request
  // opts.atime and opts.dir_atime as they are now (a remount changes them; any thread).
  std::atomic<AtimePolicy> atime{AtimePolicy::kRelative};
  std::atomic<bool> dir_atime{true};

  // Requests to be answered from the I/O completion and not answered yet: run() waits for
  // them before it returns, so that no reply is sent on a session already destroyed.
  void reply_pending() {
    MutexLock lock(pending_mu_);
    ++pending_;
  }
  void reply_sent() {
    MutexLock lock(pending_mu_);
    if (--pending_ == 0) pending_cv_.notify_all();
  }
  void wait_for_replies() {
    MutexLock lock(pending_mu_);
    pending_cv_.wait(pending_mu_, [this]() REQUIRES(pending_mu_) { return pending_ == 0; });
  }

  // Each kernel lookup reference and each open handle is a hold on the inode
  // (Filesystem::acquire_inode): a file unlinked while the kernel knows it stays, orphaned,
  // until the forget or release that drops its last hold frees it.
  void add_lookup(uint64_t ino) { volume->fs().acquire_inode(ino); }
  void forget(uint64_t ino, uint64_t n) { drop(ino, n); }
  // An open handle (Volume::open_file); end_handle (release, or an open whose reply failed)
  // closes it (Volume::close_file) and logs what no reply can carry. When the close freed
  // speculative space, the kernel's cached block count is stale: it is told to drop the
  // attributes (a one-way notification; the kernel holds no lock waiting on a release).
  void add_handle(uint64_t ino) { volume->open_file(ino); }
  Status end_handle(uint64_t ino) noexcept {
    bool blocks_changed = false;
    Status st = volume->close_file(ino, &blocks_changed);
    if (!st.ok()) std::fprintf(stderr, "stablefs: %s\n", st.message().c_str());
    if (blocks_changed && session != nullptr) (void)fuse_lowlevel_notify_inval_inode(session, ino, -1, 0);
    return st;
  }

 private:
  Mutex pending_mu_;
  CondVar pending_cv_;
  uint64_t pending_ GUARDED_BY(pending_mu_) = 0;

  // No reply carries an error of forget or release: a failed free is logged, and the orphan
  // stays listed for unmount or the next mount to free.

  void drop(uint64_t ino, uint64_t n) noexcept {
    try {
      Status st = volume->fs().release_inode(ino, n);
      if (!st.ok()) std::fprintf(stderr, "stablefs: %s\n", st.message().c_str());
    } catch (...) {
      std::fprintf(stderr, "stablefs: out of memory releasing inode %llu\n", static_cast<unsigned long long>(ino));
    }
  }
};

namespace {

using State = FuseServer::State;

// Background requests (async direct I/O, readahead) the kernel keeps in flight at once: more
// than four fio jobs at queue depth 32 ask for.
constexpr unsigned kMaxBackgroundRequests = 256;

State& state(fuse_req_t req) { return *static_cast<State*>(fuse_req_userdata(req)); }
Volume& vol(fuse_req_t req) { return *state(req).volume; }
Filesystem& fsys(fuse_req_t req) { return vol(req).fs(); }

int errno_of(const Status& st) { return st.code() > 0 ? st.code() : EIO; }

// Runs one operation body; an exception never crosses into libfuse. A body that replied
// before throwing cannot be answered twice, but every reply is the body's last statement.
template <typename Fn>
void guard(fuse_req_t req, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

struct timespec to_timespec(const Timespec& t) {
  struct timespec ts {};
  ts.tv_sec = t.sec;
  ts.tv_nsec = t.nsec;
  return ts;
}

struct stat to_stat(const Inode& inode, uint32_t block_size) {
  struct stat st {};
  st.st_ino = inode.ino;
  st.st_mode = inode.rec.mode;
  st.st_nlink = inode.rec.nlink;
  st.st_uid = inode.rec.uid;
  st.st_gid = inode.rec.gid;
  st.st_rdev = inode.rec.rdev;
  st.st_size = static_cast<off_t>(inode.rec.size);
  st.st_blksize = block_size;
  st.st_blocks = static_cast<blkcnt_t>(inode.rec.blocks * (block_size / 512));
  st.st_atim = to_timespec(inode.rec.atime);
  st.st_mtim = to_timespec(inode.rec.mtime);
  st.st_ctim = to_timespec(inode.rec.ctime);
  return st;
}

fuse_entry_param to_entry(fuse_req_t req, const Inode& inode) {
  const State& s = state(req);
  fuse_entry_param e{};
  e.ino = inode.ino;
  e.generation = inode.rec.generation;
  e.attr = to_stat(inode, s.block_size);
  e.attr_timeout = s.opts.attr_timeout;
  e.entry_timeout = s.opts.attr_timeout;
  return e;
}

// What read() returns (an inode's attributes), as they are once every write of that inode
// answered early (Volume::write_behind) before this call has had its ioend, which changes its
// size, times and blocks. read() runs once (it may be a change, as setattr); the inode is read
// again (getattr) if such a write was in flight while it ran: one still in flight when read()
// returned is waited for, and one whose ioend ran between read() and the wait shows as a moved
// finished count.
template <class Read>
Result<Inode> settled(fuse_req_t req, Read&& read) {
  const WriteBehind& behind = vol(req).write_behind_state();
  const uint64_t finished = behind.finished_count();
  Result<Inode> r = read();
  if (!r.ok()) return r;
  if (!vol(req).wait_written(r->ino) && behind.finished_count() == finished) return r;
  return fsys(req).getattr(r->ino);
}

// Replies with an entry (or the error) and counts the kernel's new lookup. r: settled().
void reply_settled_entry(fuse_req_t req, const Result<Inode>& r) {
  if (!r.ok()) {
    fuse_reply_err(req, errno_of(r.status()));
    return;
  }
  fuse_entry_param e = to_entry(req, *r);
  state(req).add_lookup(r->ino);
  if (fuse_reply_entry(req, &e) != 0) state(req).forget(r->ino, 1);
}

// Replies with the entry read() returns (settled()), or its error.
template <class Read>
void reply_entry(fuse_req_t req, Read&& read) {
  reply_settled_entry(req, settled(req, std::forward<Read>(read)));
}

// Replies with the attributes read() returns (settled()), or its error.
template <class Read>
void reply_attr(fuse_req_t req, Read&& read) {
  const Result<Inode> r = settled(req, std::forward<Read>(read));
  if (!r.ok()) {
    fuse_reply_err(req, errno_of(r.status()));
    return;
  }
  struct stat st = to_stat(*r, state(req).block_size);
  fuse_reply_attr(req, &st, state(req).opts.attr_timeout);
}

void reply_status(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : errno_of(st)); }

Credentials creds(fuse_req_t req) { return request_credentials(req); }

// What the daemon keeps per open file handle (fuse_file_info::fh): made by open and create,
// given back by release, which the kernel sends after the handle's last request (OpenFiles).
struct OpenFile {
  std::atomic<bool> read_seen{false};  // a read came through it (relatime is checked once)
  // The privilege epoch (Filesystem::privilege_epoch) at which a data change through this
  // handle found the file without set-id bits or capabilities; 0: not known.
  std::atomic<uint64_t> no_privileges_at_epoch{0};
};

// Every OpenFile alive. A handle whose RELEASE the kernel never delivers (the session ended
// first: SIGTERM or an unmount with the release still queued) stays owned here until the
// process exits, not lost. Thread-safe; open and release run on any worker.
class OpenFiles {
 public:
  OpenFile* make() {
    auto file = std::make_unique<OpenFile>();
    OpenFile* p = file.get();
    MutexLock lock(mu_);
    live_.emplace(p, std::move(file));
    return p;
  }
  void end(OpenFile* file) {
    std::unique_ptr<OpenFile> gone;  // freed after the lock is dropped
    MutexLock lock(mu_);
    auto it = live_.find(file);
    if (it == live_.end()) return;
    gone = std::move(it->second);
    live_.erase(it);
  }

 private:
  Mutex mu_;
  std::unordered_map<OpenFile*, std::unique_ptr<OpenFile>> live_ GUARDED_BY(mu_);
};

OpenFiles& open_files() {
  static OpenFiles files;
  return files;
}

OpenFile* open_file_of(const fuse_file_info* fi) {
  return fi ? reinterpret_cast<OpenFile*>(static_cast<uintptr_t>(fi->fh)) : nullptr;
}

// Before a write, fallocate, truncate or copy changes ino's data: the privileges the caller's
// change takes away (Filesystem::drop_privileges_for_data_change): the file's capabilities,
// and set-id bits. kernel_says_no_fsetid: the kernel marked the request as coming from a
// caller without CAP_FSETID (FUSE_WRITE_KILL_SUIDGID on a write, FATTR_KILL_SUIDGID on a
// truncate, FUSE_OPEN_KILL_SUIDGID on a truncating open); otherwise the caller's
// capabilities are read from /proc if the file has a set-id bit. With
// FUSE_HANDLE_KILLPRIV_V2 (negotiated at INIT) the kernel leaves all of this to the
// filesystem; it still takes capabilities away itself before a buffered write or a truncate.
// handle (may be null): once it has seen the file without privileges, later changes through
// it skip the lookup until some file gains one (the privilege epoch moves).
Status drop_privileges_before_data_change(fuse_req_t req, uint64_t ino, bool kernel_says_no_fsetid, OpenFile* handle) {
  Filesystem& fs = fsys(req);
  const uint64_t epoch = fs.privilege_epoch();
  if (handle && handle->no_privileges_at_epoch.load(std::memory_order_acquire) == epoch) return {};
  const DataChanger caller{
      [req, kernel_says_no_fsetid] { return !kernel_says_no_fsetid && request_caller_has_cap_fsetid(req); },
      [req](uint32_t gid) { return request_caller_in_group(req, gid); }};
  SFS_ASSIGN(const Filesystem::PrivilegeChange change, fs.drop_privileges_for_data_change(ino, caller));
  if (change == Filesystem::PrivilegeChange::kNone && handle)
    handle->no_privileges_at_epoch.store(epoch, std::memory_order_release);
  // The kernel keeps the mode it was last told (a stat asking for the mode alone is answered
  // from its cache): tell it the attributes changed. Only the attributes: offset < 0.
  if (change == Filesystem::PrivilegeChange::kDropped)
    (void)fuse_lowlevel_notify_inval_inode(state(req).session, ino, -1, 0);
  return {};
}

// ---- operations -------------------------------------------------------------------------

void op_init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  conn->max_write = 1u << 20;  // libfuse derives max_pages from it
  conn->max_readahead = 1u << 20;
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_ASYNC_DIO);
  // File handles (name_to_handle_at, NFS export) stay valid after the kernel drops its cached
  // inode and across remounts: it asks for "." of the handle's inode (and ".." to reconnect a
  // directory), which Filesystem::lookup answers; the generation tells a reused number apart.
  want(FUSE_CAP_EXPORT_SUPPORT);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // POSIX ACLs: the kernel enforces them from the system.posix_acl_* xattrs (and caches them);
  // the filesystem validates them, keeps the mode in sync and applies a directory's default
  // ACL to new inodes. That needs the creator's mode unmasked (DONT_MASK): the filesystem
  // applies the umask (sent with each create) itself when there is no default ACL.
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK)) {
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  } else {
    conn->want &= ~(FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK);  // the kernel applies the umask
  }
  conn->time_gran = 1;
  // Direct I/O from aio and io_uring reaches the daemon as background requests; the kernel's
  // default of 12 in flight would cap a queue depth of 32 (or several jobs) at 12. The
  // congestion threshold is where the kernel starts holding back buffered readahead.
  conn->max_background = kMaxBackgroundRequests;
  conn->congestion_threshold = kMaxBackgroundRequests * 3 / 4;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guard(req, [&] {
    const Result<Inode> r = settled(req, [&] { return fsys(req).lookup(parent, name); });
    if (!r.ok() && r.status().code() == ENOENT) {
      // A negative entry the kernel may cache: every change comes through this mount.
      fuse_entry_param e{};
      e.entry_timeout = state(req).opts.attr_timeout;
      fuse_reply_entry(req, &e);
      return;
    }
    reply_settled_entry(req, r);
  });
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  state(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) state(req).forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  guard(req, [&] { reply_attr(req, [&] { return fsys(req).getattr(ino); }); });
}

Timespec from_timespec(const struct timespec& ts) {
  return Timespec{static_cast<int64_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec)};
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  guard(req, [&] {
    vol(req).wait_written(ino);  // a write answered before this change lands before it, too
    // FATTR_KILL_SUIDGID (libfuse's FUSE_SET_ATTR_KILL_SUID bit) with a size: a truncate by a
    // caller without CAP_FSETID; with FUSE_HANDLE_KILLPRIV_V2 taking the set-id bits is ours.
    // The kernel sets the same bit on every chown of a non-directory (root's too), whose own
    // rule Filesystem::setattr applies: set-group-ID without group execute stays then.
    if ((to_set & FUSE_SET_ATTR_KILL_SUID) && (to_set & FUSE_SET_ATTR_SIZE) &&
        !(to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
      const Status dropped = drop_privileges_before_data_change(req, ino, true, nullptr);
      if (!dropped.ok()) return reply_status(req, dropped);
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
      Status st = vol(req).set_size(ino, static_cast<uint64_t>(attr->st_size));
      if (!st.ok()) return reply_status(req, st);
    }
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) r.atime_now = true;
    else if (to_set & FUSE_SET_ATTR_ATIME) r.atime = from_timespec(attr->st_atim);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) r.mtime_now = true;
    else if (to_set & FUSE_SET_ATTR_MTIME) r.mtime = from_timespec(attr->st_mtim);
    const bool other = to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME |
                                 FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW |
                                 FUSE_SET_ATTR_CTIME);
    if (other || !(to_set & FUSE_SET_ATTR_SIZE)) reply_attr(req, [&] { return fsys(req).setattr(ino, r); });
    else reply_attr(req, [&] { return fsys(req).getattr(ino); });
  });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  guard(req, [&] {
    auto r = fsys(req).readlink(ino);
    if (!r.ok()) return reply_status(req, r.status());
    fuse_reply_readlink(req, r->c_str());
  });
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  guard(req, [&] { reply_entry(req, [&] { return fsys(req).mknod(parent, name, mode, rdev, creds(req)); }); });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  guard(req, [&] { reply_entry(req, [&] { return fsys(req).mkdir(parent, name, mode, creds(req)); }); });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guard(req, [&] { reply_status(req, fsys(req).unlink(parent, name)); });
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  guard(req, [&] { reply_status(req, fsys(req).rmdir(parent, name)); });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  guard(req, [&] { reply_entry(req, [&] { return fsys(req).symlink(parent, name, link, creds(req)); }); });
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  guard(req, [&] {
    unsigned f = 0;
    if (flags & RENAME_NOREPLACE) f |= kRenameNoReplace;
    if (flags & RENAME_EXCHANGE) f |= kRenameExchange;
    if (flags & RENAME_WHITEOUT) f |= kRenameWhiteout;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
      return reply_status(req, Status::error(EINVAL, "rename flags"));
    reply_status(req, fsys(req).rename(parent, name, newparent, newname, f, creds(req)));
  });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  guard(req, [&] { reply_entry(req, [&] { return fsys(req).link(ino, newparent, newname); }); });
}

// Per-handle settings an open decides: O_DIRECT handles bypass the kernel's page cache.
void set_open_flags(fuse_file_info* fi) {
  fi->direct_io = (fi->flags & O_DIRECT) ? 1 : 0;
  fi->keep_cache = 0;
  fi->fh = reinterpret_cast<uintptr_t>(open_files().make());
}

void end_open_file(fuse_file_info* fi) {
  if (OpenFile* file = open_file_of(fi)) open_files().end(file);
  fi->fh = 0;
}

// A read through handle fi of ino: its access time moves as the mount's atime options say.
// Like the kernel's touch_atime, a failure does not fail the read.
void note_read(fuse_req_t req, uint64_t ino, const fuse_file_info* fi) {
  const AtimePolicy policy = state(req).atime.load(std::memory_order_relaxed);
  if (policy == AtimePolicy::kNever) return;
  OpenFile* f = open_file_of(fi);
  if (policy == AtimePolicy::kRelative && f && f->read_seen.exchange(true)) return;
  (void)fsys(req).note_access(ino, policy);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guard(req, [&] {
    if (fi->flags & O_TRUNC) {
      vol(req).wait_written(ino);
      // A truncating open by a caller without CAP_FSETID takes the set-id bits
      // (FUSE_HANDLE_KILLPRIV_V2: the kernel leaves that to us and says so in open_flags).
      const std::optional<uint32_t> open_flags = current_open_flags();
      if (open_flags && (*open_flags & FUSE_OPEN_KILL_SUIDGID)) {
        const Status dropped = drop_privileges_before_data_change(req, ino, true, nullptr);
        if (!dropped.ok()) return reply_status(req, dropped);
      }
      Status st = vol(req).set_size(ino, 0);
      if (!st.ok()) return reply_status(req, st);
    }
    set_open_flags(fi);
    state(req).add_handle(ino);  // dropped by op_release
    if (fuse_reply_open(req, fi) != 0) {
      (void)state(req).end_handle(ino);
      end_open_file(fi);
    }
  });
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  guard(req, [&] {
    auto r = fsys(req).mknod(parent, name, (mode & 07777) | S_IFREG, 0, creds(req));
    if (!r.ok()) return reply_status(req, r.status());
    set_open_flags(fi);
    fuse_entry_param e = to_entry(req, *r);
    state(req).add_lookup(r->ino);
    state(req).add_handle(r->ino);  // dropped by op_release
    if (fuse_reply_create(req, &e, fi) != 0) {
      (void)state(req).end_handle(r->ino);
      end_open_file(fi);
      state(req).forget(r->ino, 1);
    }
  });
}

// Counts a reply as pending (FuseServer::State::reply_pending) for the span of starting the
// request: if starting throws before the completion callback was handed over, the count is
// taken back (guard() then replies with the error).
class PendingReply {
 public:
  explicit PendingReply(FuseServer::State& st) : st_(st) { st_.reply_pending(); }
  ~PendingReply() {
    if (!handed_over_) st_.reply_sent();
  }
  PendingReply(const PendingReply&) = delete;
  PendingReply& operator=(const PendingReply&) = delete;
  void handed_over() { handed_over_ = true; }

 private:
  FuseServer::State& st_;
  bool handed_over_ = false;
};

// Reads and writes are answered from the I/O completion: the worker starts the request and
// returns. A read goes into a leased reply buffer that lives until the reply is sent.
// A read first waits for the inode's writes answered early: until their ioends it would stop
// at the size from before them, and the kernel takes a short read for the file's end.
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, [&] {
    vol(req).wait_written(ino);
    note_read(req, ino, fi);
    FuseServer::State& st = state(req);
    std::shared_ptr<ReplyBuffers::Lease> buf = st.read_buffers.get(size);
    std::span<uint8_t> dst = buf->span();
    PendingReply pending(st);
    // The lease is this read's alone until the reply is sent: private memory, never bounced.
    vol(req).read_async(ino, static_cast<uint64_t>(off), dst, ReadMemory::kPrivate,
                        [req, buf, &st](Result<size_t> r) mutable {
      if (!r.ok()) reply_status(req, r.status());
      else fuse_reply_buf(req, reinterpret_cast<const char*>(buf->span().data()), *r);
      buf.reset();  // back to st's pool while st surely exists: reply_sent may let it go
      st.reply_sent();
    });
    pending.handed_over();
  });
}

// The engine decides whether it copies the payload or sends it zero-copy; for the latter it
// keeps the receive buffer holding it (fs/fuse/fuse_receive_loop.h) until the device has the
// data, so the worker need not wait either way. A buffered write (the kernel's page cache
// path: neither O_DIRECT nor O_DSYNC/O_SYNC) is answered as soon as it is on its way to the
// device (Volume::write_behind); the others once the device has it and the ioend has run.
void op_write(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  guard(req, [&] {
    const std::optional<uint32_t> write_flags = current_write_flags();
    const Status dropped = drop_privileges_before_data_change(
        req, ino, write_flags && (*write_flags & FUSE_WRITE_KILL_SUIDGID), open_file_of(fi));
    if (!dropped.ok()) return reply_status(req, dropped);
    FuseServer::State& st = state(req);
    const WriteSource src{{reinterpret_cast<const uint8_t*>(data), size}, [] { return keep_receive_buffer(); }, {}};
    const std::optional<uint32_t> file_flags = current_write_file_flags();
    const bool buffered = file_flags && !(*file_flags & (O_DIRECT | O_DSYNC));
    PendingReply pending(st);
    auto reply = [req, &st](Result<size_t> r) {
      if (!r.ok()) reply_status(req, r.status());
      else fuse_reply_write(req, *r);
      st.reply_sent();
    };
    if (buffered) vol(req).write_behind(ino, static_cast<uint64_t>(off), src, reply);
    else (void)vol(req).write_async(ino, static_cast<uint64_t>(off), src, reply);
    pending.handed_over();
  });
}

// The last close of an inode's handles trims its speculative preallocation past EOF (the
// kernel ignores release's reply; an error is still reported for debug logs).
void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  end_open_file(fi);
  guard(req, [&] {
    vol(req).wait_written(ino);  // the trim past EOF and a free go by the written size
    Status st = state(req).end_handle(ino);  // may free an unlinked file
    reply_status(req, st);
  });
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  guard(req, [&] { reply_status(req, vol(req).fsync(ino, datasync != 0)); });
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  guard(req, [&] {
    auto r = fsys(req).getattr(ino);
    if (!r.ok()) return reply_status(req, r.status());
    if (!S_ISDIR(r->rec.mode)) return reply_status(req, Status::error(ENOTDIR, "not a directory"));
    fi->fh = 0;  // cookies are stable: a directory handle needs no state
    fuse_reply_open(req, fi);
  });
}

// readdir and readdirplus: the listing and its positions are the filesystem's
// (Filesystem::list_directory); this only encodes it.
void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Filesystem& fs = fsys(req);
  std::vector<char> buf(size);
  size_t used = 0;
  std::vector<uint64_t> held;  // readdirplus: the lookup references the reply hands out
  // Adds one entry; false when it does not fit. inode null: attributes from e alone.
  auto add = [&](const DirEntry& e, const Inode* inode) -> bool {
    const off_t next = static_cast<off_t>(e.next_cookie);
    size_t n;
    if (plus) {
      fuse_entry_param p{};
      if (inode) p = to_entry(req, *inode);
      else {
        p.attr.st_ino = e.ino;
        p.attr.st_mode = static_cast<uint32_t>(e.dtype) << 12;
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p, next);
    } else {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = static_cast<uint32_t>(e.dtype) << 12;
      n = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st, next);
    }
    if (n > size - used) return false;
    if (plus && inode) {
      state(req).add_lookup(inode->ino);
      held.push_back(inode->ino);
    }
    used += n;
    return true;
  };
  // Collect at most what can fit (each entry needs at least 24 bytes plus its name, padded);
  // the reply is built outside the metadata lock (readdirplus looks each entry up).
  // A listing from its start is a read of the directory (for its access time).
  if (off == 0 && state(req).dir_atime.load(std::memory_order_relaxed))
    (void)fs.note_access(ino, state(req).atime.load(std::memory_order_relaxed));
  std::vector<DirEntry> entries;
  size_t estimate = 0;
  const size_t per_entry = plus ? sizeof(fuse_entry_param) : 24;
  Status st = fs.list_directory(ino, off < 0 ? 0 : static_cast<uint64_t>(off), [&](const DirEntry& e) {
    entries.push_back(e);
    estimate += per_entry + ((e.name.size() + 7) & ~size_t(7));
    return estimate < size;
  });
  if (!st.ok()) return reply_status(req, st);
  for (const DirEntry& e : entries) {
    // The kernel takes no lookup reference for "." and "..": they carry no attributes.
    if (!plus || e.name == "." || e.name == "..") {
      if (!add(e, nullptr)) break;
      continue;
    }
    auto inode = settled(req, [&] { return fs.getattr(e.ino); });
    if (!inode.ok()) {
      if (inode.status().code() == ENOENT) continue;  // removed since it was listed
      if (used == 0) return reply_status(req, inode.status());
      break;
    }
    if (!add(e, &*inode)) break;
  }
  // A reply the kernel never got (the request was interrupted) hands out no references.
  if (fuse_reply_buf(req, buf.data(), used) != 0)
    for (uint64_t h : held) state(req).forget(h, 1);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  guard(req, [&] { do_readdir(req, ino, size, off, false); });
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  guard(req, [&] { do_readdir(req, ino, size, off, true); });
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  guard(req, [&] { reply_status(req, vol(req).fsync(ino, datasync != 0)); });
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  guard(req, [&] {
    FsStats s = fsys(req).statfs();
    struct statvfs v {};
    v.f_bsize = s.block_size;
    v.f_frsize = s.block_size;
    v.f_blocks = s.total_blocks;
    v.f_bfree = s.free_blocks;
    v.f_bavail = s.free_blocks;
    v.f_files = s.inodes + s.free_blocks;
    v.f_ffree = s.free_blocks;
    v.f_favail = s.free_blocks;
    v.f_namemax = s.max_name;
    fuse_reply_statfs(req, &v);
  });
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  guard(req, [&] {
    int f = 0;
    if (flags & XATTR_CREATE) f |= kXattrCreate;
    if (flags & XATTR_REPLACE) f |= kXattrReplace;
    // The kernel's FUSE_SETXATTR_ACL_KILL_SGID does not reach this op in libfuse 3.14: the
    // filesystem decides from the caller's groups, as the kernel does for local filesystems.
    reply_status(req, fsys(req).setxattr(ino, name, {reinterpret_cast<const uint8_t*>(value), size}, f,
                                         request_credentials_with_groups(req)));
  });
}

// getxattr/listxattr: size 0 asks for the length; a buffer too small is ERANGE.
void reply_xattr_bytes(fuse_req_t req, const char* data, size_t len, size_t size) {
  if (size == 0) fuse_reply_xattr(req, len);
  else if (size < len) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, data, len);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  guard(req, [&] {
    auto r = fsys(req).getxattr(ino, name);
    if (!r.ok()) return reply_status(req, r.status());
    reply_xattr_bytes(req, reinterpret_cast<const char*>(r->data()), r->size(), size);
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  guard(req, [&] {
    auto r = fsys(req).listxattr(ino);
    if (!r.ok()) return reply_status(req, r.status());
    std::string names;
    for (const std::string& n : *r) names.append(n).push_back('\0');
    reply_xattr_bytes(req, names.data(), names.size(), size);
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  guard(req, [&] { reply_status(req, fsys(req).removexattr(ino, name)); });
}

// No access operation: every mount has default_permissions, under which the kernel decides
// access(2) and chdir itself (generic_permission, with supplementary groups and the ACLs
// this filesystem stores) and never sends FUSE_ACCESS.

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  guard(req, [&] {
    if (offset < 0 || length <= 0) return reply_status(req, Status::error(EINVAL, "fallocate range"));
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
      return reply_status(req, Status::error(EOPNOTSUPP, "fallocate mode"));
    unsigned m = 0;
    if (mode & FALLOC_FL_KEEP_SIZE) m |= kFallocKeepSize;
    if (mode & FALLOC_FL_PUNCH_HOLE) m |= kFallocPunchHole;
    if (mode & FALLOC_FL_ZERO_RANGE) m |= kFallocZeroRange;
    vol(req).wait_written(ino);  // its size and times change in order
    const Status dropped = drop_privileges_before_data_change(req, ino, false, open_file_of(fi));
    if (!dropped.ok()) return reply_status(req, dropped);
    reply_status(req, vol(req).fallocate(ino, m, static_cast<uint64_t>(offset), static_cast<uint64_t>(length)));
  });
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  guard(req, [&] {
    if (off < 0) return reply_status(req, Status::error(ENXIO, "negative offset"));
    vol(req).wait_written(ino);  // the size the seek stops at
    Result<uint64_t> r = Status::error(EINVAL, "lseek whence");
    if (whence == SEEK_DATA) r = vol(req).seek_data(ino, static_cast<uint64_t>(off));
    else if (whence == SEEK_HOLE) r = vol(req).seek_hole(ino, static_cast<uint64_t>(off));
    if (!r.ok()) return reply_status(req, r.status());
    fuse_reply_lseek(req, static_cast<off_t>(*r));
  });
}

// The destination's data changes as by a write: its privileges go first (the request says
// nothing of the caller's CAP_FSETID, so it is read from /proc when the file has a set-id bit).
void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*, fuse_ino_t ino_out,
                        off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  guard(req, [&] {
    if (off_in < 0 || off_out < 0 || flags < 0) return reply_status(req, Status::error(EINVAL, "copy_file_range"));
    vol(req).wait_written(ino_in);  // the sizes the copy goes by
    vol(req).wait_written(ino_out);
    if (len > 0) {
      const Status dropped = drop_privileges_before_data_change(req, ino_out, false, open_file_of(fi_out));
      if (!dropped.ok()) return reply_status(req, dropped);
    }
    auto r = copy_file_range(vol(req), ino_in, static_cast<uint64_t>(off_in), ino_out, static_cast<uint64_t>(off_out),
                             len, static_cast<unsigned>(flags));
    if (!r.ok()) return reply_status(req, r.status());
    fuse_reply_write(req, static_cast<size_t>(*r));
  });
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.symlink = op_symlink;
  o.rename = op_rename;
  o.link = op_link;
  o.open = op_open;
  o.create = op_create;
  o.read = op_read;
  o.write = op_write;
  // No flush: every write reaches the daemon before close() returns (no writeback cache) and
  // locks are the kernel's, so FLUSH would do nothing. Left out, libfuse answers the first one
  // ENOSYS and the kernel stops sending it: a close costs no round trip.
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.readdirplus = op_readdirplus;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.setxattr = op_setxattr;
  o.getxattr = op_getxattr;
  o.listxattr = op_listxattr;
  o.removexattr = op_removexattr;
  o.fallocate = op_fallocate;
  o.lseek = op_lseek;
  o.copy_file_range = op_copy_file_range;
  return o;
}();

// libfuse option values are comma-separated; a comma or backslash in a value is escaped.
std::string escape_opt(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<FuseServer>> FuseServer::mount(Volume& volume, const FuseMountOptions& opts) {
  if (opts.uring && !FuseUringTransport::kernel_enabled())
    return Status::error(EOPNOTSUPP, "uring: FUSE over io_uring is off in this kernel (/sys/module/fuse/parameters/enable_uring is not Y)");
  std::unique_ptr<FuseServer> server(new FuseServer());
  server->state_ = std::make_unique<State>();
  State& s = *server->state_;
  s.volume = &volume;
  s.opts = opts;
  if (opts.receive_stats) s.read_buffers.count_into(&opts.receive_stats->reply_bytes);
  s.block_size = static_cast<uint32_t>(volume.fs().statfs().block_size);
  s.atime = opts.atime;
  s.dir_atime = opts.dir_atime;

  std::string o = "default_permissions,fsname=" + escape_opt(opts.fsname);
  if (!opts.subtype.empty()) o += ",subtype=" + escape_opt(opts.subtype);
  if (opts.allow_other) o += ",allow_other";
  if (opts.read_only) o += ",ro";
  o += opts.suid ? ",suid" : ",nosuid";
  o += opts.dev ? ",dev" : ",nodev";
  o += opts.exec ? ",exec" : ",noexec";
  // Shown in /proc/mounts as on a local filesystem (the kernel itself leaves atime to us;
  // libfuse 3.14 passes on noatime, not strictatime or nodiratime).
  if (opts.atime == AtimePolicy::kNever) o += ",noatime";
  std::vector<std::string> argv_s = {"stablefs", "-o", o};
  if (opts.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  server->se_ = fuse_session_new(&args, &kOps, sizeof(kOps), &s);
  fuse_opt_free_args(&args);
  s.session = server->se_;
  if (!server->se_) return Status::error(EINVAL, opts.mountpoint + ": could not create the FUSE session");
  if (fuse_set_signal_handlers(server->se_) != 0)
    return Status::error(EIO, opts.mountpoint + ": could not install signal handlers");
  server->signals_ = true;
  if (fuse_session_mount(server->se_, opts.mountpoint.c_str()) != 0)
    return Status::error(EIO, opts.mountpoint + ": FUSE mount failed (is /dev/fuse available and the mountpoint a directory?)");
  server->mounted_ = true;
  // Shared mappings of files open with O_DIRECT (FOPEN_DIRECT_IO handles) work as on a local
  // filesystem instead of failing with ENODEV.
  // FUSE_HANDLE_KILLPRIV_V2: the daemon takes privileges away on writes, truncates and
  // chown itself (drop_privileges_before_data_change, Filesystem::setattr), so the kernel
  // marks the superblock SB_NOSEC and stops asking for security.capability (a GETXATTR round
  // trip) before every buffered write of a file it once found without privileges to drop.
  if (const int rc = add_init_reply_flags(server->se_, kFuseDirectIoAllowMmap | kFuseHandleKillprivV2); rc < 0)
    return Status::error(-rc, opts.mountpoint + ": could not set up the FUSE reply writer");
  return server;
}

FuseServer::~FuseServer() {
  if (!se_) return;
  if (signals_) fuse_remove_signal_handlers(se_);
  if (mounted_) fuse_session_unmount(se_);
  fuse_session_destroy(se_);
}

Status FuseServer::run() {
  // Our own loop (not fuse_session_loop_mt): its receive buffers put WRITE payloads on an
  // aligned address, so zero-copy writes need no copy (fs/fuse/fuse_receive_loop.h).
  ReceiveLoopOptions loop;
  loop.threads = state_->opts.max_threads;
  loop.uring_entries_per_queue = state_->opts.uring ? FuseUringTransport::kDefaultEntriesPerQueue : 0;
  loop.stats = state_->opts.receive_stats;
  loop.inline_io = state_->volume->submit_decision().mode == IoQueue::Mode::kInline;
  // Replies answered from I/O completions, before the transports and the session go.
  loop.drain = [s = state_.get()] { s->wait_for_replies(); };
  const int rc = run_aligned_receive_loop(se_, loop);
  if (mounted_) {
    fuse_session_unmount(se_);
    mounted_ = false;
  }
  if (rc < 0) return Status::error(-rc, state_->opts.mountpoint + ": FUSE session failed: " + std::strerror(-rc));
  return {};
}

Status FuseServer::remount(const RemountSettings& settings) {
  SFS_TRY(state_->volume->set_read_only(settings.read_only));
  state_->atime = settings.atime;
  state_->dir_atime = settings.dir_atime;
  return {};
}

void FuseServer::exit() {
  if (se_) fuse_session_exit(se_);
}

}  // namespace stablefs
