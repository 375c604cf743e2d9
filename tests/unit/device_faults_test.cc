// Injected device faults (support/device_faults.h for metadata, support/fault_tap.h for data):
// at every write and flush of a workload's metadata, a device that dies, a torn write or a
// failed flush shuts the store down — the call that met it gets EIO, every later change gets
// EIO, nothing more reaches the device, reads of other files are still served, the health
// (stablefs stats) names the cause — and after a remount on a healthy device fsck is clean and
// everything fsync'd before the fault is intact. A failed metadata read fails its call alone.
// A failed or short data read or write fails its request alone and leaves every block either
// as it was or as written, with the filesystem still taking changes.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/file_device.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "fs/volume.h"
#include "support/device_faults.h"
#include "support/fault_tap.h"
#include "support/image_file.h"

namespace stablefs {
namespace {

constexpr uint32_t kBs = 4096;
constexpr uint64_t kImageBytes = 16u << 20;
constexpr uint64_t kMaxBlocks = 24;

using test::fsck_problem;
std::vector<uint8_t> read_image(const std::string& path) { return test::read_image_file(path, kImageBytes); }
void write_image(const std::string& path, const std::vector<uint8_t>& img) { test::write_image_file(path, img); }

// One image under /dev/shm, removed however the test ends.
struct ShmImage {
  std::string path = "/dev/shm/stablefs-faults-" + std::to_string(::getpid()) + ".img";
  ShmImage() {
    REQUIRE(FileDevice::create_image(path, kImageBytes).ok());
    auto dev = FileDevice::open(path, {});
    REQUIRE(dev.ok());
    REQUIRE(make_filesystem(**dev, {}).ok());
  }
  ~ShmImage() { ::unlink(path.c_str()); }
};

std::vector<uint8_t> pattern(uint64_t seed, size_t n) {
  std::vector<uint8_t> out(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t x = rng();
    std::memcpy(out.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return out;
}

Result<size_t> write_bytes(Volume& v, uint64_t ino, uint64_t off, const std::vector<uint8_t>& data) {
  AlignedBuffer buf(data.size());
  std::memcpy(buf.data(), data.data(), data.size());
  return v.write(ino, off, buf.span());
}

Result<std::vector<uint8_t>> read_file(Volume& v, uint64_t ino) {
  SFS_ASSIGN(Inode in, v.fs().getattr(ino));
  AlignedBuffer buf((in.rec.size + kBs - 1) / kBs * kBs + kBs);
  SFS_ASSIGN(size_t n, v.read(ino, 0, {buf.data(), static_cast<size_t>(in.rec.size)}));
  return std::vector<uint8_t>(buf.data(), buf.data() + n);
}

// The file written before every run (fsync'd): it must read back whatever the faults do.
constexpr const char* kKept = "kept";
const std::vector<uint8_t>& kept_content() {
  static const std::vector<uint8_t> c = pattern(4242, 16 * kBs);
  return c;
}

// A seeded workload of metadata changes and writes in the root directory. Stops at the first
// failing call and returns its error. Keeps what must survive: the content of each name at its
// last completed fsync or sync, for names unchanged since.
struct Workload {
  struct File {
    uint64_t ino = 0;
    std::vector<uint8_t> content;
  };
  Volume& v;
  std::mt19937_64 rng;
  std::map<std::string, File> files;
  std::map<std::string, std::vector<uint8_t>> durable;
  int ops_done = 0;

  Workload(Volume& vol, uint64_t seed) : v(vol), rng(seed) {}
  uint64_t pick(uint64_t n) { return rng() % n; }
  void changed(const std::string& name) { durable.erase(name); }

  Status step() {
    const std::string name = "w" + std::to_string(pick(8));
    auto it = files.find(name);
    const uint64_t r = pick(100);
    if (it == files.end()) {
      changed(name);
      SFS_ASSIGN(Inode made, v.fs().mknod(kRootIno, name, S_IFREG | 0644, 0, {}));
      files[name] = {made.ino, {}};
      return {};
    }
    File& f = it->second;
    if (r < 45) {
      const uint64_t first = pick(kMaxBlocks - 4), n = 1 + pick(4);
      const std::vector<uint8_t> data = pattern(rng(), n * kBs);
      changed(name);
      SFS_ASSIGN(size_t w, write_bytes(v, f.ino, first * kBs, data));
      if (w != data.size()) return Status::error(EIO, "short write of " + std::to_string(w) + " bytes");
      if (f.content.size() < (first + n) * kBs) f.content.resize((first + n) * kBs);
      std::memcpy(f.content.data() + first * kBs, data.data(), data.size());
      return {};
    }
    if (r < 55) {
      const uint64_t size = pick(kMaxBlocks) * kBs;
      changed(name);
      SFS_TRY(v.set_size(f.ino, size));
      f.content.resize(size);
      return {};
    }
    if (r < 65) {
      const std::string to = "w" + std::to_string(pick(8));
      if (to == name) return {};
      changed(name);
      changed(to);
      SFS_TRY(v.fs().rename(kRootIno, name, kRootIno, to, 0));
      files[to] = f;
      files.erase(name);
      return {};
    }
    if (r < 72) {
      changed(name);
      SFS_TRY(v.fs().unlink(kRootIno, name));
      files.erase(name);
      return {};
    }
    if (r < 75) {
      changed(name);
      SFS_TRY(v.fs().setxattr(f.ino, "user.tag", pattern(rng(), 64), 0));
      durable.erase(name);
      return {};
    }
    if (r < 92) {
      SFS_TRY(v.fsync(f.ino, pick(2)));
      durable[name] = f.content;
      return {};
    }
    SFS_TRY(v.sync());
    for (const auto& [n, file] : files) durable[n] = file.content;
    return {};
  }

  Status run(int ops) {
    for (; ops_done < ops; ++ops_done) SFS_TRY(step());
    return {};
  }
};

// After the run: a healthy remount finds a clean image holding kept and every durable name.
std::string check_after_remount(const std::string& path, const std::map<std::string, std::vector<uint8_t>>& durable) {
  if (std::string p = fsck_problem(path); !p.empty()) return "before mounting: " + p;
  auto opened = Volume::open(path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20});
  if (!opened.ok()) return "mount: " + opened.status().message();
  Volume& v = **opened;
  std::map<std::string, std::vector<uint8_t>> want = durable;
  want[kKept] = kept_content();
  for (const auto& [name, content] : want) {
    auto in = v.fs().lookup(kRootIno, name);
    if (!in.ok()) return name + " (fsync'd) is gone: " + in.status().message();
    auto got = read_file(v, in->ino);
    if (!got.ok()) return "reading " + name + ": " + got.status().message();
    if (*got != content) return name + " differs from what was fsync'd";
  }
  Status closed = v.close();
  if (!closed.ok()) return "unmount: " + closed.message();
  opened->reset();
  if (std::string p = fsck_problem(path); !p.empty()) return "after mounting: " + p;
  return {};
}

// The long run (docs/reliability.md): FAULT_SEEDS seeds of FAULT_OPS operations each.
int workload_ops() { return std::getenv("FAULT_OPS") ? std::atoi(std::getenv("FAULT_OPS")) : 300; }
std::vector<uint64_t> workload_seeds() {
  const uint64_t n = std::getenv("FAULT_SEEDS") ? std::strtoull(std::getenv("FAULT_SEEDS"), nullptr, 10) : 1;
  std::vector<uint64_t> seeds;
  for (uint64_t i = 0; i < n; ++i) seeds.push_back(17 + i);
  return seeds;
}

// The base image every run starts from: kept written and fsync'd, beside enough other names
// that the trees span many blocks (a small cache then reads them again), closed clean.
std::vector<uint8_t> make_base(const std::string& path) {
  auto opened = Volume::open(path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20});
  REQUIRE(opened.ok());
  Volume& v = **opened;
  for (int i = 0; i < 400; ++i) REQUIRE(v.fs().mknod(kRootIno, "pad" + std::to_string(i), S_IFREG | 0644, 0, {}).ok());
  auto made = v.fs().mknod(kRootIno, kKept, S_IFREG | 0644, 0, {});
  REQUIRE(made.ok());
  auto w = write_bytes(v, made->ino, 0, kept_content());
  REQUIRE((w.ok() && *w == kept_content().size()));
  REQUIRE(v.fsync(made->ino, false).ok());
  REQUIRE(v.close().ok());
  return read_image(path);
}

enum class MetaFault { kDeadDevice, kTornWrite, kFailedFlush };

// Runs the workload with fault armed at the n-th metadata write (or flush) and checks what the
// file comment says. Empty when all holds.
std::string run_with_metadata_fault(const std::string& path, const std::vector<uint8_t>& base, uint64_t seed,
                                    MetaFault fault, uint64_t n) {
  write_image(path, base);
  test::DeviceFaults faults;
  std::map<std::string, std::vector<uint8_t>> durable;
  {
    auto opened = Volume::open(path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20, .cache_blocks = 4096,
                                      .wrap_metadata_device = [&faults](BlockDevice& d) { return faults.wrap(d); }});
    if (!opened.ok()) return "mount: " + opened.status().message();
    Volume& v = **opened;
    switch (fault) {
      case MetaFault::kDeadDevice: faults.fail_writes_from(n); break;
      case MetaFault::kTornWrite: faults.tear_write(n); break;
      case MetaFault::kFailedFlush: faults.fail_flush(n); break;
    }
    Workload w(v, seed);
    Status st = w.run(workload_ops());
    if (!st.ok() && faults.injected() == 0) return "a call failed with no fault injected: " + st.message();
    if (st.ok()) st = v.sync();  // the fault may lie in the last commit
    if (faults.injected() == 0) return {};  // the workload ended before the n-th write: nothing to check
    if (st.ok()) return "an injected fault went unreported";
    if (st.code() != EIO) return "the call that met the fault failed with errno " + std::to_string(st.code()) + ": " + st.message();
    const FsHealth h = v.fs().health();
    if (!h.shut_down || h.shutdown_cause.empty()) return "the store did not shut down after: " + st.message();
    // Every later change fails with EIO; reads are still served.
    auto made = v.fs().mknod(kRootIno, "after", S_IFREG | 0644, 0, {});
    if (made.ok() || made.status().code() != EIO) return "a create after the shutdown did not fail with EIO";
    auto kept = v.fs().lookup(kRootIno, kKept);
    if (!kept.ok()) return "lookup of kept after the shutdown: " + kept.status().message();
    auto wr = write_bytes(v, kept->ino, 0, pattern(1, kBs));
    if (wr.ok() || wr.status().code() != EIO) return "a write after the shutdown did not fail with EIO";
    auto content = read_file(v, kept->ino);
    if (!content.ok()) return "reading kept after the shutdown: " + content.status().message();
    if (*content != kept_content()) return "kept reads back changed after the shutdown";
    if (v.close().ok()) return "unmount after a shutdown reported success";
    if (faults.device_writes_after_fault() != 0)
      return std::to_string(faults.device_writes_after_fault()) + " writes or flushes reached the device after the fault";
    durable = w.durable;
  }
  return check_after_remount(path, durable);
}

}  // namespace

