// verify: checks an unmounted stablefs device or image end to end — every metadata block
// (through the fsck -n checks: checksums, headers, tree layout, items) and every written data
// block against its XXH3-64 checksum — and says exactly what is damaged: for data, the file
// (every path of it), the offset, the device block and both checksums.
//
// Data is read in device order, in large requests with several in flight through io_uring,
// window by window: a window's checksums are loaded first, so those metadata reads never wait
// behind queued data reads (interleaving them halved the rate). Free space and unwritten
// extents are not read. With data checksums off (mkfs
// --no-data-csum) the data blocks are still read, so unreadable ones are found.
// The device is opened read-only and exclusively: a mounted device (or one a daemon holds)
// is refused. Runs on the calling thread (the queue's completion thread only hands back
// finished reads); not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stablefs {

// One damaged or unreadable data block.
struct DataBlockError {
  uint64_t ino = 0;
  uint64_t file_offset = 0;  // bytes
  uint64_t length = 0;       // bytes (one block)
  uint64_t device_block = 0;
  bool unreadable = false;            // the device failed the read (then no checksums)
  std::optional<uint64_t> expected;   // the recorded checksum
  std::optional<uint64_t> found;      // the checksum of what the device holds
  std::string device_error;           // unreadable: the device's error
};

// One metadata problem; block is set when the problem is one block's damage.
struct MetadataError {
  std::optional<uint64_t> block;
  std::string holds;  // what the block holds ("filesystem tree node", ...), with block
  std::string problem;
};

struct VerifyProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // data bytes to read
  double seconds = 0;
};

struct VerifyOptions {
  unsigned queue_depth = 8;             // reads in flight (each holds request_bytes of memory)
  uint64_t request_bytes = 1ull << 20;  // largest read
  // Called on the calling thread at most every ~200 ms while data is read, and once at the end.
  std::function<void(const VerifyProgress&)> progress;
};

inline constexpr int kVerifyClean = 0;
inline constexpr int kVerifyDamage = 1;
inline constexpr int kVerifyOperationalError = 8;

struct VerifyReport {
  std::string target;
  std::string fatal;  // operational error (cannot open, not stablefs, mounted): exit 8
  double seconds = 0;
  uint64_t data_bytes_checked = 0;  // read and, with data checksums on, compared
  uint64_t data_blocks_checked = 0;
  uint64_t metadata_blocks_checked = 0;  // B+tree nodes walked
  bool data_checksums = true;
  std::vector<DataBlockError> data_errors;  // device order; unreadable blocks included
  std::vector<MetadataError> metadata_errors;
  // Every path of each inode named in data_errors ("" entries never; an inode with no name,
  // e.g. unlinked while open, maps to an empty list).
  std::map<uint64_t, std::vector<std::string>> paths;
  uint64_t unreadable_blocks() const;
  uint64_t checksum_errors() const;  // data blocks whose checksum did not match
  int exit_code() const;
};

VerifyReport run_verify(const std::string& target, const VerifyOptions& opts);

}  // namespace stablefs
