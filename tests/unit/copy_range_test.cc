// copy_file_range through Volume: data, holes, sizes and the error cases of copy_range.h.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>

#include "fs/copy_range.h"
#include "fs/tools/mkfs.h"
#include "support/random_bytes.h"

namespace stablefs {
namespace {

struct CopyImage {
  CopyImage() {
    char tmpl[] = "/var/tmp/stablefs-copy-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    REQUIRE(FileDevice::create_image(path, 128ull << 20).ok());
    {
      auto dev = FileDevice::open(path, {});
      REQUIRE(dev.ok());
      REQUIRE(make_filesystem(**dev, MkfsOptions{}).ok());
    }
    auto v = Volume::open(path, {});
    REQUIRE_MESSAGE(v.ok(), v.status().message());
    vol = std::move(*v);
  }
  ~CopyImage() {
    if (vol) (void)vol->close();
    vol.reset();
    ::unlink(path.c_str());
  }
  uint64_t file(const char* name) {
    auto f = vol->fs().mknod(kRootIno, name, S_IFREG | 0644, 0, {});
    REQUIRE(f.ok());
    return f->ino;
  }
  std::vector<uint8_t> read(uint64_t ino, uint64_t off, size_t n) {
    std::vector<uint8_t> out(n);
    auto r = vol->read(ino, off, out);
    REQUIRE(r.ok());
    out.resize(*r);
    return out;
  }
  void write(uint64_t ino, uint64_t off, const std::vector<uint8_t>& data) {
    auto w = vol->write(ino, off, data);
    REQUIRE(w.ok());
    REQUIRE(*w == data.size());
  }
  Inode attr(uint64_t ino) { return *vol->fs().getattr(ino); }
  std::string path;
  std::unique_ptr<Volume> vol;
};

std::vector<uint8_t> pattern(size_t n, uint32_t seed) { return test::random_bytes(n, seed); }

bool all_zero(const std::vector<uint8_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

TEST_CASE("copy_file_range: unaligned data between files, sizes, EOF") {
  CopyImage img;
  const uint64_t a = img.file("a"), b = img.file("b");
  auto data = pattern(3 * 1048576 + 777, 1);  // more than one chunk
  img.write(a, 0, data);
  // Unaligned source and destination offsets, into an empty file: it grows to the end.
  auto r = copy_file_range(*img.vol, a, 1001, b, 4097, 2 * 1048576 + 5, 0);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(*r == 2 * 1048576 + 5);
  CHECK(img.attr(b).rec.size == 4097 + 2 * 1048576 + 5);
  auto back = img.read(b, 0, 4097 + 2 * 1048576 + 5);
  CHECK(all_zero({back.begin(), back.begin() + 4097}));
  CHECK(std::equal(back.begin() + 4097, back.end(), data.begin() + 1001));
  // The copy stops at the source's EOF; at or past EOF it copies nothing.
  r = copy_file_range(*img.vol, a, data.size() - 10, b, 0, 1 << 20, 0);
  REQUIRE(r.ok());
  CHECK(*r == 10);
  CHECK(img.read(b, 0, 10) == std::vector<uint8_t>(data.end() - 10, data.end()));
  CHECK(img.attr(b).rec.size == 4097 + 2 * 1048576 + 5);  // inside: the size stays
  r = copy_file_range(*img.vol, a, data.size(), b, 0, 4096, 0);
  REQUIRE(r.ok());
  CHECK(*r == 0);
  r = copy_file_range(*img.vol, a, data.size() + 5000, b, 0, 4096, 0);
  REQUIRE(r.ok());
  CHECK(*r == 0);
  // Zero length.
  r = copy_file_range(*img.vol, a, 0, b, 0, 0, 0);
  REQUIRE(r.ok());
  CHECK(*r == 0);
}

TEST_CASE("copy_file_range: holes stay holes, and a source hole zeroes destination data") {
  CopyImage img;
  const uint64_t src = img.file("src"), dst = img.file("dst"), full = img.file("full");
  auto head = pattern(65536, 2), mid = pattern(4096, 3);
  img.write(src, 0, head);
  img.write(src, 4 << 20, mid);
  REQUIRE(img.vol->set_size(src, 8 << 20).ok());  // trailing hole
  auto r = copy_file_range(*img.vol, src, 0, dst, 0, 8 << 20, 0);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(*r == (8u << 20));
  const Inode d = img.attr(dst);
  CHECK(d.rec.size == (8u << 20));
  CHECK(d.rec.blocks == img.attr(src).rec.blocks);  // no block for the holes
  CHECK(*img.vol->seek_data(dst, 0) == 0);
  CHECK(*img.vol->seek_hole(dst, 0) == 65536);
  CHECK(*img.vol->seek_data(dst, 65536) == (4u << 20));
  CHECK(img.read(dst, 0, 65536) == head);
  CHECK(img.read(dst, 4 << 20, 4096) == mid);
  CHECK(all_zero(img.read(dst, 65536, (4 << 20) - 65536)));
  CHECK(all_zero(img.read(dst, (4 << 20) + 4096, (4 << 20) - 4096)));

  // Copying the hole over existing data: reads zeros there and frees the blocks.
  auto filler = pattern(6 << 20, 4);
  img.write(full, 0, filler);
  const uint64_t before = img.attr(full).rec.blocks;
  r = copy_file_range(*img.vol, src, 65536 + 100, full, 100, (2 << 20), 0);  // hole, unaligned
  REQUIRE(r.ok());
  CHECK(*r == (2u << 20));
  auto got = img.read(full, 0, 6 << 20);
  CHECK(std::equal(got.begin(), got.begin() + 100, filler.begin()));
  CHECK(all_zero({got.begin() + 100, got.begin() + 100 + (2 << 20)}));
  CHECK(std::equal(got.begin() + 100 + (2 << 20), got.end(), filler.begin() + 100 + (2 << 20)));
  CHECK(img.attr(full).rec.blocks < before);
  CHECK(img.attr(full).rec.size == (6u << 20));
}

TEST_CASE("copy_file_range: within one file, overlap, flags, types, overflow") {
  CopyImage img;
  const uint64_t f = img.file("f");
  auto data = pattern(1 << 20, 5);
  img.write(f, 0, data);
  // Non-overlapping ranges of one file.
  auto r = copy_file_range(*img.vol, f, 0, f, 1 << 20, 1 << 20, 0);
  REQUIRE(r.ok());
  CHECK(*r == (1u << 20));
  CHECK(img.read(f, 1 << 20, 1 << 20) == data);
  CHECK(img.attr(f).rec.size == (2u << 20));
  // Overlapping ranges: EINVAL, nothing written.
  r = copy_file_range(*img.vol, f, 0, f, 4096, 8192, 0);
  CHECK(r.status().code() == EINVAL);
  r = copy_file_range(*img.vol, f, 8192, f, 4096, 8192, 0);
  CHECK(r.status().code() == EINVAL);
  CHECK(img.read(f, 0, 1 << 20) == data);
  // Overlap is judged after shortening to EOF: past EOF nothing overlaps.
  r = copy_file_range(*img.vol, f, 2 << 20, f, (2 << 20) - 10, 100, 0);
  REQUIRE(r.ok());
  CHECK(*r == 0);
  // Adjacent ranges do not overlap.
  r = copy_file_range(*img.vol, f, 0, f, 4096, 4096, 0);
  REQUIRE(r.ok());
  CHECK(img.read(f, 4096, 4096) == std::vector<uint8_t>(data.begin(), data.begin() + 4096));
  // flags, types, overflow.
  const uint64_t g = img.file("g");
  CHECK(copy_file_range(*img.vol, f, 0, g, 0, 10, 1).status().code() == EINVAL);
  auto dir = img.vol->fs().mkdir(kRootIno, "d", 0755, {});
  REQUIRE(dir.ok());
  CHECK(copy_file_range(*img.vol, dir->ino, 0, g, 0, 10, 0).status().code() == EISDIR);
  CHECK(copy_file_range(*img.vol, f, 0, dir->ino, 0, 10, 0).status().code() == EISDIR);
  auto fifo = img.vol->fs().mknod(kRootIno, "p", S_IFIFO | 0644, 0, {});
  REQUIRE(fifo.ok());
  CHECK(copy_file_range(*img.vol, f, 0, fifo->ino, 0, 10, 0).status().code() == EINVAL);
  CHECK(copy_file_range(*img.vol, f, 0, g, INT64_MAX - 5, 10, 0).status().code() == EOVERFLOW);
  CHECK(copy_file_range(*img.vol, f, INT64_MAX - 5, g, 0, 10, 0).status().code() == EOVERFLOW);
  CHECK(copy_file_range(*img.vol, f, 0, 999999, 0, 10, 0).status().code() == ENOENT);
  CHECK(img.attr(g).rec.size == 0);
}

TEST_CASE("copy_file_range: a trailing hole never cuts back a destination an append grew meanwhile") {
  CopyImage img;
  const uint64_t src = img.file("src");
  REQUIRE(img.vol->set_size(src, 1 << 20).ok());  // all hole: a copy of it only sets the size
  constexpr size_t kChunk = 256 << 10, kChunks = 64;
  const uint64_t dst = img.file("dst");
  std::vector<std::vector<uint8_t>> chunks;
  for (size_t k = 0; k < kChunks; ++k) chunks.push_back(pattern(kChunk, static_cast<uint32_t>(k + 10)));
  std::atomic<size_t> written{0};  // chunks the appender has written
  std::thread appender([&] {
    for (size_t k = 0; k < kChunks; ++k) {
      (void)img.vol->write(dst, k * kChunk, chunks[k]);
      written = k + 1;
    }
  });
  // Copies of 4 KiB of hole to the end of what the appender has written, while the next
  // append is in flight: each copy's size update races it. A copy may punch the first 4 KiB
  // of a chunk (concurrent writers to one range see a mix), never more.
  size_t copies = 0;
  for (size_t k; (k = written) < kChunks;) {
    auto r = copy_file_range(*img.vol, src, 0, dst, k * kChunk, 4096, 0);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    ++copies;
  }
  appender.join();
  MESSAGE(copies << " copies raced the appends");
  CHECK(img.attr(dst).rec.size == kChunks * kChunk);
  for (size_t k = 0; k < kChunks; ++k) {
    const auto got = img.read(dst, k * kChunk, kChunk);
    REQUIRE(got.size() == kChunk);
    CHECK(std::equal(got.begin() + 4096, got.end(), chunks[k].begin() + 4096));  // never cut back
  }
}

}  // namespace stablefs
