#include "fs/file_map.h"

#include <sys/stat.h>

namespace stablefs {

const char* map_kind_name(MapKind k) {
  switch (k) {
    case MapKind::kData: return "data";
    case MapKind::kUnwritten: return "unwritten";
    case MapKind::kHole: return "hole";
  }
  return "?";
}

Result<FileMap> file_map(Volume& v, uint64_t ino) {
  SFS_ASSIGN(Inode inode, v.fs().getattr(ino));
  if (S_ISDIR(inode.rec.mode)) return Status::error(EISDIR, "a directory has no extents");
  if (!S_ISREG(inode.rec.mode)) return Status::error(EINVAL, "not a regular file");
  FileMap m;
  m.ino = ino;
  m.block_size = v.fs().statfs().block_size;
  Status st = v.map_extents(ino, 0, kIomapEndOfAnyFile, [&](const ReportedExtent& e) {
    MapExtent x;
    x.offset = e.pos;
    x.length = e.len;
    switch (e.map.type) {
      case IomapType::kMapped: x.kind = MapKind::kData; break;
      case IomapType::kUnwritten: x.kind = MapKind::kUnwritten; break;
      default: x.kind = MapKind::kHole; break;
    }
    if (x.kind != MapKind::kHole) x.device_block = e.dev_addr() / m.block_size;
    x.speculative = e.map.flags & kIomapSpeculative;
    m.extents.push_back(x);
    return true;
  });
  SFS_TRY(st);
  // The size as of the walk (the range lock is released: a later change is a later map).
  SFS_ASSIGN(Inode now, v.fs().getattr(ino));
  m.size = now.rec.size;
  // Drop the hole past the last extent, keeping any part of it inside the file.
  if (!m.extents.empty() && m.extents.back().kind == MapKind::kHole) {
    MapExtent& tail = m.extents.back();
    const uint64_t file_end = (m.size + m.block_size - 1) / m.block_size * m.block_size;
    if (file_end <= tail.offset) m.extents.pop_back();
    else tail.length = std::min(tail.length, file_end - tail.offset);
  }
  return m;
}

Result<uint64_t> lookup_path(Filesystem& fs, std::string_view path) {
  if (path.empty() || path[0] != '/') return Status::error(EINVAL, "'" + std::string(path) + "' is not an absolute path");
  uint64_t ino = kRootIno;
  size_t at = 0;
  while (at < path.size()) {
    const size_t slash = path.find('/', at);
    const std::string_view name = path.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at);
    at = slash == std::string_view::npos ? path.size() : slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") return Status::error(EINVAL, "'..' in a path inside the image");
    SFS_ASSIGN(Inode child, fs.lookup(ino, name));
    ino = child.ino;
  }
  return ino;
}

}  // namespace stablefs
