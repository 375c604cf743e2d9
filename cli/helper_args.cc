// The argument conventions of mount(8) and umount(8) helpers, translated into stablefs
// subcommands. mount(8) runs "/sbin/mount.stablefs SPEC DIR [-sfnvrw] [-N NS] [-o OPTS]
// [-t TYPE]"; umount(8) runs "/sbin/umount.stablefs DIR [-nlfvr] [-t TYPE]" (for a mount whose
// utab entry names helper=stablefs, see mount_table.h) or /sbin/umount.fuse.stablefs (found by
// the type fuse.stablefs).
#include <string>
#include <vector>

#include "cli/commands.h"

namespace stablefs::cli {

std::vector<std::string> mount_helper_args(const std::vector<std::string>& argv) {
  std::vector<std::string> positional;
  std::string opts;
  auto add_opt = [&](const std::string& o) {
    if (o.empty()) return;
    if (!opts.empty()) opts += ",";
    opts += o;
  };
  bool fake = false;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "-o" && i + 1 < argv.size()) add_opt(argv[++i]);
    else if (a.rfind("-o", 0) == 0 && a.size() > 2) add_opt(a.substr(2));
    else if ((a == "-t" || a == "-N") && i + 1 < argv.size()) ++i;  // type is ours; namespaces unsupported
    else if (a.size() > 1 && a[0] == '-' && a.find_first_not_of("sfnvrw", 1) == std::string::npos) {
      for (char c : a.substr(1)) {
        if (c == 'r') add_opt("ro");
        else if (c == 'w') add_opt("rw");
        else if (c == 'f') fake = true;
      }
    } else positional.push_back(a);
  }
  if (fake) return {};  // mount -f: do everything but the mount
  // mount(8) hands a helper the whole option set (on a remount: merged with the mount's own).
  std::vector<std::string> out = {argv[0], "mount", "--complete-options"};
  out.insert(out.end(), positional.begin(), positional.end());
  if (!opts.empty()) {
    out.push_back("-o");
    out.push_back(opts);
  }
  return out;
}

std::vector<std::string> umount_helper_args(const std::vector<std::string>& argv) {
  std::vector<std::string> out = {argv[0], "umount"};
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "-t" && i + 1 < argv.size()) ++i;
    else if (a.size() > 1 && a[0] == '-') {
      if (a.find('l') != std::string::npos) out.push_back("--lazy");
    } else out.push_back(a);
  }
  return out;
}

}  // namespace stablefs::cli
