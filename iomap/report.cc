#include "iomap/report.h"

#include <algorithm>

#include "iomap/iomap_iter.h"

namespace stablefs {

Status iomap_report(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len,
                    const std::function<bool(const ReportedExtent&)>& fn) {
  if (len == 0) return {};
  const uint64_t bs = ops.block_size();
  const uint64_t end = len > ~0ull - pos ? ~0ull : pos + len;
  const uint64_t first = pos / bs * bs;
  const uint64_t last = end > ~0ull - (bs - 1) ? end / bs * bs : (end + bs - 1) / bs * bs;
  IomapIter it(ops, ino, first, last - first, kIomapReport);
  while (it.next()) {
    const uint64_t a = std::max(pos, it.pos());
    const uint64_t b = std::min(end, it.pos() + it.length());
    if (!fn(ReportedExtent{it.map(), a, b - a})) break;  // advances by 0: the walk stops
    it.advance(it.length());
  }
  return it.status();
}

}  // namespace stablefs
