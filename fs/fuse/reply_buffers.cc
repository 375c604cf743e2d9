#include "fs/fuse/reply_buffers.h"

namespace stablefs {

size_t ReplyBuffers::class_for(size_t size) {
  for (size_t c = 0; c < kClassCount; ++c)
    if (size <= kClasses[c].bytes) return c;
  return kClassCount;
}

std::shared_ptr<ReplyBuffers::Lease> ReplyBuffers::get(size_t size) {
  const size_t c = class_for(size);
  AlignedBuffer buf;
  if (c < kClassCount) {
    MutexLock lock(mu_);
    if (!free_[c].empty()) {
      buf = std::move(free_[c].back());
      free_[c].pop_back();
    }
  }
  if (buf.size() == 0) {
    buf = AlignedBuffer(c < kClassCount ? kClasses[c].bytes : size, 4096);
    count(static_cast<int64_t>(buf.size()));
  }
  return std::make_shared<Lease>(*this, std::move(buf), size);
}

void ReplyBuffers::give_back(AlignedBuffer buf) {
  const size_t bytes = buf.size();
  const size_t c = class_for(bytes);
  if (c < kClassCount && bytes == kClasses[c].bytes) {
    MutexLock lock(mu_);
    if (free_[c].size() < kClasses[c].keep) {
      free_[c].push_back(std::move(buf));
      return;
    }
  }
  count(-static_cast<int64_t>(bytes));  // a one-off, or beyond what is kept: freed
}

}  // namespace stablefs
