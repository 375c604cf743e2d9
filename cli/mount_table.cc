// The userspace mount table entry of a stablefs mount (see mount_table.h), through libmount.
#include "cli/mount_table.h"

#include <libmount.h>

#include <cstdio>
#include <fstream>

namespace stablefs::cli {
namespace {

// A path as libmount writes it in utab: space, tab, newline and backslash as \ooo.
std::string mangle(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\%03o", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Whether the utab file lists an entry for target.
bool has_entry(const std::string& utab, const std::string& target) {
  std::ifstream f(utab);
  const std::string needle = " TARGET=" + mangle(target) + " ";
  std::string line;
  while (std::getline(f, line))
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

// Removes one utab entry of target; returns the utab path, or "" when there is none to write.
std::string remove_one(const std::string& target) {
  libmnt_update* upd = mnt_new_update();
  if (!upd) return "";
  std::string utab;
  // 0: ready to write; 1: nothing to do (no writable utab).
  if (mnt_update_set_fs(upd, 0, target.c_str(), nullptr) == 0) {
    if (const char* name = mnt_update_get_filename(upd)) utab = name;
    (void)mnt_update_table(upd, nullptr);
  }
  mnt_free_update(upd);
  return utab;
}

// Removes every entry of target (libmount removes one per update; a daemon killed with
// SIGKILL leaves its entry behind). Bounded.
void remove_all(const std::string& target) {
  for (int i = 0; i < 16; ++i) {
    std::string utab = remove_one(target);
    if (utab.empty() || !has_entry(utab, target)) return;
  }
}

}  // namespace

bool register_umount_helper(const std::string& source, const std::string& target, const std::string& fstype) {
  remove_all(target);  // stale entries of an earlier mount here
  libmnt_fs* fs = mnt_new_fs();
  if (!fs) return false;
  bool ok = false;
  if (mnt_fs_set_source(fs, source.c_str()) == 0 && mnt_fs_set_target(fs, target.c_str()) == 0 &&
      mnt_fs_set_fstype(fs, fstype.c_str()) == 0 && mnt_fs_set_options(fs, "helper=stablefs") == 0) {
    libmnt_update* upd = mnt_new_update();
    if (upd && mnt_update_set_fs(upd, 0, nullptr, fs) == 0) ok = mnt_update_table(upd, nullptr) == 0;
    mnt_free_update(upd);
  }
  mnt_unref_fs(fs);
  return ok;
}

void unregister_umount_helper(const std::string& target) { remove_all(target); }

}  // namespace stablefs::cli
