// The data path proven at library level (issue 3): Volume over real O_DIRECT devices — image
// files in /var/tmp, loop devices, /dev/zram0 — with both bounce policies.
//
//   data path: model ...        random operations checked against an in-memory model file
//   data path: stability ...    the source buffer scribbled over while its writes are in flight
//   data path: corruption ...   a flipped byte on the device is EIO naming inode and offset
//   data path: ENOSPC ...       a write that runs out of space reports exactly what it wrote
//   data path: writes and reads larger than the whole bounce pool / concurrent ... / offsets
//                               pool exhaustion, size changes racing I/O, 64-bit limits
//   data path: policy ...       bounce=auto follows queue/stable_writes, shown by the counters
//   data path: crash ...        device snapshots between synchronous operations mount clean
//
// Runtime (Debug + ASan/UBSan, this 2-core machine): about 75 s for all of them when the
// machine is otherwise idle, 45-50 s of it the 100,000-operation model test; up to ~110 s
// when other jobs share the CPUs and the disk.
// Devices are created per test and always removed (RAII guards), and every wait is bounded.
// A test skips with a MESSAGE only when a facility (losetup, zram) is absent or busy.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bounce/checksum.h"
#include "fs/inode/extent_map.h"
#include "fs/tools/fsck.h"
#include "support/formatted_image.h"
#include "fs/tools/mkfs.h"
#include "fs/volume.h"

namespace stablefs {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------------------------------------
// Devices

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// A sparse image file under /var/tmp, removed however the test ends.
struct ImageFile {
  explicit ImageFile(uint64_t bytes, const char* tag = "img") {
    std::string tmpl = "/var/tmp/stablefs-dp-";
    tmpl += tag;
    tmpl += "-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = ::mkstemp(name.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name.data();
    REQUIRE(FileDevice::create_image(path, bytes).ok());
  }
  ~ImageFile() { ::unlink(path.c_str()); }
  // Removes the file now (a loop device attached to it keeps it alive until detached).
  void unlink_now() { ::unlink(path.c_str()); }
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  std::string path;
};

bool have_loop_control() { return ::access("/dev/loop-control", R_OK | W_OK) == 0; }

// A loop device over an image file, detached however the test ends. It is configured with
// LO_FLAGS_AUTOCLEAR and held open by this guard, so even a process killed by a sanitizer
// abort (which runs no destructors) leaves no device behind: the kernel detaches it when the
// last opener goes, and the image (unlinked by the caller once attached) then disappears
// with it. Declare it before any Volume on it, so the volume is closed first. dev is empty
// when attaching failed.
struct LoopDevice {
  explicit LoopDevice(const std::string& image) {
    int ctl = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) return;
    int backing = ::open(image.c_str(), O_RDWR | O_CLOEXEC);
    for (int attempt = 0; backing >= 0 && attempt < 20 && dev.empty(); ++attempt) {
      int n = ::ioctl(ctl, LOOP_CTL_GET_FREE);
      if (n < 0) break;
      std::string path = "/dev/loop" + std::to_string(n);
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;
      loop_config cfg{};
      cfg.fd = static_cast<uint32_t>(backing);
      cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
      if (::ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
        dev = path;
        hold = fd;
      } else {
        ::close(fd);  // taken by someone else meanwhile (EBUSY): ask for another
      }
    }
    if (backing >= 0) ::close(backing);
    ::close(ctl);
  }
  ~LoopDevice() {
    if (!saved_stable_writes.empty()) write_text(queue_attr("stable_writes"), saved_stable_writes);
    if (hold < 0) return;
    // Detach now (with other openers left, e.g. udev probing, LOOP_CLR_FD only marks it
    // autoclear and the kernel detaches at their last close).
    (void)::ioctl(hold, LOOP_CLR_FD, 0);
    ::close(hold);
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  std::string queue_attr(const char* attr) const { return "/sys/block/" + dev.substr(5) + "/queue/" + attr; }
  bool set_stable_writes(const char* v) {
    std::string old = read_text(queue_attr("stable_writes"));
    if (!write_text(queue_attr("stable_writes"), v)) return false;
    if (saved_stable_writes.empty()) saved_stable_writes = old;
    return read_text(queue_attr("stable_writes")) == v;
  }
  std::string dev;
  int hold = -1;
  std::string saved_stable_writes;
};

void make_fs(const std::string& path, bool checksums = true) {
  auto dev = FileDevice::open(path, {});
  REQUIRE_MESSAGE(dev.ok(), dev.status().message());
  MkfsOptions mo;
  mo.data_checksums = checksums;
  auto sb = make_filesystem(**dev, mo);
  REQUIRE_MESSAGE(sb.ok(), sb.status().message());
}

std::unique_ptr<Volume> open_volume(const std::string& path, VolumeOptions opts) {
  auto v = Volume::open(path, opts);
  REQUIRE_MESSAGE(v.ok(), v.status().message());
  return std::move(v).value();
}

using test::expect_fsck_clean;  // fsck -n must find nothing at all

uint64_t create_file(Volume& v, const char* name) {
  auto f = v.fs().mknod(kRootIno, name, S_IFREG | 0644, 0, {});
  REQUIRE_MESSAGE(f.ok(), f.status().message());
  return f->ino;
}

// ---------------------------------------------------------------------------------------------
// Data

// Fast pseudo-random bytes (xorshift64*), a word at a time.
struct FastRandom {
  explicit FastRandom(uint64_t seed) : s(seed | 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  void fill(uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w = next();
      std::memcpy(p + i, &w, 8);
    }
    if (i < n) {
      uint64_t w = next();
      std::memcpy(p + i, &w, n - i);
    }
  }
  uint64_t s;
};

const uint8_t* zero_page() {
  static const std::vector<uint8_t> zeros(1 << 16, 0);
  return zeros.data();
}

bool all_zero(const uint8_t* p, size_t n) {
  while (n > 0) {
    size_t k = std::min<size_t>(n, 1 << 16);
    if (std::memcmp(p, zero_page(), k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

// The index of the first byte where a and b differ, or n.
size_t first_difference(const uint8_t* a, const uint8_t* b, size_t n) {
  if (n == 0) return 0;
  if (std::memcmp(a, b, n) == 0) return n;
  size_t i = 0;
  while (a[i] == b[i]) ++i;
  return i;
}

// Reads [0, model.size()) of ino back in 4 MiB pieces and compares it with the model.
void verify_whole_file(Volume& v, uint64_t ino, const std::vector<uint8_t>& model) {
  auto attr = v.fs().getattr(ino);
  REQUIRE(attr.ok());
  REQUIRE(attr->rec.size == model.size());
  constexpr size_t kPiece = 4u << 20;
  AlignedBuffer buf(kPiece);
  for (uint64_t off = 0; off < model.size(); off += kPiece) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kPiece, model.size() - off));
    auto r = v.read(ino, off, buf.span());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    REQUIRE(*r == want);
    size_t d = first_difference(buf.data(), model.data() + off, want);
    REQUIRE_MESSAGE(d == want, "file differs from the model at byte ", off + d);
  }
  std::vector<uint8_t> past(16);
  auto r = v.read(ino, model.size(), past);
  REQUIRE(r.ok());
  CHECK(*r == 0);
}

}  // namespace

// =============================================================================================
// 1. Model test

namespace {

enum ModelOp { kOpWrite, kOpRead, kOpSetSize, kOpFalloc, kOpFallocKeep, kOpPunch, kOpZero, kOpZeroKeep, kOpSeek, kOpSync, kOpCount };
const char* const kOpNames[kOpCount] = {"write", "read", "set_size", "falloc", "falloc_keep", "punch",
                                        "zero_range", "zero_range_keep", "seek", "sync"};

struct ModelFigures {
  uint64_t ops = 0;
  uint64_t per_op[kOpCount] = {};
  uint64_t bytes_written = 0, bytes_read = 0;
  uint64_t unaligned_memory = 0, unaligned_range = 0;
  uint64_t largest = 0;
  double seconds = 0;
  IoStatsSnapshot io;
};

struct ModelRun {
  static constexpr uint64_t kSpan = 64ull << 20;  // file offsets stay below this
  static constexpr uint32_t kBlock = 4096;

  ModelRun(uint64_t seed, size_t max_size) : rng(seed), data(seed * 7919 + 1), max_size(max_size) {
    scratch = AlignedBuffer(max_size + 2 * kBlock);
  }

  // Log-uniform in [1, max]: most sizes are small, a few reach max.
  uint64_t log_uniform(uint64_t max) {
    std::uniform_real_distribution<double> u(0.0, std::log(static_cast<double>(max) + 1.0));
    return std::clamp<uint64_t>(static_cast<uint64_t>(std::exp(u(rng))), 1, max);
  }
  uint64_t uniform(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); }
  bool chance(unsigned percent) { return uniform(0, 99) < percent; }

