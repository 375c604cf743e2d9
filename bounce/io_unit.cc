#include "bounce/io_unit.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "bounce/checksum.h"

namespace stablefs {
namespace {

// Walks a list of memory segments one checksum block at a time. A block normally lies
// within one segment; one that straddles two (a pool chunk smaller than the block) is hashed
// piecewise with the same result.
class BlockWalker {
 public:
  BlockWalker(const iovec* segs, size_t count, size_t block) : segs_(segs), count_(count), block_(block) {}

  // Hashes the next block; when src is given, first copies the block's bytes from src into the
  // segments (the fused bounce copy: the block is hashed while it is still hot in cache).
  uint64_t next(const uint8_t* src) {
    const iovec& s = segs_[seg_];
    if (s.iov_len - off_ >= block_) {
      uint8_t* p = static_cast<uint8_t*>(s.iov_base) + off_;
      if (src) std::memcpy(p, src, block_);
      uint64_t h = xxh3_64(p, block_);
      step(block_);
      return h;
    }
    Xxh3Stream stream;
    size_t left = block_;
    while (left > 0) {
      const iovec& t = segs_[seg_];
      size_t n = std::min(left, t.iov_len - off_);
      uint8_t* p = static_cast<uint8_t*>(t.iov_base) + off_;
      if (src) {
        std::memcpy(p, src, n);
        src += n;
      }
      stream.update(p, n);
      left -= n;
      step(n);
    }
    return stream.digest();
  }

  void skip() {
    size_t left = block_;
    while (left > 0) {
      size_t n = std::min(left, segs_[seg_].iov_len - off_);
      left -= n;
      step(n);
    }
  }

 private:
  void step(size_t n) {
    off_ += n;
    if (off_ == segs_[seg_].iov_len && seg_ + 1 < count_) {
      ++seg_;
      off_ = 0;
    }
  }

