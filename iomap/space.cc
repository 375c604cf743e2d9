#include "iomap/space.h"

#include <algorithm>

#include "iomap/iomap_iter.h"

namespace stablefs {

Status iomap_unmap_range(IomapOps& ops, IomapSpaceOps& space, uint64_t ino, uint64_t pos, uint64_t len,
                         UnmapWhat what, bool change_times) {
  IomapIter it(ops, ino, pos, len, kIomapReport);
  while (it.next()) {
    const Iomap& map = it.map();
    const bool wanted = map.type != IomapType::kHole &&
                        (what == UnmapWhat::kAll || (map.flags & kIomapSpeculative));
    if (!wanted) {
      it.advance(it.length());
      continue;
    }
    // One bounded step; the walk maps what is left of this extent again.
    Result<uint64_t> freed = space.unmap(ino, it.pos(), it.length(), change_times);
    if (!freed.ok()) {
      it.fail(freed.status());
      break;
    }
    it.advance(*freed);
  }
  return it.status();
}

Status iomap_preallocate(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len) {
  IomapIter it(ops, ino, pos, len, kIomapWrite | kIomapPrealloc);
  while (it.next()) it.advance(it.length());  // begin() did the allocating
  return it.status();
}

Status iomap_zero_range(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len, const WriteZeros& write_zeros) {
  if (len == 0) return {};
  const uint64_t bs = ops.block_size();
  const uint64_t end = pos + len;
  const uint64_t first = pos / bs * bs;
  const uint64_t last = (end + bs - 1) / bs * bs;
  IomapIter it(ops, ino, first, last - first, kIomapReport);
  while (it.next()) {
    if (it.map().type == IomapType::kMapped) {
      const uint64_t a = std::max(pos, it.pos());
      const uint64_t b = std::min(end, it.pos() + it.length());
      if (Status st = write_zeros(a, b - a); !st.ok()) {
        it.fail(st);
        break;
      }
    }
    it.advance(it.length());
  }
  return it.status();
}

}  // namespace stablefs
