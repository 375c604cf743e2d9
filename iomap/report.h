// The extent report as an actor over the range walker (kernel: fs/iomap/fiemap.c): what backs
// each part of a file, for `stablefs map`, SEEK_DATA/SEEK_HOLE, zeroing and copy_file_range.
//
// The walk uses kIomapReport (nothing is allocated, nothing changes). REQUIRES: the caller
// orders it against changes of ino's mapping it cares about (Volume holds the file's range
// lock); thread-safe otherwise, as IomapOps is.
#pragma once

#include <cstdint>
#include <functional>

#include "iomap/iomap.h"

namespace stablefs {

// One reported piece: the mapping as the filesystem gave it, and the part [pos, pos+len) of
// the walked range inside it.
struct ReportedExtent {
  const Iomap& map;
  uint64_t pos;
  uint64_t len;
  // Device byte address of pos (mapped and unwritten pieces).
  uint64_t dev_addr() const { return map.dev_addr + (pos - map.offset); }
};

// Calls fn for every mapping of [pos, pos+len) in file order, holes included, until fn returns
// false. Any byte alignment: the first and last pieces are clipped to the range. The walk's
// error (a failing lookup) is returned; fn cannot fail (it stops the walk and keeps its own).
Status iomap_report(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len,
                    const std::function<bool(const ReportedExtent&)>& fn);

}  // namespace stablefs
