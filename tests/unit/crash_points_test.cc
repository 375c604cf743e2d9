// Crash consistency at every point: a seeded workload runs through a Volume whose every device
// write and flush (metadata and data) is recorded in order (support/crash_recorder.h); then for
// each point k of that log the device is rebuilt as a power cut at k leaves it — the writes a
// completed flush covers are kept, the others dropped all, kept all, or kept in a random subset
// (a volatile write cache) — and checked:
//   - fsck -n calls it clean (journal replayed in memory), before and after a mount;
//   - it mounts (journal replay, orphan and truncate finishing) and every file reads back with
//     no checksum error;
//   - no file shows bytes it never had: each block is zeros or a block this file wrote at that
//     offset (blocks carry their file, offset and version), never another file's data or stale
//     space;
//   - every extended attribute (user ones, inline and in chunks, and POSIX ACLs) holds a
//     value its file set under that name;
//   - a file whose fsync (or a sync) completed before k, and that did not change after it, is
//     there under its name with exactly the content and extended attributes it had.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/file_device.h"
#include "fs/format/posix_acl.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "fs/volume.h"
#include "support/crash_recorder.h"
#include "support/image_file.h"

namespace stablefs {
namespace {

using test::fsck_problem;

constexpr uint32_t kBs = 4096;
constexpr uint64_t kImageBytes = 8u << 20;
constexpr uint32_t kMagic = 0x5343524b;  // one 16-byte record, repeated over the block
constexpr uint64_t kMaxBlocks = 48;      // files stay within this many blocks

struct BlockTag {
  uint32_t file, block, version;
};

void fill_block(uint8_t* p, BlockTag t) {
  for (size_t i = 0; i < kBs; i += 16) {
    std::memcpy(p + i, &t.file, 4);
    std::memcpy(p + i + 4, &t.block, 4);
    std::memcpy(p + i + 8, &t.version, 4);
    std::memcpy(p + i + 12, &kMagic, 4);
  }
}

// The tag of a block read back (n bytes of it inside the file); empty for zeros; a block that is
// neither fails the check.
std::optional<BlockTag> read_tag(const uint8_t* p, size_t n, std::string& problem) {
  if (std::all_of(p, p + n, [](uint8_t b) { return b == 0; })) return std::nullopt;
  BlockTag t;
  std::memcpy(&t.file, p, 4);
  std::memcpy(&t.block, p + 4, 4);
  std::memcpy(&t.version, p + 8, 4);
  uint8_t want[kBs];
  fill_block(want, t);
  if (std::memcmp(want, p, n) != 0) problem = "a block holding neither zeros nor one whole written block";
  return t;
}

// An xattr value carries the version that set it: user ones are the version repeated (long
// enough, for every third version, to go into chunk items), an access ACL names the version
// as its user entry's uid.
std::vector<uint8_t> xattr_value(const std::string& name, uint32_t version) {
  if (name == kAclAccessXattr)
    return encode_acl_xattr(PosixAcl{{{kAclUserObj, 6, 0xFFFFFFFFu}, {kAclUser, 6, version}, {kAclGroupObj, 4, 0xFFFFFFFFu},
                                      {kAclMask, 6, 0xFFFFFFFFu}, {kAclOther, 0, 0xFFFFFFFFu}}});
  std::vector<uint8_t> v(version % 3 == 0 ? 6000 : 24);
  for (size_t i = 0; i + 4 <= v.size(); i += 4) std::memcpy(v.data() + i, &version, 4);
  return v;
}
// The version an xattr value read back names; 0 when it is no value xattr_value makes.
uint32_t xattr_version(const std::string& name, const std::vector<uint8_t>& v) {
  uint32_t version = 0;
  if (name == kAclAccessXattr) {
    auto acl = parse_acl_xattr(v);
    if (!acl.ok()) return 0;
    for (const AclEntry& e : acl->entries)
      if (e.tag == kAclUser) version = e.id;
  } else if (v.size() >= 4) {
    std::memcpy(&version, v.data(), 4);
  }
  return version && xattr_value(name, version) == v ? version : 0;
}
const std::array<std::string, 3> kXattrNames = {"user.a", "user.b", std::string(kAclAccessXattr)};

struct Snapshot {
  uint64_t size = 0;
  std::map<uint64_t, uint32_t> blocks;  // block -> version (absent: zeros)
  std::map<std::string, uint32_t> xattrs;  // name -> version
  std::set<std::pair<uint64_t, std::string>> names;  // (directory, name)
};

struct FileModel {
  uint32_t id = 0;
  uint64_t ino = 0;
  Snapshot now;
  std::map<uint64_t, std::set<uint32_t>> ever;  // block -> every version written there
  std::map<std::string, std::set<uint32_t>> xattrs_ever;  // name -> every version set
  std::vector<size_t> changes;                   // log size when each change began
  std::vector<std::pair<size_t, Snapshot>> durable;  // (log size when an fsync/sync returned, state)
  bool gone = false;
};

struct Workload {
  Workload(Volume& vol, test::CrashRecorder& r, uint64_t seed, uint64_t d) : v(vol), rec(r), rng(seed), dir(d) {}
  Volume& v;
  test::CrashRecorder& rec;
  std::mt19937_64 rng;
  std::vector<FileModel> files;
  uint64_t dir = 0;
  uint32_t next_version = 1;
  int ops = 0;