TEST_CASE("faults: a dead device, a torn write or a failed flush at every metadata write shuts the store down and loses nothing fsync'd") {
  ShmImage img;
  const std::vector<uint8_t> base = make_base(img.path);
  std::map<MetaFault, uint64_t> injected;
  for (const uint64_t seed : workload_seeds()) {
    CAPTURE(seed);
    write_image(img.path, base);
    // How many metadata writes and flushes the workload makes with no fault.
    uint64_t writes = 0, flushes = 0;
    {
      test::DeviceFaults counting;
      auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20, .cache_blocks = 4096,
                                            .wrap_metadata_device = [&counting](BlockDevice& d) { return counting.wrap(d); }});
      REQUIRE(opened.ok());
      Workload w(**opened, seed);
      const uint64_t w0 = counting.writes(), f0 = counting.flushes();
      REQUIRE(w.run(workload_ops()).ok());
      REQUIRE((*opened)->sync().ok());
      writes = counting.writes() - w0;
      flushes = counting.flushes() - f0;
      REQUIRE((*opened)->close().ok());
    }
    REQUIRE(writes >= 20);
    REQUIRE(flushes >= 10);
    for (const auto& [fault, count] : {std::pair{MetaFault::kDeadDevice, writes}, std::pair{MetaFault::kTornWrite, writes},
                                       std::pair{MetaFault::kFailedFlush, flushes}}) {
      for (uint64_t n = 0; n < count; ++n) {
        CAPTURE(static_cast<int>(fault));
        CAPTURE(n);
        const std::string problem = run_with_metadata_fault(img.path, base, seed, fault, n);
        REQUIRE_MESSAGE(problem.empty(), problem);
        ++injected[fault];
      }
    }
  }
  MESSAGE("metadata faults injected: " << injected[MetaFault::kDeadDevice] << " dead device, "
                                       << injected[MetaFault::kTornWrite] << " torn writes, "
                                       << injected[MetaFault::kFailedFlush] << " failed flushes");
}