  // A random range of the file: aligned or not, near the end of file or anywhere.
  std::pair<uint64_t, uint64_t> pick_range(bool* aligned) {
    // One operation in eight draws from the full [1, max_size]; the rest from [1, max_size / 8]
    // (see model_max_op() for why).
    uint64_t len = log_uniform(chance(12) ? max_size : std::max<size_t>(1, max_size / 8));
    *aligned = chance(40);
    if (*aligned) len = std::min<uint64_t>(max_size, (len + kBlock - 1) / kBlock * kBlock);
    uint64_t off;
    unsigned where = static_cast<unsigned>(uniform(0, 99));
    uint64_t size = model.size();
    if (where < 55) {
      off = uniform(0, kSpan - len);
    } else if (where < 85) {  // around the end of file
      uint64_t delta = log_uniform(1u << 20);
      off = chance(50) && size > delta ? size - delta : size + delta / 8;
    } else {  // a small, densely overwritten region
      off = uniform(0, 256u << 10);
    }
    off = std::min(off, kSpan - len);
    if (*aligned) off = off / kBlock * kBlock;
    return {off, len};
  }

  // Caller memory: aligned, aligned to 512 only, or not aligned at all.
  uint8_t* pick_memory(ModelFigures& fig) {
    unsigned m = static_cast<unsigned>(uniform(0, 99));
    size_t shift = 0;
    if (m >= 55 && m < 70) shift = 512 * uniform(1, 7);
    else if (m >= 70) shift = uniform(1, kBlock - 1);
    if (shift % 512 != 0) ++fig.unaligned_memory;
    return scratch.data() + shift;
  }

  void grow_model(uint64_t to) {
    if (to > model.size()) model.resize(static_cast<size_t>(to), 0);
  }
  void zero_model(uint64_t off, uint64_t end) {
    end = std::min<uint64_t>(end, model.size());
    if (off < end) std::memset(model.data() + off, 0, static_cast<size_t>(end - off));
  }

  void check_seek(Volume& v, uint64_t ino) {
    const uint64_t size = model.size();
    if (size == 0) {
      auto d = v.seek_data(ino, 0);
      REQUIRE_FALSE(d.ok());
      CHECK(d.status().code() == ENXIO);
      return;
    }
    const uint64_t x = uniform(0, size - 1);
    CAPTURE(x);
    CAPTURE(size);
    // SEEK_DATA(x) = d: [x, d) is a hole and reads as zeros; ENXIO: no data at all past x.
    auto d = v.seek_data(ino, x);
    if (d.ok()) {
      REQUIRE(*d >= x);
      REQUIRE(*d < size);
      REQUIRE_MESSAGE(all_zero(model.data() + x, static_cast<size_t>(*d - x)), "SEEK_DATA skipped data");
    } else {
      REQUIRE_MESSAGE(d.status().code() == ENXIO, d.status().message());
      REQUIRE_MESSAGE(all_zero(model.data() + x, static_cast<size_t>(size - x)), "SEEK_DATA missed data (ENXIO)");
    }
    // SEEK_HOLE(x) = h: x <= h <= size, and a hole starting inside the file reads as zeros
    // to the end of its block.
    auto h = v.seek_hole(ino, x);
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    REQUIRE(*h >= x);
    REQUIRE(*h <= size);
    if (*h < size) {
      uint64_t block_end = std::min<uint64_t>(size, (*h / kBlock + 1) * kBlock);
      REQUIRE_MESSAGE(all_zero(model.data() + *h, static_cast<size_t>(block_end - *h)), "SEEK_HOLE landed on data");
    }
  }

  void step(Volume& v, uint64_t ino, ModelFigures& fig) {
    // Weights per mille: writes and reads dominate; every space operation is well
    // represented; syncs (a journal commit and a device flush each, the slowest operation on
    // a busy disk) are rare.
    static constexpr unsigned kWeights[kOpCount] = {332, 332, 60, 40, 40, 70, 40, 30, 53, 3};
    static_assert(kWeights[0] + kWeights[1] + kWeights[2] + kWeights[3] + kWeights[4] + kWeights[5] + kWeights[6] +
                      kWeights[7] + kWeights[8] + kWeights[9] ==
                  1000);
    unsigned pick = static_cast<unsigned>(uniform(0, 999)), acc = 0;
    ModelOp op = kOpWrite;
    for (unsigned i = 0; i < kOpCount; ++i) {
      acc += kWeights[i];
      if (pick < acc) {
        op = static_cast<ModelOp>(i);
        break;
      }
    }
    ++fig.ops;
    ++fig.per_op[op];
    bool aligned = false;
    const auto range = pick_range(&aligned);
    const uint64_t off = range.first, len = range.second;
    if (!aligned) ++fig.unaligned_range;
    fig.largest = std::max(fig.largest, len);
    CAPTURE(fig.ops);
    CAPTURE(kOpNames[op]);
    CAPTURE(off);
    CAPTURE(len);
    switch (op) {
      case kOpWrite: {
        uint8_t* p = pick_memory(fig);
        data.fill(p, static_cast<size_t>(len));
        auto w = v.write(ino, off, {p, static_cast<size_t>(len)});
        REQUIRE_MESSAGE(w.ok(), w.status().message());
        REQUIRE(*w == len);
        grow_model(off + len);
        std::memcpy(model.data() + off, p, static_cast<size_t>(len));
        fig.bytes_written += len;
        break;
      }
      case kOpRead: {
        uint8_t* p = pick_memory(fig);
        std::memset(p, 0xA5, static_cast<size_t>(len));
        const uint64_t expect = off >= model.size() ? 0 : std::min<uint64_t>(len, model.size() - off);
        auto r = v.read(ino, off, {p, static_cast<size_t>(len)});
        REQUIRE_MESSAGE(r.ok(), r.status().message());
        REQUIRE(*r == expect);
        size_t d = first_difference(p, model.data() + off, static_cast<size_t>(expect));
        REQUIRE_MESSAGE(d == expect, "read differs from the model at byte ", off + d);
        // Nothing is written past what was read.
        for (uint64_t i = expect; i < len; ++i)
          if (p[i] != 0xA5) REQUIRE_MESSAGE(false, "read wrote past its result at byte ", off + i);
        fig.bytes_read += expect;
        break;
      }
      case kOpSetSize: {
        uint64_t size = model.size();
        uint64_t to = chance(50) ? uniform(0, kSpan) : (chance(50) && size > len ? size - len : std::min(kSpan, size + len));
        if (!aligned && chance(50)) to = to / kBlock * kBlock;
        CAPTURE(to);
        Status st = v.set_size(ino, to);
        REQUIRE_MESSAGE(st.ok(), st.message());
        model.resize(static_cast<size_t>(to), 0);
        break;
      }
      case kOpFalloc:
      case kOpFallocKeep: {
        Status st = v.fallocate(ino, op == kOpFallocKeep ? unsigned{kFallocKeepSize} : 0u, off, len);
        REQUIRE_MESSAGE(st.ok(), st.message());
        if (op == kOpFalloc) grow_model(off + len);
        break;
      }
      case kOpPunch: {
        Status st = v.fallocate(ino, kFallocPunchHole | kFallocKeepSize, off, len);
        REQUIRE_MESSAGE(st.ok(), st.message());
        zero_model(off, off + len);
        break;
      }
      case kOpZero:
      case kOpZeroKeep: {
        Status st = v.fallocate(ino, kFallocZeroRange | (op == kOpZeroKeep ? unsigned{kFallocKeepSize} : 0u), off, len);
        REQUIRE_MESSAGE(st.ok(), st.message());
        if (op == kOpZero) grow_model(off + len);
        zero_model(off, off + len);
        break;
      }
      case kOpSeek:
        check_seek(v, ino);
        break;
      case kOpSync: {
        Status st = v.sync();
        REQUIRE_MESSAGE(st.ok(), st.message());
        break;
      }
      case kOpCount:
        break;
    }
  }

