// stablefs sync PATH...: makes everything written so far to the stablefs mount holding each PATH
// durable (journal commit and device cache flush), through the daemon's control socket.
//
// sync(1) and syncfs(2) reach no FUSE server but virtiofs: this kernel sends FUSE_SYNCFS to
// nobody else, so after `cp ...; sync` the copy is durable only once the daemon's timer commits
// (commit=N seconds). `stablefs sync MNT` is the command that does it now; fsync(2) of a file
// does it for that file.
#include <climits>
#include <cstdlib>
#include <cstring>

#include "cli/commands.h"
#include "cli/daemon_client.h"

namespace stablefs::cli {
namespace {

constexpr int kAnswerSeconds = 120;  // a commit of a large transaction, on a slow device

int run_sync(const std::vector<std::string>& paths) {
  int rc = 0;
  for (const std::string& path : paths) {
    char resolved[PATH_MAX];
    if (!::realpath(path.c_str(), resolved)) {
      print_error("sync", path + ": " + std::strerror(errno));
      rc = 1;
      continue;
    }
    Result<nlohmann::json> reply = ask_mount_daemon(resolved, {{"op", "sync"}}, kAnswerSeconds);
    if (!reply.ok()) {
      print_error("sync", path + ": " + reply.status().message());
      rc = 1;
    }
  }
  return rc;
}

}  // namespace

RunFn add_sync_command(CLI::App& root) {
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = root.add_subcommand("sync", "Make everything written to a stablefs mount durable now (sync(1) cannot)");
  sub->add_option("paths", *paths, "The mountpoint, or any path inside the mount")->required();
  return [paths] { return run_sync(*paths); };
}

}  // namespace stablefs::cli
