// FileMap: a regular file's extents as `stablefs map` shows them — file offset, length, device
// block and kind of every extent, and the holes between them — read through the extent-report
// actor (Volume::map_extents), so the report relates the file to its device.
//
// Thread-safe as Volume is; the map is a snapshot taken under the file's range lock (shared).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "fs/volume.h"

namespace stablefs {

enum class MapKind : uint8_t { kData, kUnwritten, kHole };

struct MapExtent {
  uint64_t offset = 0;        // file byte offset (block aligned)
  uint64_t length = 0;        // bytes (block multiple)
  MapKind kind = MapKind::kHole;
  uint64_t device_block = 0;  // first device block (not for holes)
  bool speculative = false;   // preallocated ahead of an appending stream, freed at close unless written
};

struct FileMap {
  uint64_t ino = 0;
  uint64_t size = 0;
  uint32_t block_size = 0;
  // In file order, contiguous from 0 to the end of the last extent or of the file, whichever is
  // later (the hole past both is not listed). Extents as stored: adjacent ones are not merged.
  std::vector<MapExtent> extents;
};

// The map of regular file ino. EISDIR / EINVAL for other kinds, ENOENT when it does not exist.
Result<FileMap> file_map(Volume& v, uint64_t ino);

// The inode of an absolute path inside v's filesystem ("/dir/file"; symlinks are not
// followed, "." is skipped, ".." is refused with EINVAL).
Result<uint64_t> lookup_path(Filesystem& fs, std::string_view path);

const char* map_kind_name(MapKind k);

}  // namespace stablefs
