// copy_file_range: an actor over the extent report of the source (iomap/report.h), copying
// written data through a bounce-sized buffer and turning holes into holes (see copy_range.h).
#include "fs/copy_range.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>

#include "bounce/aligned_buffer.h"
#include "iomap/report.h"

namespace stablefs {
namespace {

constexpr uint64_t kChunk = 1u << 20;  // one engine request, like the largest FUSE write
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(INT64_MAX);

Status check_regular(const Inode& inode) {
  if (S_ISDIR(inode.rec.mode)) return Status::error(EISDIR, "copy_file_range: a directory");
  if (!S_ISREG(inode.rec.mode)) return Status::error(EINVAL, "copy_file_range: not a regular file");
  return {};
}

// Copies the data [pos, pos + n) of the source to dst_pos; returns the bytes copied, which is
// short only when the source turned out shorter (a concurrent truncate).
Result<uint64_t> copy_data(Volume& v, AlignedBuffer& buf, uint64_t in, uint64_t pos, uint64_t out, uint64_t dst_pos,
                           uint64_t n) {
  uint64_t done = 0;
  while (done < n) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, buf.size()));
    SFS_ASSIGN(size_t got, v.read(in, pos + done, {buf.data(), want}));
    if (got == 0) break;
    SFS_ASSIGN(size_t put, v.write(out, dst_pos + done, {buf.data(), got}));
    done += put;
    if (put < got || got < want) break;
  }
  return done;
}

// Makes [dst_pos, dst_pos + n) of the destination read as zeros: the part inside its current
// size is punched; past the end nothing is written (the final size update leaves a hole).
Status copy_hole(Volume& v, uint64_t out, uint64_t dst_pos, uint64_t n) {
  SFS_ASSIGN(Inode dst, v.fs().getattr(out));
  const uint64_t end = std::min(dst_pos + n, dst.rec.size);
  if (end <= dst_pos) return {};
  return v.fallocate(out, kFallocPunchHole | kFallocKeepSize, dst_pos, end - dst_pos);
}

}  // namespace

Result<uint64_t> copy_file_range(Volume& v, uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out,
                                 uint64_t len, unsigned flags) {
  if (flags != 0) return Status::error(EINVAL, "copy_file_range: flags must be 0");
  SFS_ASSIGN(Inode src, v.fs().getattr(ino_in));
  SFS_TRY(check_regular(src));
  SFS_ASSIGN(Inode dst, v.fs().getattr(ino_out));
  SFS_TRY(check_regular(dst));
  if (off_in > kMaxOffset || off_out > kMaxOffset || len > kMaxOffset - off_in || len > kMaxOffset - off_out)
    return Status::error(EOVERFLOW, "copy_file_range: range too large");
  // Shorten the copy to the source's end of file.
  const uint64_t count = off_in >= src.rec.size ? 0 : std::min(len, src.rec.size - off_in);
  if (ino_in == ino_out && count > 0 && off_out + count > off_in && off_out < off_in + count)
    return Status::error(EINVAL, "copy_file_range: overlapping ranges in one file");
  if (count == 0) return uint64_t{0};

  AlignedBuffer buf(static_cast<size_t>(std::min(count, kChunk)));
  uint64_t copied = 0;  // bytes from off_in the destination now holds
  Status failure;
  // The walk holds no lock of its own: each piece is read and written through the Volume (which
  // takes the files' range locks), so a concurrent change of the source is seen as with read(2).
  Status walked = iomap_report(v.mapper(), ino_in, off_in, count, [&](const ReportedExtent& e) {
    const uint64_t dst = off_out + (e.pos - off_in);
    if (e.map.type != IomapType::kMapped) {  // a hole or unwritten: reads as zeros
      failure = copy_hole(v, ino_out, dst, e.len);
      if (!failure.ok()) return false;
      copied = e.pos + e.len - off_in;
      return true;
    }
    auto n = copy_data(v, buf, ino_in, e.pos, ino_out, dst, e.len);
    if (!n.ok()) {
      failure = n.status();
      return false;
    }
    copied = e.pos + *n - off_in;
    return *n == e.len;  // short: the source shrank under us
  });
  if (failure.ok()) failure = walked;
  if (copied > 0) {
    // A trailing hole was not written: the destination still has to reach off_out + copied.
    // Only ever grown: a write that extended the destination meanwhile keeps its bytes.
    SFS_TRY(v.extend_size(ino_out, off_out + copied));
    return copied;
  }
  if (!failure.ok()) return failure;
  return copied;
}

}  // namespace stablefs
