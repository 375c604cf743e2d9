#include "fs/fuse/reply_buffers.h"

namespace stablefs {

std::shared_ptr<ReplyBuffers::Lease> ReplyBuffers::get(size_t size) {
  const size_t capacity = size <= kSmall ? kSmall : size <= kLarge ? kLarge : size;
  AlignedBuffer buf;
  {
    MutexLock lock(mu_);
    std::vector<AlignedBuffer>* list = capacity == kSmall ? &small_ : capacity == kLarge ? &large_ : nullptr;
    if (list && !list->empty()) {
      buf = std::move(list->back());
      list->pop_back();
    }
  }
  if (buf.size() == 0) buf = AlignedBuffer(capacity, 4096);
  return std::make_shared<Lease>(*this, std::move(buf), size);
}

void ReplyBuffers::give_back(AlignedBuffer buf) {
  MutexLock lock(mu_);
  std::vector<AlignedBuffer>* list = buf.size() == kSmall ? &small_ : buf.size() == kLarge ? &large_ : nullptr;
  if (list && list->size() < kKeepPerClass) list->push_back(std::move(buf));
}

}  // namespace stablefs
