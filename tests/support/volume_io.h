// Helpers for tests that drive a Volume on an image (support/formatted_image.h): open it, make
// a file in the root directory, and write or read bytes through the real data path, failing
// the test on any error or short transfer.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "fs/volume.h"

namespace stablefs::test {

inline std::unique_ptr<Volume> open_volume(const std::string& path, VolumeOptions opts = {.bounce = BouncePolicy::kNever}) {
  auto v = Volume::open(path, opts);
  REQUIRE_MESSAGE(v.ok(), v.status().message());
  return std::move(v).value();
}

// A new regular file (mode 0644) named name in the root directory; its inode number.
inline uint64_t make_file(Volume& v, const char* name) {
  auto f = v.fs().mknod(kRootIno, name, S_IFREG | 0644, 0, {});
  REQUIRE_MESSAGE(f.ok(), f.status().message());
  return f->ino;
}

inline void write_at(Volume& v, uint64_t ino, uint64_t off, const std::vector<uint8_t>& data) {
  AlignedBuffer buf(data.size());
  std::copy(data.begin(), data.end(), buf.data());
  auto w = v.write(ino, off, buf.span());
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  REQUIRE(*w == data.size());
}

inline std::vector<uint8_t> read_at(Volume& v, uint64_t ino, uint64_t off, size_t n) {
  AlignedBuffer buf(n);
  auto r = v.read(ino, off, buf.span());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(*r == n);
  return {buf.data(), buf.data() + n};
}

}  // namespace stablefs::test
