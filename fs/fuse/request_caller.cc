#define FUSE_USE_VERSION 312  // the libfuse API the daemon is written against (as fs/fuse/fuse_adapter.cc)
#include "fs/fuse/request_caller.h"

#include <linux/capability.h>
#include <sys/types.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace stablefs {

Credentials request_credentials(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Credentials{static_cast<uint32_t>(ctx->uid), static_cast<uint32_t>(ctx->gid), static_cast<uint32_t>(ctx->umask)};
}

Credentials request_credentials_with_groups(fuse_req_t req) {
  Credentials c = request_credentials(req);
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  for (int i = 0; i < n && i < static_cast<int>(groups.size()); ++i) c.groups.push_back(groups[static_cast<size_t>(i)]);
  return c;
}

bool request_caller_in_group(fuse_req_t req, uint32_t gid) {
  const Credentials c = request_credentials(req);
  if (c.gid == gid) return true;
  const Credentials all = request_credentials_with_groups(req);
  for (uint32_t g : all.groups)
    if (g == gid) return true;
  return false;
}

bool request_caller_has_cap_fsetid(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx->pid <= 0) return false;
  const std::string path = "/proc/" + std::to_string(ctx->pid) + "/status";
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return false;
  bool has = false;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long caps = 0;
    if (std::sscanf(line, "CapEff: %llx", &caps) == 1) {
      has = (caps >> CAP_FSETID) & 1;
      break;
    }
  }
  std::fclose(f);
  return has;
}

}  // namespace stablefs
