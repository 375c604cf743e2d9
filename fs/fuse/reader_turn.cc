#include "fs/fuse/reader_turn.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>

namespace stablefs {

bool ReaderTurn::take(const std::function<bool()>& stop) {
  MutexLock lock(mu_);
  while (held_) {
    if (stop()) return false;
    free_.wait_for(mu_, std::chrono::milliseconds(50));
  }
  if (stop()) return false;
  held_ = true;
  return true;
}

void ReaderTurn::pass() {
  {
    MutexLock lock(mu_);
    held_ = false;
  }
  free_.notify_one();
}

bool serve_keeping_turn(const TurnRequest& req, bool inline_io) {
  switch (req.opcode) {
    case FUSE_LOOKUP:
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_GETATTR:
    case FUSE_READLINK:
    case FUSE_SYMLINK:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_LINK:
    case FUSE_CREATE:
    case FUSE_STATFS:
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
    case FUSE_OPENDIR:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
    case FUSE_RELEASEDIR:
    case FUSE_ACCESS:
    case FUSE_INTERRUPT:
      return true;
    case FUSE_READ:
    case FUSE_WRITE:
      return !inline_io || req.io_bytes < ReaderTurn::kLargeInlineIo;
    case FUSE_OPEN:
      return !(req.open_flags & O_TRUNC);
    default:
      return false;
  }
}

std::chrono::microseconds spin_after(uint32_t opcode, bool inline_io) {
  if (!inline_io && (opcode == FUSE_READ || opcode == FUSE_WRITE)) return std::chrono::microseconds(0);
  return ReaderTurn::kSpin;
}

bool poll_for_request(int fd, std::chrono::microseconds spin) {
  const auto end = std::chrono::steady_clock::now() + spin;
  pollfd p{fd, POLLIN, 0};
  do {
    p.revents = 0;
    // A zero timeout joins no wait queue: the kernel has no one to wake for this poll.
    if (::poll(&p, 1, 0) > 0) return (p.revents & POLLIN) != 0;
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

void wait_for_request(int fd) {
  pollfd p{fd, POLLIN, 0};
  (void)::poll(&p, 1, -1);  // EINTR and errors: the caller's read() tells
}

}  // namespace stablefs
