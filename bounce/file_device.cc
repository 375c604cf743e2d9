#include "bounce/file_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

namespace stablefs {
namespace {

std::string sys_error(const std::string& path, const std::string& what, int err) {
  return path + ": " + what + ": " + std::strerror(err);
}

// Reads /sys/dev/block/MAJ:MIN/queue/<attr> as an integer; returns fallback if absent.
long read_queue_attr(dev_t rdev, const char* attr, long fallback) {
  std::string p = "/sys/dev/block/" + std::to_string(major(rdev)) + ":" +
                  std::to_string(minor(rdev)) + "/queue/" + attr;
  std::ifstream in(p);
  long v = fallback;
  if (in >> v) return v;
  return fallback;
}

}  // namespace

Result<std::unique_ptr<FileDevice>> FileDevice::open(const std::string& path, OpenOptions opts) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::error(errno, sys_error(path, "cannot open", errno));
  bool is_blk = S_ISBLK(st.st_mode);
  if (!is_blk && !S_ISREG(st.st_mode))
    return Status::error(EINVAL, path + ": not a block device or regular file");

  int flags = (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (is_blk && opts.exclusive && !opts.read_only) flags |= O_EXCL;
  bool direct = true;
  int fd = ::open(path.c_str(), flags | O_DIRECT);
  if (fd < 0 && errno == EINVAL) {  // filesystem without O_DIRECT (tmpfs)
    direct = false;
    fd = ::open(path.c_str(), flags);
  }
  if (fd < 0) {
    int err = errno;
    if (err == EBUSY) return Status::error(EBUSY, path + ": device is busy (mounted or in use by another program)");
    return Status::error(err, sys_error(path, "cannot open", err));
  }
  std::unique_ptr<FileDevice> dev(new FileDevice());
  dev->fd_ = fd;
  dev->path_ = path;
  dev->read_only_ = opts.read_only;
  dev->is_block_device_ = is_blk;
  dev->direct_io_ = direct;

  if (!is_blk && opts.exclusive) {
    if (::flock(fd, (opts.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
      int err = errno;
      if (err == EWOULDBLOCK)
        return Status::error(EBUSY, path + ": image is in use by another stablefs process");
      return Status::error(err, sys_error(path, "cannot lock", err));
    }
  }

  if (is_blk) {
    uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0)
      return Status::error(errno, sys_error(path, "cannot get device size", errno));
    int lbs = 512;
    if (::ioctl(fd, BLKSSZGET, &lbs) != 0) lbs = 512;
    dev->size_ = bytes;
    dev->logical_block_size_ = static_cast<uint32_t>(lbs);
    dev->memory_alignment_ = static_cast<uint32_t>(read_queue_attr(st.st_rdev, "dma_alignment", 511));
  } else {
    dev->size_ = static_cast<uint64_t>(st.st_size);
    dev->logical_block_size_ = 512;
    // The underlying device's alignment applies to O_DIRECT on files too; 4096 is always safe
    // and is what our buffers use, so advertise the stricter of the two.
    dev->memory_alignment_ = 511;
  }
  return dev;
}

Status FileDevice::create_image(const std::string& path, uint64_t size_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    return Status::error(EINVAL, path + ": exists and is not a regular file");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error(errno, sys_error(path, "cannot create image", errno));
  if (::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    int err = errno;
    ::close(fd);
    return Status::error(err, sys_error(path, "cannot size image", err));
  }
  ::close(fd);
  return {};
}

FileDevice::~FileDevice() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileDevice::read(uint64_t offset, void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(errno, sys_error(path_, "read at byte " + std::to_string(offset + done) + " failed", errno));
    }
    if (n == 0)
      return Status::error(EIO, path_ + ": read at byte " + std::to_string(offset + done) + " is beyond the end of the device");
    done += static_cast<size_t>(n);
  }
  return {};
}

Status FileDevice::write(uint64_t offset, const void* buf, size_t len) {
  if (read_only_) return Status::error(EROFS, path_ + ": opened read-only");
  const auto* p = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(errno, sys_error(path_, "write at byte " + std::to_string(offset + done) + " failed", errno));
    }
    if (n == 0) return Status::error(ENOSPC, path_ + ": write beyond the end of the device");
    done += static_cast<size_t>(n);
  }
  return {};
}

Status FileDevice::flush() {
  if (read_only_) return {};
  if (::fdatasync(fd_) != 0) return Status::error(errno, sys_error(path_, "flush failed", errno));
  return {};
}

}  // namespace stablefs
