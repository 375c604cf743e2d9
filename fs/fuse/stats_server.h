// StatsServer: the daemon side of `stablefs stats` — a thread answering on a unix socket with
// the Volume's bounce decision and I/O counters (stats_report()), one text report per
// connection, then the connection is closed.
//
// Threads: start() and the destructor on the daemon's main thread; the server's own thread
// reads the Volume's counters (thread-safe) and nothing else. The Volume must outlive it.
#pragma once

#include <sys/un.h>

#include <memory>
#include <string>
#include <thread>

#include "fs/volume.h"

namespace stablefs {

// The text `stablefs stats` prints for a mount.
std::string stats_report(Volume& v, const std::string& mountpoint, const std::string& device);

// addr for a unix socket at path; false when the path is too long for one.
bool unix_socket_address(const std::string& path, sockaddr_un& addr);

class StatsServer {
 public:
  // Listens on socket_path (replacing a stale socket there). Null when the socket cannot be
  // made: the mount works without it.
  static std::unique_ptr<StatsServer> start(Volume& v, const std::string& socket_path, const std::string& mountpoint,
                                            const std::string& device);
  // Stops answering and removes the socket.
  ~StatsServer();

 private:
  StatsServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stablefs
