// Ordered data (fs/meta/metadata_store.h note_data_written): a commit whose transaction records data
// writes flushes the device before its journal write, so the data is on stable media before
// the record that names it; a commit of metadata alone does not pay that flush.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include "bounce/memory_device.h"
#include "fs/namespace/filesystem.h"
#include "fs/tools/mkfs.h"
#include "fs/volume.h"
#include "support/formatted_image.h"

namespace stablefs {
namespace {

// Index of the first write (not flush) in the log, or the log size.
size_t first_write(const std::vector<MemoryDevice::LoggedWrite>& log) {
  for (size_t i = 0; i < log.size(); ++i)
    if (!log[i].is_flush) return i;
  return log.size();
}

}  // namespace

TEST_CASE("ordered data: a commit that records data writes flushes the device before the journal write") {
  MemoryDevice dev(16ull << 20);
  REQUIRE(make_filesystem(dev, {}).ok());
  auto opened = Filesystem::open(dev, {});
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  Filesystem& fs = **opened;
  MetadataStore& store = fs.store();
  REQUIRE(fs.sync().ok());

  // Metadata alone: the journal write comes first, no flush ahead of it.
  dev.set_recording(true);
  REQUIRE(fs.mknod(kRootIno, "plain", S_IFREG | 0644, 0, {}).ok());
  REQUIRE(fs.sync().ok());
  {
    const auto& log = dev.log();
    REQUIRE(!log.empty());
    CHECK(!log.front().is_flush);
    CHECK(store.stats().ordered_data_flushes == 0);
  }

  // An operation that records completed data writes (what an ioend does), then a commit.
  dev.set_recording(true);  // (restarts the log)
  REQUIRE(store.begin_operation(1).ok());
  store.note_data_written();
  REQUIRE(store.end_operation({}).ok());
  REQUIRE(fs.mknod(kRootIno, "after-data", S_IFREG | 0644, 0, {}).ok());
  REQUIRE(fs.sync().ok());
  {
    const auto& log = dev.log();
    const size_t w = first_write(log);
    REQUIRE(w < log.size());
    CHECK(w >= 1);
    CHECK(log.front().is_flush);  // the pre-flush, before any journal block
    CHECK(store.stats().ordered_data_flushes == 1);
  }

  // The flag is per transaction: the next metadata-only commit has no pre-flush again.
  dev.set_recording(true);  // (restarts the log)
  REQUIRE(fs.mknod(kRootIno, "later", S_IFREG | 0644, 0, {}).ok());
  REQUIRE(fs.sync().ok());
  CHECK(!dev.log().front().is_flush);
  CHECK(store.stats().ordered_data_flushes == 1);
}

TEST_CASE("ordered data: a write's ioend marks its transaction for the pre-flush") {
  test::FormattedImage img(64ull << 20);
  const std::string& path = img.path;
  {
    auto vol = Volume::open(path, {.bounce = BouncePolicy::kNever});
    REQUIRE_MESSAGE(vol.ok(), vol.status().message());
    Volume& v = **vol;
    const MetadataStore& store = v.fs().store();
    const uint64_t ino = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
    REQUIRE(v.sync().ok());
    const uint64_t before = store.stats().ordered_data_flushes;
    std::vector<uint8_t> data(8192, 0x7e);
    REQUIRE(v.write(ino, 0, data).ok());
    REQUIRE(v.sync().ok());
    CHECK(store.stats().ordered_data_flushes == before + 1);
    REQUIRE(v.fs().mknod(kRootIno, "g", S_IFREG | 0644, 0, {}).ok());
    REQUIRE(v.sync().ok());
    CHECK(store.stats().ordered_data_flushes == before + 1);
  }
}

}  // namespace stablefs
