#include "fs/defragmenter.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace stablefs {
namespace {

// Chunks taken off the candidate list at a time: the thread looks at the list again (and at
// stop_) between batches.
constexpr size_t kBatchChunks = 64;
// Failed steps logged, at most; the rest are only counted (stablefs stats).
constexpr uint64_t kLoggedFailures = 10;

// Errors that say the file itself is gone or cannot be changed, not that one chunk failed.
bool concerns_the_file(int code) { return code == ENOENT || code == EROFS || code == EINVAL || code == EISDIR; }

}  // namespace

Defragmenter::Defragmenter(Volume& v, DefragOptions options) : v_(v), options_(options) {
  {
    MutexLock lock(mu_);
    stats_.automatic = options_.automatic;
  }
  if (!options_.automatic) return;
  thread_ = std::thread([this] { run(); });
  v_.mapper().set_observer(this);  // after the thread: a failure to start it leaves none
}

Defragmenter::~Defragmenter() {
  if (!options_.automatic) return;
  v_.mapper().set_observer(nullptr);  // no small_write() after this
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Defragmenter::small_write(uint64_t ino, uint64_t pos, uint64_t len) {
  if (len == 0) return;
  const auto now = Clock::now();
  MutexLock lock(mu_);
  const bool was_empty = candidate_chunks_ == 0;
  try {
    auto [it, added] = pending_.try_emplace(ino);
    PendingFile& file = it->second;
    if (added) {
      try {
        file.in_order = quiet_order_.insert(quiet_order_.end(), ino);
      } catch (const std::bad_alloc&) {
        pending_.erase(it);
        throw;
      }
    } else {
      quiet_order_.splice(quiet_order_.end(), quiet_order_, file.in_order);  // newest write last
    }
    file.last_write = now;
    for (uint64_t index = pos / kChunkBytes; index <= (pos + len - 1) / kChunkBytes; ++index) {
      if (file.chunks.count(index) != 0) continue;
      if (candidate_chunks_ >= kMaxCandidates) {
        ++stats_.dropped_candidates;
        continue;
      }
      file.chunks.insert(index);
      ++candidate_chunks_;
    }
    if (file.chunks.empty()) {  // every chunk dropped: nothing to time
      quiet_order_.erase(file.in_order);
      pending_.erase(it);
    }
  } catch (const std::bad_alloc&) {
    ++stats_.dropped_candidates;  // the write itself is done: losing a candidate is harmless
  }
  stats_.pending_chunks = candidate_chunks_ + in_progress_;
  if (was_empty && candidate_chunks_ != 0) cv_.notify_all();
}

void Defragmenter::take_chunks(size_t max, uint64_t& ino, std::vector<uint64_t>& chunks) {
  ino = quiet_order_.front();
  auto it = pending_.find(ino);
  PendingFile& file = it->second;
  while (!file.chunks.empty() && chunks.size() < max) {
    chunks.push_back(*file.chunks.begin());
    file.chunks.erase(file.chunks.begin());
    --candidate_chunks_;
  }
  if (file.chunks.empty()) {
    quiet_order_.pop_front();
    pending_.erase(it);
  }
}

void Defragmenter::run() {
  AlignedBuffer buffer;
  std::vector<uint64_t> due;
  try {
    buffer = AlignedBuffer(kChunkBytes);
    due.reserve(kBatchChunks);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "stablefs: defrag: no memory for its buffer; automatic defragmentation is off\n");
    return;
  }
  const auto quiet = std::chrono::milliseconds(options_.quiet_ms);
  for (;;) {
    uint64_t ino = 0;
    due.clear();
    {
      MutexLock lock(mu_);
      for (;;) {
        if (stop_) return;
        if (quiet_order_.empty()) {
          cv_.wait(mu_);
          continue;
        }
        // The file written to longest ago: its chunks in file order once it has gone quiet_ms
        // without a small write; otherwise sleep until it will have.
        const auto now = Clock::now();
        const Clock::time_point quiet_at = pending_.find(quiet_order_.front())->second.last_write + quiet;
        if (quiet_at <= now) {
          take_chunks(kBatchChunks, ino, due);
          break;
        }
        cv_.wait_for(mu_, quiet_at - now);
      }
      in_progress_ = due.size();
      stats_.pending_chunks = candidate_chunks_ + in_progress_;
    }
    for (const uint64_t index : due) {
      {
        MutexLock lock(mu_);
        if (stop_) return;
      }
      (void)move_range(ino, index * kChunkBytes, (index + 1) * kChunkBytes, buffer, true);
    }
  }
}