  std::mt19937_64 rng;
  FastRandom data;
  size_t max_size;
  AlignedBuffer scratch;
  std::vector<uint8_t> model;
};

// One configuration: `ops` operations on a fresh filesystem at path, a clean close, fsck,
// reopen and whole-file verification half way and at the end.
ModelFigures run_model(const std::string& path, BouncePolicy policy, uint64_t ops, uint64_t seed, size_t max_size,
                       bool checksums = true, SubmitPolicy submit = SubmitPolicy::kAuto) {
  ModelFigures fig;
  const auto t0 = Clock::now();
  make_fs(path, checksums);
  ModelRun run(seed, max_size);
  auto vol = open_volume(path, {.bounce = policy, .submit = submit});
  REQUIRE(vol->bounce_decision().bounce == (policy == BouncePolicy::kAlways));
  if (submit == SubmitPolicy::kInline) REQUIRE(vol->submit_decision().mode == IoQueue::Mode::kInline);
  const uint64_t ino = create_file(*vol, "model");
  IoStatsSnapshot io{};
  auto add_io = [&](const IoStatsSnapshot& s) {
    io.bounced_ios += s.bounced_ios;
    io.bounced_bytes += s.bounced_bytes;
    io.zero_copy_ios += s.zero_copy_ios;
    io.zero_copy_bytes += s.zero_copy_bytes;
    io.checksum_failures += s.checksum_failures;
    io.device_errors += s.device_errors;
  };
  for (int half = 0; half < 2; ++half) {
    const uint64_t n = half == 0 ? ops / 2 : ops - ops / 2;
    for (uint64_t i = 0; i < n; ++i) run.step(*vol, ino, fig);
    CHECK(vol->mapper().reserved_blocks() == 0);
    add_io(vol->io_stats());
    REQUIRE(vol->close().ok());
    vol.reset();
    expect_fsck_clean(path);
    vol = open_volume(path, {.bounce = policy, .submit = submit});
    verify_whole_file(*vol, ino, run.model);
    CHECK(vol->mapper().reserved_blocks() == 0);
  }
  add_io(vol->io_stats());
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(path);
  CHECK(io.checksum_failures == 0);
  CHECK(io.device_errors == 0);
  if (policy == BouncePolicy::kAlways) {
    CHECK(io.zero_copy_ios == 0);
    CHECK(io.bounced_ios > 0);
  } else {
    CHECK(io.bounced_ios == 0);
    CHECK(io.zero_copy_ios > 0);
  }
  fig.io = io;
  fig.seconds = seconds_since(t0);
  return fig;
}

void report_model(const char* name, const ModelFigures& f) {
  std::string ops;
  for (unsigned i = 0; i < kOpCount; ++i) ops += std::string(" ") + kOpNames[i] + "=" + std::to_string(f.per_op[i]);
  char line[512];
  std::snprintf(line, sizeof line,
                "%s: %llu ops in %.1f s (%s); written %.1f MiB, read %.1f MiB, largest op %llu bytes, "
                "unaligned ranges %llu, unaligned memory %llu; device I/O bounced %llu / zero-copy %llu",
                name, static_cast<unsigned long long>(f.ops), f.seconds, ops.c_str() + 1, f.bytes_written / 1048576.0,
                f.bytes_read / 1048576.0, static_cast<unsigned long long>(f.largest),
                static_cast<unsigned long long>(f.unaligned_range), static_cast<unsigned long long>(f.unaligned_memory),
                static_cast<unsigned long long>(f.io.bounced_ios), static_cast<unsigned long long>(f.io.zero_copy_ios));
  MESSAGE(line);
}

// Operation count per configuration, and the largest operation. The issue asks for 100,000
// operations in total: 25,000 in each of the four configurations (bounce always/never x image
// file/loop device). Sizes run from 1 byte to 4 MiB, log-uniform; drawn from the full range
// for every operation, the four configurations moved ~2.2 GB each and took ~86 s under ASan
// on this 2-core machine, too much for the test budget, so per the guidance the op
// count stays and the sizes shrink: one operation in eight is log-uniform in [1, 4 MiB], the
// others in [1, 512 KiB] (about a quarter of the bytes). STABLEFS_MODEL_OPS and
// STABLEFS_MODEL_MAX override the per-configuration count and the largest size.
uint64_t model_ops_per_config() {
  if (const char* e = std::getenv("STABLEFS_MODEL_OPS")) return std::strtoull(e, nullptr, 10);
  return 25000;
}
size_t model_max_op() {
  if (const char* e = std::getenv("STABLEFS_MODEL_MAX")) return std::strtoull(e, nullptr, 10);
  return 4u << 20;
}

}  // namespace

TEST_CASE("data path: model test on an image file, bounce=always and bounce=never") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    ImageFile img(512ull << 20, "model");
    std::string name = std::string("image file, bounce=") + bounce_policy_name(policy);
    CAPTURE(name);
    ModelFigures f = run_model(img.path, policy, model_ops_per_config(), policy == BouncePolicy::kAlways ? 1 : 2, model_max_op());
    report_model(name.c_str(), f);
  }
}

// Not part of the 100,000: with data checksums off, written blocks are overwritten in place
// (no out-of-place remap), a path of its own.
TEST_CASE("data path: model test without data checksums (overwrites in place)") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    ImageFile img(512ull << 20, "model-nocsum");
    std::string name = std::string("image file, no data checksums, bounce=") + bounce_policy_name(policy);
    CAPTURE(name);
    ModelFigures f = run_model(img.path, policy, 3000, policy == BouncePolicy::kAlways ? 5 : 6, model_max_op(), false);
    report_model(name.c_str(), f);
  }
}

// The same model with the I/O made by the requests' threads (submit=inline), as on zram.
TEST_CASE("data path: model test with inline submission, bounce=always and bounce=never") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    ImageFile img(512ull << 20, "model-inline");
    std::string name = std::string("image file, submit=inline, bounce=") + bounce_policy_name(policy);
    CAPTURE(name);
    ModelFigures f = run_model(img.path, policy, model_ops_per_config() / 2, policy == BouncePolicy::kAlways ? 7 : 8,
                               model_max_op(), true, SubmitPolicy::kInline);
    report_model(name.c_str(), f);
  }
}

TEST_CASE("data path: model test on a loop device, bounce=always and bounce=never") {
  if (!have_loop_control()) {
    MESSAGE("skipped: no /dev/loop-control");
    return;
  }
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    ImageFile img(512ull << 20, "model-loop");
    LoopDevice loop(img.path);
    if (loop.dev.empty()) {
      MESSAGE("skipped: could not attach a loop device");
      return;
    }
    img.unlink_now();
    std::string name = std::string("loop device, bounce=") + bounce_policy_name(policy);
    CAPTURE(name);
    ModelFigures f = run_model(loop.dev, policy, model_ops_per_config(), policy == BouncePolicy::kAlways ? 3 : 4, model_max_op());
    report_model(name.c_str(), f);
  }
}


// =============================================================================================
// Helpers shared by the remaining tests

namespace {

constexpr uint32_t kBs = 4096;

// Waits for a future at most `limit`. On timeout the caller must not free anything the I/O
// may still touch (see leak_on_timeout below).
template <typename T>
bool wait_bounded(std::future<T>& f, std::chrono::seconds limit) {
  return f.wait_for(limit) == std::future_status::ready;
}

// The device byte address backing file byte pos (block aligned), or nullopt for a hole or
// unwritten block; and the stored checksum of that device block.
struct BlockPlace {
  std::optional<uint64_t> dev_addr;
  std::optional<uint64_t> checksum;
};

BlockPlace place_of(Volume& v, uint64_t ino, uint64_t pos) {
  BlockPlace p;
  auto m = v.mapper().begin(ino, pos, kBs, kIomapRead | kIomapReport);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  REQUIRE(m->offset <= pos);
  REQUIRE(m->end() > pos);
  REQUIRE(v.mapper().end(ino, *m, pos, kBs, kBs, kIomapRead | kIomapReport).ok());
  if (m->type != IomapType::kMapped) return p;
  p.dev_addr = m->dev_addr + (pos - m->offset);
  std::optional<uint64_t> sum[1];
  REQUIRE(v.mapper().read_checksums(*p.dev_addr, sum).ok());
  p.checksum = sum[0];
  return p;
}

// Raw device block at dev_addr: does it match its stored checksum?
bool raw_block_matches(Volume& v, const BlockPlace& p) {
  AlignedBuffer raw(kBs);
  REQUIRE(v.device().read(*p.dev_addr, raw.data(), kBs).ok());
  return p.checksum && xxh3_64(raw.data(), kBs) == *p.checksum;
}

}  // namespace

// =============================================================================================
// 2. Stability torture

