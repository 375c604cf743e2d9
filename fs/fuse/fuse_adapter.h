// FuseServer: serves one Volume to the kernel through the libfuse3 low-level API.
//
// The adapter is thin: one short function per FUSE operation that decodes the request, calls
// Volume (file data, sizes, fallocate, seek, sync) or Volume::fs() (the namespace), and replies.
// No filesystem logic lives here. Errors are Status values whose code() becomes the errno
// reply; nothing throws across the libfuse boundary (std::bad_alloc becomes ENOMEM, any other
// exception EIO, at the edge of each operation).
//
// Inode numbers are stablefs inode numbers (FUSE ino 1 is the root, kRootIno); generations
// come from the inode record. Every kernel lookup reference (lookup, create, mknod, mkdir,
// symlink, link, readdirplus add one; forget and forget_multi drop them) and every open file
// handle (open, create; release drops it) is a hold on the inode (Filesystem::acquire_inode):
// a file unlinked while open or known to the kernel stays readable and writable, on the
// on-disk orphan list, until its last hold goes, and a crash meanwhile frees it at the next
// mount.
//
// All data goes through the Volume's direct-I/O engine: opens with O_DIRECT get direct_io on
// their handle (the kernel sends the application's I/O as is); other opens go through the
// kernel's page cache, whose reads and writes reach the same engine. There is no writeback
// cache, so the kernel sends every write at once and sizes and times stay the daemon's. A
// buffered write is answered once it is on its way to the device (Volume::write_behind); every
// reply carrying an inode's attributes, every read, and every request that changes its size
// or times, waits for that inode's writes first (Volume::wait_written).
//
// Threads: run() drives a multi-threaded receive loop (fs/fuse/fuse_receive_loop.h: WRITE payloads
// land block-aligned, so zero-copy writes need no copy) and, with the uring option, the
// threads of the FUSE-over-io_uring queues (fs/fuse/fuse_uring_transport.h); operations run
// concurrently on all of them (Volume and Filesystem are thread-safe). mount(), run() and the destructor are
// called from one thread; exit() from any thread or a signal handler's caller.
#pragma once

#include <memory>
#include <string>

#include "bounce/status.h"
#include "fs/fuse/fuse_receive_loop.h"
#include "fs/volume.h"

struct fuse_session;

namespace stablefs {

struct FuseMountOptions {
  std::string mountpoint;
  std::string fsname;                 // the mount source shown in /proc/mounts (the device)
  std::string subtype = "stablefs";   // type fuse.<subtype>; empty: plain "fuse"
  bool allow_other = false;
  bool read_only = false;
  bool debug = false;                 // libfuse prints every request to stderr
  unsigned max_threads = 32;          // receive-loop workers
  // Serve requests through FUSE over io_uring (fs/fuse/fuse_uring_transport.h); the kernel
  // must have it on (its fuse module's enable_uring), or mount() fails.
  bool uring = false;
  // Seconds the kernel may cache attributes, names and negative names. Every change reaches
  // the filesystem through this mount, and the kernel drops what a change invalidates (the
  // daemon tells it when it changes attributes on its own, as set-id bits on a write), so
  // the cache may live as long as on a local filesystem.
  double attr_timeout = 86400.0;
  // When reads move access times (the kernel leaves atime to the server). Relative: checked
  // at the first read through each open handle, and at the start of each directory listing.
  AtimePolicy atime = AtimePolicy::kRelative;
  bool dir_atime = true;              // false: nodiratime
  // Mount flags, as on a local filesystem: set-id bits and device files honoured, programs
  // may run. Only root may mount with suid or dev (the kernel refuses others).
  bool suid = true;
  bool dev = true;
  bool exec = true;
  // Where the transports count their buffers and requests (stablefs stats); null: nobody
  // reads them.
  std::shared_ptr<TransportStats> receive_stats = {};
};

// What a remount may change in a running mount (suid, dev and exec are the kernel's: mount
// flags it enforces itself).
struct RemountSettings {
  bool read_only = false;
  AtimePolicy atime = AtimePolicy::kRelative;
  bool dir_atime = true;
};

class FuseServer {
 public:
  // Creates the session and mounts it (the filesystem is live when this returns ok).
  // Installs handlers so that SIGTERM, SIGINT and SIGHUP end run().
  static Result<std::unique_ptr<FuseServer>> mount(Volume& volume, const FuseMountOptions& opts);
  // Unmounts (if still mounted) and destroys the session. Does not close the Volume.
  ~FuseServer();

  // Serves requests until the filesystem is unmounted or a signal/exit() ends the loop;
  // then unmounts. The Volume is untouched by the server after run() returns.
  Status run();
  // Asks run() to return (thread-safe).
  void exit();
  // Applies a remount's settings (Volume::set_read_only, then the atime policy), from any
  // thread while run() serves. The kernel's side of a remount (its read-only flag and mount
  // flags) is the caller's: mount(2) with MS_REMOUNT.
  Status remount(const RemountSettings& settings);

  struct State;  // lookup counts and options, shared with the operation functions

 private:
  FuseServer() = default;
  std::unique_ptr<State> state_;
  fuse_session* se_ = nullptr;
  bool mounted_ = false;
  bool signals_ = false;
};

}  // namespace stablefs
