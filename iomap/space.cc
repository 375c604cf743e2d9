#include "iomap/space.h"

#include <algorithm>

#include "iomap/iomap_iter.h"
#include "iomap/report.h"

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
  Status written;
  Status walked = iomap_report(ops, ino, pos, len, [&](const ReportedExtent& e) {
    if (e.map.type == IomapType::kMapped) written = write_zeros(e.pos, e.len);
    return written.ok();
  });
  return written.ok() ? walked : written;
}

}  // namespace stablefs