namespace {

// Every word of the source buffer names its block, the block's version and its own index, so
// any word found on the device says exactly which scribble it came from.
uint64_t version_word(uint64_t block, uint64_t version, uint64_t word) { return block << 44 | version << 12 | word; }

struct TortureFigures {
  uint64_t writes = 0, blocks_checked = 0, torn_blocks = 0, raw_mismatches = 0, eio_blocks = 0, scribbles = 0;
};

// Scribblers rewrite the source while writes of it are in flight. Block i belongs to scribbler
// i % kScribblers (so only I/O, never two scribblers, can mix its versions); a scribble bumps
// the block's version after filling the whole block with that version's words, so while a
// write is in flight block i of the source holds only words of versions
// [version before the write started, version after it completed + 1].
//
// What is asserted:
//  - bounce=always: the engine copies each block once and checksums the copy, so every stored
//    block matches its stored checksum (checked on the raw device), reading never fails, and
//    every word read back is a word the source held during that write (a block may mix two
//    versions if the copy raced a scribble: the user changed its buffer mid-copy; what matters
//    is that the checksum is over exactly what was stored).
//  - bounce=never (zero-copy): the checksum is taken from the user's memory before the device
//    reads it, so a block scribbled in between is stored torn and does not match its
//    checksum. Such a block must read as EIO — never as data — and every block that does read
//    must hold only words the source held during that write. Torn blocks are counted, not
//    required: whether a scribble lands in that window is up to the scheduler.
TortureFigures run_torture(BouncePolicy policy, bool async_engine, int rounds) {
  constexpr size_t kBlocks = 384;  // 1.5 MiB: two I/O units per write
  constexpr size_t kWords = kBs / 8;
  constexpr int kScribblers = 2;
  TortureFigures fig;
  ImageFile img(128ull << 20, "torture");
  make_fs(img.path);
  auto vol = open_volume(img.path, {.bounce = policy});
  Volume& v = *vol;
  const uint64_t ino = create_file(v, "torture");

  AlignedBuffer src(kBlocks * kBs);
  auto* words = reinterpret_cast<uint64_t*>(src.data());
  std::vector<std::atomic<uint64_t>> version(kBlocks);
  for (size_t b = 0; b < kBlocks; ++b)
    for (size_t w = 0; w < kWords; ++w) words[b * kWords + w] = version_word(b, 0, w);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> scribbles{0};
  std::vector<std::thread> scribblers;
  for (int t = 0; t < kScribblers; ++t) {
    scribblers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 17);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        size_t b = rng() % (kBlocks / kScribblers) * kScribblers + static_cast<size_t>(t);
        uint64_t ver = version[b].load(std::memory_order_relaxed) + 1;
        for (size_t w = 0; w < kWords; ++w)
          std::atomic_ref<uint64_t>(words[b * kWords + w]).store(version_word(b, ver, w), std::memory_order_relaxed);
        version[b].store(ver, std::memory_order_release);
        if (++n % 64 == 0) std::this_thread::yield();
      }
      scribbles += n;
    });
  }
  struct StopScribblers {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~StopScribblers() {
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } stopper{stop, scribblers};

  const uint64_t failures_before = v.io_stats().checksum_failures;
  uint64_t eio_expected = 0;
  AlignedBuffer back(kBlocks * kBs);
  std::vector<uint64_t> lo(kBlocks), hi(kBlocks);
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    for (size_t b = 0; b < kBlocks; ++b) lo[b] = version[b].load(std::memory_order_acquire);
    if (async_engine) {
      // Four writes of disjoint quarters in flight at once through the engine's async API.
      constexpr size_t kParts = 4;
      const size_t part = kBlocks / kParts * kBs;
      std::vector<std::future<Result<size_t>>> futures;
      for (size_t i = 0; i < kParts; ++i) {
        auto done = std::make_shared<std::promise<Result<size_t>>>();
        futures.push_back(done->get_future());
        (void)v.engine().write(ino, i * part, WriteSource{{src.data() + i * part, part}, {}, {}},
                               [done](Result<size_t> r) { done->set_value(std::move(r)); });
      }
      for (auto& f : futures) {
        if (!wait_bounded(f, 60s)) {
          // The I/O may still use src and the volume: leak them rather than free them under it.
          (void)vol.release();
          (void)new AlignedBuffer(std::move(src));
          FAIL("an async write did not complete within 60 s");
        }
        auto r = f.get();
        REQUIRE_MESSAGE(r.ok(), r.status().message());
        REQUIRE(*r == part);
      }
    } else {
      auto r = v.write(ino, 0, src.span());
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      REQUIRE(*r == src.size());
    }
    ++fig.writes;
    for (size_t b = 0; b < kBlocks; ++b) hi[b] = version[b].load(std::memory_order_acquire) + 1;

    // Raw device: does each stored block match its stored checksum?
    std::vector<bool> raw_ok(kBlocks);
    for (size_t b = 0; b < kBlocks; ++b) {
      BlockPlace p = place_of(v, ino, b * kBs);
      REQUIRE(p.dev_addr);
      REQUIRE(p.checksum);
      raw_ok[b] = raw_block_matches(v, p);
      if (!raw_ok[b]) ++fig.raw_mismatches;
    }
    if (policy == BouncePolicy::kAlways) {
      for (size_t b = 0; b < kBlocks; ++b) CHECK_MESSAGE(raw_ok[b], "bounced block ", b, " does not match its checksum");
    }
    // Read back: the whole range when every block is good, else block by block.
    bool all_ok = std::all_of(raw_ok.begin(), raw_ok.end(), [](bool x) { return x; });
    if (all_ok) {
      auto r = v.read(ino, 0, back.span());
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      REQUIRE(*r == back.size());
    } else {
      for (size_t b = 0; b < kBlocks; ++b) {
        auto r = v.read(ino, b * kBs, {back.data() + b * kBs, kBs});
        if (raw_ok[b]) {
          REQUIRE_MESSAGE(r.ok(), r.status().message());
        } else {
          REQUIRE_MESSAGE(!r.ok(), "block ", b, " does not match its checksum, yet it was read as data");
          CHECK(r.status().code() == EIO);
          ++fig.eio_blocks;
          ++eio_expected;
        }
      }
    }
    const auto* got = reinterpret_cast<const uint64_t*>(back.data());
    for (size_t b = 0; b < kBlocks; ++b) {
      if (!raw_ok[b]) continue;
      ++fig.blocks_checked;
      uint64_t first_version = ~0ull;
      bool torn = false;
      for (size_t w = 0; w < kWords; ++w) {
        uint64_t x = got[b * kWords + w];
        uint64_t xb = x >> 44, xv = (x >> 12) & 0xffffffffull, xw = x & 0xfff;
        if (xb != b || xw != w || xv < lo[b] || xv > hi[b]) {
          FAIL_CHECK("block ", b, " word ", w, " holds ", x, ": not a word the source held during the write (versions ",
                     lo[b], "..", hi[b], ")");
          break;
        }
        if (first_version == ~0ull) first_version = xv;
        torn |= xv != first_version;
      }
      if (torn) ++fig.torn_blocks;
    }
  }
  stop = true;
  for (auto& t : scribblers) t.join();
  fig.scribbles = scribbles;
  auto io = v.io_stats();
  CHECK(io.checksum_failures - failures_before == eio_expected);
  CHECK(io.device_errors == 0);
  if (policy == BouncePolicy::kAlways) {
    CHECK(fig.raw_mismatches == 0);
    CHECK(io.zero_copy_ios == 0);
  } else {
    CHECK(io.bounced_ios == 0);
  }
  CHECK(v.mapper().reserved_blocks() == 0);
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
  return fig;
}

void report_torture(const char* name, const TortureFigures& f) {
  char line[400];
  std::snprintf(line, sizeof line,
                "%s: %llu writes of 1.5 MiB under %llu scribbles; %llu blocks read back and checked, %llu of them "
                "mixing two versions; %llu stored blocks did not match their checksum, %llu reads refused with EIO",
                name, static_cast<unsigned long long>(f.writes), static_cast<unsigned long long>(f.scribbles),
                static_cast<unsigned long long>(f.blocks_checked), static_cast<unsigned long long>(f.torn_blocks),
                static_cast<unsigned long long>(f.raw_mismatches), static_cast<unsigned long long>(f.eio_blocks));
  MESSAGE(line);
}

}  // namespace

TEST_CASE("data path: stability torture, source scribbled while its writes are in flight") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    for (bool async_engine : {false, true}) {
      std::string name = std::string("bounce=") + bounce_policy_name(policy) +
                         (async_engine ? ", DirectIo::write async x4" : ", Volume::write");
      CAPTURE(name);
      report_torture(name.c_str(), run_torture(policy, async_engine, 25));
    }
  }
}

// =============================================================================================
// 3. Corruption

