// Truncate and the pending-truncate list (fs/inode/truncate_list.h): a shrink commits its size
// before it frees what lies past it, so whatever lands in between — a commit, a crash, a failed
// step — must never let the file grow back over its old data. Through Volume on an image.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fs/data/file_space.h"
#include "fs/format/format.h"
#include "fs/inode/truncate_list.h"
#include "fs/tools/fsck.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

using test::expect_fsck_clean;
using test::FormattedImage;
using test::make_file;
using test::open_volume;
using test::read_at;
using test::write_at;

constexpr uint64_t kImageBytes = 256ull << 20;
constexpr uint64_t kFileBytes = 8ull << 20;

// The volume's mapper, except that the first begin() commits everything so far (a timer
// commit, or another file's fsync, landing in the truncate's gap), takes a copy of the device
// (the crash) and fails (the process is gone: nothing after it reaches the device).
class CommitCrashFail : public IomapOps {
 public:
  CommitCrashFail(Volume& v, FormattedImage& img) : v_(v), img_(img) {}
  Result<Iomap> begin(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) override {
    if (crash_copy.empty()) {
      REQUIRE(v_.fs().sync().ok());
      crash_copy = img_.crash_copy();
    }
    (void)ino, (void)pos, (void)len, (void)op;
    return Status::error(EIO, "injected: the daemon died here");
  }
  Status end(uint64_t ino, const Iomap& map, uint64_t pos, uint64_t len, uint64_t done, uint32_t op) override {
    return v_.mapper().end(ino, map, pos, len, done, op);
  }
  Status read_checksums(uint64_t dev_addr, std::span<std::optional<uint64_t>> out) override {
    return v_.mapper().read_checksums(dev_addr, out);
  }
  Result<uint64_t> file_size(uint64_t ino) override { return v_.mapper().file_size(ino); }
  uint32_t block_size() const override { return v_.mapper().block_size(); }

  std::string crash_copy;

 private:
  Volume& v_;
  FormattedImage& img_;
};

FsckReport fsck_image(const std::string& path, bool repair, std::string* problems) {
  auto dev = FileDevice::open(path, {.read_only = !repair});
  REQUIRE_MESSAGE(dev.ok(), dev.status().message());
  FsckOptions opts;
  opts.repair = repair;
  FsckReport r = run_fsck(**dev, opts);
  for (const auto& p : r.problems) *problems += p + "\n";
  return r;
}

uint64_t free_blocks(Volume& v) { return v.fs().statfs().free_blocks; }

bool all_bytes(const std::vector<uint8_t>& data, uint8_t value) {
  return std::all_of(data.begin(), data.end(), [value](uint8_t b) { return b == value; });
}

TEST_CASE("truncate: a crash after the new size committed leaves nothing past EOF to grow over") {
  FormattedImage img(kImageBytes, {}, "trunc-crash");
  uint64_t ino = 0;
  std::string crashed;
  {
    auto v = open_volume(img.path);
    ino = make_file(*v, "f");
    write_at(*v, ino, 0, std::vector<uint8_t>(kFileBytes, 0xAB));
    REQUIRE(v->sync().ok());
    CommitCrashFail mapper(*v, img);
    FileSpace space(v->fs().inodes(), mapper);
    Status st = space.set_size(ino, 0);
    CHECK(st.code() == EIO);
    // The blocks past EOF could not be freed: nothing more may be committed on top of that.
    CHECK(v->fs().store().shut_down());
    crashed = mapper.crash_copy;
    REQUIRE(!crashed.empty());
    (void)v->close();
  }
  // fsck: the state is legal (the list names the file) and the truncate is still to finish.
  std::string problems;
  FsckReport before = fsck_image(crashed, false, &problems);
  INFO(problems);
  CHECK(before.exit_code() == kFsckClean);
  CHECK(before.truncates_pending == 1);
  {
    auto v = open_volume(crashed);
    CHECK(v->fs().truncates_finished_at_open() == 1);
    auto attr = v->fs().getattr(ino);
    REQUIRE(attr.ok());
    CHECK(attr->rec.size == 0);
    CHECK(attr->rec.blocks == 0);
    CHECK((v->fs().store().superblock().ro_compat & kRoCompatTruncates) == 0);
    REQUIRE(v->set_size(ino, kFileBytes).ok());
    CHECK(all_bytes(read_at(*v, ino, 0, kFileBytes), 0));
    REQUIRE(v->close().ok());
  }
  expect_fsck_clean(crashed);
}

