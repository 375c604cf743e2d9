// The extent-mapping interface between a filesystem and the I/O engines (kernel: fs/iomap).
//
// A filesystem answers "what backs file range [pos, pos+len)?" with an Iomap, one mapping at
// a time; the engines walk a request across mappings with IomapIter and build device I/O for
// each. Writes complete through IomapWriteCompletion::complete_writes ("ioend"), where the
// filesystem turns unwritten extents into written ones, remaps out-of-place writes and
// records the new data checksums, all in one transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "bounce/status.h"

namespace stablefs {

// Past the last block of the largest file (DirectIo::kMaxFileBytes) and block aligned for any
// block size: where a walk over "everything from an offset on" ends.
inline constexpr uint64_t kIomapEndOfAnyFile = 1ull << 63;

enum class IomapType : uint8_t {
  kHole,       // nothing allocated: reads return zeros
  kMapped,     // written data at dev_addr
  kUnwritten,  // allocated, never written: reads return zeros, writes go to dev_addr
  kInline,     // data kept in metadata (not used for regular file data yet)
};

enum IomapFlags : uint32_t {
  kIomapNew = 1u << 0,     // blocks allocated by this begin() call
  kIomapShared = 1u << 1,  // out-of-place: dev_addr is new space; the file still maps the old
                           // data until complete_writes() remaps it
  kIomapSpeculative = 1u << 2,  // reports: space the filesystem allocated ahead of an appending
                                // stream, freed when the file is closed unless written
  kIomapRelocated = 1u << 3,  // with kIomapShared, for kIomapRelocate: the data moves unchanged,
                              // so complete_writes() leaves the file's times alone
};

enum IomapOp : uint32_t {
  kIomapRead = 0,
  kIomapWrite = 1u << 0,
  kIomapDirect = 1u << 1,
  kIomapReport = 1u << 2,  // SEEK_DATA/SEEK_HOLE, extent maps: never allocate
  kIomapPrealloc = 1u << 3,  // with kIomapWrite (fallocate): holes become unwritten extents
                             // (kIomapNew), nothing speculative; existing extents are given as
                             // they are, and speculative ones become the file's own
  kIomapRelocate = 1u << 4,  // with kIomapWrite (the defragmenter): the written data of the
                             // range moves to new contiguous space, one mapping (kIomapShared |
                             // kIomapRelocated) over as many written extents as the range holds;
                             // a hole or unwritten extent ends it, and one at pos is EINVAL.
                             // The caller writes the range's current bytes, read under the
                             // same exclusive range lock.
};

struct Iomap {
  IomapType type = IomapType::kHole;
  uint32_t flags = 0;
  uint64_t offset = 0;    // file byte offset where the mapping starts (block aligned)
  uint64_t length = 0;    // bytes (block multiple)
  uint64_t dev_addr = 0;  // device byte address of offset (kMapped, kUnwritten, kShared)
  // The file's size in bytes when begin() made this mapping: a read learns where the file
  // ends from its first mapping, under the same lock acquisition.
  uint64_t file_size = 0;

  uint64_t end() const { return offset + length; }
  bool needs_zero_on_read() const { return type == IomapType::kHole || type == IomapType::kUnwritten; }
};

// Implemented by the filesystem, per inode. Calls may block on metadata I/O; they are
// thread-safe (the filesystem serialises them under its metadata lock).
class IomapOps {
 public:
  virtual ~IomapOps() = default;
  // The mapping of ino containing pos, clipped to [pos, pos+len) where the filesystem likes.
  // op kIomapWrite allocates space for holes (kUnwritten + kIomapNew) and, when data is never
  // overwritten in place, new space for mapped ranges (kIomapShared). pos is block aligned.
  virtual Result<Iomap> begin(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) = 0;
  // The engine is done with map: `done` bytes from pos were processed. For writes the
  // filesystem releases whatever of an out-of-place allocation will never be used.
  virtual Status end(uint64_t ino, const Iomap& map, uint64_t pos, uint64_t len, uint64_t done, uint32_t op) = 0;
  // Expected data checksums of device blocks [dev_addr, +out.size() blocks); empty entries
  // are not verified. Only for kMapped ranges.
  virtual Status read_checksums(uint64_t dev_addr, std::span<std::optional<uint64_t>> out) = 0;
  // begin() for a read (op without kIomapWrite) that also gives, when the mapping is kMapped,
  // the expected checksums of its first min(out.size(), its blocks) blocks in out, and how many
  // in *filled (0 otherwise): what read_checksums would say, with one trip to the filesystem
  // (a filesystem may answer both under one lock acquisition). The default asks begin() only.
  virtual Result<Iomap> begin_read(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op,
                                   std::span<std::optional<uint64_t>> out, size_t* filled) {
    (void)out;
    *filled = 0;
    return begin(ino, pos, len, op);
  }
  // The file's size in bytes now.
  virtual Result<uint64_t> file_size(uint64_t ino) = 0;
  virtual uint32_t block_size() const = 0;
};

// Space changes the range actors ask of the filesystem (punch, truncate, trims: iomap/space.h),
// one bounded atomic step per call. Thread-safe as IomapOps is.
class IomapSpaceOps {
 public:
  virtual ~IomapSpaceOps() = default;
  // Frees whatever backs [pos, pos+len) of ino, leaving a hole, in one atomic step, and returns
  // the bytes handled from pos: at least one block, at most len (a large range takes several
  // calls). change_times: mtime and ctime become now when something was freed (a punch);
  // otherwise they stay (trimming speculative space). REQUIRES: pos and len block aligned; no
  // I/O of the range in flight (the caller holds the file's range lock).
  virtual Result<uint64_t> unmap(uint64_t ino, uint64_t pos, uint64_t len, bool change_times) = 0;
};

// One mapped piece [pos, pos+len) of a write request under map. reached_device: the data
// is on the device and checksums holds every block's checksum; otherwise the piece failed
// or was never submitted and the filesystem releases any space it set aside for it.
struct WrittenRange {
  Iomap map;
  uint64_t pos = 0;
  uint64_t len = 0;
  bool reached_device = false;
  std::vector<uint64_t> checksums;
};

// Write completion ("ioend"), implemented by the filesystem.
class IomapWriteCompletion {
 public:
  virtual ~IomapWriteCompletion() = default;
  // Applies every range that reached the device, in one transaction: unwritten → written,
  // out-of-place remaps (old blocks freed), checksums, file size up to end_pos when larger.
  // Ranges that did not reach the device release their out-of-place space. status is the
  // request's first error, for the filesystem's log.
  virtual Status complete_writes(uint64_t ino, std::span<const WrittenRange> ranges, uint64_t end_pos,
                                 Status status) = 0;
};

}  // namespace stablefs
