// ControlServer: the daemon side of the control protocol (fs/fuse/control_protocol.h) —
// `stablefs stats`, `stablefs map`, `stablefs sync`, `stablefs scrub`, `stablefs defrag` and a
// remount ask a running mount through it. A thread answers one
// request per connection on a unix socket (mode 0600, and the peer must be root).
//
// Threads: start() and the destructor on the daemon's main thread; the server's own thread
// answers requests one at a time through the Volume's thread-safe calls. The Volume must
// outlive it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "fs/fuse/fuse_adapter.h"
#include "fs/fuse/fuse_receive_loop.h"
#include "fs/defragmenter.h"
#include "fs/scrub.h"
#include "fs/volume.h"

namespace stablefs {

// What the control server answers about: one mount's volume (which must outlive the server),
// its names, and the daemon's receive-buffer counters (null: not reported).
struct ControlTarget {
  Volume* volume = nullptr;
  std::string mountpoint;
  std::string device;
  std::shared_ptr<const TransportStats> receive = {};
  // Applies a remount (FuseServer::remount); empty: remount requests are refused.
  std::function<Status(const RemountSettings&)> remount = {};
  // The mount's online scrub (must outlive the server); null: scrub requests are refused.
  Scrubber* scrubber = nullptr;
  // The mount's defragmenter (must outlive the server); null: defrag requests are refused.
  Defragmenter* defragmenter = nullptr;
};

// The text `stablefs stats` prints for a mount.
std::string stats_report(const ControlTarget& t);

class ControlServer {
 public:
  // Listens on socket_path (replacing a stale socket there). Null when the socket cannot be
  // made: the mount works without it.
  static std::unique_ptr<ControlServer> start(ControlTarget target, const std::string& socket_path);
  // Stops answering (a request being answered finishes first) and removes the socket.
  ~ControlServer();

 private:
  ControlServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stablefs