TEST_CASE("truncate: a finished truncate leaves the list empty and the feature bit clear") {
  FormattedImage img(kImageBytes, {}, "trunc-list");
  auto v = open_volume(img.path);
  const uint64_t ino = make_file(*v, "f");
  write_at(*v, ino, 0, std::vector<uint8_t>(kFileBytes, 0xCD));
  REQUIRE(v->set_size(ino, 4096).ok());
  {
    MutexLock lock(v->fs().inodes().mutex());
    auto listed = list_pending_truncates(v->fs().inodes().store());
    REQUIRE(listed.ok());
    CHECK(listed->empty());
    CHECK((v->fs().inodes().store().superblock().ro_compat & kRoCompatTruncates) == 0);
  }
  REQUIRE(v->set_size(ino, kFileBytes).ok());
  std::vector<uint8_t> want(kFileBytes, 0);
  std::fill(want.begin(), want.begin() + 4096, 0xCD);
  CHECK(read_at(*v, ino, 0, kFileBytes) == want);
  REQUIRE(v->close().ok());
  v.reset();
  expect_fsck_clean(img.path);
}

TEST_CASE("fsck: written blocks past EOF that no list names are an error, and repair frees them") {
  FormattedImage img(kImageBytes, {}, "trunc-fsck");
  uint64_t ino = 0, baseline = 0;
  {
    auto v = open_volume(img.path);
    baseline = free_blocks(*v);
    ino = make_file(*v, "f");
    write_at(*v, ino, 0, std::vector<uint8_t>(kFileBytes, 0xAB));
    // What a truncate without the list would leave: the size (block aligned: the tail of a
    // partial last block is zeroed before the size commits), and nothing freed.
    InodeTable& inodes = v->fs().inodes();
    MutexLock lock(inodes.mutex());
    Status st = in_operation(inodes.store(), 8, [&]() REQUIRES(inodes.mutex()) -> Status {
      SFS_ASSIGN(Inode inode, inodes.load(ino));
      inode.rec.size = 4096;
      return inodes.save(inode);
    });
    REQUIRE(st.ok());
  }  // closed by the destructor
  std::string problems;
  FsckReport check = fsck_image(img.path, false, &problems);
  CHECK(check.exit_code() == kFsckUncorrected);
  CHECK(problems.find("written blocks past EOF") != std::string::npos);
  problems.clear();
  FsckReport repaired = fsck_image(img.path, true, &problems);
  CHECK(repaired.exit_code() == kFsckCorrected);
  CHECK(repaired.truncates_finished == 1);
  expect_fsck_clean(img.path);
  auto v = open_volume(img.path);
  auto attr = v->fs().getattr(ino);
  REQUIRE(attr.ok());
  CHECK(attr->rec.blocks == 1);
  REQUIRE(v->set_size(ino, kFileBytes).ok());
  std::vector<uint8_t> want(kFileBytes, 0);
  std::fill(want.begin(), want.begin() + 4096, 0xAB);
  CHECK(read_at(*v, ino, 0, kFileBytes) == want);
  REQUIRE(v->fs().unlink(kRootIno, "f").ok());
  CHECK(free_blocks(*v) == baseline);
  REQUIRE(v->close().ok());
}

}  // namespace
}  // namespace stablefs
