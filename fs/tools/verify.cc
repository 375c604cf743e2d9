#include "fs/tools/verify.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <new>
#include <span>
#include <unordered_map>

#include "bounce/aligned_buffer.h"
#include "bounce/checksum.h"
#include "bounce/file_device.h"
#include "bounce/io_queue.h"
#include "bounce/mutex.h"
#include "fs/format/fs_items.h"
#include "fs/inode/checksum_store.h"
#include "fs/meta/metadata_store.h"
#include "fs/tools/fsck.h"

namespace stablefs {
namespace {

using Clock = std::chrono::steady_clock;

// Data blocks whose checksums are loaded at once (a window): 2 GiB of 4 KiB blocks, ~4 MiB of
// checksums in memory.
constexpr uint64_t kWindowBlocks = 1ull << 19;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A written extent's piece: device blocks [dev_block, +nblocks) hold ino's file blocks from file_block.
struct Owned {
  uint64_t dev_block = 0;
  uint64_t nblocks = 0;
  uint64_t ino = 0;
  uint64_t file_block = 0;
};

// One device read: [dev_block, +nblocks), and the pieces it covers (in device order).
struct ReadPlan {
  uint64_t dev_block = 0;
  uint64_t nblocks = 0;
  std::vector<Owned> owners;
};

// Contiguous runs of the pieces, cut at max_blocks.
std::vector<ReadPlan> plan_reads(std::vector<Owned> pieces, uint64_t max_blocks) {
  std::sort(pieces.begin(), pieces.end(), [](const Owned& a, const Owned& b) { return a.dev_block < b.dev_block; });
  std::vector<ReadPlan> plans;
  for (Owned p : pieces) {
    while (p.nblocks > 0) {
      if (plans.empty() || plans.back().dev_block + plans.back().nblocks != p.dev_block ||
          plans.back().nblocks == max_blocks)
        plans.push_back({p.dev_block, 0, {}});
      ReadPlan& r = plans.back();
      const uint64_t n = std::min(p.nblocks, max_blocks - r.nblocks);
      r.owners.push_back({p.dev_block, n, p.ino, p.file_block});
      r.nblocks += n;
      p.dev_block += n;
      p.file_block += n;
      p.nblocks -= n;
    }
  }
  return plans;
}

// Names: the directory entries pointing at each inode, to list every path of a damaged file.
class PathIndex {
 public:
  void add(uint64_t dir, uint64_t child, std::string name) { links_[child].push_back({dir, std::move(name)}); }
  std::vector<std::string> paths(uint64_t ino, int depth = 0) const {
    if (ino == kRootIno) return {""};
    if (depth > kMaxDepth) return {};
    std::vector<std::string> out;
    auto it = links_.find(ino);
    if (it == links_.end()) return out;
    for (const auto& [dir, name] : it->second)
      for (const std::string& p : paths(dir, depth + 1)) out.push_back(p + "/" + name);
    return out;
  }

 private:
  static constexpr int kMaxDepth = 4096;  // a damaged tree could hold a cycle
  std::unordered_map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> links_;
};

// Reads the plans through the queue, depth at a time, and hands each finished one to check()
// on the calling thread. The buffers are one arena in transparent huge pages where the kernel
// gives them: a large read of scattered 4 KiB pages needs more segments than a device takes
// (a loop device: 128), and a read the block layer must split cannot be issued without
// blocking, so io_uring hands it to a worker thread — half the bandwidth, measured.
class DataReader {
 public:
  DataReader(IoQueue& queue, uint32_t block_size, unsigned depth, uint64_t max_blocks)
      : queue_(queue), bs_(block_size), slot_bytes_(max_blocks * block_size) {
    const size_t bytes = (static_cast<size_t>(slot_bytes_ * depth) + kHugePage - 1) / kHugePage * kHugePage;
    arena_.reset(static_cast<uint8_t*>(std::aligned_alloc(kHugePage, bytes)));
    if (!arena_) throw std::bad_alloc();
    (void)::madvise(arena_.get(), bytes, MADV_HUGEPAGE);  // before the first touch; a hint only
    for (unsigned i = 0; i < depth; ++i) slots_.push_back(std::make_unique<Slot>(arena_.get() + i * slot_bytes_));
  }

  template <typename Check>
  void run(std::span<const ReadPlan> plans, Check&& check) {
    size_t next = 0, finished = 0;
    for (auto& s : slots_)
      if (next < plans.size()) submit(*s, plans, next++);
    while (finished < plans.size()) {
      Slot* s = nullptr;
      {
        MutexLock lock(mu_);
        cv_.wait(mu_, [&]() REQUIRES(mu_) { return !done_.empty(); });
        s = done_.front();
        done_.pop_front();
      }
      check(s->plan, s->buf, s->result);
      ++finished;
      if (next < plans.size()) submit(*s, plans, next++);
    }
  }

