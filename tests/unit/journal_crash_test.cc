// Journal crash test: a workload of metadata operations runs against an in-memory device that
// records every write. For EVERY write index k, the device as it would be after a crash right
// after write k is mounted (replaying the journal): its namespace must equal the state after
// some prefix of the workload's operations, never go backwards as k grows, include every
// operation that a completed sync() covered, and fsck must find it clean. Every commit write is
// also torn (only its first blocks land): the torn transaction must be ignored.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <map>
#include <random>

#include "bounce/memory_device.h"
#include "fs/namespace/filesystem.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "support/fs_dump.h"

namespace stablefs {
namespace {

constexpr uint64_t kDeviceBytes = 8ull << 20;

// Runs a deterministic random namespace workload; records the namespace after every
// operation, and for every sync the device write count at which it completed.
struct Workload {
  std::vector<std::string> states;            // states[i]: after i operations (the first i steps)
  std::vector<std::pair<uint64_t, size_t>> synced;  // (writes when sync returned, ops covered)
};

std::string name_of(int i) {
  std::string name(1, 'n');
  name += std::to_string(i);
  if (i % 3 == 0) name += std::string(40, 'x');
  return name;
}

// How often the workload syncs, and how much one operation may add: the long shape syncs
// rarely and sets large xattrs (chunked over many tree leaves) after most operations, so a
// transaction outgrows one journal descriptor block.
struct WorkloadShape {
  uint32_t sync_one_in = 3;
  bool large_xattrs = false;
};

Workload run_workload(Filesystem& fs, MemoryDevice& dev, int ops, uint32_t seed, WorkloadShape shape = {}) {
  Workload w;
  std::mt19937 rng(seed);
  auto dump = [&] {
    auto d = test::dump_namespace(fs);
    REQUIRE_MESSAGE(d.ok(), d.status().message());
    return *d;
  };
  w.states.push_back(dump());
  std::vector<uint64_t> dirs{kRootIno};
  std::vector<std::pair<uint64_t, std::string>> files;  // (dir, name)
  int next = 0;
  Credentials cred{1000, 1000};
  for (int op = 0; op < ops; ++op) {
    uint64_t dir = dirs[rng() % dirs.size()];
    int kind = static_cast<int>(rng() % 12);
    Status st;
    if (kind <= 3 || files.empty()) {
      std::string n = name_of(next++);
      auto r = fs.mknod(dir, n, S_IFREG | 0644, 0, cred);
      st = r.status();
      if (r.ok()) files.emplace_back(dir, n);
    } else if (kind == 4) {
      std::string n = name_of(next++);
      auto r = fs.mkdir(dir, n, 0755, cred);
      st = r.status();
      if (r.ok()) dirs.push_back(r->ino);
    } else if (kind == 5) {
      std::string n = name_of(next++);
      auto r = fs.symlink(dir, n, std::string(1 + rng() % 2000, 't'), cred);
      st = r.status();
    } else if (kind == 6) {
      size_t i = rng() % files.size();
      st = fs.unlink(files[i].first, files[i].second);
      files.erase(files.begin() + static_cast<long>(i));
    } else if (kind == 7) {
      size_t i = rng() % files.size();
      std::string n = name_of(next++);
      st = fs.rename(files[i].first, files[i].second, dir, n, 0);
      if (st.ok()) files[i] = {dir, n};
    } else if (kind == 8) {
      size_t i = rng() % files.size();
      auto target = fs.lookup(files[i].first, files[i].second);
      REQUIRE(target.ok());
      std::string n = name_of(next++);
      auto r = fs.link(target->ino, dir, n);
      st = r.status();
      if (r.ok()) files.emplace_back(dir, n);
    } else if (kind == 9) {
      size_t i = rng() % files.size();
      auto target = fs.lookup(files[i].first, files[i].second);
      REQUIRE(target.ok());
      std::string value(rng() % 300, 'v');
      st = fs.setxattr(target->ino, "user.k" + std::to_string(rng() % 4), {reinterpret_cast<const uint8_t*>(value.data()), value.size()}, 0);
    } else if (kind == 10) {
      size_t i = rng() % files.size();
      auto target = fs.lookup(files[i].first, files[i].second);
      REQUIRE(target.ok());
      SetAttrRequest req;
      req.mode = static_cast<uint32_t>(rng() % 07777);
      req.mtime = Timespec{static_cast<int64_t>(rng()), static_cast<uint32_t>(rng() % 1000000000)};
      st = fs.setattr(target->ino, req).status();
    } else {
      size_t i = rng() % files.size(), j = rng() % files.size();
      st = fs.rename(files[i].first, files[i].second, files[j].first, files[j].second, kRenameExchange);
      if (st.ok()) std::swap(files[i], files[j]);
    }
    REQUIRE_MESSAGE(st.ok(), "operation " << op << " (kind " << kind << "): " << st.message());
    if (shape.large_xattrs && !files.empty() && rng() % 3 != 0) {
      w.states.push_back(dump());  // a commit may come between the two operations
      size_t i = rng() % files.size();
      auto target = fs.lookup(files[i].first, files[i].second);
      REQUIRE(target.ok());
      std::string value(30000 + rng() % 30000, static_cast<char>('a' + rng() % 26));
      st = fs.setxattr(target->ino, "user.big" + std::to_string(rng() % 4),
                       {reinterpret_cast<const uint8_t*>(value.data()), value.size()}, 0);
      REQUIRE_MESSAGE(st.ok(), "operation " << op << " (large xattr): " << st.message());
    }
    w.states.push_back(dump());
    if (rng() % shape.sync_one_in == 0) {
      REQUIRE(fs.sync().ok());
      w.synced.emplace_back(dev.log().size(), w.states.size() - 1);
    }
  }
  return w;
}

// Mounts an image, returns the index of the workload state it equals (or -1) and whether
// fsck found it clean.
struct CutResult {
  int state = -1;
  int fsck_exit = -1;
  std::string error;
};

CutResult mount_cut(std::vector<uint8_t> image, const std::vector<std::string>& states) {
  CutResult r;
  MemoryDevice dev(std::move(image), "cut");
  {
    auto fs = Filesystem::open(dev, {});
    if (!fs.ok()) {
      r.error = "mount: " + fs.status().message();
      return r;
    }
    auto d = test::dump_namespace(**fs);
    if (!d.ok()) {
      r.error = "dump: " + d.status().message();
      return r;
    }
    for (size_t i = 0; i < states.size(); ++i)
      if (states[i] == *d) r.state = static_cast<int>(i);
    if (r.state < 0) r.error = "namespace matches no prefix of the workload:\n" + *d;
    Status st = (*fs)->close();
    if (!st.ok()) r.error = "close: " + st.message();
  }
  FsckOptions fo;
  std::string problems;
  fo.on_problem = [&](const std::string& p) { problems += p + "\n"; };
  r.fsck_exit = run_fsck(dev, fo).exit_code();
  if (r.fsck_exit != 0) r.error += "fsck: " + problems;
  return r;
}


// Every crash point of one workload: the device after each write, and each multi-block
// journal commit torn in half, mounts to a committed prefix that never goes backwards and
// never behind a completed sync; fsck is clean every time. Returns the recorded log.
std::vector<MemoryDevice::LoggedWrite> check_crash_points(uint64_t device_bytes, const MkfsOptions& mo, int ops,
                                                       uint32_t seed, WorkloadShape shape) {
  MemoryDevice dev(device_bytes, "crash");
  REQUIRE(make_filesystem(dev, mo).ok());
  std::vector<uint8_t> base = dev.snapshot();

  dev.set_recording(true);
  auto fs = Filesystem::open(dev, {});
  REQUIRE(fs.ok());
  Workload w = run_workload(**fs, dev, ops, seed, shape);
  REQUIRE((*fs)->close().ok());
  const auto log = dev.log();  // copy: mount_cut's devices do not record
  dev.set_recording(false);

  size_t writes = 0, torn = 0, checkpoints_seen = 0;
  int last_state = 0;
  std::vector<uint8_t> image = base;
  for (size_t k = 0; k <= log.size(); ++k) {
    INFO("cut after log entry " << k << " of " << log.size());
    // A flush changes no bytes: the image after it was already checked.
    const bool wrote = k == 0 || !log[k - 1].is_flush;
    if (k > 0 && wrote) {
      const auto& wr = log[k - 1];
      std::copy(wr.data.begin(), wr.data.end(), image.begin() + static_cast<long>(wr.offset));
      ++writes;
      if (wr.offset == 4096) ++checkpoints_seen;  // the journal header is rewritten at checkpoint
    }
    if (wrote) {
      CutResult r = mount_cut(image, w.states);
      REQUIRE_MESSAGE(r.error.empty(), r.error);
      CHECK(r.fsck_exit == 0);
      // Never behind a completed sync, never going backwards.
      int must_have = 0;
      for (auto& [writes_at_sync, ops_covered] : w.synced)
        if (writes_at_sync <= k) must_have = static_cast<int>(ops_covered);
      CHECK(r.state >= must_have);
      CHECK(r.state >= last_state);
      last_state = r.state;
    }
    // Tear the next write if it is a multi-block journal commit: only its first half lands;
    // for one long enough to need several descriptor blocks, also only its first block.
    if (k < log.size() && !log[k].is_flush && log[k].data.size() >= 3 * 4096) {
      std::vector<size_t> landed{(log[k].data.size() / 2) & ~size_t(4095)};
      if (log[k].data.size() > (504 + 2) * 4096) landed.push_back(4096);
      for (size_t bytes : landed) {
        std::vector<uint8_t> torn_image = image;
        std::copy(log[k].data.begin(), log[k].data.begin() + static_cast<long>(bytes),
                  torn_image.begin() + static_cast<long>(log[k].offset));
        CutResult t = mount_cut(std::move(torn_image), w.states);
        REQUIRE_MESSAGE(t.error.empty(), t.error);
        CHECK(t.state == last_state);  // the torn transaction is ignored entirely
        ++torn;
      }
    }
  }
  CHECK(last_state == static_cast<int>(w.states.size()) - 1);
  MESSAGE("crash points: " << writes << " writes, " << torn << " torn commits, " << checkpoints_seen
                           << " journal header rewrites, " << w.states.size() - 1 << " operations");
  CHECK(torn > 10);
  CHECK(checkpoints_seen > 0);
  return log;
}

}  // namespace

TEST_CASE("journal: a crash after any write recovers to a committed prefix and fsck is clean") {
  check_crash_points(kDeviceBytes, MkfsOptions{}, 400, 12345, WorkloadShape{});
}

TEST_CASE("journal: transactions spanning several descriptor blocks recover whole or not at all") {
  // A 4096-block journal takes transactions of up to 1023 blocks: three descriptor blocks.
  MkfsOptions mo;
  mo.journal_blocks = 4096;
  const auto log = check_crash_points(64ull << 20, mo, 300, 777, WorkloadShape{60, true});
  const uint64_t log_start = 2 * 4096, log_end = (1 + mo.journal_blocks) * 4096;
  size_t long_commits = 0;
  for (const auto& e : log)
    if (!e.is_flush && e.offset >= log_start && e.offset < log_end && e.data.size() > (504 + 2) * 4096) ++long_commits;
  MESSAGE(long_commits << " transactions longer than one descriptor block");
  CHECK(long_commits > 0);
}

}  // namespace stablefs
