// stablefs-metadata-bench: metadata rates of any mounted filesystem, through system calls.
//
//   stablefs-metadata-bench DIR --files 50000 --dirs 1 [--sync-command CMD]
//
// In a new directory under DIR (removed at the end), spread over --dirs subdirectories:
// creates --files empty files (open O_CREAT|O_EXCL, close), stats each (entries the kernel has
// just seen), renames each within its directory, unlinks each; then writes --files files of
// 4 KiB each and makes them durable: CMD through /bin/sh when given (a filesystem whose
// syncfs(2) does not reach it names its own), syncfs(2) otherwise — that phase is timed from
// the first write to the end of the sync. One line per phase:
//   phase=create files=50000 dirs=1 seconds=1.234 per_second=40518
// Exit 1 with one line on stderr when a call fails.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "stablefs-metadata-bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// Runs fn(i) for every file and prints the phase's rate.
void phase(const char* name, size_t files, size_t dirs, const std::function<void(size_t)>& fn) {
  const auto t0 = Clock::now();
  for (size_t i = 0; i < files; ++i) fn(i);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("phase=%s files=%zu dirs=%zu seconds=%.3f per_second=%.0f\n", name, files, dirs, secs, double(files) / secs);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, sync_command;
  size_t files = 50000, dirs = 1;
  CLI::App app{"Metadata rates of a mounted filesystem"};
  app.add_option("dir", dir, "A directory on the filesystem to measure")->required();
  app.add_option("--files", files, "Files per phase")->check(CLI::Range(size_t{1}, size_t{10000000}));
  app.add_option("--dirs", dirs, "Directories the files are spread over")->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--sync-command", sync_command, "Command that makes the filesystem durable (default: syncfs)");
  CLI11_PARSE(app, argc, argv);

  const std::string root = dir + "/metadata-bench." + std::to_string(::getpid());
  if (::mkdir(root.c_str(), 0755) != 0) die("mkdir " + root);
  for (size_t d = 0; d < dirs; ++d)
    if (::mkdir((root + "/d" + std::to_string(d)).c_str(), 0755) != 0) die("mkdir");
  auto path = [&](size_t i, const char* prefix) {
    return root + "/d" + std::to_string(i % dirs) + "/" + prefix + std::to_string(i);
  };

  phase("create", files, dirs, [&](size_t i) {
    const int fd = ::open(path(i, "f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) die("create " + path(i, "f"));
    ::close(fd);
  });
  phase("stat", files, dirs, [&](size_t i) {
    struct stat st;
    if (::stat(path(i, "f").c_str(), &st) != 0) die("stat " + path(i, "f"));
  });
  phase("rename", files, dirs, [&](size_t i) {
    if (::rename(path(i, "f").c_str(), path(i, "r").c_str()) != 0) die("rename " + path(i, "f"));
  });
  phase("unlink", files, dirs, [&](size_t i) {
    if (::unlink(path(i, "r").c_str()) != 0) die("unlink " + path(i, "r"));
  });

  std::vector<char> block(4096, 'x');
  const auto t0 = Clock::now();
  for (size_t i = 0; i < files; ++i) {
    const int fd = ::open(path(i, "s").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) die("create " + path(i, "s"));
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) die("write " + path(i, "s"));
    ::close(fd);
  }
  if (!sync_command.empty()) {
    if (std::system(sync_command.c_str()) != 0) {
      errno = EIO;
      die("sync command " + sync_command);
    }
  } else {
    const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0 || ::syncfs(fd) != 0) die("syncfs " + root);
    ::close(fd);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("phase=small-files-synced files=%zu dirs=%zu seconds=%.3f per_second=%.0f\n", files, dirs, secs,
              double(files) / secs);

  for (size_t i = 0; i < files; ++i)
    if (::unlink(path(i, "s").c_str()) != 0) die("unlink " + path(i, "s"));
  for (size_t d = 0; d < dirs; ++d) ::rmdir((root + "/d" + std::to_string(d)).c_str());
  ::rmdir(root.c_str());
  return 0;
}
