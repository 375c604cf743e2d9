// DeviceFaults: a metadata device that misbehaves on cue, for VolumeOptions::wrap_metadata_device
// (the synchronous path: superblocks, journal, tree and bitmap blocks). The test keeps the
// DeviceFaults; wrap() gives the Volume a BlockDevice that counts every read, write and flush
// through it and applies what was armed:
//   - fail_writes_from(n): the n-th write from now (0: the next) and every one after it fail
//     with EIO, the device untouched — a device that died;
//   - tear_write(n): the n-th write from now reaches the device only in its first half (whole
//     sectors), then fails with EIO — a short transfer; later writes go through;
//   - fail_flush(n): the n-th flush from now fails with EIO;
//   - fail_reads(n, count): count reads from the n-th on fail with EIO.
// Counting starts at arm time; disarm() stops every fault. Thread-safe.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "bounce/block_device.h"
#include "support/device_wrapper.h"

namespace stablefs::test {

class DeviceFaults {
 public:
  static constexpr uint64_t kNever = ~uint64_t{0};

  void fail_writes_from(uint64_t n) { arm([&] { fail_write_at_ = writes_ + n; }); }
  void tear_write(uint64_t n) { arm([&] { tear_write_at_ = writes_ + n; }); }
  void fail_flush(uint64_t n) { arm([&] { fail_flush_at_ = flushes_ + n; }); }
  void fail_reads(uint64_t n, uint64_t count) {
    arm([&] {
      fail_read_at_ = reads_ + n;
      fail_read_end_ = fail_read_at_ + count;
    });
  }
  void disarm() { arm([] {}); }

  // What went through (attempts, failed ones included) and how many faults were injected.
  uint64_t writes() const { return locked(writes_); }
  uint64_t flushes() const { return locked(flushes_); }
  uint64_t reads() const { return locked(reads_); }
  uint64_t injected() const { return locked(injected_); }
  // Writes and flushes that reached the device after the first injected fault.
  uint64_t device_writes_after_fault() const { return locked(after_fault_); }

  std::unique_ptr<BlockDevice> wrap(BlockDevice& real) { return std::make_unique<Faulty>(real, *this); }

 private:
  enum class Action { kPass, kFail, kTear };

  template <typename Fn>
  void arm(Fn&& set) {
    std::lock_guard<std::mutex> g(mu_);
    fail_write_at_ = tear_write_at_ = fail_flush_at_ = fail_read_at_ = fail_read_end_ = kNever;
    set();
  }
  uint64_t locked(const uint64_t& v) const {
    std::lock_guard<std::mutex> g(mu_);
    return v;
  }
  Action on_write() {
    std::lock_guard<std::mutex> g(mu_);
    const uint64_t i = writes_++;
    if (i >= fail_write_at_) return injected(Action::kFail);
    if (i == tear_write_at_) return injected(Action::kTear);
    if (injected_) ++after_fault_;
    return Action::kPass;
  }
  Action on_flush() {
    std::lock_guard<std::mutex> g(mu_);
    const uint64_t i = flushes_++;
    if (i == fail_flush_at_ || (fail_write_at_ != kNever && writes_ > fail_write_at_)) return injected(Action::kFail);
    if (injected_) ++after_fault_;
    return Action::kPass;
  }
  Action on_read() {
    std::lock_guard<std::mutex> g(mu_);
    const uint64_t i = reads_++;
    if (i >= fail_read_at_ && i < fail_read_end_) return injected(Action::kFail);
    return Action::kPass;
  }
  Action injected(Action a) {
    ++injected_;
    return a;
  }

  class Faulty : public DeviceWrapper {
   public:
    Faulty(BlockDevice& real, DeviceFaults& faults) : DeviceWrapper(real), faults_(faults) {}
    Status read(uint64_t offset, void* buf, size_t len) override {
      if (faults_.on_read() == Action::kFail) return eio("read", offset);
      return target().read(offset, buf, len);
    }
    Status write(uint64_t offset, const void* buf, size_t len) override {
      switch (faults_.on_write()) {
        case Action::kFail:
          return eio("write", offset);
        case Action::kTear: {
          const size_t sector = target().logical_block_size();
          const size_t part = len / 2 / sector * sector;
          if (part) (void)target().write(offset, buf, part);
          return eio("short write", offset);
        }
        case Action::kPass:
          break;
      }
      return target().write(offset, buf, len);
    }
    Status flush() override {
      if (faults_.on_flush() == Action::kFail) return Status::error(EIO, name() + ": injected flush failure");
      return target().flush();
    }

   private:
    Status eio(const char* what, uint64_t offset) {
      return Status::error(EIO, name() + ": injected " + what + " failure at byte " + std::to_string(offset));
    }
    DeviceFaults& faults_;
  };

  mutable std::mutex mu_;
  uint64_t writes_ = 0, flushes_ = 0, reads_ = 0, injected_ = 0, after_fault_ = 0;
  uint64_t fail_write_at_ = kNever, tear_write_at_ = kNever, fail_flush_at_ = kNever;
  uint64_t fail_read_at_ = kNever, fail_read_end_ = kNever;
};

}  // namespace stablefs::test
