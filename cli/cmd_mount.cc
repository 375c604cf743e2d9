// stablefs mount DEV MNT [-o opts] [-f]: serves a stablefs filesystem at MNT through FUSE.
// stablefs umount MNT: unmounts it and waits until the daemon has released the device.
//
// mount daemonizes unless -f: the child opens the Volume (replaying the journal), mounts, and
// only then tells the parent through a pipe, so the parent returns once the filesystem is live
// (exit 0) or prints the child's one-line error (exit 1). The daemon records "PID\nDEV\n" in a
// runtime file named after the mountpoint (runtime_file()); umount waits for that file to go,
// which the daemon removes after Volume::close() and after closing the device.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/mount_options.h"
#include "cli/mount_table.h"
#include "cli/remount.h"
#include "cli/stderr_to_syslog.h"
#include "bounce/file_device.h"
#include "fs/fuse/commit_timer.h"
#include "fs/fuse/fuse_adapter.h"
#include "fs/fuse/control_server.h"
#include "fs/format/superblock_io.h"
#include "fs/volume.h"

namespace stablefs::cli {
namespace {

struct MountArgs {
  std::string device;
  std::string mountpoint;
  std::vector<std::string> options;
  bool foreground = false;
  bool complete_options = false;  // mount(8)'s helpers: -o is the whole option set (remount)
};

// strictatime and nodiratime reach the kernel's flags only through a remount (libfuse cannot
// pass them): without it /proc/mounts would say relatime, and mount(8) would pass that back on
// the next remount. Called once the mount is live. Returns the exit status.
int show_atime_flags(const std::string& mountpoint, const MountConfig& cfg) {
  if (cfg.fuse.atime != AtimePolicy::kAlways && cfg.fuse.dir_atime) return 0;
  if (Status st = set_kernel_mount_flags(mountpoint, cfg); !st.ok()) {
    print_error("mount", st.message() + " (setting strictatime/nodiratime)");
    return 1;
  }
  return 0;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// The daemon (or the foreground process): opens, mounts, reports through report_fd (-1:
// print), serves, closes. Returns the exit status.
int serve(const MountArgs& a, MountConfig cfg, int report_fd) {
  auto report_error = [&](const std::string& msg) {
    if (report_fd >= 0) {
      write_all(report_fd, msg + "\n");
      ::close(report_fd);
    } else {
      print_error("mount", msg);
    }
    return 1;
  };
  auto volume = Volume::open(a.device, cfg.volume);
  if (!volume.ok()) return report_error(volume.status().message());
  cfg.fuse.mountpoint = a.mountpoint;
  cfg.fuse.fsname = a.device;
  cfg.fuse.receive_stats = std::make_shared<TransportStats>();
  auto server = FuseServer::mount(**volume, cfg.fuse);
  if (!server.ok()) {
    (void)(*volume)->close();
    return report_error(server.status().message());
  }
  // A utab entry with helper=stablefs makes a plain umount(8) run /sbin/umount.stablefs,
  // which waits for this daemon (see mount_table.h). Written while this process has one thread.
  const bool registered = register_umount_helper(
      a.device, a.mountpoint, cfg.fuse.subtype.empty() ? "fuse" : "fuse." + cfg.fuse.subtype);
  const std::string runtime = runtime_file(a.mountpoint);
  {
    std::ofstream f(runtime, std::ios::trunc);
    f << getpid() << "\n" << a.device << "\n";
  }
  if (report_fd >= 0) {
    write_all(report_fd, "ok\n");
    ::close(report_fd);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      if (!cfg.fuse.debug) {
        ::dup2(null, 1);
        if (!send_stderr_to_syslog()) ::dup2(null, 2);
      }
      ::dup2(null, 0);
      if (null > 2) ::close(null);
    }
  }
  auto timer = std::make_unique<CommitTimer>(**volume, cfg.commit_seconds);
  auto scrubber = std::make_unique<Scrubber>(**volume);
  // Automatic on read-write mounts only; `stablefs defrag` asks it either way (a read-only
  // mount answers EROFS).
  auto defragmenter =
      std::make_unique<Defragmenter>(**volume, DefragOptions{.automatic = cfg.autodefrag && !cfg.volume.read_only});
  FuseServer* fuse = server->get();
  auto control = ControlServer::start({volume->get(), a.mountpoint, a.device, cfg.fuse.receive_stats,
                                       [fuse](const RemountSettings& s) { return fuse->remount(s); }, scrubber.get(),
                                       defragmenter.get()},
                                      control_socket_path(a.mountpoint));
  if (!control) syslog(LOG_WARNING, "%s: stablefs stats and map will not answer (control socket)", a.mountpoint.c_str());
  // In the foreground nobody waits for "ok": the atime flags are set beside the serving loop
  // (the remount waits for the kernel's INIT, which run() answers).
  std::thread flags;
  if (report_fd < 0) flags = std::thread([&a, &cfg] { (void)show_atime_flags(a.mountpoint, cfg); });
  Status run = (*server)->run();
  if (flags.joinable()) flags.join();
  control.reset();
  defragmenter.reset();  // a chunk being moved is finished first
  scrubber.reset();  // a scrub under way stops here, its position saved for the next mount
  timer.reset();
  server->reset();  // the session is gone: no request can reach the volume any more
  Status closed = (*volume)->close();
  volume->reset();  // releases the device
  if (registered) unregister_umount_helper(a.mountpoint);  // umount(8) may have removed it already
  ::unlink(runtime.c_str());
  int rc = 0;
  if (!run.ok()) {
    syslog(LOG_ERR, "%s", run.message().c_str());
    rc = 1;
  }
  if (!closed.ok()) {
    syslog(LOG_ERR, "%s: close failed: %s", a.device.c_str(), closed.message().c_str());
    if (report_fd < 0) print_error("mount", a.device + ": close failed: " + closed.message());
    rc = 1;
  }
  return rc;
}

// Directory of the runtime files (see runtime_file()).
std::string runtime_dir() {
  std::string f = runtime_file("/");
  return f.substr(0, f.find_last_of('/'));
}

bool mounted_at(const std::string& mountpoint) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source, target;
    fields >> source >> target;
    if (target == mountpoint) return true;
  }
  return false;
}