  const iovec* segs_;
  size_t count_;
  size_t block_;
  size_t seg_ = 0;
  size_t off_ = 0;
};

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

bool needs_bounce(const void* p, size_t length, uint64_t dev_offset, const IoUnitGeometry& g) {
  return (reinterpret_cast<uintptr_t>(p) & g.memory_alignment) != 0 || length % 512 != 0 || dev_offset % 512 != 0;
}

}  // namespace

IoUnit::~IoUnit() = default;

void IoUnit::invalidate(const std::string& why) {
  std::string msg = write_ ? "write" : "read";
  msg += " unit of ";
  msg += std::to_string(length_);
  msg += " bytes at device byte ";
  msg += std::to_string(dev_offset_);
  msg += ": ";
  msg += why;
  invalid_ = Status::error(EINVAL, msg);
}

namespace {

// Common argument checks; returns "" when the unit is well formed.
std::string check_shape(uint64_t dev_offset, size_t length, const IoUnitGeometry& g) {
  uint32_t b = g.checksum_block;
  if (b == 0 || b % 512 != 0) {
    std::string why = "checksum block of ";
    why += std::to_string(b);
    why += " bytes is not a multiple of 512";
    return why;
  }
  if (length == 0) return "empty unit";
  if (length % b != 0 || dev_offset % b != 0) {
    std::string why = "not aligned to the ";
    why += std::to_string(b);
    why += "-byte checksum block";
    return why;
  }
  return {};
}

}  // namespace

std::unique_ptr<IoUnit> IoUnit::start_build(bool write, uint64_t dev_offset, uint8_t* user, size_t length,
                                            const IoUnitGeometry& geometry) {
  std::unique_ptr<IoUnit> u(new IoUnit());
  u->write_ = write;
  u->dev_offset_ = dev_offset;
  u->length_ = length;
  u->geometry_ = geometry;
  u->user_ = user;
  if (std::string why = check_shape(dev_offset, length, geometry); !why.empty()) u->invalidate(why);
  return u;
}

bool IoUnit::take_memory(bool bounce, BouncePool& pool) {
  bounced_ = bounce || needs_bounce(user_, length_, dev_offset_, geometry_);
  if (bounced_ && length_ > pool.capacity()) {
    invalidate("larger than the bounce pool");
    return false;
  }
  std::vector<iovec>& iov = request_.iov;
  if (bounced_) {
    chunks_ = pool.get_total(length_);
    iov.reserve(chunks_.size());
    size_t left = length_;
    for (const BounceBuffer& c : chunks_) {
      size_t n = std::min(left, c.size());
      iov.push_back({c.data(), n});
      left -= n;
    }
  } else {
    iov.push_back({user_, length_});
  }
  return true;
}

void IoUnit::finish_build() {
  request_.op = write_ ? IoRequest::Op::kWrite : IoRequest::Op::kRead;
  request_.offset = dev_offset_;
  request_.on_complete = [this](IoRequest&, int64_t result) { complete(result); };
}

std::unique_ptr<IoUnit> IoUnit::build_write(uint64_t dev_offset, std::span<const uint8_t> src, bool bounce,
                                            BouncePool& pool, const IoUnitGeometry& geometry) {
  // The memory is only read; the pointer is non-const because a read unit shares the field.
  std::unique_ptr<IoUnit> u = start_build(true, dev_offset, const_cast<uint8_t*>(src.data()), src.size(), geometry);
  if (!u->invalid_.ok() || !u->take_memory(bounce, pool)) return u;
  const size_t block = geometry.checksum_block;
  const size_t nblocks = src.size() / block;
  u->checksums_.resize(nblocks);
  if (u->bounced_) {
    // Copy and hash block by block: what is hashed is the copy, which nobody else can touch.
    BlockWalker walk(u->request_.iov.data(), u->request_.iov.size(), block);
    for (size_t i = 0; i < nblocks; ++i) u->checksums_[i] = walk.next(src.data() + i * block);
  } else {
    for (size_t i = 0; i < nblocks; ++i) u->checksums_[i] = xxh3_64(src.data() + i * block, block);
  }
  u->finish_build();
  return u;
}

std::unique_ptr<IoUnit> IoUnit::build_read(uint64_t dev_offset, std::span<uint8_t> dst, bool bounce, BouncePool& pool,
                                           const IoUnitGeometry& geometry,
                                           std::vector<std::optional<uint64_t>> expected) {
  std::unique_ptr<IoUnit> u = start_build(false, dev_offset, dst.data(), dst.size(), geometry);
  if (!u->invalid_.ok()) return u;
  if (!expected.empty() && expected.size() != dst.size() / geometry.checksum_block) {
    std::string why = std::to_string(expected.size());
    why += " expected checksums for ";
    why += std::to_string(dst.size() / geometry.checksum_block);
    why += " blocks";
    u->invalidate(why);
    return u;
  }
  u->expected_ = std::move(expected);
  if (!u->take_memory(bounce, pool)) return u;
  u->finish_build();
  return u;
}

void IoUnit::submit(IoQueue& queue, IoStats& stats, Done done) {
  stats_ = &stats;
  queue_ = &queue;
  done_ = std::move(done);
  if (!invalid_.ok()) {
    Done d = std::move(done_);
    if (d) d(*this, invalid_);
    return;
  }
  if (bounced_) {
    stats.bounced_ios.fetch_add(1, std::memory_order_relaxed);
    stats.bounced_bytes.fetch_add(length_, std::memory_order_relaxed);
  } else {
    stats.zero_copy_ios.fetch_add(1, std::memory_order_relaxed);
    stats.zero_copy_bytes.fetch_add(length_, std::memory_order_relaxed);
  }
  queue.submit(&request_);
}

std::vector<BadBlock> IoUnit::mismatches() const {
  std::vector<BadBlock> bad;
  if (expected_.empty()) return bad;
  BlockWalker walk(request_.iov.data(), request_.iov.size(), geometry_.checksum_block);
  for (size_t i = 0; i < expected_.size(); ++i) {
    if (!expected_[i]) {
      walk.skip();
      continue;
    }
    const uint64_t h = walk.next(nullptr);
    if (h != *expected_[i]) bad.push_back({i, *expected_[i], h});
  }
  return bad;
}

bool IoUnit::start_recheck(std::vector<BadBlock> first) {
  if (!queue_) return false;
  try {
    recheck_ = AlignedBuffer(length_, 4096);
  } catch (const std::bad_alloc&) {
    return false;
  }
  first_mismatches_ = std::move(first);
  rechecking_ = true;
  chunks_.clear();  // a bounced unit's pool memory is not needed any more
  request_.iov.assign(1, iovec{recheck_.data(), length_});
  queue_->submit(&request_);
  return true;
}

Status IoUnit::verdict(std::vector<BadBlock> bad) {
  if (rechecking_) {
    for (const BadBlock& b : first_mismatches_) {
      const bool again = std::any_of(bad.begin(), bad.end(), [&](const BadBlock& x) { return x.index == b.index; });
      if (!again) ++transient_blocks_;
    }
    stats_->checksum_transients.fetch_add(transient_blocks_, std::memory_order_relaxed);
  }
  if (bad.empty()) return {};
  bad_blocks_ = std::move(bad);
  const BadBlock& first = bad_blocks_.front();
  stats_->checksum_failures.fetch_add(bad_blocks_.size(), std::memory_order_relaxed);
  std::string msg = "checksum mismatch in ";
  msg += std::to_string(bad_blocks_.size());
  msg += " of ";
  msg += std::to_string(expected_.size());
  msg += " blocks read at device byte ";
  msg += std::to_string(dev_offset_);
  msg += "; first at device byte ";
  msg += std::to_string(dev_offset_ + first.index * geometry_.checksum_block);
  msg += " (expected ";
  msg += hex64(first.expected);
  msg += ", found ";
  msg += hex64(first.found);
  msg += ')';
  return Status::error(EIO, msg);
}

void IoUnit::complete(int64_t result) {
  Status status;
  if (result < 0 || static_cast<uint64_t>(result) != length_) {
    stats_->device_errors.fetch_add(1, std::memory_order_relaxed);
    int code = result < 0 ? static_cast<int>(-result) : EIO;
    std::string msg = write_ ? "write" : "read";
    msg += " of ";
    msg += std::to_string(length_);
    msg += " bytes at device byte ";
    msg += std::to_string(dev_offset_);
    msg += " failed: ";
    if (result >= 0) {
      msg += "short transfer of ";
      msg += std::to_string(result);
      msg += " bytes";
    } else {
      msg += std::strerror(code);
    }
    status = Status::error(code, msg);
  } else if (!write_) {
    std::vector<BadBlock> bad = mismatches();
    if (!bad.empty() && !rechecking_ && start_recheck(bad)) return;  // the re-read completes the unit
    status = verdict(std::move(bad));
    if (status.ok() && (bounced_ || rechecking_)) {
      // Unbounce (or take the re-read's bytes): only verified data reaches the caller; on any
      // error nothing is copied.
      uint8_t* out = user_;
      for (const iovec& v : request_.iov) {
        std::memcpy(out, v.iov_base, v.iov_len);
        out += v.iov_len;
      }
    }
  }
  // The pool gets its memory back before done() runs, so done() may build the next unit.
  chunks_.clear();
  Done d = std::move(done_);
  if (d) d(*this, std::move(status));  // may destroy *this; nothing below touches it
}

}  // namespace stablefs
