#include "cli/daemon_client.h"

#include "cli/commands.h"

namespace stablefs::cli {

Result<nlohmann::json> ask_mount_daemon(const std::string& resolved, const nlohmann::json& request,
                                        int timeout_seconds) {
  const std::string mnt = mountpoint_of(resolved);
  if (mnt.empty()) return Status::error(EINVAL, "cannot tell which filesystem holds it");
  Result<nlohmann::json> reply = control_call(control_socket_path(mnt), request, timeout_seconds);
  if (!reply.ok() && reply.status().code() == ECONNREFUSED)
    return Status::error(ENOTSUP, "not on a stablefs mount (no daemon answers for " + mnt + ")");
  return reply;
}

}  // namespace stablefs::cli
