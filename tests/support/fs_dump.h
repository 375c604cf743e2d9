// dump_namespace: a canonical text rendering of a filesystem's whole namespace (paths, inode
// numbers, types, attributes, link counts, symlink targets, xattrs), for tests that compare
// filesystem states.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "bounce/checksum.h"
#include "fs/namespace/filesystem.h"

namespace stablefs::test {

inline Status dump_dir(Filesystem& fs, uint64_t dir, const std::string& path, std::ostringstream& out, int depth) {
  if (depth > 64) return Status::error(ELOOP, "directory tree too deep");
  std::vector<DirEntry> entries;
  SFS_TRY(fs.readdir(dir, 0, [&](const DirEntry& e) {
    entries.push_back(e);
    return true;
  }));
  std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const DirEntry& e : entries) {
    SFS_ASSIGN(Inode in, fs.getattr(e.ino));
    const InodeRecord& r = in.rec;
    std::string p = path + "/" + e.name;
    out << p << " ino=" << in.ino << " mode=" << std::oct << r.mode << std::dec << " uid=" << r.uid << " gid=" << r.gid
        << " nlink=" << r.nlink << " size=" << r.size << " rdev=" << r.rdev << " mtime=" << r.mtime.sec << "." << r.mtime.nsec
        << " ctime=" << r.ctime.sec << "." << r.ctime.nsec;
    if (S_ISLNK(r.mode)) {
      SFS_ASSIGN(std::string target, fs.readlink(in.ino));
      out << " -> " << target;
    }
    SFS_ASSIGN(std::vector<std::string> names, fs.listxattr(in.ino));
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      SFS_ASSIGN(std::vector<uint8_t> v, fs.getxattr(in.ino, n));
      // A large value as its length and hash: a dump per step of a workload stays small.
      if (v.size() > 1024) out << " xattr:" << n << "=<" << v.size() << " bytes, xxh3 " << xxh3_64(v.data(), v.size()) << ">";
      else out << " xattr:" << n << "=" << std::string(v.begin(), v.end());
    }
    out << "\n";
    if (S_ISDIR(r.mode)) SFS_TRY(dump_dir(fs, in.ino, p, out, depth + 1));
  }
  return {};
}

inline Result<std::string> dump_namespace(Filesystem& fs) {
  std::ostringstream out;
  SFS_ASSIGN(Inode root, fs.getattr(kRootIno));
  out << "/ mode=" << std::oct << root.rec.mode << std::dec << " nlink=" << root.rec.nlink << "\n";
  SFS_TRY(dump_dir(fs, kRootIno, "", out, 0));
  return out.str();
}

}  // namespace stablefs::test