// A daemon that served device at a mountpoint that is no longer mounted: it is still
// closing the volume (or died without removing its runtime file). Returns its pid and file.
std::pair<pid_t, std::string> releasing_daemon(const std::string& device) {
  const std::string dir = runtime_dir();
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {0, ""};
  std::pair<pid_t, std::string> found{0, ""};
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".pid") continue;
    std::string path = dir + "/" + name, dev;
    pid_t pid = 0;
    std::ifstream f(path);
    f >> pid >> dev;
    if (dev != device || pid <= 0) continue;
    std::string mnt;  // percent-decoded file name
    for (size_t i = 0; i < name.size() - 4; ++i) {
      if (name[i] == '%' && i + 2 < name.size() - 4) {
        mnt.push_back(static_cast<char>(std::strtol(name.substr(i + 1, 2).c_str(), nullptr, 16)));
        i += 2;
      } else mnt.push_back(name[i]);
    }
    if (mounted_at(mnt)) continue;
    found = {pid, path};
  }
  ::closedir(d);
  return found;
}

// Waits (bounded) until a daemon releasing device has exited; removes a stale runtime file.
void wait_for_releasing_daemon(const std::string& device, unsigned seconds) {
  auto [pid, path] = releasing_daemon(device);
  if (pid <= 0) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      ::unlink(path.c_str());  // died without cleaning up (SIGKILL)
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int run_mount(MountArgs a) {
  MountConfig cfg;
  if (std::string err = parse_options(a.options, cfg); !err.empty()) {
    print_error("mount", err);
    return 1;
  }
  // -o remount [DEVICE] MOUNTPOINT (mount(8) passes both; the device is the mount's own).
  if (cfg.remount) return run_remount(a.mountpoint.empty() ? a.device : a.mountpoint, a.options, a.complete_options);
  if (a.mountpoint.empty()) {
    print_error("mount", "a mountpoint is required (stablefs mount DEVICE MOUNTPOINT)");
    return 1;
  }
  struct stat st {};
  if (::stat(a.device.c_str(), &st) != 0) {
    print_error("mount", a.device + ": " + std::strerror(errno));
    return 1;
  }
  if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
    print_error("mount", a.device + ": not a block device or image file");
    return 1;
  }
  char resolved[PATH_MAX];
  if (!::realpath(a.mountpoint.c_str(), resolved) || ::stat(resolved, &st) != 0) {
    print_error("mount", a.mountpoint + ": " + std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    print_error("mount", a.mountpoint + ": not a directory");
    return 1;
  }
  a.mountpoint = resolved;
  if (!::realpath(a.device.c_str(), resolved)) {
    print_error("mount", a.device + ": " + std::strerror(errno));
    return 1;
  }
  a.device = resolved;
  // Look before forking: a device in use (mounted elsewhere) or a foreign or damaged superblock
  // is reported here, in one line. (It also keeps these cases away from Volume::open, whose
  // failure path destroys a half-built Volume and crashes on its null Filesystem.)
  // A daemon that was unmounted but is still closing the volume holds the device a moment
  // longer: wait for it (bounded) rather than fail.
  wait_for_releasing_daemon(a.device, 30);
  {
    auto dev = FileDevice::open(a.device, {.read_only = cfg.volume.read_only, .exclusive = true});
    if (!dev.ok()) {
      print_error("mount", dev.status().message());
      return 1;
    }
    auto sb = read_superblock(**dev, SuperblockCopy::kPrimary);
    if (!sb.ok()) {
      print_error("mount", sb.status().message());
      return 1;
    }
  }
  openlog("stablefs", LOG_PID, LOG_DAEMON);
  if (a.foreground) return serve(a, cfg, -1);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    print_error("mount", std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    print_error("mount", std::string("fork: ") + std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    if (::chdir("/") != 0) {}
    return serve(a, cfg, fds[1]);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (msg == "ok\n") return show_atime_flags(a.mountpoint, cfg);
  if (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (msg.empty()) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    msg = a.device + ": the daemon exited before the filesystem was mounted";
  }
  print_error("mount", msg);
  return 1;
}

struct UmountArgs {
  std::string mountpoint;
  unsigned timeout = 30;
  bool lazy = false;
};

int run_umount(const UmountArgs& a) {
  char resolved[PATH_MAX];
  std::string mnt;
  if (::realpath(a.mountpoint.c_str(), resolved)) {
    mnt = resolved;
  } else if (errno == ENOTCONN && !a.mountpoint.empty() && a.mountpoint[0] == '/') {
    mnt = a.mountpoint;  // a dead FUSE mount (its daemon was killed): umount(8) passes its absolute path
  } else {
    print_error("umount", a.mountpoint + ": " + std::strerror(errno));
    return 1;
  }
  const std::string runtime = runtime_file(mnt);
  pid_t pid = 0;
  std::string device;
  {
    std::ifstream f(runtime);
    f >> pid >> device;
  }
  if (::geteuid() == 0) {
    if (::umount2(mnt.c_str(), a.lazy ? MNT_DETACH : 0) != 0) {
      int err = errno;
      print_error("umount", mnt + ": " + (err == EINVAL ? std::string("not mounted") : std::strerror(err)));
      return 1;
    }
  } else {
    pid_t child = ::fork();
    if (child == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, 2);
      if (a.lazy) ::execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt.c_str(), (char*)nullptr);
      else ::execlp("fusermount3", "fusermount3", "-u", "--", mnt.c_str(), (char*)nullptr);
      ::_exit(127);
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      print_error("umount", mnt + ": fusermount3 -u failed (not mounted, busy, or not yours)");
      return 1;
    }
  }
  if (pid <= 0) return 0;  // no daemon recorded: nothing to wait for
  // A daemon that died without cleaning up (SIGKILL) leaves its runtime file and utab entry.
  auto clean_up_after_dead_daemon = [&] {
    ::unlink(runtime.c_str());
    if (::geteuid() == 0) unregister_umount_helper(mnt);
  };
  if (::kill(pid, 0) != 0 && errno == ESRCH) {
    clean_up_after_dead_daemon();
    return 0;
  }
  // A lazy unmount only detaches: the daemon finishes when the last user lets go, which may
  // be much later; waiting for it here would be waiting for the busy user.
  if (a.lazy) return 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(a.timeout);
  for (;;) {
    struct stat st {};
    bool file_gone = ::stat(runtime.c_str(), &st) != 0;
    bool process_gone = ::kill(pid, 0) != 0 && errno == ESRCH;
    if (process_gone && !file_gone) clean_up_after_dead_daemon();
    if (file_gone || process_gone) return 0;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  print_error("umount", mnt + ": unmounted, but the daemon (pid " + std::to_string(pid) + ") has not released " +
                            device + " after " + std::to_string(a.timeout) + " s");
  return 1;
}

}  // namespace

std::string runtime_file(const std::string& mountpoint) {
  std::string dir = "/run/stablefs";
  if (::geteuid() != 0) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    dir = std::string(xdg && *xdg ? xdg : "/tmp") + "/stablefs-" + std::to_string(::geteuid());
  }
  ::mkdir(dir.c_str(), 0700);
  // The mountpoint with '%' and '/' percent-encoded: one file per mountpoint.
  std::string name;
  for (char c : mountpoint) {
    if (c == '/') name += "%2F";
    else if (c == '%') name += "%25";
    else name.push_back(c);
  }
  return dir + "/" + name + ".pid";
}

