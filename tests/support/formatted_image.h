// FormattedImage: a stablefs image file under /var/tmp for tests that run the real data path
// (Volume, O_DIRECT), removed with any crash copies however the test ends; and
// expect_fsck_clean, the check most of those tests end with.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "bounce/file_device.h"
#include "fs/tools/fsck.h"
#include "fs/tools/mkfs.h"

namespace stablefs::test {

class FormattedImage {
 public:
  // A sparse image of `bytes`, formatted with opts. tag names the file (debugging).
  explicit FormattedImage(uint64_t bytes, MkfsOptions opts = {}, const std::string& tag = "img") {
    std::string tmpl = "/var/tmp/stablefs-" + tag + "-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    const int fd = ::mkstemp(name.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name.data();
    REQUIRE(FileDevice::create_image(path, bytes).ok());
    auto dev = FileDevice::open(path, {});
    REQUIRE_MESSAGE(dev.ok(), dev.status().message());
    REQUIRE(make_filesystem(**dev, opts).ok());
  }
  ~FormattedImage() {
    ::unlink(path.c_str());
    for (const std::string& c : copies_) ::unlink(c.c_str());
  }
  FormattedImage(const FormattedImage&) = delete;
  FormattedImage& operator=(const FormattedImage&) = delete;

  // A byte copy of the image as the device holds it now: what a crash at this point leaves
  // (O_DIRECT writes that completed are in it; nothing the daemon still holds in memory is).
  std::string crash_copy() {
    const std::string c = path + ".crash" + std::to_string(copies_.size());
    const std::string cmd = "cp --sparse=always '" + path + "' '" + c + "'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    copies_.push_back(c);
    return c;
  }

  std::string path;

 private:
  std::vector<std::string> copies_;
};

// fsck -n of the image (nothing may have it open) finds nothing at all.
inline void expect_fsck_clean(const std::string& path) {
  auto dev = FileDevice::open(path, {.read_only = true});
  REQUIRE_MESSAGE(dev.ok(), dev.status().message());
  FsckReport rep = run_fsck(**dev, {});
  std::string all;
  for (const auto& p : rep.problems) all += p + "\n";
  CHECK_MESSAGE(rep.exit_code() == kFsckClean, path, ": fsck exit ", rep.exit_code(), " ", rep.fatal, "\n", all);
  CHECK_MESSAGE(rep.problems.empty(), all);
}

}  // namespace stablefs::test
