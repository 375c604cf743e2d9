// Image helpers for tests that change an image file behind the filesystem: write an image's
// bytes over the file (crash points, fault runs), damage one block, and fsck -n it into one
// line.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/checksum.h"
#include "bounce/file_device.h"
#include "fs/tools/fsck.h"

namespace stablefs::test {

// Writes img over the start of the file at path (which nothing may have open for writing).
inline void write_image_file(const std::string& path, const std::vector<uint8_t>& img) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, img.data(), img.size(), 0) == static_cast<ssize_t>(img.size()));
  ::close(fd);
}

// The first n bytes of the file at path.
inline std::vector<uint8_t> read_image_file(const std::string& path, size_t n) {
  std::vector<uint8_t> img(n);
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, img.data(), img.size(), 0) == static_cast<ssize_t>(img.size()));
  ::close(fd);
  return img;
}

// Inverts the bits of byte `at` of device block `block` (block_size bytes) of the image at
// path, behind the filesystem's back (O_DIRECT, as a volume reads). Returns the block's new
// checksum.
inline uint64_t damage_block(const std::string& path, uint64_t block, size_t at, size_t block_size = 4096) {
  const int fd = ::open(path.c_str(), O_RDWR | O_DIRECT);
  REQUIRE(fd >= 0);
  AlignedBuffer b(block_size);
  const off_t off = static_cast<off_t>(block * block_size);
  REQUIRE(::pread(fd, b.data(), block_size, off) == static_cast<ssize_t>(block_size));
  b.data()[at] ^= 0x5A;
  REQUIRE(::pwrite(fd, b.data(), block_size, off) == static_cast<ssize_t>(block_size));
  ::close(fd);
  return xxh3_64(b.data(), block_size);
}

// fsck -n of the image (journal replayed in memory): empty when clean, else its first problem.
inline std::string fsck_problem(const std::string& path) {
  auto dev = FileDevice::open(path, {.read_only = true});
  if (!dev.ok()) return "fsck cannot open: " + dev.status().message();
  FsckReport r = run_fsck(**dev, {});
  if (r.exit_code() != kFsckClean)
    return "fsck: " + (r.problems.empty() ? "exit " + std::to_string(r.exit_code()) : r.problems[0]);
  return {};
}

}  // namespace stablefs::test
