#include "iomap/seek.h"

#include <algorithm>

#include "iomap/iomap_iter.h"

namespace stablefs {

Result<uint64_t> iomap_seek(IomapOps& ops, uint64_t ino, uint64_t offset, bool want_data) {
  SFS_ASSIGN(const uint64_t size, ops.file_size(ino));
  if (offset >= size) return Status::error(ENXIO, "offset is past the end of the file");
  const uint64_t bs = ops.block_size();
  const uint64_t start = offset / bs * bs;
  const uint64_t end = (size + bs - 1) / bs * bs;
  IomapIter it(ops, ino, start, end - start, kIomapReport);
  while (it.next()) {
    const bool is_data = it.map().type == IomapType::kMapped;
    if (is_data == want_data) return std::max(offset, it.pos());  // ends the mapping on return
    it.advance(it.length());
  }
  SFS_TRY(it.status());
  if (want_data) return Status::error(ENXIO, "no data past the offset");
  return size;  // the implicit hole at end of file
}

}  // namespace stablefs
