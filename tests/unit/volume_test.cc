// The data path end to end through Volume: direct I/O on files over a real O_DIRECT image.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <random>
#include <string>

#include "fs/tools/mkfs.h"
#include "fs/volume.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"

namespace stablefs {
namespace {

using TempImage = test::FormattedImage;

std::vector<uint8_t> pattern(size_t n, uint32_t seed) { return test::random_bytes(n, seed); }

}  // namespace

TEST_CASE("volume: write and read back through bounce and zero-copy, aligned and not") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    CAPTURE(bounce_policy_name(policy));
    TempImage img(64ull << 20);
    auto vol = Volume::open(img.path, {.bounce = policy});
    REQUIRE_MESSAGE(vol.ok(), vol.status().message());
    Volume& v = **vol;
    CHECK(v.bounce_decision().bounce == (policy == BouncePolicy::kAlways));
    auto f = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {});
    REQUIRE(f.ok());
    // Aligned 1 MiB write from aligned memory, then an unaligned overwrite in the middle.
    AlignedBuffer big(1 << 20);
    auto data = pattern(big.size(), 1);
    std::copy(data.begin(), data.end(), big.data());
    auto w = v.write(f->ino, 0, big.span());
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    CHECK(*w == big.size());
    auto patch = pattern(10000, 2);
    w = v.write(f->ino, 4097, patch);
    REQUIRE_MESSAGE(w.ok(), w.status().message());
    std::copy(patch.begin(), patch.end(), data.begin() + 4097);
    std::vector<uint8_t> back(data.size() + 100);
    auto r = v.read(f->ino, 0, back);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(*r == data.size());  // short at end of file
    CHECK(std::equal(data.begin(), data.end(), back.begin()));
    CHECK(v.fs().getattr(f->ino)->rec.size == data.size());
    // A hole reads as zeros; a write past the end extends.
    auto tail = pattern(100, 3);
    REQUIRE(v.write(f->ino, 5 << 20, tail).ok());
    std::vector<uint8_t> hole(4096, 0xAA);
    REQUIRE(v.read(f->ino, 3 << 20, hole).ok());
    CHECK(std::all_of(hole.begin(), hole.end(), [](uint8_t b) { return b == 0; }));
    // Truncate into the middle of a block zeroes the rest: extending again reads zeros.
    REQUIRE(v.set_size(f->ino, 100).ok());
    REQUIRE(v.set_size(f->ino, 8192).ok());
    std::vector<uint8_t> after(8192);
    REQUIRE(*v.read(f->ino, 0, after) == 8192);
    CHECK(std::equal(data.begin(), data.begin() + 100, after.begin()));
    CHECK(std::all_of(after.begin() + 100, after.end(), [](uint8_t b) { return b == 0; }));
    auto stats = v.io_stats();
    if (policy == BouncePolicy::kAlways) {
      CHECK(stats.bounced_ios > 0);
      CHECK(stats.zero_copy_ios == 0);
    } else {
      CHECK(stats.zero_copy_ios > 0);
    }
    CHECK(v.mapper().reserved_blocks() == 0);
    REQUIRE(v.close().ok());
  }
}

}  // namespace stablefs

