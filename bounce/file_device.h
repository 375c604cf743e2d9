// FileDevice: a BlockDevice over an image file or a block device node, opened O_DIRECT.
//
// A block device is opened O_EXCL when writable (the kernel refuses a second exclusive
// opener and a mounted device); an image file is held with an exclusive flock, so two
// stablefs processes never write one image. If the file's filesystem refuses O_DIRECT
// (tmpfs), the file is opened buffered and flush() is fdatasync. Thread-safe (pread/pwrite).
#pragma once

#include <memory>
#include <string>

#include "bounce/block_device.h"

namespace stablefs {

struct OpenOptions {
  bool read_only = false;
  bool exclusive = true;  // O_EXCL for block devices, flock for image files
};

class FileDevice : public BlockDevice {
 public:
  // Opens path. Errors name the path and the cause in one line.
  static Result<std::unique_ptr<FileDevice>> open(const std::string& path, OpenOptions opts);
  // Creates (or extends) an image file of exactly size_bytes. Refuses an existing
  // non-regular file.
  static Status create_image(const std::string& path, uint64_t size_bytes);

  ~FileDevice() override;
  FileDevice(const FileDevice&) = delete;
  FileDevice& operator=(const FileDevice&) = delete;

  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  uint64_t size_bytes() const override { return size_; }
  uint32_t logical_block_size() const override { return logical_block_size_; }
  uint32_t memory_alignment() const override { return memory_alignment_; }
  bool read_only() const override { return read_only_; }
  const std::string& name() const override { return path_; }

  bool is_block_device() const { return is_block_device_; }
  bool direct_io() const { return direct_io_; }
  int fd() const { return fd_; }

 private:
  FileDevice() = default;
  int fd_ = -1;
  std::string path_;
  uint64_t size_ = 0;
  uint32_t logical_block_size_ = 512;
  uint32_t memory_alignment_ = 511;
  bool read_only_ = false;
  bool is_block_device_ = false;
  bool direct_io_ = true;
};

}  // namespace stablefs
