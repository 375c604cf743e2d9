// Scrubber: the online scrub of a mounted volume — every written data block of every regular
// file read from the device and checked against its checksum, beside user I/O, file by file in
// inode order, at most rate_limit bytes a second, with pause, resume and cancel.
//
// No false reports: each piece (at most kChunkBytes of one file) is checked under that file's
// range lock held shared and a hold on the inode (Volume::scrub_range), so a block rewritten,
// truncated or freed meanwhile is never the one read. A mismatch is read again once before it
// counts (bounce/io_unit.h). Findings are kept for status() (at most kMaxFindings; the counts go
// on) and recorded in the volume's DataErrorLog, which `stablefs stats` lists.
//
// Position and counts are saved in the filesystem (Filesystem::save_scrub_state) every
// kSaveSeconds and whenever the scrub pauses, ends or is stopped, so a scrub interrupted by an
// unmount (or a crash: from the last save) is continued by resume() after the next mount. The
// findings themselves are not saved: a resumed scrub lists those it finds from then on.
//
// Thread-safe: start/pause/resume/cancel/status from any thread (the control server); the scrub
// runs on a thread of its own, which the destructor stops and joins (saving the position). The
// Volume must outlive the Scrubber: destroy it before closing the Volume. On a read-only mount
// nothing is saved.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/mutex.h"
#include "fs/volume.h"

namespace stablefs {

enum class ScrubState {
  kNever,        // no scrub ever ran on this filesystem
  kRunning,
  kPaused,       // resume() continues it
  kInterrupted,  // was running when the filesystem was last unmounted: resume() continues it
  kFinished,
  kCanceled,
};
const char* scrub_state_name(ScrubState s);

struct ScrubFileFinding {
  uint64_t ino = 0;
  ScrubFinding finding;
};

struct ScrubStatus {
  ScrubState state = ScrubState::kNever;
  uint64_t next_ino = 0;           // where it goes on
  uint64_t next_offset = 0;
  uint64_t bytes_checked = 0;
  uint64_t bytes_estimate = 0;     // data in use when it started or resumed (for percent and ETA)
  uint64_t rate_limit = 0;         // bytes per second; 0: none
  double elapsed_seconds = 0;      // time spent scrubbing (pauses and unmounted time excluded)
  uint64_t data_errors = 0;        // blocks that failed their checksum twice
  uint64_t unreadable = 0;         // blocks the device could not read
  uint64_t transients = 0;         // blocks that mismatched once and matched when read again
  uint64_t metadata_errors = 0;    // files whose mapping could not be read (skipped)
  uint64_t started_ns = 0;         // wall clock
  uint64_t ended_ns = 0;           // finished or canceled
  std::vector<ScrubFileFinding> findings;  // of this run since the last start or resume
  std::vector<std::string> metadata_problems;  // the first few, one line each
  // Findings were found that are not in `findings`: before a resume after an unmount, or past
  // kMaxFindings.
  bool findings_incomplete = false;
  double rate() const { return elapsed_seconds > 0 ? bytes_checked / elapsed_seconds : 0; }
};

class Scrubber {
 public:
  static constexpr size_t kMaxFindings = 10000;
  static constexpr size_t kMaxMetadataProblems = 100;
  static constexpr uint64_t kChunkBytes = 4u << 20;   // one range-locked piece, at most
  static constexpr size_t kReadBytes = 1u << 20;      // one device read, at most
  static constexpr int kSaveSeconds = 5;

  // Loads the saved state (a scrub saved while running shows as kInterrupted).
  explicit Scrubber(Volume& v);
  ~Scrubber();
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  // Starts a new scrub from the first file. EBUSY while one is running or paused.
  Status start(uint64_t rate_limit) EXCLUDES(mu_);
  // Pauses a running scrub. EINVAL when none is running.
  Status pause() EXCLUDES(mu_);
  // Continues a paused or interrupted scrub where it stopped; rate_limit, when given, replaces
  // the one it had. EINVAL when there is none.
  Status resume(std::optional<uint64_t> rate_limit) EXCLUDES(mu_);
  // Ends a running, paused or interrupted scrub for good. EINVAL when there is none.
  Status cancel() EXCLUDES(mu_);
  ScrubStatus status() const EXCLUDES(mu_);

 private:
  using Clock = std::chrono::steady_clock;
  // Waits while the thread of a run that has ended (canceled, finished) is still going.
  void wait_for_ending_thread() REQUIRES(mu_);
  // Starts the thread from status_'s position. REQUIRES: no thread running.
  void launch() REQUIRES(mu_);
  void run() EXCLUDES(mu_);
  // Checks one piece of file from offset and counts what it found.
  void scrub_piece(const Inode& file, uint64_t offset, AlignedBuffer& buffer, IoStats& io) EXCLUDES(mu_);
  // Writes status_ to the filesystem (not on a read-only one). Called without mu_ held.
  void save() EXCLUDES(mu_);
  ScrubStateRecord record() const REQUIRES(mu_);
  // Moves running time into elapsed_base_. REQUIRES: state was running.
  void stop_clock() REQUIRES(mu_);
  double elapsed() const REQUIRES(mu_);
  // The rate limit counts from now (a start, a resume).
  void restart_pace() REQUIRES(mu_);
  uint64_t estimate_bytes();

  Volume& v_;
  mutable Mutex mu_;
  CondVar cv_;  // state changes, stop_
  ScrubStatus status_ GUARDED_BY(mu_);
  double elapsed_base_ GUARDED_BY(mu_) = 0;
  Clock::time_point running_since_ GUARDED_BY(mu_);
  Clock::time_point pace_start_ GUARDED_BY(mu_);
  uint64_t paced_bytes_ GUARDED_BY(mu_) = 0;  // bytes let through since pace_start_
  bool stop_ GUARDED_BY(mu_) = false;
  bool thread_live_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // started and joined under the rules above (start/resume/destructor)
};

}  // namespace stablefs