namespace stablefs {

TEST_CASE("volume: a failed open returns its error and cleans up") {
  char tmpl[] = "/var/tmp/stablefs-vol-foreign-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  std::vector<uint8_t> junk = pattern(8 << 20, 9);
  REQUIRE(::write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
  ::close(fd);
  auto vol = Volume::open(tmpl, {});
  ::unlink(tmpl);
  REQUIRE_FALSE(vol.ok());
  CHECK(vol.status().message().find("no stablefs filesystem") != std::string::npos);
  CHECK(Volume::open("/var/tmp/does-not-exist-stablefs", {}).status().code() == ENOENT);
}

}  // namespace stablefs

namespace stablefs {

TEST_CASE("volume: asynchronous forms answer from the completion; a copied write frees its source at once") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    CAPTURE(bounce_policy_name(policy));
    TempImage img(64ull << 20);
    auto vol = Volume::open(img.path, {.bounce = policy});
    REQUIRE_MESSAGE(vol.ok(), vol.status().message());
    Volume& v = **vol;
    const uint64_t ino = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
    const std::vector<uint8_t> want = pattern(256u << 10, 9);
    for (bool aligned : {true, false}) {
      CAPTURE(aligned);
      // The source: aligned memory, or libfuse's layout (payload 80 bytes into its buffer).
      AlignedBuffer mem(want.size() + 80);
      std::span<uint8_t> src = mem.span().subspan(aligned ? 0 : 80, want.size());
      std::copy(want.begin(), want.end(), src.begin());
      std::promise<Result<size_t>> got;
      auto fut = got.get_future();
      const SourceUse use = v.write_async(ino, 0, {src, {}, {}}, [&got](Result<size_t> r) { got.set_value(std::move(r)); });
      const bool copies = use == SourceUse::kCopied;
      CHECK(copies == (policy == BouncePolicy::kAlways || !aligned));
      if (copies) {
        std::fill(src.begin(), src.end(), 0xee);  // the caller's memory is its own again
      } else {
        CHECK(fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready);  // waited
      }
      REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
      Result<size_t> w = fut.get();
      REQUIRE_MESSAGE(w.ok(), w.status().message());
      CHECK(*w == want.size());

      AlignedBuffer back(want.size());
      std::promise<Result<size_t>> read;
      v.read_async(ino, 0, back.span(), ReadMemory::kShared, [&read](Result<size_t> r) { read.set_value(std::move(r)); });
      auto rf = read.get_future();
      REQUIRE(rf.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
      Result<size_t> r = rf.get();
      REQUIRE_MESSAGE(r.ok(), r.status().message());
      CHECK(*r == want.size());
      CHECK(std::equal(want.begin(), want.end(), back.data()));
    }
  }
}

TEST_CASE("volume: a write calls the caller's keep exactly when it sends the caller's memory zero-copy") {
  for (BouncePolicy policy : {BouncePolicy::kAlways, BouncePolicy::kNever}) {
    CAPTURE(bounce_policy_name(policy));
    TempImage img(64ull << 20);
    auto vol = Volume::open(img.path, {.bounce = policy});
    REQUIRE_MESSAGE(vol.ok(), vol.status().message());
    Volume& v = **vol;
    const uint64_t ino = v.fs().mknod(kRootIno, "f", S_IFREG | 0644, 0, {})->ino;
    const std::vector<uint8_t> want = pattern(128u << 10, 3);
    for (bool aligned : {true, false}) {
      CAPTURE(aligned);
      auto mem = std::make_shared<AlignedBuffer>(want.size() + 80);
      std::span<uint8_t> src = mem->span().subspan(aligned ? 0 : 80, want.size());
      std::copy(want.begin(), want.end(), src.begin());
      int keeps = 0;
      std::promise<Result<size_t>> got;
      auto fut = got.get_future();
      const SourceUse use = v.write_async(
          ino, 0, {src, [&keeps, mem]() -> std::shared_ptr<const void> {
                     ++keeps;
                     return mem;
                   }, {}},
          [&got](Result<size_t> r) { got.set_value(std::move(r)); });
      const bool zero_copy = policy == BouncePolicy::kNever && aligned;
      CHECK(use == (zero_copy ? SourceUse::kBorrowed : SourceUse::kCopied));
      CHECK(keeps == (zero_copy ? 1 : 0));
      REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
      Result<size_t> w = fut.get();
      REQUIRE_MESSAGE(w.ok(), w.status().message());
      CHECK(*w == want.size());
      CHECK(mem.use_count() == 1);  // the engine let go of what keep gave once done had run
      std::vector<uint8_t> back(want.size());
      REQUIRE(v.read(ino, 0, back).ok());
      CHECK(back == want);
    }
  }
}

TEST_CASE("volume: fsync commits only what the inode needs; fdatasync skips a times-only change") {
  for (bool checksums : {true, false}) {
    CAPTURE(checksums);
    MkfsOptions mkfs;
    mkfs.data_checksums = checksums;
    TempImage img(64ull << 20, mkfs);
    auto vol = Volume::open(img.path, {.bounce = BouncePolicy::kNever});
    REQUIRE_MESSAGE(vol.ok(), vol.status().message());
    Volume& v = **vol;
    auto commits = [&v] { return v.fs().store().stats().transactions_committed; };
    const uint64_t a = v.fs().mknod(kRootIno, "a", S_IFREG | 0644, 0, {})->ino;
    const uint64_t b = v.fs().mknod(kRootIno, "b", S_IFREG | 0644, 0, {})->ino;
    const std::vector<uint8_t> data = pattern(64u << 10, 5);
    REQUIRE(v.write(a, 0, data).ok());

    uint64_t before = commits();
    REQUIRE(v.fsync(a, true).ok());  // new blocks, a new size: fdatasync must commit
    CHECK(commits() == before + 1);
    before = commits();
    REQUIRE(v.fsync(a, false).ok());  // nothing of a is uncommitted any more
    CHECK(commits() == before);

    SetAttrRequest touch;
    touch.mtime_now = true;
    REQUIRE(v.fs().setattr(a, touch).ok());
    before = commits();
    REQUIRE(v.fsync(a, true).ok());  // times only: fdatasync has nothing to commit
    CHECK(commits() == before);
    REQUIRE(v.fsync(b, false).ok());  // another inode's change is not b's
    CHECK(commits() == before);
    REQUIRE(v.fsync(a, false).ok());  // fsync wants the times too
    CHECK(commits() == before + 1);

    // An overwrite: in place without checksums (times only), out of place with them (a remap).
    REQUIRE(v.write(a, 0, data).ok());
    before = commits();
    REQUIRE(v.fsync(a, true).ok());
    CHECK(commits() == before + (checksums ? 1 : 0));
    REQUIRE(v.close().ok());
    vol->reset();  // releases the image
    test::expect_fsck_clean(img.path);
  }
}

}  // namespace stablefs
