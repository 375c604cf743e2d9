#include "fs/fuse/stats_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace stablefs {

std::string stats_report(Volume& v, const std::string& mountpoint, const std::string& device) {
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

bool unix_socket_address(const std::string& path, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

struct StatsServer::Impl {
  int fd = -1;
  std::string path;
  std::thread thread;
};

std::unique_ptr<StatsServer> StatsServer::start(Volume& v, const std::string& socket_path, const std::string& mountpoint,
                                               const std::string& device) {
  auto impl = std::make_unique<Impl>();
  impl->path = socket_path;
  sockaddr_un addr;
  if (!unix_socket_address(impl->path, addr)) return nullptr;
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
      std::string text = stats_report(v, mountpoint, device);
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

}  // namespace stablefs