namespace {

// Each block of the file is recognisable: block i is filled with bytes of (i * 37 + j).
std::vector<uint8_t> block_pattern_file(size_t blocks) {
  std::vector<uint8_t> d(blocks * kBs);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>((i / kBs) * 37 + i % 251);
  return d;
}

bool mentions(const Status& st, const std::string& what) { return st.message().find(what) != std::string::npos; }

void corruption_case(BouncePolicy policy) {
  constexpr size_t kBlocks = 300;  // 1.2 MiB: the bad block lies in the second I/O unit
  constexpr size_t kBad = 260;
  ImageFile img(64ull << 20, "corrupt");
  make_fs(img.path);
  const std::vector<uint8_t> data = block_pattern_file(kBlocks);
  uint64_t ino = 0;
  {
    auto vol = open_volume(img.path, {.bounce = policy});
    ino = create_file(*vol, "victim");
    auto w = vol->write(ino, 0, data);
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    REQUIRE(*w == data.size());
    REQUIRE(vol->close().ok());
  }
  // Where the bad block lives, asked of the filesystem on a read-only open.
  uint64_t dev_addr = 0;
  {
    auto vol = open_volume(img.path, {.read_only = true, .bounce = policy});
    BlockPlace p = place_of(*vol, ino, kBad * kBs);
    REQUIRE(p.dev_addr);
    dev_addr = *p.dev_addr;
    REQUIRE(vol->close().ok());
  }
  {
    auto dev = FileDevice::open(img.path, {});
    REQUIRE(dev.ok());
    AlignedBuffer blk(kBs);
    REQUIRE((*dev)->read(dev_addr, blk.data(), kBs).ok());
    CHECK(std::memcmp(blk.data(), data.data() + kBad * kBs, kBs) == 0);
    blk.data()[1234] ^= 0x40;
    REQUIRE((*dev)->write(dev_addr, blk.data(), kBs).ok());
    REQUIRE((*dev)->flush().ok());
  }
  auto vol = open_volume(img.path, {.bounce = policy});
  Volume& v = *vol;
  const bool bounce = policy == BouncePolicy::kAlways;
  const std::string names_inode = "inode " + std::to_string(ino);
  const std::string names_offset = "offset " + std::to_string(kBad * kBs);
  uint64_t bad_reads = 0;
  AlignedBuffer buf(kBlocks * kBs + 2 * kBs);
  auto expect_eio = [&](uint64_t pos, size_t len, size_t mem_shift) {
    CAPTURE(pos);
    CAPTURE(len);
    CAPTURE(mem_shift);
    uint8_t* p = buf.data() + mem_shift;
    std::memset(p, 0xEE, len);
    auto r = v.read(ino, pos, {p, len});
    ++bad_reads;
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EIO);
    CHECK_MESSAGE(mentions(r.status(), names_inode), r.status().message());
    CHECK_MESSAGE(mentions(r.status(), names_offset), r.status().message());
    // Never bad data: a bounced (or privately buffered) read leaves the bad block's part of
    // the destination untouched; any other byte it wrote is the file's true data.
    const bool private_buffer = bounce || mem_shift % 512 != 0 || pos % kBs != 0 || len % kBs != 0;
    if (private_buffer) {
      for (size_t i = 0; i < len; ++i) {
        const uint64_t fpos = pos + i;
        const bool in_bad = fpos / kBs == kBad;
        if (p[i] == 0xEE) continue;
        if (in_bad || p[i] != data[fpos])
          REQUIRE_MESSAGE(false, "byte ", fpos, " of a failed read was modified to ", int(p[i]));
      }
    }
  };
  // The bad block alone, aligned and unaligned, from aligned and unaligned memory.
  expect_eio(kBad * kBs, kBs, 0);
  expect_eio(kBad * kBs + 100, 50, 0);
  expect_eio(kBad * kBs, kBs, 3);
  // A single unit holding the bad block: nothing at all is copied with bounce.
  expect_eio((kBad - 3) * kBs, 8 * kBs, 0);
  if (bounce) {
    for (size_t i = 0; i < 8 * kBs; ++i) REQUIRE(buf.data()[i] == 0xEE);
  }
  // Spanning blocks on either side, and the whole file (two units, the second one bad).
  expect_eio(kBad * kBs - 10, 20, 7);
  expect_eio(0, kBlocks * kBs, 0);
  // Every other block reads fine, alone and in big aligned pieces.
  for (size_t b = 0; b < kBlocks; ++b) {
    if (b == kBad) continue;
    auto r = v.read(ino, b * kBs, {buf.data(), kBs});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    REQUIRE(std::memcmp(buf.data(), data.data() + b * kBs, kBs) == 0);
  }
  {
    auto r = v.read(ino, 0, {buf.data(), kBad * kBs});
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(std::memcmp(buf.data(), data.data(), kBad * kBs) == 0);
  }
  auto io = v.io_stats();
  CHECK(io.checksum_failures == bad_reads);
  CHECK(io.device_errors == 0);
  // A partial-block write into the bad block needs its old contents: EIO too, nothing written.
  {
    std::vector<uint8_t> patch(10, 0x11);
    auto w = v.write(ino, kBad * kBs + 5, patch);
    REQUIRE_FALSE(w.ok());
    CHECK(w.status().code() == EIO);
    CHECK_MESSAGE(mentions(w.status(), names_offset), w.status().message());
    CHECK(v.fs().getattr(ino)->rec.size == data.size());
  }
  // A whole-block overwrite replaces it (out of place): the file is healthy again.
  {
    auto w = v.write(ino, kBad * kBs, {data.data() + kBad * kBs, kBs});
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    verify_whole_file(v, ino, data);
  }
  CHECK(v.mapper().reserved_blocks() == 0);
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
}

}  // namespace

TEST_CASE("data path: corruption, a flipped byte on the device is EIO naming inode and offset") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    std::string policy_name = bounce_policy_name(policy);
      CAPTURE(policy_name);
    corruption_case(policy);
  }
}

// =============================================================================================
// 4. ENOSPC

namespace {

void enospc_case(BouncePolicy policy, bool unaligned) {
  ImageFile img(24ull << 20, "enospc");
  make_fs(img.path);
  auto vol = open_volume(img.path, {.bounce = policy});
  Volume& v = *vol;
  const uint64_t free_at_start = v.fs().statfs().free_blocks;
  const uint64_t ino = create_file(v, "big");
  // More than the whole device in one call.
  const size_t want = 28u << 20;
  const uint64_t pos = unaligned ? 1000 : 0;
  AlignedBuffer src(want + kBs);
  FastRandom(99).fill(src.data(), want + kBs);
  uint8_t* p = src.data() + (unaligned ? 1 : 0);
  auto w = v.write(ino, pos, {p, want});
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  const size_t got = *w;
  const std::string line = std::string(bounce_policy_name(policy)) + (unaligned ? ", unaligned" : ", aligned") +
                           ": wrote " + std::to_string(got) + " of " + std::to_string(want) + " bytes; " +
                           std::to_string(free_at_start) + " blocks free at start";
  MESSAGE(line);
  CHECK(got > 0);
  CHECK(got < want);
  CHECK(v.fs().getattr(ino)->rec.size == pos + got);
  // Exactly the reported bytes are there (and zeros before pos).
  std::vector<uint8_t> model(pos + got, 0);
  std::memcpy(model.data() + pos, p, got);
  verify_whole_file(v, ino, model);
  // The device is full: appending fails with ENOSPC and changes nothing.
  for (int i = 0; i < 64; ++i) {
    auto more = v.write(ino, model.size(), {src.data(), 256u << 10});
    if (!more.ok()) {
      CHECK(more.status().code() == ENOSPC);
      break;
    }
    REQUIRE(*more > 0);
    model.insert(model.end(), src.data(), src.data() + *more);
  }
  CHECK(v.fs().getattr(ino)->rec.size == model.size());
  // Overwriting written data needs new space first (out of place): ENOSPC, old data intact.
  {
    std::vector<uint8_t> fresh(model.size(), 0x77);
    auto o = v.write(ino, 0, fresh);
    REQUIRE_FALSE(o.ok());
    CHECK(o.status().code() == ENOSPC);
    auto one = v.write(ino, 8192, {fresh.data(), kBs});
    REQUIRE_FALSE(one.ok());
    CHECK(one.status().code() == ENOSPC);
    auto partial = v.write(ino, 100, {fresh.data(), 10});
    REQUIRE_FALSE(partial.ok());
    CHECK(partial.status().code() == ENOSPC);
  }
  verify_whole_file(v, ino, model);
  // Still full: preallocation is refused, but metadata updates still run, and punching or
  // shrinking into the middle of a block (which rewrites that block out of place) succeeds
  // by using the space the operation frees.
  {
    Status st = v.fallocate(ino, 0, model.size(), 1u << 20);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == ENOSPC);
    CHECK(v.fs().getattr(ino)->rec.size == model.size());
    auto other = v.fs().mknod(kRootIno, "still-works", S_IFREG | 0644, 0, {});
    CHECK_MESSAGE(other.ok(), other.status().message());
    // Punching an unaligned hole rewrites its edge blocks out of place: the whole blocks it
    // frees first make room for them.
    st = v.fallocate(ino, kFallocPunchHole | kFallocKeepSize, 1000, 3u << 20);
    REQUIRE_MESSAGE(st.ok(), st.message());
    std::memset(model.data() + 1000, 0, 3u << 20);
    const uint64_t shrink_to = model.size() / 2 + 123;
    st = v.set_size(ino, shrink_to);
    REQUIRE_MESSAGE(st.ok(), st.message());
    model.resize(shrink_to);
    REQUIRE(v.set_size(ino, shrink_to + 5000).ok());
    model.resize(shrink_to + 5000, 0);
  }
  verify_whole_file(v, ino, model);
  CHECK(v.mapper().reserved_blocks() == 0);
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
  // Reopened: the same bytes; removing the files gives every block back.
  vol = open_volume(img.path, {.bounce = policy});
  verify_whole_file(*vol, ino, model);
  REQUIRE(vol->fs().unlink(kRootIno, "big").ok());
  REQUIRE(vol->fs().unlink(kRootIno, "still-works").ok());
  REQUIRE(vol->sync().ok());
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
  vol = open_volume(img.path, {.bounce = policy});
  CHECK(vol->fs().statfs().free_blocks == free_at_start);
  REQUIRE(vol->close().ok());
}

}  // namespace

