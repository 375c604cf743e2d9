// DataErrorLog: the blocks of file data found damaged while mounted — by reads (DirectIo) and
// by a scrub — remembered so `stablefs stats` and `stablefs scrub status` can list the files,
// and logged to stderr once per block, at most kLogBurst lines a second (kernel:
// printk_ratelimited; the next line logged says how many were suppressed).
//
// Bounded: at most kMaxFiles files and kMaxBlocks blocks are remembered (the counts go on past
// the bound). Thread-safe; record() may be called from the I/O completion thread (it does not
// block on I/O).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bounce/mutex.h"

namespace stablefs {

struct DamagedFile {
  uint64_t ino = 0;
  uint64_t blocks = 0;            // distinct damaged blocks remembered
  uint64_t first_offset = 0;      // lowest damaged file offset remembered
};

class DataErrorLog {
 public:
  static constexpr size_t kMaxFiles = 1024;
  static constexpr size_t kMaxBlocks = 65536;
  static constexpr int kLogBurst = 10;

  // A block of ino at file_offset (device block device_block) failed: message says how. Logs
  // message the first time this block is recorded (rate-limited). Returns whether it was new.
  bool record(uint64_t ino, uint64_t file_offset, uint64_t device_block, const std::string& message)
      EXCLUDES(mu_);
  // The damaged files remembered, by inode.
  std::vector<DamagedFile> files() const EXCLUDES(mu_);
  // Blocks recorded (distinct, past the bound too).
  uint64_t blocks_recorded() const EXCLUDES(mu_);

 private:
  void log(const std::string& message) REQUIRES(mu_);

  mutable Mutex mu_;
  std::set<std::pair<uint64_t, uint64_t>> blocks_ GUARDED_BY(mu_);  // (ino, device block)
  std::map<uint64_t, DamagedFile> files_ GUARDED_BY(mu_);
  uint64_t recorded_ GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point window_ GUARDED_BY(mu_);
  int logged_in_window_ GUARDED_BY(mu_) = 0;
  uint64_t suppressed_ GUARDED_BY(mu_) = 0;
};

}  // namespace stablefs
