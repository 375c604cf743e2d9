#include "cli/stderr_to_syslog.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <thread>

namespace stablefs::cli {
namespace {

// Reads lines from fd until it is closed and logs each; a line longer than 4 KiB is logged in
// pieces.
void forward_lines(int fd) {
  std::string line;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = line.find('\n')) != std::string::npos || line.size() >= 4096) {
      const size_t len = nl == std::string::npos ? line.size() : nl;
      syslog(LOG_ERR, "%.*s", static_cast<int>(len), line.data());
      line.erase(0, nl == std::string::npos ? len : len + 1);
    }
  }
  if (!line.empty()) syslog(LOG_ERR, "%s", line.c_str());
  ::close(fd);
}

}  // namespace

bool send_stderr_to_syslog() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  try {
    std::thread(forward_lines, fds[0]).detach();
  } catch (const std::system_error&) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  ::dup2(fds[1], 2);  // fd 2 itself is not close-on-exec
  ::close(fds[1]);
  return true;
}

}  // namespace stablefs::cli
