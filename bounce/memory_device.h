// MemoryDevice: a BlockDevice held in RAM, for tests and the crash-point harness.
//
// Every write and flush is appended to a log when recording is on, so a test can rebuild
// the device as it would be after a crash following any write. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bounce/block_device.h"
#include "bounce/mutex.h"

namespace stablefs {

class MemoryDevice : public BlockDevice {
 public:
  struct LoggedWrite {
    bool is_flush = false;
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };

  explicit MemoryDevice(uint64_t size_bytes, std::string name = "memory");
  // Takes an existing image (e.g. a snapshot after replaying a prefix of a write log).
  MemoryDevice(std::vector<uint8_t> image, std::string name);

  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  uint64_t size_bytes() const override { return image_.size(); }
  uint32_t logical_block_size() const override { return 512; }
  uint32_t memory_alignment() const override { return 0; }
  bool read_only() const override { return false; }
  const std::string& name() const override { return name_; }

  void set_recording(bool on);
  // The log since recording was switched on. Not thread-safe against concurrent writes.
  const std::vector<LoggedWrite>& log() const { return log_; }
  // A copy of the current contents.
  std::vector<uint8_t> snapshot() const;
  // Direct access for tests that corrupt bytes on purpose.
  std::vector<uint8_t>& raw() { return image_; }

 private:
  mutable Mutex mu_;
  std::vector<uint8_t> image_;  // raw() hands it out unguarded: tests only, while idle
  std::string name_;
  bool recording_ = false;
  std::vector<LoggedWrite> log_;
};

}  // namespace stablefs