TEST_CASE("data path: ENOSPC in the middle of a large write reports exactly what was written") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    for (bool unaligned : {false, true}) {
      std::string policy_name = bounce_policy_name(policy);
      CAPTURE(policy_name);
      CAPTURE(unaligned);
      enospc_case(policy, unaligned);
    }
  }
}

TEST_CASE("data path: ENOSPC with several writers at once: each write reports exactly what it wrote") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    std::string policy_name = bounce_policy_name(policy);
    CAPTURE(policy_name);
    ImageFile img(32ull << 20, "enospc-mt");
    make_fs(img.path);
    auto vol = open_volume(img.path, {.bounce = policy});
    constexpr int kThreads = 4;
    std::vector<uint64_t> inos;
    std::vector<std::vector<uint8_t>> model(kThreads);
    for (int t = 0; t < kThreads; ++t) inos.push_back(create_file(*vol, ("w" + std::to_string(t)).c_str()));
    // Each thread appends and overwrites its own file until the device is full, keeping its
    // model from the reported counts alone.
    auto work = [&](int t) -> Status {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 3 + 1);
      AlignedBuffer buf(3u << 20);
      int enospc = 0;
      for (int i = 0; i < 400 && enospc < 3; ++i) {
        std::vector<uint8_t>& m = model[t];
        const bool append = m.empty() || rng() % 3 != 0;
        uint64_t off = append ? m.size() : rng() % m.size();
        size_t len = 1 + rng() % buf.size();
        if (rng() % 2) {
          off &= ~uint64_t{kBs - 1};
          len = std::max<size_t>(kBs, len & ~size_t{kBs - 1});
        }
        FastRandom(rng()).fill(buf.data(), len);
        auto w = vol->write(inos[t], off, {buf.data(), len});
        if (!w.ok()) {
          if (w.status().code() != ENOSPC) return w.status();
          ++enospc;
          continue;
        }
        if (*w == 0 || *w > len) return Status::error(EIO, "write reported " + std::to_string(*w));
        if (off + *w > m.size()) m.resize(off + *w, 0);
        std::memcpy(m.data() + off, buf.data(), *w);
      }
      return {};
    };
    std::vector<std::future<Status>> futures;
    for (int t = 0; t < kThreads; ++t) futures.push_back(std::async(std::launch::async, work, t));
    for (auto& f : futures) {
      if (!wait_bounded(f, 120s)) {
        (void)vol.release();
        (void)new std::vector<std::vector<uint8_t>>(std::move(model));
        for (auto& g : futures) (void)new std::future<Status>(std::move(g));
        FAIL("writers did not finish within 120 s");
      }
      Status st = f.get();
      CHECK_MESSAGE(st.ok(), st.message());
    }
    CHECK(vol->fs().statfs().free_blocks <= kMetadataReserveBlocks + 1024);  // it did fill up
    CHECK(vol->mapper().reserved_blocks() == 0);
    for (int t = 0; t < kThreads; ++t) verify_whole_file(*vol, inos[t], model[t]);
    REQUIRE(vol->close().ok());
    vol.reset();
    expect_fsck_clean(img.path);
    vol = open_volume(img.path, {.bounce = policy});
    for (int t = 0; t < kThreads; ++t) verify_whole_file(*vol, inos[t], model[t]);
    REQUIRE(vol->close().ok());
  }
}

TEST_CASE("data path: writes and reads larger than the whole bounce pool, from several threads") {
  ImageFile img(128ull << 20, "pool");
  make_fs(img.path);
  // A 1 MiB pool: one I/O unit's worth. Every request needs several units' memory in turn.
  auto vol = open_volume(img.path, {.bounce = BouncePolicy::kAlways, .bounce_pool_bytes = 1u << 20});
  constexpr int kThreads = 4;
  std::vector<uint64_t> inos;
  std::vector<std::vector<uint8_t>> data(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    inos.push_back(create_file(*vol, ("f" + std::to_string(t)).c_str()));
    data[t].resize(6u << 20);
    FastRandom(static_cast<uint64_t>(t) + 5).fill(data[t].data(), data[t].size());
  }
  auto work = [&](int t) -> Status {
    std::mt19937_64 rng(static_cast<uint64_t>(t));
    std::vector<uint8_t> back(data[t].size());
    // One write of the whole file (6 units), then unaligned overwrites and reads across units.
    SFS_ASSIGN(size_t n, vol->write(inos[t], 0, data[t]));
    if (n != data[t].size()) return Status::error(EIO, "short write");
    for (int i = 0; i < 6; ++i) {
      uint64_t off = rng() % (2u << 20);
      size_t len = 1 + rng() % (3u << 20);
      FastRandom(rng()).fill(data[t].data() + off, len);
      SFS_ASSIGN(size_t w, vol->write(inos[t], off, {data[t].data() + off, len}));
      if (w != len) return Status::error(EIO, "short overwrite");
      SFS_ASSIGN(size_t r, vol->read(inos[t], 0, back));
      if (r != back.size() || back != data[t]) return Status::error(EIO, "read back differs");
    }
    return {};
  };
  std::vector<std::future<Status>> futures;
  for (int t = 0; t < kThreads; ++t) futures.push_back(std::async(std::launch::async, work, t));
  for (auto& f : futures) {
    if (!wait_bounded(f, 120s)) {
      // Threads may still use the volume and the buffers: leak them rather than free them.
      (void)vol.release();
      (void)new std::vector<std::vector<uint8_t>>(std::move(data));
      for (auto& g : futures) (void)new std::future<Status>(std::move(g));
      FAIL("requests through a 1 MiB bounce pool did not complete within 120 s");
    }
    Status st = f.get();
    CHECK_MESSAGE(st.ok(), st.message());
  }
  auto io = vol->io_stats();
  CHECK(io.zero_copy_ios == 0);
  CHECK(io.bounced_bytes >= kThreads * 6 * (6u << 20));
  MESSAGE(("bounced " + std::to_string(io.bounced_bytes >> 20) + " MiB in " + std::to_string(io.bounced_ios) +
           " units through a 1 MiB pool"));
  CHECK(vol->mapper().reserved_blocks() == 0);
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
}

// =============================================================================================
// Concurrency: writes, reads and size changes of one file from several threads

