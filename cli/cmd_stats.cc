// stablefs stats MNT: the bounce policy of a mount, its reason, and the per-path I/O counters,
// as the mount daemon reports them through its control socket (fs/fuse/control_protocol.h).
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <set>

#include "cli/commands.h"
#include "cli/mount_paths.h"
#include "fs/fuse/control_protocol.h"

namespace stablefs::cli {

std::string control_socket_path(const std::string& mountpoint) {
  std::string p = runtime_file(mountpoint);
  return p.substr(0, p.size() - 4) + ".sock";
}

namespace {

constexpr int kAnswerSeconds = 30;

int run_stats(const std::string& mnt_arg) {
  char resolved[PATH_MAX];
  if (!::realpath(mnt_arg.c_str(), resolved)) {
    print_error("stats", mnt_arg + ": " + std::strerror(errno));
    return 1;
  }
  const std::string mnt = resolved;
  Result<nlohmann::json> reply = control_call(control_socket_path(mnt), {{"op", "stats"}}, kAnswerSeconds);
  if (!reply.ok()) {
    print_error("stats", mnt + ": " + reply.status().message());
    return 1;
  }
  auto report = reply->find("report");
  if (report == reply->end() || !report->is_string()) {
    print_error("stats", mnt + ": the daemon's answer has no report");
    return 1;
  }
  std::fputs(report->get<std::string>().c_str(), stdout);
  // Files with blocks that failed their checksum twice (reads and scrubs), with every name.
  const std::set<uint64_t> damaged = damaged_files_from_reply(*reply);
  if (!damaged.empty()) {
    std::printf("files with permanent errors:\n");
    for (const auto& [ino, names] : paths_of_inodes(mnt, damaged)) std::printf("    %s\n", describe_file(ino, names).c_str());
  }
  return 0;
}

}  // namespace

RunFn add_stats_command(CLI::App& root) {
  auto mnt = std::make_shared<std::string>();
  CLI::App* sub = root.add_subcommand("stats", "Show a mount's bounce policy, its reason and the per-path I/O counters");
  sub->add_option("mountpoint", *mnt, "The mountpoint")->required();
  return [mnt] { return run_stats(*mnt); };
}

}  // namespace stablefs::cli
