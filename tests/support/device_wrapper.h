// DeviceWrapper: a BlockDevice that forwards every call to another one, for test wrappers
// (recording, faults) to override only the calls they change. Owns nothing: the wrapped
// device must outlive it. As thread-safe as the device it wraps.
#pragma once

#include <string>

#include "bounce/block_device.h"

namespace stablefs::test {

class DeviceWrapper : public BlockDevice {
 public:
  explicit DeviceWrapper(BlockDevice& target) : target_(target) {}
  Status read(uint64_t offset, void* buf, size_t len) override { return target_.read(offset, buf, len); }
  Status write(uint64_t offset, const void* buf, size_t len) override { return target_.write(offset, buf, len); }
  Status flush() override { return target_.flush(); }
  uint64_t size_bytes() const override { return target_.size_bytes(); }
  uint32_t logical_block_size() const override { return target_.logical_block_size(); }
  uint32_t memory_alignment() const override { return target_.memory_alignment(); }
  bool read_only() const override { return target_.read_only(); }
  const std::string& name() const override { return target_.name(); }

 protected:
  BlockDevice& target() { return target_; }

 private:
  BlockDevice& target_;
};

}  // namespace stablefs::test
