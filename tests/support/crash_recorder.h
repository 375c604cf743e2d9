// CrashRecorder: one ordered log of everything that reaches a volume's device — metadata
// writes and flushes (through a BlockDevice wrapper) and data writes and flushes (through an
// IoTap) — from which a test rebuilds "the device after a power cut at point k".
//
// A write is logged when it has completed, with its bytes. A flush is logged when it has
// completed, as a barrier covering exactly the writes logged before it was *issued* (a write
// that completed while the flush was in flight is not covered). So at point k (the first k
// entries have happened) the writes covered by a barrier among them are durable, and every
// other write among them may or may not have reached the media, in any subset (a volatile
// write cache). Thread-safe.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "bounce/block_device.h"
#include "bounce/io_queue.h"
#include "bounce/io_tap.h"
#include "support/device_wrapper.h"

namespace stablefs::test {

class CrashRecorder : public IoTap {
 public:
  struct Entry {
    bool barrier = false;
    size_t covers = 0;  // barrier: entries [0, covers) that are writes are durable
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };

  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return log_.size();
  }
  std::vector<Entry> log() const {
    std::lock_guard<std::mutex> g(mu_);
    return log_;
  }

  // Forgets what was logged (between operations: nothing may be in flight).
  void clear() {
    std::lock_guard<std::mutex> g(mu_);
    log_.clear();
  }

  // The metadata device for VolumeOptions::wrap_metadata_device: logs through this recorder.
  std::unique_ptr<BlockDevice> wrap(BlockDevice& real) { return std::make_unique<Recording>(real, *this); }

  // The device image at point k (the first k entries), starting from base: durable writes
  // applied, and each other write applied with probability keep (drawn from rng; 1: all of
  // them, in order — the image a crash leaves when nothing in flight is lost).
  static std::vector<uint8_t> image_at(const std::vector<uint8_t>& base, const std::vector<Entry>& log, size_t k,
                                       double keep, std::mt19937_64& rng) {
    size_t durable = 0;
    for (size_t i = 0; i < k; ++i)
      if (log[i].barrier) durable = std::max(durable, log[i].covers);
    std::vector<uint8_t> img = base;
    std::bernoulli_distribution coin(keep);
    for (size_t i = 0; i < k; ++i) {
      const Entry& e = log[i];
      if (e.barrier || (i >= durable && !coin(rng))) continue;
      std::memcpy(img.data() + e.offset, e.data.data(), e.data.size());
    }
    return img;
  }

  // IoTap: data writes and flushes of the io_uring path.
  std::optional<int64_t> before_submit(const IoRequest& req) override {
    if (req.op == IoRequest::Op::kFlush) {
      std::lock_guard<std::mutex> g(mu_);
      issued_[&req] = log_.size();
    }
    return std::nullopt;
  }
  int64_t after_complete(const IoRequest& req, int64_t result) override {
    std::lock_guard<std::mutex> g(mu_);
    if (req.op == IoRequest::Op::kFlush) {
      const size_t covers = issued_[&req];
      issued_.erase(&req);
      if (result >= 0) log_.push_back({true, covers, 0, {}});
    } else if (req.op == IoRequest::Op::kWrite && result > 0) {
      Entry e{false, 0, req.offset, {}};
      for (const iovec& v : req.iov)
        e.data.insert(e.data.end(), static_cast<uint8_t*>(v.iov_base), static_cast<uint8_t*>(v.iov_base) + v.iov_len);
      e.data.resize(static_cast<size_t>(result));
      log_.push_back(std::move(e));
    }
    return result;
  }

 private:
  class Recording : public DeviceWrapper {
   public:
    Recording(BlockDevice& real, CrashRecorder& r) : DeviceWrapper(real), r_(r) {}
    Status write(uint64_t offset, const void* buf, size_t len) override {
      Status st = target().write(offset, buf, len);
      if (st.ok()) {
        std::lock_guard<std::mutex> g(r_.mu_);
        const auto* p = static_cast<const uint8_t*>(buf);
        r_.log_.push_back({false, 0, offset, std::vector<uint8_t>(p, p + len)});
      }
      return st;
    }
    Status flush() override {
      size_t covers;
      {
        std::lock_guard<std::mutex> g(r_.mu_);
        covers = r_.log_.size();
      }
      Status st = target().flush();
      if (st.ok()) {
        std::lock_guard<std::mutex> g(r_.mu_);
        r_.log_.push_back({true, covers, 0, {}});
      }
      return st;
    }
   private:
    CrashRecorder& r_;
  };

  mutable std::mutex mu_;
  std::vector<Entry> log_;
  std::unordered_map<const IoRequest*, size_t> issued_;
};

}  // namespace stablefs::test