TEST_CASE("faults: a failed metadata read fails its call alone; the filesystem goes on or shuts down cleanly") {
  ShmImage img;
  const std::vector<uint8_t> base = make_base(img.path);
  uint64_t went_on = 0, shut = 0;
  for (const uint64_t seed : workload_seeds()) {
    CAPTURE(seed);
    write_image(img.path, base);
    uint64_t reads = 0;
    {
      test::DeviceFaults counting;
      // A small cache: the workload reads metadata from the device again and again.
      auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20, .cache_blocks = 8,
                                            .wrap_metadata_device = [&counting](BlockDevice& d) { return counting.wrap(d); }});
      REQUIRE(opened.ok());
      Workload w(**opened, seed);
      const uint64_t r0 = counting.reads();
      REQUIRE(w.run(workload_ops()).ok());
      reads = counting.reads() - r0;
      REQUIRE((*opened)->close().ok());
    }
    REQUIRE(reads >= 10);
    for (uint64_t n = 0; n < reads; ++n) {
      CAPTURE(n);
      write_image(img.path, base);
      test::DeviceFaults faults;
      std::map<std::string, std::vector<uint8_t>> durable;
      {
        auto opened = Volume::open(img.path, {.bounce = BouncePolicy::kNever, .bounce_pool_bytes = 1u << 20, .cache_blocks = 8,
                                              .wrap_metadata_device = [&faults](BlockDevice& d) { return faults.wrap(d); }});
        REQUIRE(opened.ok());
        Volume& v = **opened;
        faults.fail_reads(n, 1);
        Workload w(v, seed);
        Status st = w.run(workload_ops());
        if (faults.injected() == 0) continue;
        REQUIRE_MESSAGE(!st.ok(), "an injected read failure went unreported");
        REQUIRE_MESSAGE(st.code() == EIO, st.message());
        faults.disarm();
        durable = w.durable;
        if (v.fs().health().shut_down) {
          ++shut;
          CHECK(!v.close().ok());
        } else {
          // Nothing was changed: the filesystem takes changes again and unmounts clean.
          ++went_on;
          auto made = v.fs().mknod(kRootIno, "after", S_IFREG | 0644, 0, {});
          REQUIRE_MESSAGE(made.ok(), made.status().message());
          Status closed = v.close();
          REQUIRE_MESSAGE(closed.ok(), closed.message());
        }
      }
      const std::string problem = check_after_remount(img.path, durable);
      REQUIRE_MESSAGE(problem.empty(), problem);
    }
  }
  MESSAGE("metadata read faults injected: " << went_on + shut << " (" << went_on << " failed their call alone, " << shut
                                            << " met inside an update and shut the store down)");
  CHECK(went_on > 0);
}