 private:
  static constexpr size_t kHugePage = 2u << 20;
  struct Slot {
    explicit Slot(uint8_t* memory) : buf(memory) {}
    uint8_t* buf;
    IoRequest req;
    size_t plan = 0;
    int64_t result = 0;
  };

  void submit(Slot& s, std::span<const ReadPlan> plans, size_t i) {
    s.plan = i;
    s.req = IoRequest{};
    s.req.op = IoRequest::Op::kRead;
    s.req.offset = plans[i].dev_block * bs_;
    s.req.iov = {iovec{s.buf, static_cast<size_t>(plans[i].nblocks * bs_)}};
    s.req.on_complete = [this, &s](IoRequest&, int64_t result) {
      MutexLock lock(mu_);
      s.result = result;
      done_.push_back(&s);
      cv_.notify_one();
    };
    queue_.submit(&s.req);
  }

  IoQueue& queue_;
  uint32_t bs_;
  uint64_t slot_bytes_;
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> arena_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Mutex mu_;
  CondVar cv_;
  std::deque<Slot*> done_ GUARDED_BY(mu_);
};

void add_metadata_errors(const FsckReport& f, VerifyReport& r) {
  std::vector<bool> used(f.damaged_blocks.size(), false);
  for (const std::string& line : f.problems) {
    MetadataError e;
    e.problem = line;
    for (size_t i = 0; i < f.damaged_blocks.size(); ++i) {
      if (used[i] || f.damaged_blocks[i].problem != line) continue;
      used[i] = true;
      e.block = f.damaged_blocks[i].block;
      e.holds = f.damaged_blocks[i].holds;
      break;
    }
    r.metadata_errors.push_back(std::move(e));
  }
}

}  // namespace

uint64_t VerifyReport::unreadable_blocks() const {
  return static_cast<uint64_t>(
      std::count_if(data_errors.begin(), data_errors.end(), [](const DataBlockError& e) { return e.unreadable; }));
}

uint64_t VerifyReport::checksum_errors() const { return data_errors.size() - unreadable_blocks(); }

int VerifyReport::exit_code() const {
  if (!fatal.empty()) return kVerifyOperationalError;
  return data_errors.empty() && metadata_errors.empty() ? kVerifyClean : kVerifyDamage;
}

// The data pass over an open store: every written block read in device order and checked.
void verify_data(MetadataStore& st, FileDevice& dev, const VerifyOptions& opts, Clock::time_point t0,
                 VerifyReport& r) {
  const Superblock& sb = st.superblock();
  r.data_checksums = sb.data_checksums();

  // Every written extent, and every name, in one pass over the filesystem tree. Items that do
  // not decode are fsck's to report (above); they are skipped here.
  std::vector<Owned> pieces;
  PathIndex names;
  Status scanned = st.fs_tree().scan(kMinKey, kMaxKey, [&](const Key& k, std::span<const uint8_t> v) {
    if (k.type == kItemExtent) {
      auto e = ExtentRecord::decode(v, k);
      if (e.ok() && !(e->flags & kExtentUnwritten) && e->dev_block + e->nblocks <= sb.total_blocks && e->nblocks > 0)
        pieces.push_back({e->dev_block, e->nblocks, k.objectid, k.offset});
    } else if (k.type == kItemDirent) {
      auto d = DirentRecord::decode(v, k);
      if (d.ok()) names.add(k.objectid, d->ino, d->name);
    }
    return true;
  });
  if (!scanned.ok()) r.metadata_errors.push_back({std::nullopt, "", "filesystem tree: " + scanned.message()});

  const uint32_t bs = sb.block_size;
  const uint64_t max_blocks = std::max<uint64_t>(1, opts.request_bytes / bs);
  const std::vector<ReadPlan> plans = plan_reads(std::move(pieces), max_blocks);
  VerifyProgress progress;
  for (const ReadPlan& p : plans) progress.bytes_total += p.nblocks * bs;

  auto queue = IoQueue::create(dev.fd(), std::max(2u, opts.queue_depth));
  if (!queue.ok()) {
    r.fatal = r.target + ": io_uring: " + queue.status().message();
    return;
  }
  ChecksumStore sums(st.csum_tree());
  auto last_report = Clock::now();

  // Checks blocks [first, first + n) of plan, held at data, against expected (the plan's
  // checksums); unreadable: the device's error instead.
  auto check_blocks = [&](const ReadPlan& plan, const std::vector<std::optional<uint64_t>>& expected, uint64_t first,
                          uint64_t n, const uint8_t* data, const std::string* unreadable) {
    uint64_t at = 0;  // block index in plan of the current owner's start
    for (const Owned& o : plan.owners) {
      for (uint64_t i = 0; i < o.nblocks; ++i) {
        const uint64_t b = at + i;
        if (b < first || b >= first + n) continue;
        DataBlockError e{o.ino, (o.file_block + i) * bs, bs, plan.dev_block + b, false, {}, {}, {}};
        if (unreadable) {
          e.unreadable = true;
          e.device_error = *unreadable;
          r.data_errors.push_back(std::move(e));
          continue;
        }
        r.data_blocks_checked++;
        r.data_bytes_checked += bs;
        if (!r.data_checksums || !expected[b]) continue;
        const uint64_t found = xxh3_64(data + (b - first) * bs, bs);
        if (found == *expected[b]) continue;
        e.expected = expected[b];
        e.found = found;
        r.data_errors.push_back(std::move(e));
      }
      at += o.nblocks;
    }
  };

  // The data in windows: first the window's checksums (metadata reads, while no data read is
  // queued ahead of them), then its data with the queue kept full.
  DataReader reader(**queue, bs, std::max(1u, opts.queue_depth), max_blocks);
  std::vector<std::vector<std::optional<uint64_t>>> expected;
  for (size_t w = 0; w < plans.size();) {
    size_t end = w;
    for (uint64_t blocks = 0; end < plans.size() && blocks < kWindowBlocks; ++end) blocks += plans[end].nblocks;
    expected.assign(end - w, {});
    for (size_t i = w; i < end; ++i) {
      expected[i - w].assign(plans[i].nblocks, std::nullopt);
      if (!r.data_checksums) continue;
      if (Status s = sums.get(plans[i].dev_block, expected[i - w]); !s.ok()) {
        r.metadata_errors.push_back({std::nullopt, "", "checksum tree: " + s.message()});
        expected[i - w].assign(plans[i].nblocks, std::nullopt);
      }
    }
    const std::span<const ReadPlan> window(plans.data() + w, end - w);
    reader.run(window, [&](size_t i, const uint8_t* data, int64_t result) {
      const ReadPlan& plan = window[i];
      if (result == static_cast<int64_t>(plan.nblocks * bs)) {
        check_blocks(plan, expected[i], 0, plan.nblocks, data, nullptr);
      } else {
        // Find which blocks the device cannot read, one at a time.
        AlignedBuffer one(bs);
        for (uint64_t b = 0; b < plan.nblocks; ++b) {
          auto got = (*queue)->run(IoRequest::Op::kRead, (plan.dev_block + b) * bs, {iovec{one.data(), bs}});
          if (got.ok()) {
            check_blocks(plan, expected[i], b, 1, one.data(), nullptr);
          } else {
            const std::string why = got.status().message();
            check_blocks(plan, expected[i], b, 1, nullptr, &why);
          }
        }
      }
      progress.bytes_done += plan.nblocks * bs;
      if (opts.progress && Clock::now() - last_report >= std::chrono::milliseconds(200)) {
        last_report = Clock::now();
        progress.seconds = seconds_since(t0);
        opts.progress(progress);
      }
    });
    w = end;
  }
  queue->reset();  // waits for nothing: every read was reaped
  if (opts.progress) {
    progress.seconds = seconds_since(t0);
    opts.progress(progress);
  }
  for (const DataBlockError& e : r.data_errors) {
    if (r.paths.count(e.ino)) continue;
    std::vector<std::string> p = names.paths(e.ino);
    std::sort(p.begin(), p.end());
    r.paths[e.ino] = std::move(p);
  }
}

VerifyReport run_verify(const std::string& target, const VerifyOptions& opts) {
  VerifyReport r;
  r.target = target;
  const auto t0 = Clock::now();
  auto finish = [&]() -> VerifyReport {
    r.seconds = seconds_since(t0);
    return std::move(r);
  };
  auto dev = FileDevice::open(target, {.read_only = true, .exclusive = true});
  if (!dev.ok()) {
    r.fatal = dev.status().message();
    return finish();
  }
  // Metadata: every check fsck -n makes (superblocks, journal, every tree node and item); then
  // the data, through fsck's open store, whose cache still holds the checksum leaves it read.
  // When the store cannot be opened, fsck's problems say why and there is no data pass.
  FsckOptions check;
  check.with_store = [&](MetadataStore& st) { verify_data(st, **dev, opts, t0, r); };
  const FsckReport f = run_fsck(**dev, check);
  if (!f.fatal.empty()) {
    r.fatal = f.fatal;
    return finish();
  }
  if (!r.fatal.empty()) return finish();
  r.metadata_blocks_checked = f.tree_blocks;
  add_metadata_errors(f, r);
  return finish();
}


}  // namespace stablefs
