// stablefs stats MNT: the bounce policy of a mount, its reason, and the per-path I/O counters.
//
// The mount daemon answers on a unix socket beside its runtime file (stats_socket_path());
// each connection gets one text report and is closed (fs/fuse/stats_server.h, the daemon side).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "fs/fuse/stats_server.h"

namespace stablefs::cli {

std::string stats_socket_path(const std::string& mountpoint) {
  std::string p = runtime_file(mountpoint);
  return p.substr(0, p.size() - 4) + ".sock";
}

namespace {

int run_stats(const std::string& mnt_arg) {
  char resolved[PATH_MAX];
  if (!::realpath(mnt_arg.c_str(), resolved)) {
    print_error("stats", mnt_arg + ": " + std::strerror(errno));
    return 1;
  }
  const std::string mnt = resolved;
  sockaddr_un addr;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || !unix_socket_address(stats_socket_path(mnt), addr) ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    print_error("stats", mnt + ": no stablefs daemon answers for this mountpoint");
    return 1;
  }
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  std::fputs(out.c_str(), stdout);
  return out.empty() ? 1 : 0;
}

}  // namespace

RunFn add_stats_command(CLI::App& root) {
  auto mnt = std::make_shared<std::string>();
  CLI::App* sub = root.add_subcommand("stats", "Show a mount's bounce policy, its reason and the per-path I/O counters");
  sub->add_option("mountpoint", *mnt, "The mountpoint")->required();
  return [mnt] { return run_stats(*mnt); };
}

}  // namespace stablefs::cli