TEST_CASE("faults: a failed or short data read or write fails its request alone") {
  // Through the ring and with the I/O made by the request's own thread (as on zram).
  for (SubmitPolicy submit : {SubmitPolicy::kRing, SubmitPolicy::kInline}) {
    CAPTURE(submit_policy_name(submit));
    ShmImage img;
    (void)make_base(img.path);
    test::FaultTap tap;
    auto opened = Volume::open(
        img.path, {.bounce = BouncePolicy::kNever, .submit = submit, .bounce_pool_bytes = 1u << 20, .io_tap = &tap});
    REQUIRE(opened.ok());
    Volume& v = **opened;
    auto made = v.fs().mknod(kRootIno, "data", S_IFREG | 0644, 0, {});
    REQUIRE(made.ok());
    const uint64_t ino = made->ino;
    std::vector<uint8_t> content = pattern(1, kMaxBlocks * kBs);
    auto w0 = write_bytes(v, ino, 0, content);
    REQUIRE((w0.ok() && *w0 == content.size()));
    REQUIRE(v.fsync(ino, false).ok());
    std::mt19937_64 rng(5);
    int failed_writes = 0, short_writes = 0, failed_reads = 0;
    const int rounds = 60 * static_cast<int>(workload_seeds().size());
    for (int round = 0; round < rounds; ++round) {
      CAPTURE(round);
      const uint64_t first = rng() % (kMaxBlocks - 4), n = 1 + rng() % 4;
      const std::vector<uint8_t> data = pattern(rng(), n * kBs);
      const int kind = round % 3;
      if (kind == 0) tap.fail_writes(1, EIO);
      if (kind == 1) tap.tear_writes(1);
      if (kind == 2) tap.fail_reads_any(1, EIO);
      if (kind < 2) {
        auto w = write_bytes(v, ino, first * kBs, data);
        REQUIRE_MESSAGE((!w.ok() || *w < data.size()), "a write met an injected fault and reported all of it written");
        if (!w.ok()) CHECK(w.status().code() == EIO);
        const size_t done = w.ok() ? *w : 0;
        // Blocks the write reported are new; every other block of the request is old or new.
        auto got = read_file(v, ino);
        REQUIRE_MESSAGE(got.ok(), got.status().message());
        REQUIRE(got->size() == content.size());
        for (uint64_t b = 0; b < n; ++b) {
          const uint8_t* now = got->data() + (first + b) * kBs;
          const bool is_new = std::memcmp(now, data.data() + b * kBs, kBs) == 0;
          const bool is_old = std::memcmp(now, content.data() + (first + b) * kBs, kBs) == 0;
          if (b * kBs < done) REQUIRE_MESSAGE(is_new, "block " << first + b << " was reported written but is not");
          else REQUIRE_MESSAGE((is_new || is_old), "block " << first + b << " is neither what it was nor what was written");
          if (is_new) std::memcpy(content.data() + (first + b) * kBs, now, kBs);
        }
        for (uint64_t b = 0; b < kMaxBlocks; ++b)
          if (b < first || b >= first + n)
            REQUIRE_MESSAGE(std::memcmp(got->data() + b * kBs, content.data() + b * kBs, kBs) == 0,
                            "block " << b << " outside the failed write changed");
        (kind == 0 ? failed_writes : short_writes)++;
      } else {
        AlignedBuffer buf(n * kBs);
        auto r = v.read(ino, first * kBs, buf.span());
        REQUIRE(!r.ok());
        CHECK(r.status().code() == EIO);
        ++failed_reads;
      }
      REQUIRE(tap.pending_faults() == 0);
      // The next request, with no fault, succeeds: only the affected one failed.
      auto again = write_bytes(v, ino, first * kBs, data);
      REQUIRE_MESSAGE((again.ok() && *again == data.size()), (again.ok() ? "short" : again.status().message()));
      std::memcpy(content.data() + first * kBs, data.data(), data.size());
      REQUIRE(!v.fs().health().shut_down);
    }
    auto got = read_file(v, ino);
    REQUIRE(got.ok());
    CHECK(*got == content);
    REQUIRE(v.fsync(ino, false).ok());
    REQUIRE(v.close().ok());
    opened->reset();
    CHECK(fsck_problem(img.path).empty());
    MESSAGE("data faults injected: " << failed_writes << " failed writes, " << short_writes << " short writes, "
                                     << failed_reads << " failed reads");
  }
}

}  // namespace stablefs
