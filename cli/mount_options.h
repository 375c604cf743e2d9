// The -o options of `stablefs mount` (and of mount(8) and fstab lines, which reach it through
// the mount helper): what they set in a mount's configuration.
#pragma once

#include <string>
#include <vector>

#include "fs/fuse/fuse_adapter.h"
#include "fs/volume.h"

namespace stablefs::cli {

struct MountConfig {
  VolumeOptions volume;
  FuseMountOptions fuse;
  unsigned commit_seconds = 5;
  bool autodefrag = true;  // -o autodefrag / noautodefrag (fs/defragmenter.h)
  bool remount = false;  // -o remount: change a live mount (cli/remount.h) instead of mounting
};

// Applies the comma-separated -o lists, in order, to cfg (each option sets only its own
// field, so cfg may start from a mount's current settings). Returns an error message naming
// the first bad option, or "" when all are good.
std::string parse_options(const std::vector<std::string>& lists, MountConfig& cfg);

}  // namespace stablefs::cli