TEST_CASE("data path: concurrent writes, reads, truncates and punches on one file stay consistent") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    std::string policy_name = bounce_policy_name(policy);
    CAPTURE(policy_name);
    ImageFile img(128ull << 20, "concurrent");
    make_fs(img.path);
    auto vol = open_volume(img.path, {.bounce = policy});
    Volume& v = *vol;
    const uint64_t ino = create_file(v, "shared");
    constexpr uint64_t kSpan = 4u << 20;
    std::atomic<int> errors{0};
    std::atomic<bool> failed_read{false};
    std::string first_error;
    std::mutex error_mu;
    auto note = [&](const Status& st) {
      if (st.ok()) return;
      std::lock_guard lock(error_mu);
      if (errors++ == 0) first_error = st.message();
    };
    auto worker = [&](int kind, unsigned seed) {
      std::mt19937_64 rng(seed);
      AlignedBuffer buf(256u << 10);
      FastRandom(seed).fill(buf.data(), buf.size());
      for (int i = 0; i < 400; ++i) {
        uint64_t off = rng() % kSpan;
        size_t len = 1 + rng() % (rng() % 2 ? 4096 : buf.size() - 1);
        if (rng() % 2) {
          off &= ~uint64_t{kBs - 1};
          len = (len + kBs - 1) / kBs * kBs;
          len = std::min<size_t>(len, buf.size());
        }
        switch (kind) {
          case 0: {  // writer
            auto r = v.write(ino, off, {buf.data(), len});
            note(r.status());
            break;
          }
          case 1: {  // reader: never EIO, never an error
            auto r = v.read(ino, off, {buf.data(), len});
            if (!r.ok()) failed_read = true;
            note(r.status());
            break;
          }
          case 2: {  // sizes and holes
            unsigned what = static_cast<unsigned>(rng() % 4);
            if (what == 0) note(v.set_size(ino, off));
            else if (what == 1) note(v.fallocate(ino, kFallocPunchHole | kFallocKeepSize, off, len));
            else if (what == 2) note(v.fallocate(ino, kFallocZeroRange, off, len));
            else note(v.fallocate(ino, 0, off, len));
            break;
          }
        }
      }
    };
    std::vector<std::thread> threads;
    threads.emplace_back(worker, 0, 1u);
    threads.emplace_back(worker, 0, 2u);
    threads.emplace_back(worker, 1, 3u);
    threads.emplace_back(worker, 2, 4u);
    threads.emplace_back(worker, 2, 5u);
    for (auto& t : threads) t.join();
    CHECK_MESSAGE(errors == 0, first_error);
    CHECK_FALSE(failed_read);
    // Everything reads back without a checksum failure.
    auto size = v.fs().getattr(ino)->rec.size;
    AlignedBuffer all(static_cast<size_t>(std::max<uint64_t>(size, 1)));
    auto r = v.read(ino, 0, all.span());
    CHECK_MESSAGE(r.ok(), r.status().message());
    CHECK(v.io_stats().checksum_failures == 0);
    CHECK(v.mapper().reserved_blocks() == 0);
    REQUIRE(v.close().ok());
    vol.reset();
    expect_fsck_clean(img.path);
  }
}