RunFn add_mount_command(CLI::App& root) {
  auto args = std::make_shared<MountArgs>();
  CLI::App* sub = root.add_subcommand("mount", "Mount a stablefs filesystem through FUSE (returns once it is live)");
  sub->add_option("device", args->device, "Image file or block device")->required();
  sub->add_option("mountpoint", args->mountpoint, "Directory to mount on (with -o remount: the mount to change)");
  sub->add_option("-o", args->options,
                  "Options: ro, rw, bounce=auto|always|never, bounce_pool=MiB (default 64), submit=auto|ring|inline, commit=SECONDS (default 5, 0: off), allow_other, "
                  "debug, subtype=NAME (type fuse.NAME; empty: plain fuse), relatime (default), strictatime, noatime, nodiratime, "
                  "suid, dev, exec (defaults), nosuid, nodev, noexec, default_permissions, remount (change a live mount: "
                  "ro or rw, the atime and suid/dev/exec options); fstab-only options (defaults, noauto, nofail, _netdev, user, users, owner, comment=, "
                  "x-*) are accepted and ignored")
      ->allow_extra_args(false);
  sub->add_flag("-f,--foreground", args->foreground, "Stay in the foreground (do not daemonize)");
  // How mount(8)'s helpers call it (cli/remount.h): not for people, so not in --help.
  sub->add_flag("--complete-options", args->complete_options, "")->group("");
  return [args] { return run_mount(*args); };
}

RunFn add_umount_command(CLI::App& root) {
  auto args = std::make_shared<UmountArgs>();
  CLI::App* sub = root.add_subcommand("umount", "Unmount a stablefs mount and wait until the device is released");
  sub->add_option("mountpoint", args->mountpoint, "The mountpoint")->required();
  sub->add_option("-t,--timeout", args->timeout, "Seconds to wait for the daemon to finish (default 30)");
  sub->add_flag("-l,--lazy", args->lazy, "Lazy unmount: detach now and return; the daemon finishes when the filesystem is no longer busy");
  return [args] { return run_umount(*args); };
}

}  // namespace stablefs::cli
