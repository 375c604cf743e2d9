// stablefs stats MNT: the bounce policy of a mount, its reason, and the per-path I/O counters.
//
// The mount daemon answers on a unix socket beside its runtime file (stats_socket_path());
// each connection gets one text report and is closed. StatsServer is that daemon side.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <thread>

#include "cli/commands.h"
#include "fs/volume.h"

namespace stablefs::cli {

std::string stats_socket_path(const std::string& mountpoint) {
  std::string p = runtime_file(mountpoint);
  return p.substr(0, p.size() - 4) + ".sock";
}

namespace {

std::string report(Volume& v, const std::string& mountpoint, const std::string& device) {
  const IoStatsSnapshot s = v.io_stats();
  const BounceDecision& d = v.bounce_decision();
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "mountpoint       %s\n"
                "device           %s\n"
                "bounce           %s\n"
                "reason           %s\n"
                "bounced          %llu I/Os, %llu bytes\n"
                "zero-copy        %llu I/Os, %llu bytes\n"
                "unaligned copies %llu bytes (requests copied to aligned memory first)\n"
                "checksum errors  %llu\n"
                "device errors    %llu\n",
                mountpoint.c_str(), device.c_str(), d.bounce ? "yes" : "no (zero-copy)", d.reason.c_str(),
                (unsigned long long)s.bounced_ios, (unsigned long long)s.bounced_bytes,
                (unsigned long long)s.zero_copy_ios, (unsigned long long)s.zero_copy_bytes,
                (unsigned long long)s.unaligned_copy_bytes,
                (unsigned long long)s.checksum_failures, (unsigned long long)s.device_errors);
  return buf;
}

bool make_addr(const std::string& path, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

int run_stats(const std::string& mnt_arg) {
  char resolved[PATH_MAX];
  if (!::realpath(mnt_arg.c_str(), resolved)) {
    print_error("stats", mnt_arg + ": " + std::strerror(errno));
    return 1;
  }
  const std::string mnt = resolved;
  sockaddr_un addr;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || !make_addr(stats_socket_path(mnt), addr) ||
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

struct StatsServer::Impl {
  int fd = -1;
  std::string path;
  std::thread thread;
};

std::unique_ptr<StatsServer> StatsServer::start(Volume& v, const std::string& mountpoint, const std::string& device) {
  auto impl = std::make_unique<Impl>();
  impl->path = stats_socket_path(mountpoint);
  sockaddr_un addr;
  if (!make_addr(impl->path, addr)) return nullptr;
  impl->fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->fd < 0) return nullptr;
  ::unlink(impl->path.c_str());
  if (::bind(impl->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(impl->fd, 8) != 0) {
    ::close(impl->fd);
    return nullptr;
  }
  int lfd = impl->fd;
  impl->thread = std::thread([lfd, &v, mountpoint, device] {
    for (;;) {
      int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      std::string text = report(v, mountpoint, device);
      size_t off = 0;
      while (off < text.size()) {
        ssize_t n = ::send(c, text.data() + off, text.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(c);
    }
  });
  std::unique_ptr<StatsServer> s(new StatsServer());
  s->impl_ = std::move(impl);
  return s;
}

StatsServer::~StatsServer() {
  ::shutdown(impl_->fd, SHUT_RDWR);  // wakes accept()
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->fd);
  ::unlink(impl_->path.c_str());
}

RunFn add_stats_command(CLI::App& root) {
  auto mnt = std::make_shared<std::string>();
  CLI::App* sub = root.add_subcommand("stats", "Show a mount's bounce policy, its reason and the per-path I/O counters");
  sub->add_option("mountpoint", *mnt, "The mountpoint")->required();
  return [mnt] { return run_stats(*mnt); };
}

}  // namespace stablefs::cli
