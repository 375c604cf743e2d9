// Who sent the FUSE request being served: its credentials as the kernel reports them with the
// request, and what only /proc knows (supplementary groups, capabilities), read on demand.
//
// Threads: any worker serving req, while req has not been answered. The /proc reads cost a
// file read each: ask for them only where a decision needs them.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>

#include "fs/namespace/filesystem.h"

namespace stablefs {

// uid, gid (the caller's fsuid/fsgid) and umask; no supplementary groups.
Credentials request_credentials(fuse_req_t req);
// The same with the caller's supplementary groups.
Credentials request_credentials_with_groups(fuse_req_t req);
// Whether the caller is in group gid (its fsgid or a supplementary group).
bool request_caller_in_group(fuse_req_t req, uint32_t gid);
// Whether the caller's effective capabilities hold CAP_FSETID (it keeps set-id bits when it
// changes a file). False when the caller is gone or /proc cannot tell: the safe answer.
bool request_caller_has_cap_fsetid(fuse_req_t req);

}  // namespace stablefs
