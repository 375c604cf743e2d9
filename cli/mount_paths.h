// Names of inodes on a mounted stablefs, found from outside: a walk of the mount's directory
// tree (readdir's d_ino is the stablefs inode number), for reports from the daemon that name
// files by inode (scrub, stats).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace stablefs::cli {

// Every path (relative to the mount's root, starting with "/") of each inode in wanted, under
// mountpoint, not crossing into other filesystems; an inode with no name found maps to an
// empty list. Directories that cannot be read are skipped. Stops early once every wanted
// inode's link count (st_nlink) of names has been found.
std::map<uint64_t, std::vector<std::string>> paths_of_inodes(const std::string& mountpoint,
                                                             const std::set<uint64_t>& wanted);

// How a report names a file: "/a/b (also /c)", or "inode N (no name)" when names is empty.
std::string describe_file(uint64_t ino, const std::vector<std::string>& names);

}  // namespace stablefs::cli
