#include "cli/mount_paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

namespace stablefs::cli {
namespace {

struct Walk {
  explicit Walk(const std::set<uint64_t>& w) : wanted(w) {}
  const std::set<uint64_t>& wanted;
  dev_t dev = 0;
  std::map<uint64_t, std::vector<std::string>> found;
  std::map<uint64_t, nlink_t> links;  // names each wanted inode has (once known)
  size_t complete = 0;                // wanted inodes all of whose names were found

  bool done() const { return complete == wanted.size(); }

  void note(uint64_t ino, const std::string& path, int dirfd, const char* name) {
    auto& names = found[ino];
    names.push_back(path);
    auto l = links.find(ino);
    if (l == links.end()) {
      struct stat st {};
      if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
      l = links.emplace(ino, st.st_nlink).first;
    }
    if (names.size() == l->second) ++complete;
  }

  // Lists the directory open at fd (taken over), whose path is `path` ("" for the root).
  void visit(int fd, const std::string& path) {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
    if (!dir) {
      ::close(fd);
      return;
    }
    while (!done()) {
      dirent* e = ::readdir(dir.get());
      if (!e) break;
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = path + "/" + name;
      if (wanted.count(e->d_ino)) note(e->d_ino, child, ::dirfd(dir.get()), e->d_name);
      if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
      const int cfd = ::openat(::dirfd(dir.get()), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0) continue;
      struct stat st {};
      if (::fstat(cfd, &st) != 0 || st.st_dev != dev) {  // another filesystem mounted here
        ::close(cfd);
        continue;
      }
      visit(cfd, child);
    }
  }
};

}  // namespace

std::map<uint64_t, std::vector<std::string>> paths_of_inodes(const std::string& mountpoint,
                                                             const std::set<uint64_t>& wanted) {
  Walk w(wanted);
  for (uint64_t ino : wanted) w.found[ino];
  if (wanted.empty()) return w.found;
  const int fd = ::open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return w.found;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return w.found;
  }
  w.dev = st.st_dev;
  w.visit(fd, "");
  return w.found;
}

std::string describe_file(uint64_t ino, const std::vector<std::string>& names) {
  if (names.empty()) return "inode " + std::to_string(ino) + " (no name)";
  std::string s = names[0];
  if (names.size() > 1) {
    s += " (also";
    for (size_t i = 1; i < names.size(); ++i) s += " " + names[i];
    s += ")";
  }
  return s;
}

}  // namespace stablefs::cli