TEST_CASE("data path: appends and sequential rewrites keep few extents") {
  ImageFile img(64ull << 20, "extents");
  make_fs(img.path);
  auto vol = open_volume(img.path, {.bounce = BouncePolicy::kNever});
  const uint64_t ino = create_file(*vol, "log");
  std::vector<uint8_t> model;
  AlignedBuffer buf(kBs);
  for (int i = 0; i < 256; ++i) {
    FastRandom(static_cast<uint64_t>(i) + 1).fill(buf.data(), kBs);
    REQUIRE(*vol->write(ino, model.size(), buf.span()) == kBs);
    model.insert(model.end(), buf.data(), buf.data() + kBs);
  }
  auto count = [&] {
    auto all = ExtentMap(vol->fs().store(), ino).all();
    REQUIRE(all.ok());
    return all->size();
  };
  const size_t after_appends = count();
  CHECK(after_appends <= 4);
  // A sequential rewrite in 64 KiB pieces goes out of place, piece after piece.
  std::vector<uint8_t> piece(64u << 10);
  for (uint64_t off = 0; off < model.size(); off += piece.size()) {
    FastRandom(off + 7).fill(piece.data(), piece.size());
    REQUIRE(*vol->write(ino, off, piece) == piece.size());
    std::memcpy(model.data() + off, piece.data(), piece.size());
  }
  const size_t after_rewrite = count();
  CHECK(after_rewrite <= 8);
  MESSAGE(("1 MiB of 4 KiB appends: " + std::to_string(after_appends) + " extent(s); after a sequential rewrite in 64 KiB "
           "pieces: " + std::to_string(after_rewrite)));
  verify_whole_file(*vol, ino, model);
  REQUIRE(vol->close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
}

TEST_CASE("data path: offsets at the limit are EFBIG or end of file, never a wrapped range") {
  ImageFile img(32ull << 20, "limits");
  make_fs(img.path);
  auto vol = open_volume(img.path, {.bounce = BouncePolicy::kNever});
  Volume& v = *vol;
  const uint64_t ino = create_file(v, "f");
  AlignedBuffer buf(8192);
  const uint64_t max = DirectIo::kMaxFileBytes;
  auto w = v.write(ino, max - 100, buf.span());
  REQUIRE_FALSE(w.ok());
  CHECK(w.status().code() == EFBIG);
  w = v.write(ino, ~0ull - 10, buf.span());
  REQUIRE_FALSE(w.ok());
  CHECK(w.status().code() == EFBIG);
  CHECK(v.fs().getattr(ino)->rec.size == 0);
  CHECK(v.set_size(ino, max + 1).code() == EFBIG);
  CHECK(v.fallocate(ino, kFallocKeepSize, max - 10, 4096).code() == EFBIG);
  CHECK(v.fallocate(ino, 0, ~0ull - 10, 100).code() == EFBIG);
  // A write ending exactly at the limit is fine; reads there and beyond find end of file.
  w = v.write(ino, max - 4095, {buf.data(), 4095});
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  CHECK(*w == 4095);
  CHECK(v.fs().getattr(ino)->rec.size == max);
  auto r = v.read(ino, max - 4095, buf.span());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(*r == 4095);
  r = v.read(ino, max, buf.span());
  REQUIRE(r.ok());
  CHECK(*r == 0);
  r = v.read(ino, ~0ull - 5, buf.span());
  REQUIRE(r.ok());
  CHECK(*r == 0);
  CHECK(*v.seek_data(ino, 0) == (max - 4095) / 4096 * 4096);
  REQUIRE(v.set_size(ino, 0).ok());
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(img.path);
}

// =============================================================================================
// 5. Policy

namespace {

// Opens dev with bounce=auto, moves aligned data through it (block-aligned offsets, aligned
// memory: nothing needs a private buffer) and checks that the counters show one path only.
void policy_case(const std::string& dev, bool expect_bounce) {
  CAPTURE(dev);
  make_fs(dev);
  {
    auto vol = open_volume(dev, {.bounce = BouncePolicy::kAuto});
    Volume& v = *vol;
    MESSAGE((dev + ": " + v.bounce_decision().reason));
    CHECK(v.bounce_decision().bounce == expect_bounce);
    CHECK(v.device_stable_pages().required == expect_bounce);
    const uint64_t ino = create_file(v, "policy");
    AlignedBuffer data(4u << 20), back(4u << 20);
    FastRandom(11).fill(data.data(), data.size());
    auto w = v.write(ino, 0, data.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    REQUIRE(*w == data.size());
    // Overwrite a piece (out of place) and read everything back.
    w = v.write(ino, 1u << 20, {data.data(), 64u << 10});
    REQUIRE(w.ok());
    std::memcpy(data.data() + (1u << 20), data.data(), 64u << 10);
    auto r = v.read(ino, 0, back.span());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    REQUIRE(*r == back.size());
    CHECK(std::memcmp(data.data(), back.data(), data.size()) == 0);
    auto io = v.io_stats();
    if (expect_bounce) {
      CHECK(io.bounced_ios > 0);
      CHECK(io.bounced_bytes >= 2 * data.size());
      CHECK(io.zero_copy_ios == 0);
      CHECK(io.zero_copy_bytes == 0);
    } else {
      CHECK(io.zero_copy_ios > 0);
      CHECK(io.zero_copy_bytes >= 2 * data.size());
      CHECK(io.bounced_ios == 0);
      CHECK(io.bounced_bytes == 0);
    }
    CHECK(io.checksum_failures == 0);
    CHECK(io.device_errors == 0);
    REQUIRE(v.close().ok());
  }
  expect_fsck_clean(dev);
}

}  // namespace

TEST_CASE("data path: policy, bounce=auto bounces on /dev/zram0") {
  const std::string sys = "/sys/block/zram0";
  if (::access("/dev/zram0", F_OK) != 0 || ::access((sys + "/disksize").c_str(), F_OK) != 0) {
    MESSAGE("skipped: no /dev/zram0");
    return;
  }
  if (read_text(sys + "/disksize") != "0") {
    MESSAGE(("skipped: /dev/zram0 is in use (disksize " + read_text(sys + "/disksize") + ")"));
    return;
  }
  if (!write_text(sys + "/disksize", "256M")) {
    MESSAGE("skipped: could not size /dev/zram0 (another user got there first?)");
    return;
  }
  // Reset zram0 however the test ends (after the volume on it is closed: declared first).
  struct ResetZram {
    std::string path;
    ~ResetZram() {
      for (int i = 0; i < 50; ++i) {
        if (write_text(path, "1")) return;
        std::this_thread::sleep_for(100ms);
      }
      std::fprintf(stderr, "warning: could not reset /dev/zram0\n");
    }
  } reset{sys + "/reset"};
  if (read_text(sys + "/queue/stable_writes") != "1") {
    MESSAGE("skipped: this kernel's zram does not demand stable pages");
    return;
  }
  policy_case("/dev/zram0", true);
}

TEST_CASE("data path: policy, bounce=auto on loop devices and an image file") {
  SUBCASE("a loop device with queue/stable_writes set to 1 by hand bounces") {
    if (!have_loop_control()) {
      MESSAGE("skipped: no /dev/loop-control");
      return;
    }
    ImageFile img(64ull << 20, "policy-stable");
    LoopDevice loop(img.path);
    if (loop.dev.empty()) {
      MESSAGE("skipped: could not attach a loop device");
      return;
    }
    img.unlink_now();
    if (!loop.set_stable_writes("1")) {
      MESSAGE(("skipped: cannot set " + loop.queue_attr("stable_writes")));
      return;
    }
    policy_case(loop.dev, true);
  }
  SUBCASE("a plain loop device does not") {
    if (!have_loop_control()) {
      MESSAGE("skipped: no /dev/loop-control");
      return;
    }
    ImageFile img(64ull << 20, "policy-plain");
    LoopDevice loop(img.path);
    if (loop.dev.empty()) {
      MESSAGE("skipped: could not attach a loop device");
      return;
    }
    img.unlink_now();
    if (read_text(loop.queue_attr("stable_writes")) != "0") REQUIRE(loop.set_stable_writes("0"));
    policy_case(loop.dev, false);
  }
  SUBCASE("an image file in /var/tmp follows the disk under it, which does not") {
    ImageFile img(64ull << 20, "policy-image");
    auto info = detect_stable_pages(img.path);
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    if (info->required) {
      MESSAGE(("skipped: the disk under /var/tmp demands stable pages here (" + info->reason + ")"));
      return;
    }
    policy_case(img.path, false);
  }
}

// =============================================================================================
// 6. Crash consistency of the data path

namespace {

// Copies a (sparse) image: only its data regions, found with SEEK_DATA/SEEK_HOLE.
void snapshot_image(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(in >= 0);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(out >= 0);
  struct stat st {};
  REQUIRE(::fstat(in, &st) == 0);
  REQUIRE(::ftruncate(out, st.st_size) == 0);
  std::vector<uint8_t> buf(1u << 20);
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only a hole remains
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    REQUIRE(hole > data);
    for (off_t p = data; p < hole;) {
      size_t n = static_cast<size_t>(std::min<off_t>(hole - p, static_cast<off_t>(buf.size())));
      ssize_t got = ::pread(in, buf.data(), n, p);
      REQUIRE(got > 0);
      REQUIRE(::pwrite(out, buf.data(), static_cast<size_t>(got), p) == got);
      p += got;
    }
    pos = hole;
  }
  ::close(in);
  ::close(out);
}

struct PendingWrite {
  uint64_t off;
  std::vector<uint8_t> data;
};

// Mounts a crash copy: fsck must be clean, every block readable, every byte either what the
// last sync left or what a write since then put there (each unsynced write may or may not
// have made it), and bytes no unsynced write touched exactly as synced.
// Returns whether any unsynced write was found in the copy.
bool check_crash_copy(const std::string& copy, uint64_t ino, const std::vector<uint8_t>& synced,
                      const std::vector<PendingWrite>& pending, uint64_t newest_size, BouncePolicy policy) {
  expect_fsck_clean(copy);
  bool saw_unsynced = false;
  auto vol = open_volume(copy, {.bounce = policy});
  Volume& v = *vol;
  auto attr = v.fs().getattr(ino);
  REQUIRE_MESSAGE(attr.ok(), attr.status().message());
  const uint64_t size = attr->rec.size;
  CHECK(size >= synced.size());
  CHECK(size <= newest_size);
  std::vector<uint8_t> got(static_cast<size_t>(size));
  auto r = v.read(ino, 0, got);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(*r == size);
  CHECK(v.io_stats().checksum_failures == 0);
  saw_unsynced = size != synced.size();
  constexpr uint64_t kChunk = 64u << 10;
  for (uint64_t b = 0; b < size; ++b) {
    if (b % kChunk == 0 && b + kChunk <= synced.size() && std::memcmp(&got[b], &synced[b], kChunk) == 0) {
      b += kChunk - 1;  // the whole chunk is as synced
      continue;
    }
    const uint8_t old = b < synced.size() ? synced[b] : 0;
    if (got[b] == old) continue;
    saw_unsynced = true;
    bool explained = false;
    for (const PendingWrite& w : pending)
      if (b >= w.off && b < w.off + w.data.size() && w.data[b - w.off] == got[b]) {
        explained = true;
        break;
      }
    if (!explained) {
      FAIL_CHECK("byte ", b, " of the crash copy is ", int(got[b]), ": neither the synced ", int(old),
                 " nor what an unsynced write put there");
      break;
    }
  }
  REQUIRE(v.close().ok());
  vol.reset();
  expect_fsck_clean(copy);
  return saw_unsynced;
}

}  // namespace

TEST_CASE("data path: crash copies taken between overwrites and syncs mount clean with synced data intact") {
  // Two runs per policy: a dense 2 MiB file synced often with the default metadata cache;
  // and small writes scattered over a sparse 16 MiB file, synced rarely, with a tiny cache
  // that pushes metadata out between commits. Besides the syncs the test relies on, the
  // journal also commits unasked (a mount's commit timer; here a sync the model does not
  // count), so crash copies also hold writes made after the last sync the model knows of.
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    for (bool scattered : {false, true}) {
      const size_t cache_blocks = scattered ? 64 : 16384;
      const uint64_t span = scattered ? 16u << 20 : 2u << 20;
      const size_t max_write = scattered ? 16u << 10 : 512u << 10;
      const unsigned sync_per_mille = scattered ? 10 : 100;
      const unsigned copy_per_mille = scattered ? 20 : 50;
      const int steps = scattered ? 600 : 250;
      int background_commits = 0;
      std::string name = std::string(bounce_policy_name(policy)) + (scattered ? ", scattered" : ", dense");
      CAPTURE(name);
      ImageFile img(64ull << 20, "crash");
      ImageFile copy(0, "crash-copy");
      make_fs(img.path);
      auto vol = open_volume(img.path, {.bounce = policy, .cache_blocks = cache_blocks});
      Volume& v = *vol;
      const uint64_t ino = create_file(v, "data");
      std::mt19937_64 rng((scattered ? 10 : 20) + (policy == BouncePolicy::kAlways ? 1 : 2));
      FastRandom fill(rng());
      std::vector<uint8_t> model(2u << 20);
      fill.fill(model.data(), model.size());
      REQUIRE(*v.write(ino, 0, model) == model.size());
      REQUIRE(v.sync().ok());
      std::vector<uint8_t> synced = model;
      std::vector<PendingWrite> pending;
      int snapshots = 0, syncs = 0, with_unsynced = 0;
      AlignedBuffer buf(512u << 10);
      for (int step = 0; step <= steps; ++step) {
        CAPTURE(step);
        if (step == steps) {
          // Finally the state with writes pending.
        } else if (rng() % 1000 < sync_per_mille) {
          REQUIRE(v.sync().ok());
          synced = model;
          pending.clear();
          ++syncs;
        } else if (rng() % 1000 < 40) {
          REQUIRE(v.sync().ok());  // a commit the model does not count on
          ++background_commits;
        } else {
          size_t len = static_cast<size_t>(std::exp(std::uniform_real_distribution<double>(0, std::log(double(max_write)))(rng)));
          len = std::clamp<size_t>(len, 1, max_write);
          uint64_t off = rng() % (scattered ? span : model.size() + (256u << 10));
          if (rng() % 2) {
            off &= ~uint64_t{kBs - 1};
            len = std::min<size_t>((len + kBs - 1) / kBs * kBs, buf.size());
          }
          fill.fill(buf.data(), len);
          auto w = v.write(ino, off, {buf.data(), len});
          REQUIRE_MESSAGE(w.ok(), w.status().message());
          REQUIRE(*w == len);
          if (off + len > model.size()) model.resize(off + len, 0);
          std::memcpy(model.data() + off, buf.data(), len);
          pending.push_back({off, std::vector<uint8_t>(buf.data(), buf.data() + len)});
        }
        if (step == steps || rng() % 1000 < copy_per_mille) {
          // The device image now is a state a crash could leave: copy it and mount the copy.
          snapshot_image(img.path, copy.path);
          ++snapshots;
          with_unsynced += check_crash_copy(copy.path, ino, synced, pending, model.size(), policy);
        }
      }
      const uint64_t commits = v.fs().store().stats().transactions_committed;
      REQUIRE(v.close().ok());
      vol.reset();
      expect_fsck_clean(img.path);
      MESSAGE((name + ": " + std::to_string(commits) + " commits (" + std::to_string(background_commits) +
               " unannounced); " + std::to_string(snapshots) + " crash copies across " + std::to_string(steps) +
               " steps with " + std::to_string(syncs) + " syncs; " + std::to_string(with_unsynced) +
               " of them held writes made after the last sync"));
    }
  }
}

}  // namespace stablefs
