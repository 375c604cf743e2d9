// Defragmenter: gathers the written data of files back into contiguous space, beside user I/O.
//
// Out-of-place overwrites (data checksums on) and small writes in random order scatter a
// file's blocks: after random 4 KiB overwrites a 1 MiB sequential read becomes a hundred
// small device reads. The defragmenter moves such data, one chunk (kChunkBytes of one file,
// aligned) at a time, into one new contiguous extent placed after the chunk before it
// (Volume::relocate_range): read and verified under the chunk's exclusive range lock, written
// unchanged, remapped by the ioend in one transaction with the old blocks freed. A crash at any
// point leaves either the old mapping or the new one, never a mix (the out-of-place write's
// invariant); a damaged block is never moved under a new checksum (the step fails with EIO and
// the chunk stays as it is); mtime and ctime do not change.
//
// Two ways in:
//   automatic  (mount option autodefrag, the default) the ioend reports small writes
//              (FileMapper's WrittenRangeObserver); a chunk they touched becomes a candidate,
//              moved once no small write has reached its file for quiet_ms, if its written
//              data lies in at least kMinFragments pieces. A file kept busy by writes is left
//              alone until they pause: a steady stream of random writes costs no extra I/O
//              while it lasts. (With the quiet time counted per chunk instead, 4 KiB random
//              overwrites at queue depth 1 ran at 0.61 of a mount without the defragmenter;
//              counted per file, at 0.98: docs/performance.md.)
//   explicit   defragment_file() (`stablefs defrag FILE`) goes through a file now, a bounded
//              number of chunks per call, so that a caller serving other requests between
//              calls (the control socket) never waits long for one.
//
// Thread-safety: every call from any thread; the automatic work runs on a thread of its own,
// which the destructor stops and joins (a chunk being moved finishes first). Lock order: the
// metadata lock (held when small_write is called) before mu_; nothing calls into the Volume
// with mu_ held. The Volume must outlive the Defragmenter: destroy it before closing the Volume.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/mutex.h"
#include "fs/volume.h"

namespace stablefs {

struct DefragOptions {
  bool automatic = true;   // move candidates from small writes on the defragmenter's thread
  unsigned quiet_ms = 1000;  // how long a file must go without small writes before its chunks move
};

struct DefragStats {
  bool automatic = false;
  uint64_t pending_chunks = 0;   // candidates not yet looked at, the one being moved included:
                                 // 0 when the automatic defragmenter is idle
  uint64_t checked_chunks = 0;   // candidates and chunks of files looked at
  uint64_t moved_chunks = 0;
  uint64_t moved_bytes = 0;
  uint64_t fragments_before = 0;  // pieces the moved chunks lay in, together
  uint64_t failed_chunks = 0;     // a step that failed (no contiguous space, a damaged block...)
  uint64_t dropped_candidates = 0;  // small writes not followed: the candidate list was full
};

// What defragment_file did to one file.
struct DefragFileResult {
  uint64_t chunks = 0;            // chunks looked at
  uint64_t moved_chunks = 0;
  uint64_t moved_bytes = 0;
  uint64_t fragments_before = 0;  // of the chunks moved
  uint64_t failed_chunks = 0;
  bool done = false;              // the file's end was reached
  uint64_t next = 0;              // where the next call goes on (when not done)
};

class Defragmenter : public WrittenRangeObserver {
 public:
  static constexpr uint64_t kChunkBytes = 1u << 20;
  // A chunk is moved when its written data lies in this many device-contiguous pieces or more:
  // a 1 MiB read in 8 pieces is still 128 KiB device reads, and a contiguous chunk takes four
  // scattered small writes (each adds two pieces at most) before it is moved, which bounds
  // what moving costs against what was written.
  static constexpr uint64_t kMinFragments = 8;
  // Candidates followed at most (64 GiB of chunks); small writes past it are counted, not kept.
  static constexpr size_t kMaxCandidates = 1u << 16;

  // Registers with v's FileMapper; starts the thread when options.automatic.
  Defragmenter(Volume& v, DefragOptions options);
  ~Defragmenter() override;
  Defragmenter(const Defragmenter&) = delete;
  Defragmenter& operator=(const Defragmenter&) = delete;

  // Moves every chunk of ino whose written data lies in kMinFragments pieces or more, from
  // byte offset `from` on, at most max_chunks chunks holding data (holes are skipped), on the
  // calling thread; the result says where to go on, or that the file's end was reached. A
  // chunk that fails is counted and skipped; errors that concern the file itself (ENOENT, not
  // a regular file, EROFS) are returned.
  Result<DefragFileResult> defragment_file(uint64_t ino, uint64_t from = 0, uint64_t max_chunks = ~0ull)
      EXCLUDES(mu_);
  DefragStats stats() const EXCLUDES(mu_);

  // WrittenRangeObserver (the ioend, metadata lock held): notes the chunks [pos, pos+len) touches.
  void small_write(uint64_t ino, uint64_t pos, uint64_t len) override EXCLUDES(mu_);

 private:
  using Clock = std::chrono::steady_clock;

  // A file with candidate chunks. Files sit in quiet_order_ by their last small write, oldest
  // first, so the thread finds the files that have gone quiet at the front, and a small write
  // costs a hash lookup and a list splice however many files wait (a walk over every candidate
  // per wake-up cost a core of CPU at 3,000 new small files a second).
  struct PendingFile {
    Clock::time_point last_write;
    std::set<uint64_t> chunks;                 // chunk indexes, in file order
    std::list<uint64_t>::iterator in_order;  // this file's place in quiet_order_
  };

  void run() EXCLUDES(mu_);
  // Takes up to max chunks of the file at quiet_order_'s front off the candidate lists,
  // forgetting the file once none are left.
  void take_chunks(size_t max, uint64_t& ino, std::vector<uint64_t>& chunks) REQUIRES(mu_);
  // Every written run of [start, end) (within one chunk) through Volume::relocate_range;
  // counts what happened, and returns the moves added up (next: end) or the first failure.
  // buffer: kChunkBytes. taken: the chunk was one the thread took off the candidate list
  // (in_progress_ goes down with the counts, in one critical section).
  Result<RelocateResult> move_range(uint64_t ino, uint64_t start, uint64_t end, AlignedBuffer& buffer, bool taken)
      EXCLUDES(mu_);

  Volume& v_;
  const DefragOptions options_;
  mutable Mutex mu_;
  CondVar cv_;  // stop_
  std::unordered_map<uint64_t, PendingFile> pending_ GUARDED_BY(mu_);  // ino -> its candidates
  std::list<uint64_t> quiet_order_ GUARDED_BY(mu_);                     // inos, oldest small write first
  size_t candidate_chunks_ GUARDED_BY(mu_) = 0;                         // over all of pending_
  DefragStats stats_ GUARDED_BY(mu_);
  size_t in_progress_ GUARDED_BY(mu_) = 0;  // chunks the thread took and has not finished
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace stablefs