Result<RelocateResult> Defragmenter::move_range(uint64_t ino, uint64_t start, uint64_t end, AlignedBuffer& buffer,
                                                bool taken) {
  RelocateResult total{0, 0, end};
  Status failed;
  for (uint64_t pos = start; pos < end;) {
    Result<RelocateResult> r = v_.relocate_range(ino, pos, end - pos, kMinFragments, buffer.span());
    if (!r.ok()) {
      failed = r.status();
      break;
    }
    if (r->bytes_moved > 0) {
      total.fragments += r->fragments;
      total.bytes_moved += r->bytes_moved;
    }
    pos = std::max(r->next, pos + 1);
  }
  MutexLock lock(mu_);
  if (taken) {
    --in_progress_;
    stats_.pending_chunks = candidate_chunks_ + in_progress_;
  }
  ++stats_.checked_chunks;
  if (total.bytes_moved > 0) {
    ++stats_.moved_chunks;
    stats_.moved_bytes += total.bytes_moved;
    stats_.fragments_before += total.fragments;
  }
  if (failed.ok()) return total;
  // A file removed meanwhile, or a remount read-only since the chunk became a candidate, is
  // no failure of the defragmenter's.
  if (failed.code() != ENOENT && failed.code() != EROFS) {
    if (stats_.failed_chunks++ < kLoggedFailures)
      std::fprintf(stderr, "stablefs: defrag: inode %llu offset %llu left as it is: %s\n", (unsigned long long)ino,
                   (unsigned long long)start, failed.message().c_str());
  }
  return failed;
}

Result<DefragFileResult> Defragmenter::defragment_file(uint64_t ino, uint64_t from, uint64_t max_chunks) {
  SFS_ASSIGN(Inode inode, v_.fs().getattr(ino));
  if (!S_ISREG(inode.rec.mode)) return Status::error(EINVAL, "not a regular file");
  if (v_.fs().health().read_only) return Status::error(EROFS, "the filesystem is mounted read-only");
  AlignedBuffer buffer;
  SFS_TRY(out_of_memory_as_error([&] {
    buffer = AlignedBuffer(kChunkBytes);
    return Status{};
  }));
  DefragFileResult result;
  for (uint64_t pos = from;;) {
    if (result.chunks == max_chunks) {
      result.next = pos;
      return result;
    }
    // Holes are skipped whole: a sparse file costs a lookup per data extent, not per chunk.
    Result<uint64_t> data = v_.seek_data(ino, pos);
    if (!data.ok()) {
      if (data.status().code() != ENXIO) return data.status();
      result.done = true;  // no data from pos on
      return result;
    }
    const uint64_t chunk_end = (*data / kChunkBytes + 1) * kChunkBytes;
    Result<RelocateResult> r = move_range(ino, *data, chunk_end, buffer, false);
    ++result.chunks;
    if (r.ok()) {
      if (r->bytes_moved > 0) {
        ++result.moved_chunks;
        result.moved_bytes += r->bytes_moved;
        result.fragments_before += r->fragments;
      }
    } else if (concerns_the_file(r.status().code())) {
      return r.status();
    } else {
      ++result.failed_chunks;
    }
    pos = chunk_end;
  }
}

DefragStats Defragmenter::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

}  // namespace stablefs
