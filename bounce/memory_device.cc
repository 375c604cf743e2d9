#include "bounce/memory_device.h"

#include <cstring>

namespace stablefs {

MemoryDevice::MemoryDevice(uint64_t size_bytes, std::string name)
    : image_(size_bytes, 0), name_(std::move(name)) {}

MemoryDevice::MemoryDevice(std::vector<uint8_t> image, std::string name)
    : image_(std::move(image)), name_(std::move(name)) {}

Status MemoryDevice::read(uint64_t offset, void* buf, size_t len) {
  MutexLock lock(mu_);
  if (offset > image_.size() || len > image_.size() - offset)
    return Status::error(EIO, name_ + ": read beyond end of device");
  std::memcpy(buf, image_.data() + offset, len);
  return {};
}

Status MemoryDevice::write(uint64_t offset, const void* buf, size_t len) {
  MutexLock lock(mu_);
  if (offset > image_.size() || len > image_.size() - offset)
    return Status::error(ENOSPC, name_ + ": write beyond end of device");
  std::memcpy(image_.data() + offset, buf, len);
  if (recording_) {
    const auto* p = static_cast<const uint8_t*>(buf);
    log_.push_back({false, offset, std::vector<uint8_t>(p, p + len)});
  }
  return {};
}

Status MemoryDevice::flush() {
  MutexLock lock(mu_);
  if (recording_) log_.push_back({true, 0, {}});
  return {};
}

void MemoryDevice::set_recording(bool on) {
  MutexLock lock(mu_);
  recording_ = on;
  if (on) log_.clear();
}

std::vector<uint8_t> MemoryDevice::snapshot() const {
  MutexLock lock(mu_);
  return image_;
}

}  // namespace stablefs