  uint64_t pick(uint64_t n) { return rng() % n; }
  std::vector<size_t> live() const {
    std::vector<size_t> out;
    for (size_t i = 0; i < files.size(); ++i)
      if (!files[i].gone) out.push_back(i);
    return out;
  }
  uint64_t parent() { return pick(2) ? kRootIno : dir; }
  FileModel* named(uint64_t parent, const std::string& name) {
    for (FileModel& f : files)
      if (!f.gone && f.now.names.count({parent, name})) return &f;
    return nullptr;
  }
  void changed(FileModel& f) { f.changes.push_back(rec.size()); }

  void create() {
    const uint64_t p = parent();
    const std::string name = "f" + std::to_string(pick(12));
    if (named(p, name)) return;
    const size_t at = rec.size();
    auto made = v.fs().mknod(p, name, S_IFREG | 0644, 0, {});
    REQUIRE_MESSAGE(made.ok(), made.status().message());
    FileModel f;
    f.id = static_cast<uint32_t>(files.size() + 1);
    f.ino = made->ino;
    f.now.names.insert({p, name});
    f.changes.push_back(at);
    files.push_back(std::move(f));
  }
  void write(FileModel& f) {
    const uint64_t first = pick(kMaxBlocks - 8), n = 1 + pick(8);
    AlignedBuffer buf(n * kBs);
    const uint32_t version = next_version++;
    for (uint64_t i = 0; i < n; ++i) fill_block(buf.data() + i * kBs, {f.id, static_cast<uint32_t>(first + i), version});
    changed(f);
    auto w = v.write(f.ino, first * kBs, buf.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    REQUIRE(*w == n * kBs);
    for (uint64_t i = 0; i < n; ++i) {
      f.now.blocks[first + i] = version;
      f.ever[first + i].insert(version);
    }
    f.now.size = std::max(f.now.size, (first + n) * kBs);
  }
  // The defragmenter's move (Volume::relocate_range with every written run moved): the bytes
  // stay what they were, so the model does not change, and no crash point of the move may show
  // the file otherwise.
  void relocate(FileModel& f) {
    const uint64_t first = pick(kMaxBlocks - 8), n = 1 + pick(16);
    AlignedBuffer buf(n * kBs);
    auto moved = v.relocate_range(f.ino, first * kBs, n * kBs, 1, buf.span());
    if (!moved.ok()) REQUIRE_MESSAGE(moved.status().code() == ENOSPC, moved.status().message());
    else if (moved->bytes_moved > 0) ++relocations;
  }
  int relocations = 0;  // moves that moved something
  void truncate(FileModel& f) {
    const uint64_t size = pick(kMaxBlocks) * kBs;
    changed(f);
    REQUIRE(v.set_size(f.ino, size).ok());
    f.now.size = size;
    for (auto it = f.now.blocks.begin(); it != f.now.blocks.end();)
      it = it->first * kBs >= size ? f.now.blocks.erase(it) : std::next(it);
  }
  void punch_or_allocate(FileModel& f) {
    const uint64_t first = pick(kMaxBlocks - 4), n = 1 + pick(4);
    const unsigned mode = std::array<unsigned, 4>{kFallocPunchHole | kFallocKeepSize, kFallocZeroRange,
                                                   kFallocKeepSize, 0}[pick(4)];
    changed(f);
    Status st = v.fallocate(f.ino, mode, first * kBs, n * kBs);
    REQUIRE_MESSAGE(st.ok(), st.message());
    if (mode & (kFallocPunchHole | kFallocZeroRange))
      for (uint64_t b = first; b < first + n; ++b) f.now.blocks.erase(b);
    if (!(mode & kFallocKeepSize)) f.now.size = std::max(f.now.size, (first + n) * kBs);
  }
  void rename(FileModel& f) {
    const auto [p, name] = *f.now.names.begin();
    const uint64_t np = parent();
    const std::string nn = "f" + std::to_string(pick(12));
    if (np == p && nn == name) return;
    FileModel* over = named(np, nn);
    if (over == &f) return;  // another name of the same file: rename does nothing
    changed(f);
    if (over) changed(*over);
    REQUIRE(v.fs().rename(p, name, np, nn, 0).ok());
    f.now.names.erase({p, name});
    f.now.names.insert({np, nn});
    if (over) {
      over->now.names.erase({np, nn});
      if (over->now.names.empty()) over->gone = true;
    }
  }
  // RENAME_EXCHANGE of one name of f and one of another live file.
  void exchange(FileModel& f) {
    std::vector<size_t> l = live();
    FileModel& g = files[l[pick(l.size())]];
    if (&g == &f) return;
    const auto a = *f.now.names.begin();
    const auto b = *g.now.names.begin();
    changed(f);
    changed(g);
    Status st = v.fs().rename(a.first, a.second, b.first, b.second, kRenameExchange);
    REQUIRE_MESSAGE(st.ok(), st.message());
    f.now.names.erase(a);
    g.now.names.erase(b);
    f.now.names.insert(b);
    g.now.names.insert(a);
  }
  void set_or_remove_xattr(FileModel& f) {
    const std::string& name = kXattrNames[pick(kXattrNames.size())];
    changed(f);
    if (f.now.xattrs.count(name) && pick(4) == 0) {
      Status st = v.fs().removexattr(f.ino, name);
      REQUIRE_MESSAGE(st.ok(), st.message());
      f.now.xattrs.erase(name);
      return;
    }
    const uint32_t version = next_version++;
    Status st = v.fs().setxattr(f.ino, name, xattr_value(name, version), 0);
    REQUIRE_MESSAGE(st.ok(), st.message());
    f.now.xattrs[name] = version;
    f.xattrs_ever[name].insert(version);
  }
  void link(FileModel& f) {
    const uint64_t np = parent();
    const std::string nn = "l" + std::to_string(pick(6));
    if (named(np, nn)) return;
    changed(f);
    REQUIRE(v.fs().link(f.ino, np, nn).ok());
    f.now.names.insert({np, nn});
  }
  void unlink(FileModel& f) {
    const auto [p, name] = *f.now.names.begin();
    changed(f);
    REQUIRE(v.fs().unlink(p, name).ok());
    f.now.names.erase({p, name});
    if (f.now.names.empty()) f.gone = true;
  }
  // Open handles: a file unlinked while one is open stays (an orphan) until the last close.
  std::vector<uint64_t> open_handles;
  void open_or_close(FileModel& f) {
    if (!open_handles.empty() && pick(2)) {
      const size_t i = pick(open_handles.size());
      REQUIRE(v.close_file(open_handles[i]).ok());
      open_handles.erase(open_handles.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
    v.open_file(f.ino);
    open_handles.push_back(f.ino);
  }
  void fsync(FileModel& f) {
    REQUIRE(v.fsync(f.ino, pick(2)).ok());
    f.durable.push_back({rec.size(), f.now});
  }
  void sync() {
    REQUIRE(v.sync().ok());
    for (FileModel& f : files)
      if (!f.gone) f.durable.push_back({rec.size(), f.now});
  }

  void step() {
    ++ops;
    std::vector<size_t> l = live();
    const uint64_t r = pick(100);
    if (l.empty() || r < 12) return create();
    FileModel& f = files[l[pick(l.size())]];
    if (r < 38) return write(f);
    if (r < 42) return relocate(f);
    if (r < 49) return truncate(f);
    if (r < 57) return punch_or_allocate(f);
    if (r < 63) return rename(f);
    if (r < 66) return exchange(f);
    if (r < 71) return set_or_remove_xattr(f);
    if (r < 74) return link(f);
    if (r < 78) return unlink(f);
    if (r < 82) return open_or_close(f);
    if (r < 94) return fsync(f);
    return sync();
  }
};

// The checks of one crash image (see the file comment).
std::string check_point(const std::string& path, const std::vector<FileModel>& files, size_t k) {
  if (std::string p = fsck_problem(path); !p.empty()) return "before mounting: " + p;
  auto opened = Volume::open(path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20,
                                    .queue_depth = 16, .cache_blocks = 512});
  if (!opened.ok()) return "mount: " + opened.status().message();
  Volume& v = **opened;
  auto d = v.fs().lookup(kRootIno, "d");
  if (!d.ok()) return "directory d is gone";
  // What each name shows now: (directory, name) -> (ino, size, block -> tag).
  struct Seen {
    uint64_t ino, size;
    std::map<uint64_t, uint32_t> versions;
    uint32_t file = 0;
    std::map<std::string, uint32_t> xattrs;
  };
  std::map<uint64_t, const FileModel*> by_ino;
  for (const FileModel& f : files) by_ino[f.ino] = &f;
  std::map<std::pair<uint64_t, std::string>, Seen> seen;
  for (const uint64_t dir : {kRootIno, d->ino}) {
    std::vector<DirEntry> entries;
    Status st = v.fs().readdir(dir, 0, [&](const DirEntry& e) {
      entries.push_back(e);
      return true;
    });
    if (!st.ok()) return "readdir: " + st.message();
    for (const DirEntry& e : entries) {
      if (e.ino == d->ino) continue;
      auto in = v.fs().getattr(e.ino);
      if (!in.ok()) return "getattr " + e.name + ": " + in.status().message();
      Seen s{e.ino, in->rec.size, {}, 0, {}};
      AlignedBuffer buf((s.size + kBs - 1) / kBs * kBs + kBs);
      auto r = v.read(e.ino, 0, {buf.data(), static_cast<size_t>(s.size)});
      if (!r.ok()) return "reading " + e.name + ": " + r.status().message();
      for (uint64_t b = 0; b * kBs < s.size; ++b) {
        std::string problem;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kBs, s.size - b * kBs));
        std::optional<BlockTag> t = read_tag(buf.data() + b * kBs, n, problem);
        if (!problem.empty()) return e.name + " block " + std::to_string(b) + ": " + problem;
        if (!t) continue;
        if (t->block != b) return e.name + " block " + std::to_string(b) + " holds block " + std::to_string(t->block);
        if (s.file && t->file != s.file) return e.name + " mixes blocks of two files";
        s.file = t->file;
        const FileModel& owner = files.at(t->file - 1);
        auto ever = owner.ever.find(b);
        if (ever == owner.ever.end() || !ever->second.count(t->version))
          return e.name + " block " + std::to_string(b) + " holds a version its file never wrote there";
        s.versions[b] = t->version;
      }
      auto names = v.fs().listxattr(e.ino);
      if (!names.ok()) return "listxattr " + e.name + ": " + names.status().message();
      auto owner = by_ino.find(e.ino);
      if (owner == by_ino.end()) return e.name + " is an inode the workload never made";
      for (const std::string& xn : *names) {
        auto value = v.fs().getxattr(e.ino, xn);
        if (!value.ok()) return "getxattr " + e.name + " " + xn + ": " + value.status().message();
        const uint32_t version = xattr_version(xn, *value);
        auto ever = owner->second->xattrs_ever.find(xn);
        if (!version || ever == owner->second->xattrs_ever.end() || !ever->second.count(version))
          return e.name + " xattr " + xn + " holds a value its file never set";
        s.xattrs[xn] = version;
      }
      seen[{dir, e.name}] = std::move(s);
    }
  }
  // Durability: the last state made durable before k, of files unchanged since.
  for (const FileModel& f : files) {
    const Snapshot* want = nullptr;
    size_t at = 0;
    for (const auto& [when, snap] : f.durable)
      if (when <= k) {
        want = &snap;
        at = when;
      }
    if (!want) continue;
    if (std::any_of(f.changes.begin(), f.changes.end(), [&](size_t c) { return c >= at && c < k; })) continue;
    for (const auto& name : want->names) {
      auto it = seen.find(name);
      const std::string label = "file " + std::to_string(f.id) + " (" + name.second + "), durable at " + std::to_string(at);
      if (it == seen.end()) return label + ": its name is gone";
      if (it->second.size != want->size)
        return label + ": size " + std::to_string(it->second.size) + ", fsync'd " + std::to_string(want->size);
      if (it->second.versions != want->blocks) return label + ": content differs from what was fsync'd";
      if (it->second.xattrs != want->xattrs) return label + ": extended attributes differ from what was fsync'd";
    }
  }
  Status closed = v.close();
  if (!closed.ok()) return "unmount: " + closed.message();
  opened->reset();
  if (std::string p = fsck_problem(path); !p.empty()) return "after mounting: " + p;
  return {};
}

}  // namespace

TEST_CASE("crash points: at every write and flush of a seeded workload, with unflushed writes lost, kept or kept in part") {
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kOps = 60;  // the sanitizer build runs a shorter log (each point costs ~10x)
#else
  constexpr int kOps = 300;
#endif
  // The long run (docs/reliability.md): CRASH_SEEDS seeds of CRASH_OPS operations each.
  const int ops = std::getenv("CRASH_OPS") ? std::atoi(std::getenv("CRASH_OPS")) : kOps;
  const uint64_t seeds = std::getenv("CRASH_SEEDS") ? std::strtoull(std::getenv("CRASH_SEEDS"), nullptr, 10) : 3;
  const std::string path = "/dev/shm/stablefs-crash-" + std::to_string(::getpid()) + ".img";
  struct Remove {
    std::string p;
    ~Remove() { ::unlink(p.c_str()); }
  } remove{path};
  REQUIRE(FileDevice::create_image(path, kImageBytes).ok());
  {
    auto dev = FileDevice::open(path, {});
    REQUIRE(dev.ok());
    REQUIRE(make_filesystem(**dev, {}).ok());
  }
  size_t points = 0, lost_all = 0;
  int relocations = 0;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    test::CrashRecorder rec;
    std::vector<uint8_t> base;
    std::vector<FileModel> files;
    {
      auto opened = Volume::open(path, {.bounce = BouncePolicy::kNever,
                                        .io_tap = &rec,
                                        .wrap_metadata_device = [&rec](BlockDevice& d) { return rec.wrap(d); }});
      REQUIRE_MESSAGE(opened.ok(), opened.status().message());
      Volume& v = **opened;
      auto d = v.fs().lookup(kRootIno, "d");
      if (!d.ok()) d = v.fs().mkdir(kRootIno, "d", 0755, {});
      REQUIRE(d.ok());
      // Files of the last seed go first, durably: the base image of this run.
      std::vector<DirEntry> old;
      for (uint64_t dir : {kRootIno, d->ino})
        REQUIRE(v.fs().readdir(dir, 0, [&](const DirEntry& e) {
                     if (e.ino != d->ino) old.push_back({e.name, dir, 0, 0});
                     return true;
                   }).ok());
      for (const DirEntry& e : old) REQUIRE(v.fs().unlink(e.ino, e.name).ok());
      REQUIRE(v.sync().ok());
      base = test::read_image_file(path, kImageBytes);
      rec.clear();  // the log starts where the base image stands
      Workload w(v, rec, seed, d->ino);
      while (w.ops < ops) w.step();
      relocations += w.relocations;
      for (uint64_t ino : w.open_handles) REQUIRE(v.close_file(ino).ok());
      files = std::move(w.files);
      REQUIRE(v.close().ok());
    }
    const std::vector<test::CrashRecorder::Entry> log = rec.log();
    std::mt19937_64 rng(seed * 7919);
    for (size_t k = 0; k <= log.size(); ++k) {
      for (double keep : {0.0, 1.0, 0.5}) {
        CAPTURE(k);
        CAPTURE(keep);
        test::write_image_file(path, test::CrashRecorder::image_at(base, log, k, keep, rng));
        const std::string problem = check_point(path, files, k);
        REQUIRE_MESSAGE(problem.empty(), "crash point " << k << " of " << log.size() << " (keep " << keep << "): " << problem);
        ++points;
        if (keep == 0.0) ++lost_all;
      }
    }
    MESSAGE("seed " << seed << ": " << log.size() << " writes and flushes, " << files.size() << " files");
  }
  MESSAGE("crash points checked: " << points << " (" << lost_all << " with every unflushed write lost); "
                                    << relocations << " moves of file data among them");
#if !defined(__SANITIZE_ADDRESS__)
  CHECK(relocations > 0);
  CHECK(points >= 2000);
#endif
}

}  // namespace stablefs
