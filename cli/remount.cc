#include "cli/remount.h"

#include <limits.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cli/commands.h"
#include "fs/fuse/control_protocol.h"

namespace stablefs::cli {
namespace {

constexpr int kRemountAnswerSeconds = 120;  // going read-only writes every dirty block home

// cfg as the mount at mountpoint has it now, from its kernel flags (which say the truth for
// the atime policy too: see set_kernel_mount_flags).
Result<MountConfig> current_config(const std::string& mountpoint) {
  struct statvfs sv {};
  if (::statvfs(mountpoint.c_str(), &sv) != 0) return Status::error(errno, mountpoint + ": " + std::strerror(errno));
  MountConfig cfg;
  cfg.volume.read_only = cfg.fuse.read_only = (sv.f_flag & ST_RDONLY) != 0;
  cfg.fuse.suid = !(sv.f_flag & ST_NOSUID);
  cfg.fuse.dev = !(sv.f_flag & ST_NODEV);
  cfg.fuse.exec = !(sv.f_flag & ST_NOEXEC);
  cfg.fuse.atime = (sv.f_flag & ST_NOATIME)    ? AtimePolicy::kNever
                   : (sv.f_flag & ST_RELATIME) ? AtimePolicy::kRelative
                                               : AtimePolicy::kAlways;
  cfg.fuse.dir_atime = !(sv.f_flag & ST_NODIRATIME);
  return cfg;
}

Status tell_daemon(const std::string& mountpoint, const MountConfig& cfg) {
  RemountSettings s;
  s.read_only = cfg.fuse.read_only;
  s.atime = cfg.fuse.atime;
  s.dir_atime = cfg.fuse.dir_atime;
  Result<nlohmann::json> reply = control_call(control_socket_path(mountpoint), remount_request(s), kRemountAnswerSeconds);
  if (!reply.ok() && reply.status().code() == ECONNREFUSED)
    return Status::error(EINVAL, mountpoint + ": not a stablefs mount (no daemon answers for it)");
  return reply.status();
}

}  // namespace

Status set_kernel_mount_flags(const std::string& mountpoint, const MountConfig& cfg) {
  unsigned long flags = MS_REMOUNT;
  if (cfg.fuse.read_only) flags |= MS_RDONLY;
  if (!cfg.fuse.suid) flags |= MS_NOSUID;
  if (!cfg.fuse.dev) flags |= MS_NODEV;
  if (!cfg.fuse.exec) flags |= MS_NOEXEC;
  switch (cfg.fuse.atime) {
    case AtimePolicy::kNever: flags |= MS_NOATIME; break;
    case AtimePolicy::kRelative: flags |= MS_RELATIME; break;
    case AtimePolicy::kAlways: flags |= MS_STRICTATIME; break;
  }
  if (!cfg.fuse.dir_atime) flags |= MS_NODIRATIME;
  if (::mount(nullptr, mountpoint.c_str(), nullptr, flags, nullptr) == 0) return {};
  const int err = errno;
  if (err == EBUSY && cfg.fuse.read_only)
    return Status::error(EBUSY, mountpoint + ": cannot remount read-only: busy (a file is open for writing, or deleted while still open)");
  return Status::error(err, mountpoint + ": remount failed: " + std::strerror(err));
}

int run_remount(const std::string& mountpoint, const std::vector<std::string>& option_lists, bool complete) {
  char resolved[PATH_MAX];
  if (!::realpath(mountpoint.c_str(), resolved)) {
    print_error("mount", mountpoint + ": " + std::strerror(errno));
    return 1;
  }
  const std::string mnt = resolved;
  if (mountpoint_of(mnt) != mnt) {
    print_error("mount", mnt + ": not a mountpoint");
    return 1;
  }
  // Before anything changes: a daemon of ours answers for it.
  Result<nlohmann::json> alive = control_call(control_socket_path(mnt), {{"op", "stats"}}, kRemountAnswerSeconds);
  if (!alive.ok()) {
    print_error("mount", alive.status().code() == ECONNREFUSED ? mnt + ": not a stablefs mount (no daemon answers for it)"
                                                               : mnt + ": " + alive.status().message());
    return 1;
  }
  Result<MountConfig> now = current_config(mnt);
  if (!now.ok()) {
    print_error("mount", now.status().message());
    return 1;
  }
  // What the mount keeps whatever the options say (bounce=, bounce_pool=, submit=, commit=, allow_other, subtype=:
  // fixed when it was mounted; mount(8) passes fstab's and the mount's own back on a remount).
  MountConfig want = *now;
  if (complete) {
    want = MountConfig{};
    want.volume.read_only = want.fuse.read_only = now->fuse.read_only;  // unless ro or rw says
    // mount(8) writes the kernel's relatime and noatime out and strictatime as their absence.
    want.fuse.atime = AtimePolicy::kAlways;
  }
  if (std::string err = parse_options(option_lists, want); !err.empty()) {
    print_error("mount", err);
    return 1;
  }
  want.volume.read_only = want.fuse.read_only;
  const bool to_rw = now->fuse.read_only && !want.fuse.read_only;
  auto fail = [](const Status& st) {
    print_error("mount", st.message());
    return 1;
  };
  if (to_rw) {
    if (Status st = tell_daemon(mnt, want); !st.ok()) return fail(st);
    if (Status st = set_kernel_mount_flags(mnt, want); !st.ok()) {
      (void)tell_daemon(mnt, *now);
      return fail(st);
    }
    return 0;
  }
  if (Status st = set_kernel_mount_flags(mnt, want); !st.ok()) return fail(st);
  if (Status st = tell_daemon(mnt, want); !st.ok()) {
    (void)set_kernel_mount_flags(mnt, *now);
    return fail(st);
  }
  return 0;
}

}  // namespace stablefs::cli
