#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/commands.h"

namespace stablefs::cli {

uint64_t parse_size(const std::string& text) {
  if (text.empty()) throw CLI::ValidationError("size", "empty size");
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos, 10);
  } catch (...) {
    throw CLI::ValidationError("size", "not a size: " + text);
  }
  std::string suffix = text.substr(pos);
  int shift = 0;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "k" || suffix == "KiB") shift = 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") shift = 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") shift = 30;
  else if (suffix == "T" || suffix == "t" || suffix == "TiB") shift = 40;
  else throw CLI::ValidationError("size", "unknown unit in size: " + text);
  if (shift && v > (ULLONG_MAX >> shift)) throw CLI::ValidationError("size", "size too large: " + text);
  return uint64_t(v) << shift;
}

void print_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "stablefs %s: %s\n", command.c_str(), message.c_str());
}

bool is_mounted(const std::string& path) {
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved)) return false;
  struct stat target {};
  if (stat(resolved, &target) != 0) return false;
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source;
    fields >> source;
    if (source == resolved) return true;
    struct stat st {};
    if (S_ISBLK(target.st_mode) && source.rfind("/dev/", 0) == 0 && stat(source.c_str(), &st) == 0 &&
        S_ISBLK(st.st_mode) && st.st_rdev == target.st_rdev)
      return true;
  }
  return false;
}

}  // namespace stablefs::cli

namespace stablefs::cli {

std::string mountpoint_of(const std::string& resolved) {
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0) return {};
  std::string dir = resolved;
  if (!S_ISDIR(st.st_mode)) dir = dir.substr(0, std::max<size_t>(1, dir.find_last_of('/')));
  for (;;) {
    struct stat here {};
    if (::stat(dir.c_str(), &here) != 0 || here.st_dev != st.st_dev) return {};
    if (dir == "/") return dir;
    const std::string parent = dir.substr(0, std::max<size_t>(1, dir.find_last_of('/')));
    struct stat up {};
    if (::stat(parent.c_str(), &up) != 0) return {};
    if (up.st_dev != st.st_dev) return dir;
    dir = parent;
  }
}

}  // namespace stablefs::cli
