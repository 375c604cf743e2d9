#include "iomap/iomap_iter.h"

#include <algorithm>
#include <new>

namespace stablefs {

IomapIter::~IomapIter() { end_current(); }

uint64_t IomapIter::length() const { return std::min(remaining_, map_.end() - pos_); }

void IomapIter::end_current() {
  if (!have_map_) return;
  have_map_ = false;
  Status st;
  try {
    st = ops_.end(ino_, map_, map_start_pos_, std::min(remaining_ + processed_, map_.end() - map_start_pos_),
                  processed_, op_);
  } catch (const std::bad_alloc&) {
    st = Status::error(ENOMEM, "out of memory");  // short: no allocation
  }
  if (status_.ok() && !st.ok()) status_ = st;
}

bool IomapIter::next() {
  if (have_map_) {
    if (processed_ == 0) stop_ = true;
    end_current();
  }
  if (stop_ || !status_.ok() || remaining_ == 0) return false;
  Result<Iomap> m = Iomap{};
  checksums_filled_ = 0;
  try {
    if (checksum_buf_.empty()) {
      m = ops_.begin(ino_, pos_, remaining_, op_);
    } else {
      size_t filled = 0;
      m = ops_.begin_read(ino_, pos_, remaining_, op_, checksum_buf_, &filled);
      checksums_filled_ = std::min(filled, checksum_buf_.size());
    }
  } catch (const std::bad_alloc&) {
    m = Status::error(ENOMEM, "out of memory");  // short: no allocation
  }
  if (!m.ok()) {
    status_ = m.status();
    return false;
  }
  if (m->length == 0 || m->offset > pos_ || m->end() <= pos_) {
    status_ = Status::error(EIO, "iomap: filesystem returned a mapping that does not cover byte " + std::to_string(pos_));
    return false;
  }
  map_ = *m;
  have_map_ = true;
  map_start_pos_ = pos_;
  processed_ = 0;
  return true;
}

void IomapIter::advance(uint64_t bytes) {
  if (!have_map_ || bytes > length()) {
    fail(Status::error(EIO, "iomap: actor advanced " + std::to_string(bytes) + " bytes at byte " + std::to_string(pos_) +
                                " past the mapping's " + std::to_string(have_map_ ? length() : 0)));
    return;
  }
  pos_ += bytes;
  remaining_ -= bytes;
  processed_ += bytes;
  total_ += bytes;
}

void IomapIter::clip(uint64_t end) {
  if (end < pos_) end = pos_;
  remaining_ = std::min(remaining_, end - pos_);
}

void IomapIter::fail(Status st) {
  if (status_.ok()) status_ = std::move(st);
  stop_ = true;
}

}  // namespace stablefs
