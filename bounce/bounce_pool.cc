#include "bounce/bounce_pool.h"

#include <bit>
#include <utility>

namespace stablefs {

// ---- BounceBuffer ----

BounceBuffer::~BounceBuffer() { reset(); }

BounceBuffer::BounceBuffer(BounceBuffer&& o) noexcept
    : pool_(std::exchange(o.pool_, nullptr)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

BounceBuffer& BounceBuffer::operator=(BounceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    pool_ = std::exchange(o.pool_, nullptr);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void BounceBuffer::reset() {
  if (pool_ && data_) pool_->put(data_, size_);
  pool_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

// ---- BouncePool ----

namespace {

size_t pow2_at_least(size_t v, size_t floor) {
  if (v < floor) v = floor;
  return std::bit_ceil(v);
}

}  // namespace

BouncePool::BouncePool(size_t max_bytes, size_t min_chunk, size_t max_chunk)
    : min_chunk_(pow2_at_least(min_chunk, 4096)), max_chunk_(pow2_at_least(max_chunk, min_chunk_)) {
  size_t capacity = max_bytes / max_chunk_ * max_chunk_;
  if (capacity < max_chunk_) capacity = max_chunk_;
  arena_ = AlignedBuffer(capacity, 4096);
  min_shift_ = static_cast<unsigned>(std::countr_zero(min_chunk_));
  max_order_ = static_cast<unsigned>(std::countr_zero(max_chunk_ / min_chunk_));
  size_t units = capacity >> min_shift_;
  free_.resize(max_order_ + 1);
  free_order_.assign(units, -1);
  free_pos_.assign(units, 0);
  size_t per_max = size_t{1} << max_order_;
  free_[max_order_].reserve(units / per_max);
  // Push in reverse so the first chunks handed out are at the start of the arena.
  for (size_t u = units; u >= per_max; u -= per_max) push_free_locked(static_cast<uint32_t>(u - per_max), max_order_);
}

BouncePool::~BouncePool() = default;

void BouncePool::push_free_locked(uint32_t unit, unsigned order) {
  free_order_[unit] = static_cast<int8_t>(order);
  free_pos_[unit] = static_cast<uint32_t>(free_[order].size());
  free_[order].push_back(unit);
}

void BouncePool::remove_free_locked(uint32_t unit, unsigned order) {
  std::vector<uint32_t>& list = free_[order];
  uint32_t pos = free_pos_[unit];
  uint32_t last = list.back();
  list[pos] = last;
  free_pos_[last] = pos;
  list.pop_back();
  free_order_[unit] = -1;
}

uint32_t BouncePool::pop_free_locked(unsigned order) {
  uint32_t unit = free_[order].back();
  free_[order].pop_back();
  free_order_[unit] = -1;
  return unit;
}

BounceBuffer BouncePool::take_locked(size_t want) {
  if (want > max_chunk_) want = max_chunk_;
  size_t units = (want + min_chunk_ - 1) >> min_shift_;
  if (units == 0) units = 1;
  size_t max_units = size_t{1} << max_order_;
  if (units > max_units) units = max_units;
  // The largest power of two not larger than the request.
  unsigned target = static_cast<unsigned>(std::bit_width(units) - 1);

  unsigned order = target;
  bool found = false;
  // An exact fit, or else the smallest larger chunk, split down to the target size.
  for (unsigned o = target; o <= max_order_; ++o) {
    if (!free_[o].empty()) {
      order = o;
      found = true;
      break;
    }
  }
  uint32_t unit = 0;
  if (found) {
    unit = pop_free_locked(order);
    while (order > target) {
      --order;
      push_free_locked(unit + (uint32_t{1} << order), order);  // the upper half stays free
    }
  } else {
    // Nothing that large is left: fall back to the largest smaller chunk.
    for (unsigned o = target; o-- > 0;) {
      if (!free_[o].empty()) {
        order = o;
        found = true;
        break;
      }
    }
    if (!found) return {};
    unit = pop_free_locked(order);
  }
  size_t size = min_chunk_ << order;
  in_use_ += size;
  return BounceBuffer(this, arena_.data() + (size_t{unit} << min_shift_), size);
}

void BouncePool::put(uint8_t* data, size_t size) {
  MutexLock lock(mu_);
  auto unit = static_cast<uint32_t>(static_cast<size_t>(data - arena_.data()) >> min_shift_);
  auto order = static_cast<unsigned>(std::countr_zero(size >> min_shift_));
  in_use_ -= size;
  // Merge with the buddy while it is free and whole.
  while (order < max_order_) {
    uint32_t buddy = unit ^ (uint32_t{1} << order);
    if (free_order_[buddy] != static_cast<int8_t>(order)) break;
    remove_free_locked(buddy, order);
    unit &= ~(uint32_t{1} << order);
    ++order;
  }
  push_free_locked(unit, order);
  returned_.notify_all();
}

BounceBuffer BouncePool::get(size_t want) {
  MutexLock lock(mu_);
  for (bool waited = false;; waited = true) {
    BounceBuffer b = take_locked(want);
    if (!b.empty()) return b;
    if (!waited) ++waits_;
    returned_.wait(mu_);
  }
}

BounceBuffer BouncePool::try_get(size_t want) {
  MutexLock lock(mu_);
  return take_locked(want);
}

std::vector<BounceBuffer> BouncePool::get_total(size_t total) {
  std::vector<BounceBuffer> chunks;
  if (total == 0 || total > capacity()) return chunks;
  size_t need = (total + min_chunk_ - 1) / min_chunk_ * min_chunk_;  // <= capacity, a min_chunk multiple
  // Reserved before locking: a push_back that threw under mu_ would return its chunk through
  // put() and deadlock.
  chunks.reserve(need >> min_shift_);
  MutexLock lock(mu_);
  auto enough = [&]() REQUIRES(mu_) { return capacity() - in_use_ >= need; };
  if (serving_ticket_ != next_ticket_ || !enough()) {
    // Queue behind earlier waiters.
    uint64_t ticket = next_ticket_++;
    ++waits_;
    returned_.wait(mu_, [&]() REQUIRES(mu_) { return serving_ticket_ == ticket && enough(); });
    ++serving_ticket_;
    returned_.notify_all();  // the next in line may be satisfiable too
  }
  // Free bytes >= need, all in min_chunk multiples: each greedy step takes a chunk no larger
  // than what is still needed, so the set is always completed.
  size_t remaining = need;
  while (remaining > 0) {
    BounceBuffer b = take_locked(remaining);
    remaining -= b.size();
    chunks.push_back(std::move(b));
  }
  return chunks;
}

iovec BouncePool::arena() const {
  return iovec{const_cast<uint8_t*>(arena_.data()), arena_.size()};
}

size_t BouncePool::in_use_bytes() const {
  MutexLock lock(mu_);
  return in_use_;
}

uint64_t BouncePool::waits() const {
  MutexLock lock(mu_);
  return waits_;
}

}  // namespace stablefs
