#include "iomap/seek.h"

#include <optional>

#include "iomap/report.h"

namespace stablefs {

Result<uint64_t> iomap_seek(IomapOps& ops, uint64_t ino, uint64_t offset, bool want_data) {
  SFS_ASSIGN(const uint64_t size, ops.file_size(ino));
  if (offset >= size) return Status::error(ENXIO, "offset is past the end of the file");
  std::optional<uint64_t> found;
  SFS_TRY(iomap_report(ops, ino, offset, size - offset, [&](const ReportedExtent& e) {
    if ((e.map.type == IomapType::kMapped) == want_data) found = e.pos;  // the piece starts at or after offset
    return !found;
  }));
  if (found) return *found;
  if (want_data) return Status::error(ENXIO, "no data past the offset");
  return size;  // the implicit hole at end of file
}

}  // namespace stablefs
