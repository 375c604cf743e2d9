// Sparse files up to 2^44 bytes and beyond through the library: offsets, sizes, SEEK_DATA/HOLE,
// truncation, all in 64-bit arithmetic.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"
#include "fs/volume.h"

namespace stablefs {

TEST_CASE("large file: data at 2^44 - 4096 and 2^46 in a sparse file") {
  char tmpl[] = "/var/tmp/stablefs-large-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } guard{tmpl};
  REQUIRE(FileDevice::create_image(tmpl, 64ull << 20).ok());
  {
    auto dev = FileDevice::open(tmpl, {});
    REQUIRE(dev.ok());
    REQUIRE(make_filesystem(**dev, {}).ok());
  }
  auto vol = Volume::open(tmpl, {});
  REQUIRE_MESSAGE(vol.ok(), vol.status().message());
  Volume& v = **vol;
  auto f = v.fs().mknod(kRootIno, "sparse", S_IFREG | 0644, 0, {});
  REQUIRE(f.ok());
  const uint64_t at = (1ull << 44) - 4096, far = 1ull << 46;
  AlignedBuffer block(4096), back(4096);
  std::memset(block.data(), 0x5a, 4096);
  REQUIRE(*v.write(f->ino, at, block.span()) == 4096);
  REQUIRE(*v.write(f->ino, far, block.span()) == 4096);
  CHECK(v.fs().getattr(f->ino)->rec.size == far + 4096);
  CHECK(v.fs().getattr(f->ino)->rec.blocks == 2);
  REQUIRE(*v.read(f->ino, at, back.span()) == 4096);
  CHECK(std::memcmp(block.data(), back.data(), 4096) == 0);
  CHECK(*v.seek_data(f->ino, 0) == at);
  CHECK(*v.seek_hole(f->ino, at) == at + 4096);
  CHECK(*v.seek_data(f->ino, at + 4096) == far);
  // A hole far out reads as zeros.
  REQUIRE(*v.read(f->ino, 1ull << 45, back.span()) == 4096);
  CHECK(std::all_of(back.data(), back.data() + 4096, [](uint8_t b) { return b == 0; }));
  REQUIRE(v.set_size(f->ino, 1ull << 44).ok());
  CHECK(v.fs().getattr(f->ino)->rec.blocks == 1);
  CHECK(v.seek_data(f->ino, at + 4096).status().code() == ENXIO);
  REQUIRE(v.close().ok());
  vol->reset();
  auto dev = FileDevice::open(tmpl, {.read_only = true});
  REQUIRE(dev.ok());
  std::string problems;
  FsckOptions o;
  o.on_problem = [&](const std::string& p) { problems += p + "\n"; };
  CHECK_MESSAGE(run_fsck(**dev, o).exit_code() == kFsckClean, problems);
}

}  // namespace stablefs
