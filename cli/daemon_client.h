// Asking the daemon of a mount: the client side of the control protocol for the commands that
// take a path inside a mount (map, sync).
#pragma once

#include <string>

#include "fs/fuse/control_protocol.h"

namespace stablefs::cli {

// Sends request to the daemon of the mount holding `resolved` (an absolute path without
// symlinks: realpath's answer) and returns its reply. When no stablefs daemon answers for that
// filesystem: ENOTSUP, "not on a stablefs mount (no daemon answers for MNT)"; other failures
// as control_call gives them.
Result<nlohmann::json> ask_mount_daemon(const std::string& resolved, const nlohmann::json& request,
                                        int timeout_seconds);

}  // namespace stablefs::cli
