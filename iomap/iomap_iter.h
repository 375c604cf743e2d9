// IomapIter: the one range walker every file operation runs on (kernel: iomap_iter()).
//
//   IomapIter it(ops, ino, pos, len, op);
//   while (it.next()) {            // ends the previous mapping, begins the next
//     ... process [it.pos(), it.pos() + it.length()) under it.map() ...
//     it.advance(processed);       // bytes done; 0 stops the walk
//   }
//   SFS_TRY(it.status());
//
// The actor advances by what it processed; next() calls IomapOps::end for the previous
// mapping with that count and IomapOps::begin for the rest. An actor that fails after part
// of a mapping is under way advances by that part before fail(), so end() never releases
// what in-flight I/O still uses. Advancing past the current mapping is a bug in the actor:
// the walk fails with EIO (nothing is clamped). A walk stops at the end of the
// range, when an actor advances by 0, or on the first error (status() then holds it).
// IomapOps calls that throw std::bad_alloc end the walk with ENOMEM: nothing escapes next().
// Not thread-safe; one walk per request. pos and len must be block aligned.
#pragma once

#include <optional>
#include <span>

#include "iomap/iomap.h"

namespace stablefs {

class IomapIter {
 public:
  IomapIter(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len, uint32_t op)
      : ops_(ops), ino_(ino), pos_(pos), remaining_(len), op_(op) {}
  ~IomapIter();
  IomapIter(const IomapIter&) = delete;
  IomapIter& operator=(const IomapIter&) = delete;

  // True while a mapping is ready for the actor.
  bool next();
  // Bytes of the current mapping processed (at most length(); more fails the walk).
  void advance(uint64_t bytes);
  // Records an actor's error: the walk ends after this mapping.
  void fail(Status st);
  // A read walk: from the next mapping on, begin_read() fills buf with the expected checksums
  // of each mapping's first blocks (at most buf.size()); checksums() gives them. buf is the
  // caller's and must outlive the walk.
  void want_checksums(std::span<std::optional<uint64_t>> buf) { checksum_buf_ = buf; }
  // The expected checksums begin_read() gave for the current mapping, from the block at which
  // it began (the request's position then); empty when none were asked for or given.
  std::span<const std::optional<uint64_t>> checksums() const { return checksum_buf_.first(checksums_filled_); }
  // Ends the walk at byte end (block aligned, at least pos()): the current mapping is cut
  // there and nothing past it is mapped. A read that learns the file's size from its first
  // mapping stops at end of file this way.
  void clip(uint64_t end);

  const Iomap& map() const { return map_; }
  uint64_t pos() const { return pos_; }
  // Bytes of the request inside the current mapping.
  uint64_t length() const;
  // Device address of pos() (mapped and unwritten mappings).
  uint64_t dev_addr() const { return map_.dev_addr + (pos_ - map_.offset); }
  const Status& status() const { return status_; }
  uint64_t processed_total() const { return total_; }

 private:
  void end_current();

  IomapOps& ops_;
  uint64_t ino_;
  uint64_t pos_;
  uint64_t remaining_;
  uint32_t op_;
  Iomap map_;
  bool have_map_ = false;
  uint64_t map_start_pos_ = 0;  // pos when the current mapping began
  uint64_t processed_ = 0;      // in the current mapping
  std::span<std::optional<uint64_t>> checksum_buf_;  // want_checksums()'s
  size_t checksums_filled_ = 0;                      // for the current mapping
  uint64_t total_ = 0;
  bool stop_ = false;
  Status status_;
};

}  // namespace stablefs
