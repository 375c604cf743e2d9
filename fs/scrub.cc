#include "fs/scrub.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "fs/meta/metadata_store.h"

namespace stablefs {
namespace {

std::string hex64(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016" PRIx64, v);
  return b;
}

ScrubState state_of(const ScrubStateRecord& rec) {
  switch (rec.state) {
    case ScrubStateRecord::kRunning:
      return ScrubState::kInterrupted;  // saved while running: the filesystem went away under it
    case ScrubStateRecord::kPaused:
      return ScrubState::kPaused;
    case ScrubStateRecord::kFinished:
      return ScrubState::kFinished;
    default:
      return ScrubState::kCanceled;
  }
}

// The piece of a file to check next: at most kChunkBytes, and with a rate limit small enough
// that the lock is held briefly and the pace is even (a quarter second's worth).
uint64_t piece_bytes(uint64_t rate_limit, uint64_t block) {
  uint64_t n = Scrubber::kChunkBytes;
  if (rate_limit) n = std::clamp<uint64_t>(rate_limit / 4, 64u << 10, Scrubber::kChunkBytes);
  return std::max<uint64_t>(block, n / block * block);
}

}  // namespace

const char* scrub_state_name(ScrubState s) {
  switch (s) {
    case ScrubState::kNever:
      return "never run";
    case ScrubState::kRunning:
      return "running";
    case ScrubState::kPaused:
      return "paused";
    case ScrubState::kInterrupted:
      return "interrupted";
    case ScrubState::kFinished:
      return "finished";
    case ScrubState::kCanceled:
      return "canceled";
  }
  return "unknown";
}

Scrubber::Scrubber(Volume& v) : v_(v) {
  Result<std::optional<ScrubStateRecord>> saved = v_.fs().load_scrub_state();
  const uint64_t estimate = estimate_bytes();
  MutexLock lock(mu_);
  status_.bytes_estimate = estimate;
  if (!saved.ok()) {
    status_.metadata_problems.push_back("saved scrub state: " + saved.status().message());
    return;
  }
  if (!*saved) return;
  const ScrubStateRecord& r = **saved;
  status_.state = state_of(r);
  status_.next_ino = r.next_ino;
  status_.next_offset = r.next_offset;
  status_.bytes_checked = r.bytes_checked;
  status_.data_errors = r.data_errors;
  status_.unreadable = r.unreadable;
  status_.transients = r.transients;
  status_.rate_limit = r.rate_limit;
  status_.started_ns = r.started_ns;
  status_.ended_ns = r.ended_ns;
  elapsed_base_ = static_cast<double>(r.elapsed_ns) / 1e9;
  status_.elapsed_seconds = elapsed_base_;
  status_.findings_incomplete = r.data_errors + r.unreadable > 0;
}

Scrubber::~Scrubber() {
  {
    MutexLock lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t Scrubber::estimate_bytes() {
  const FsStats s = v_.fs().statfs();
  return s.used_blocks * s.block_size;
}

double Scrubber::elapsed() const {
  double e = elapsed_base_;
  if (status_.state == ScrubState::kRunning)
    e += std::chrono::duration<double>(Clock::now() - running_since_).count();
  return e;
}

void Scrubber::stop_clock() {
  elapsed_base_ = elapsed();
  status_.elapsed_seconds = elapsed_base_;
}

void Scrubber::restart_pace() {
  pace_start_ = Clock::now();
  paced_bytes_ = 0;
}

void Scrubber::wait_for_ending_thread() {
  // A run that was just canceled (or has just finished) ends at once: its thread saves the
  // state and goes. Wait for that rather than refuse a new start.
  cv_.wait(mu_, [&]() REQUIRES(mu_) {
    return !thread_live_ || status_.state == ScrubState::kRunning || status_.state == ScrubState::kPaused;
  });
}

void Scrubber::launch() {
  // The last run's thread, if any, has ended: it cleared thread_live_ as its last step under
  // mu_, which it has released since, so joining it here cannot wait for mu_.
  if (thread_.joinable()) thread_.join();
  running_since_ = Clock::now();
  restart_pace();
  status_.state = ScrubState::kRunning;
  thread_live_ = true;
  thread_ = std::thread([this] { run(); });
}

Status Scrubber::start(uint64_t rate_limit) {
  const uint64_t estimate = estimate_bytes();
  MutexLock lock(mu_);
  wait_for_ending_thread();
  if (thread_live_) return Status::error(EBUSY, "a scrub is already running or paused (cancel it first)");
  status_ = ScrubStatus{};
  status_.next_ino = kRootIno;
  status_.rate_limit = rate_limit;
  status_.bytes_estimate = estimate;
  status_.started_ns = now_ns();
  elapsed_base_ = 0;
  launch();
  return {};
}

Status Scrubber::pause() {
  MutexLock lock(mu_);
  if (status_.state != ScrubState::kRunning) return Status::error(EINVAL, "no scrub is running");
  stop_clock();
  status_.state = ScrubState::kPaused;
  cv_.notify_all();
  return {};
}

Status Scrubber::resume(std::optional<uint64_t> rate_limit) {
  const uint64_t estimate = estimate_bytes();
  MutexLock lock(mu_);
  wait_for_ending_thread();
  if (status_.state != ScrubState::kPaused && status_.state != ScrubState::kInterrupted)
    return Status::error(EINVAL, "no scrub is paused or interrupted");
  if (rate_limit) status_.rate_limit = *rate_limit;
  if (status_.state == ScrubState::kInterrupted || !thread_live_) {
    status_.bytes_estimate = estimate;
    status_.findings.clear();
    launch();
    return {};
  }
  running_since_ = Clock::now();
  restart_pace();
  status_.state = ScrubState::kRunning;
  cv_.notify_all();
  return {};
}

Status Scrubber::cancel() {
  bool save_now = false;
  {
    MutexLock lock(mu_);
    const ScrubState s = status_.state;
    if (s != ScrubState::kRunning && s != ScrubState::kPaused && s != ScrubState::kInterrupted)
      return Status::error(EINVAL, "no scrub is running, paused or interrupted");
    if (s == ScrubState::kRunning) stop_clock();
    status_.state = ScrubState::kCanceled;
    status_.ended_ns = now_ns();
    save_now = !thread_live_;  // otherwise the thread saves as it ends
    cv_.notify_all();
  }
  if (save_now) save();
  return {};
}

ScrubStatus Scrubber::status() const {
  MutexLock lock(mu_);
  ScrubStatus s = status_;
  s.elapsed_seconds = elapsed();
  return s;
}

ScrubStateRecord Scrubber::record() const {
  ScrubStateRecord r;
  switch (status_.state) {
    case ScrubState::kRunning:
    case ScrubState::kInterrupted:
      r.state = ScrubStateRecord::kRunning;
      break;
    case ScrubState::kPaused:
      r.state = ScrubStateRecord::kPaused;
      break;
    case ScrubState::kFinished:
      r.state = ScrubStateRecord::kFinished;
      break;
    default:
      r.state = ScrubStateRecord::kCanceled;
  }
  r.next_ino = status_.next_ino;
  r.next_offset = status_.next_offset;
  r.bytes_checked = status_.bytes_checked;
  r.data_errors = status_.data_errors;
  r.unreadable = status_.unreadable;
  r.transients = status_.transients;
  r.rate_limit = status_.rate_limit;
  r.started_ns = status_.started_ns;
  r.ended_ns = status_.ended_ns;
  r.elapsed_ns = static_cast<uint64_t>(elapsed() * 1e9);
  return r;
}

void Scrubber::save() {
  ScrubStateRecord r;
  {
    MutexLock lock(mu_);
    r = record();
  }
  Status st = v_.fs().save_scrub_state(r);
  if (!st.ok() && st.code() != EROFS) {
    MutexLock lock(mu_);
    if (status_.metadata_problems.size() < kMaxMetadataProblems)
      status_.metadata_problems.push_back("saving the scrub position: " + st.message());
  }
}

void Scrubber::scrub_piece(const Inode& file, uint64_t offset, AlignedBuffer& buffer, IoStats& io) {
  const uint32_t bs = v_.fs().statfs().block_size;
  uint64_t rate_limit;
  {
    MutexLock lock(mu_);
    rate_limit = status_.rate_limit;
  }
  const uint64_t n = std::min(piece_bytes(rate_limit, bs), file.rec.size - offset);
  if (rate_limit) {
    // Pace before reading: the bytes read since the pace began, this piece included, may not
    // come faster than the limit. Waits end early for a pause, a cancel or the destructor.
    MutexLock lock(mu_);
    const auto due = pace_start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                       static_cast<double>(paced_bytes_ + n) / rate_limit));
    while (!stop_ && status_.state == ScrubState::kRunning && Clock::now() < due) cv_.wait_for(mu_, due - Clock::now());
    if (stop_ || status_.state != ScrubState::kRunning) return;
    paced_bytes_ += n;
  }
  Result<ScrubRangeResult> r = v_.scrub_range(file.ino, offset, n, buffer.span(), io);
  if (r.ok()) {
    for (const ScrubFinding& f : r->findings) {
      std::string what = "scrub: inode " + std::to_string(file.ino) + " offset " + std::to_string(f.file_offset) +
                         " (device block " + std::to_string(f.device_block) + "): ";
      what += f.unreadable ? "unreadable: " + f.device_error
                           : "data checksum mismatch: expected " + hex64(f.expected) + ", found " + hex64(f.found);
      v_.data_errors().record(file.ino, f.file_offset, f.device_block, what);
    }
  }
  MutexLock lock(mu_);
  if (!r.ok()) {
    // Gone meanwhile (unlinked and freed): nothing to check. Otherwise its mapping cannot be
    // read: a metadata problem (fsck's to explain); the scrub goes on with the next file.
    if (r.status().code() != ENOENT && r.status().code() != ESTALE) {
      ++status_.metadata_errors;
      if (status_.metadata_problems.size() < kMaxMetadataProblems)
        status_.metadata_problems.push_back("inode " + std::to_string(file.ino) + ": " + r.status().message());
    }
    status_.next_ino = file.ino + 1;
    status_.next_offset = 0;
    return;
  }
  status_.bytes_checked += r->bytes_read;
  status_.transients += r->transients;
  for (const ScrubFinding& f : r->findings) {
    ++(f.unreadable ? status_.unreadable : status_.data_errors);
    if (status_.findings.size() < kMaxFindings) status_.findings.push_back({file.ino, f});
    else status_.findings_incomplete = true;
  }
  status_.next_offset = offset + n;
}

void Scrubber::run() {
  AlignedBuffer buffer(kReadBytes);
  IoStats io;  // the scrub's own device I/O, apart from the mount's counters
  Clock::time_point last_save = Clock::now();
  for (;;) {
    uint64_t ino, offset;
    {
      MutexLock lock(mu_);
      if (status_.state == ScrubState::kPaused && !stop_) {
        mu_.unlock();
        save();
        mu_.lock();
        cv_.wait(mu_, [&]() REQUIRES(mu_) { return stop_ || status_.state != ScrubState::kPaused; });
      }
      if (stop_ || status_.state != ScrubState::kRunning) break;
      ino = status_.next_ino;
      offset = status_.next_offset;
    }
    Result<std::optional<Inode>> file = v_.fs().next_regular_file(ino);
    if (!file.ok() || !*file) {
      MutexLock lock(mu_);
      if (!file.ok()) {
        // The walk itself cannot go on: keep the position, say why, and pause.
        ++status_.metadata_errors;
        if (status_.metadata_problems.size() < kMaxMetadataProblems)
          status_.metadata_problems.push_back("finding the next file after inode " + std::to_string(ino) + ": " +
                                              file.status().message());
        stop_clock();
        status_.state = ScrubState::kPaused;
        continue;
      }
      if (status_.state == ScrubState::kRunning) {
        stop_clock();
        status_.state = ScrubState::kFinished;
        status_.ended_ns = now_ns();
      }
      break;
    }
    const Inode& f = **file;
    if (f.ino != ino) offset = 0;
    if (offset >= f.rec.size) {
      MutexLock lock(mu_);
      status_.next_ino = f.ino + 1;
      status_.next_offset = 0;
      continue;
    }
    {
      MutexLock lock(mu_);
      status_.next_ino = f.ino;
      status_.next_offset = offset;
    }
    scrub_piece(f, offset, buffer, io);
    if (Clock::now() - last_save >= std::chrono::seconds(kSaveSeconds)) {
      save();
      last_save = Clock::now();
    }
  }
  save();
  MutexLock lock(mu_);
  thread_live_ = false;
  cv_.notify_all();
}

}  // namespace stablefs
